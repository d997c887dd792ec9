"""``lookalike models …`` and ``reembed``: a new model beside the served one, then a switch without downtime.

Register a trained model (``models add``), give every product its vector (``reembed``) while the active
model keeps serving, switch every serving process at once (``models activate``), and drop the old vectors
when sure (``models prune``).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from config import Settings


def _registry(settings: Settings):
    from bootstrap import adopt_served_model, open_store
    from db.registry import ModelRegistry

    store = open_store(settings)
    adopt_served_model(settings, store)
    return ModelRegistry(store)


def cmd_models_list(args, settings: Settings) -> None:
    registry = _registry(settings)
    products = sum(registry.store.category_counts().values())
    print(f"{'':2}{'version':<30} {'backbone':<14} {'categories':>10}  {'vectors':>15}  created (UTC)")
    for m in registry.models():
        print(f"{'*' if m.active else '':2}{m.version:<30} {m.backbone:<14} {len(m.categories):>10}  "
              f"{f'{m.vectors}/{products}':>15}  {m.created_at:%Y-%m-%d %H:%M}")
    if not registry.versions():
        print("no model registered: 'lookalike models add' registers the trained one")


def cmd_models_show(args, settings: Settings) -> None:
    from model.versions import ModelFiles

    registry = _registry(settings)
    m = registry.get(args.version)
    missing = registry.missing_vectors(m.version)
    files = ModelFiles(settings.resolved_models_dir)
    print(f"model {m.version}{' (active)' if m.active else ''}\n  backbone:   {m.backbone}\n"
          f"  created:    {m.created_at:%Y-%m-%d %H:%M:%S} UTC\n"
          f"  vectors:    {m.vectors}" + (f", {missing} products still lack one ('lookalike reembed')" if missing
                                           else ", every product has one") +
          f"\n  files:      {files.path(m.version).parent if files.has(m.version) else 'missing'}\n"
          f"  categories: {', '.join(m.categories)}")


def cmd_models_add(args, settings: Settings) -> None:
    from db.store import former_names
    from model.card import ModelCard
    from model.versions import ModelFiles

    registry = _registry(settings)
    path = args.path or settings.resolved_model_path
    files = ModelFiles(settings.resolved_models_dir)
    card = ModelCard.read(path)
    if card.version in registry.versions() and not files.has(card.version):  # the repair the other commands advise
        registered = registry.get(card.version)
        if (card.backbone, len(card.categories)) != (registered.backbone, len(registered.categories)):
            raise ValueError(f"{path} is not the registered model {card.version}: its backbone or categories differ")
        files.add(path)
        print(f"model {card.version} was registered already; its files are back in {files.root}")
        return
    files.add(path)
    categories = registry.register(card.version, card.backbone, card.categories)
    renamed = [f"{before!r} as {after!r}" for before, after in zip(card.categories, categories) if before != after]
    if renamed:
        print(f"categories renamed since it was trained: it predicts {', '.join(renamed)}")
    with registry.store.engine.connect() as conn:
        formerly = former_names(conn)
    for name in categories:
        if others := [other for other in formerly.get(name, []) if other != name]:
            # Two categories swapped names, say: which one the model means cannot be told from the names alone.
            print(f"note: {name!r} was also the name of {', '.join(map(repr, others))} before a rename; if this model "
                  f"was trained before it, its {name!r} means those products: train it again on the folders as they "
                  "are named now")
    print(f"registered model {card.version} ({card.backbone}, {len(card.categories)} categories); it is not "
          f"served yet: run 'lookalike reembed', then 'lookalike models activate {card.version}'")


def cmd_models_activate(args, settings: Settings) -> None:
    from model.versions import ModelFiles
    from search.safety_net import UNPREDICTED_REACH

    registry = _registry(settings)
    registry.get(args.version)
    files = ModelFiles(settings.resolved_models_dir)
    if not files.has(args.version):
        raise FileNotFoundError(f"the files of model {args.version} are not in {files.root}: "
                                "register it again with 'lookalike models add PATH'")
    registry.activate(args.version)
    print(f"model {args.version} is active: every serving process switches to it at its next search")
    unknown = sorted(set(registry.store.category_counts()) - set(registry.categories(args.version)))
    if unknown:
        print(f"  it does not predict {', '.join(map(repr, unknown))}: {UNPREDICTED_REACH}")


def cmd_models_prune(args, settings: Settings) -> None:
    from model.versions import ModelFiles

    registry = _registry(settings)
    pruned = registry.prune(list(dict.fromkeys(args.versions)) or None)  # a version named twice is pruned once
    files = ModelFiles(settings.resolved_models_dir)
    for version, count in pruned.items():
        files.remove(version)
        print(f"pruned model {version}: {count} vectors deleted")
    if not pruned:
        print("nothing to prune: the store holds the active model's vectors only")


def cmd_reembed(args, settings: Settings) -> None:
    """Give every product a vector of every registered model (the served one first); nothing is deleted."""
    from bootstrap import build_loader, open_network, open_networks

    registry = _registry(settings)
    if args.version:
        registry.get(args.version)
        networks = [open_network(settings, True, registry.store, args.version)]
    else:
        networks = open_networks(settings, registry.store, batch_work=True)
    active = registry.active()
    for version, counts in build_loader(settings, registry.store, networks).reembed().items():
        print(f"model {version}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        # A version this run completed (not the one serving, nor an older one whose vectors ingest kept up)
        if counts["embedded"] and (not active or version != active.version) and version in registry.versions() \
                and not registry.missing_vectors(version):
            print(f"every product has a vector of {version}: 'lookalike models activate {version}' serves it")


def add_commands(sub: argparse._SubParsersAction) -> None:
    reembed = sub.add_parser("reembed", help="give every product a vector of every registered model "
                             "(other versions' vectors are kept: 'models prune' drops them)")
    reembed.add_argument("--version", help="only this registered version")
    reembed.set_defaults(func=cmd_reembed)

    models = sub.add_parser("models", help="the model registry: list, show, add, activate, prune")
    actions = models.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="registered models (* = active), with their vector counts").set_defaults(
        func=cmd_models_list)
    show = actions.add_parser("show", help="one registered model")
    show.add_argument("version")
    show.set_defaults(func=cmd_models_show)
    add = actions.add_parser("add", help="register a trained model (not served until activated)")
    add.add_argument("path", type=Path, nargs="?", help="its .keras file (default: LOOKALIKE_MODEL_PATH)")
    add.set_defaults(func=cmd_models_add)
    activate = actions.add_parser("activate", help="serve this version in every process (refused while some "
                                  "product lacks its vector)")
    activate.add_argument("version")
    activate.set_defaults(func=cmd_models_activate)
    prune = actions.add_parser("prune", help="delete other versions' vectors and files, and unregister them")
    prune.add_argument("versions", nargs="*", help="which (default: every version but the active one)")
    prune.set_defaults(func=cmd_models_prune)
