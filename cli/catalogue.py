"""``lookalike ingest``, ``products …`` and ``categories …``: loading the catalogue and keeping it right.

Every change bumps the revision of the categories it touches in the same transaction, so every serving
process reloads them before its next search.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import shlex
from collections.abc import Collection, Iterable, Iterator
from pathlib import Path

from cli.arguments import positive, product_id
from config import Settings
from db.schema import LARGEST_ID


def cmd_ingest(args, settings: Settings) -> int:
    """Exit status 1 when some file was rejected (listed in the summary), so a script notices; the rest is stored."""
    from bootstrap import adopt_served_model, build_loader, open_networks, open_store
    from catalogue.folder import list_catalogue, load_metadata, relabel
    from search.safety_net import UNPREDICTED_REACH

    files = list_catalogue(args.catalogue, args.category)
    categories = sorted({f.category for f in files})
    if args.category and files and args.category not in categories:
        raise ValueError(f"--category names the category of files lying directly in {args.catalogue}, and none do: "
                         f"its sub-folders are categories of their own ({', '.join(categories[:5])}"
                         f"{', …' if len(categories) > 5 else ''}); run it without --category")
    store = open_store(settings)
    renamed = _renamed_folders(store, files, categories, args.category)
    files = relabel(files, renamed)
    categories = sorted({f.category for f in files})
    # A CSV may name a renamed category as its folder still does, or by its name now.
    metadata = load_metadata(args.csv, files, args.csv_key, {new: old for old, new in renamed.items()}) \
        if args.csv else {}
    if args.csv:
        print(f"metadata: {len(metadata)} of {len(files)} files have a row in {args.csv}")
    adopt_served_model(settings, store)
    networks = open_networks(settings, store, batch_work=True)
    report = build_loader(settings, store, networks).ingest(files, metadata)
    print(report.summary())
    if report.unpredicted:
        print(f"  not predicted by the served model: {', '.join(map(repr, report.unpredicted))}; until a model "
              f"trained on them is activated, {UNPREDICTED_REACH}")
    if len(networks) > 1:
        print("new products have vectors of " + ", ".join(network.version for network in networks))
    if args.sync and report.doubtful:
        print(f"sync: not run, {report.doubtful} rejected files may hold a product's photo (above), so which stored "
              "products are gone is unknown: make them readable or take them out of the folder, and run again")
    elif args.sync:  # only categories with a file here: an emptied or misnamed folder never syncs a whole category away
        _sync(store, categories, report.places.keys(), args.yes)
    return 1 if report.rejected else 0


def _renamed_folders(store, files, categories: list[str], flat: str | None) -> dict[str, str]:
    """Folders still named as a category was before 'categories rename': the renamed category, when the folder
    holds one of its pictures (else the name is taken for a new category, as the admin may mean)."""
    from db.store import renames

    with store.engine.connect() as conn:
        candidates = renames(conn, categories)
    renamed: dict[str, str] = {}
    for folder, category in candidates.items():
        label = f"the category {folder!r} of the files here" if flat else f"folder {folder!r}"
        if store.known_hashes(_pictures(entry.path for entry in files if entry.category == folder), category):
            renamed[folder] = category
            print(f"{label} is category {category!r}, renamed from it: its files go there")
        else:
            print(f"{label} has the name category {category!r} had before a rename, but none of its pictures: it is "
                  f"a new category {folder!r} (rename the folder if its pictures belong to {category!r})")
    return renamed


def _pictures(paths: Iterable[Path]) -> Iterator[str]:
    """The SHA-256 of each readable file (the ingest reports the others)."""
    from model.card import file_sha256

    for path in paths:
        with contextlib.suppress(OSError):
            yield file_sha256(path)


def _sync(store, categories: list[str], hashes: Collection[str], delete: bool) -> None:
    gone = store.products_missing_from(categories, hashes)
    if not gone:
        print(f"sync: every stored product of {', '.join(categories) or 'these categories'} is in the folder")
        return
    print(f"sync: {len(gone)} stored products of {', '.join(categories)} are no longer in the folder:")
    for product in gone:
        print(f"  {product.id:>8}  {product.category:<16} {product.external_id}")
    if delete:
        deleted = store.delete_products([product.id for product in gone])
        print(f"deleted {sum(deleted.values())} products ({_per_category(deleted)})")
    else:
        print("nothing deleted: run the same command with --yes to delete them")


def cmd_products_list(args, settings: Settings) -> None:
    from bootstrap import open_store

    # One more than shown tells whether any is left (the store binds no more than LARGEST_ID).
    products = open_store(settings).list_products(args.category, args.after, min(args.limit + 1, LARGEST_ID))
    print(f"{'id':>8}  {'external id':<16} {'category':<20} metadata")
    for p in products[:args.limit]:
        print(f"{p.id:>8}  {p.external_id[:16]:<16} {p.category[:20]:<20} "
              f"{json.dumps(p.metadata, ensure_ascii=False)[:80]}")
    if len(products) > args.limit:
        within = f" --category {shlex.quote(args.category)}" if args.category else ""
        print(f"… more with{within} --after {products[args.limit - 1].id}")


def cmd_products_show(args, settings: Settings) -> None:
    from bootstrap import open_store
    from db.registry import ModelRegistry

    store = open_store(settings)
    detail = store.product_detail(args.id)
    active = ModelRegistry(store).active()
    info = detail.info
    print(f"product {info.id}\n  external id: {info.external_id}\n  category:    {info.category}\n"
          f"  image:       {detail.content_type}, {info.width}×{info.height}, sha256 {detail.image_sha256[:16]}…\n"
          f"  added:       {detail.created_at:%Y-%m-%d %H:%M:%S} UTC")
    print("  vectors:     " + (", ".join(v + (" (active)" if active and v == active.version else "")
                                        for v in detail.versions) or "none"))
    print("  metadata:" + ("" if info.metadata else " none"))
    for key, value in info.metadata.items():
        print(f"    {key}: {value}")


def cmd_products_delete(args, settings: Settings) -> None:
    from bootstrap import open_store

    ids = list(args.ids)
    if args.file:
        ids += [line.strip() for line in args.file.read_text(encoding="utf-8").splitlines()
                if line.strip() and not line.startswith("#")]
    if not ids:
        raise ValueError("no product to delete: give ids, or --file with one id a line")
    store = open_store(settings)
    if args.category and not args.external:
        raise ValueError("--category names the category of external ids: add --external")
    if args.external:
        product_ids = store.ids_of(ids, args.category)
    else:
        try:
            product_ids = [product_id(i) for i in ids]
        except argparse.ArgumentTypeError as e:
            raise ValueError(f"{e}; for the shop's own ids add --external") from e
    deleted = store.delete_products(product_ids)
    print(f"deleted {sum(deleted.values())} products ({_per_category(deleted)})")


def cmd_categories_list(args, settings: Settings) -> None:
    from bootstrap import open_store

    counts = open_store(settings).category_counts()
    for name, count in counts.items():
        print(f"{count:>7}  {name}")
    if not counts:
        print("no products stored: 'lookalike ingest FOLDER' loads a catalogue")


def cmd_categories_show(args, settings: Settings) -> None:
    from bootstrap import open_store
    from db.registry import ModelRegistry

    store = open_store(settings)
    detail = store.category_detail(args.name)
    active = ModelRegistry(store).active()
    print(f"category {detail.name}: {detail.products} products, revision {detail.revision}")
    for version, count in detail.vectors.items():
        print(f"  vectors of {version}: {count}" + (" (active)" if active and version == active.version else ""))
    models = [m.version for m in ModelRegistry(store).models() if detail.name in m.categories]
    print("  predicted by: " + (", ".join(models) or ("no registered model (retrain to learn it)" if detail.products
                                                       else "no registered model")))


def cmd_categories_delete(args, settings: Settings) -> None:
    from bootstrap import open_store

    store = open_store(settings)
    if not args.yes:
        count = store.category_detail(args.name).products
        raise ValueError(f"deleting category {args.name!r} deletes its {count} products: add --yes to confirm")
    print(f"deleted the {store.delete_category(args.name)} products of category {args.name!r}")


def cmd_categories_rename(args, settings: Settings) -> None:
    from bootstrap import adopt_served_model, open_store
    from catalogue.folder import category_form

    store = open_store(settings)
    adopt_served_model(settings, store)  # so the served model's predictions follow the new name
    store.rename_category(args.old, args.new)
    new = args.new.strip()
    if new == args.old:
        print(f"category {args.old!r} already has that name")
        return
    print(f"renamed category {args.old!r} to {new!r} (and wherever a registered model names it)")
    for other in store.category_counts():
        if other != new and category_form(other) == category_form(new):  # as ingest points out for a new folder
            print(f"  {new!r} differs from category {other!r} only in case, spaces or underscores; if that is a "
                  f"typo: 'lookalike categories rename {shlex.quote(new)} NAME' (a rename cannot merge two categories)")


def _per_category(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {count}" for name, count in sorted(counts.items())) or "none"


def add_commands(sub: argparse._SubParsersAction) -> None:
    ingest = sub.add_parser("ingest", help="load a catalogue folder (and metadata CSV) into the store")
    ingest.add_argument("catalogue", type=Path, help="a folder of category folders (or one flat folder)")
    ingest.add_argument("--csv", type=Path, help="per-product metadata, joined by file name or id; stored "
                        "products get it too (by category and external id)")
    ingest.add_argument("--csv-key", help="the CSV column holding the file name or id (default: detected)")
    ingest.add_argument("--category", help="category of files lying directly in the folder")
    ingest.add_argument("--sync", action="store_true",
                        help="then list the stored products of the folder's categories whose file is gone")
    ingest.add_argument("--yes", action="store_true", help="with --sync: delete them")
    ingest.set_defaults(func=cmd_ingest)

    products = sub.add_parser("products", help="list, show or delete products")
    actions = products.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="products in id order, with their metadata")
    listing.add_argument("--category")
    listing.add_argument("--after", type=product_id, default=0, help="start after this product id")
    listing.add_argument("--limit", type=positive, default=50)
    listing.set_defaults(func=cmd_products_list)
    show = actions.add_parser("show", help="one product: metadata, image, model versions with vectors")
    show.add_argument("id", type=product_id)
    show.set_defaults(func=cmd_products_show)
    remove = actions.add_parser("delete", help="delete products (all or none: an unknown id deletes nothing)")
    remove.add_argument("ids", nargs="*", help="product ids (as 'products list' and 'search' show them)")
    remove.add_argument("--file", type=Path, help="a file of ids, one a line")
    remove.add_argument("--external", action="store_true", help="the ids are the shop's (external ids)")
    remove.add_argument("--category", help="with --external: the category the ids are in (needed where an external id "
                                           "is in several)")
    remove.set_defaults(func=cmd_products_delete)

    categories = sub.add_parser("categories", help="list (default), show, delete or rename categories")
    categories.set_defaults(func=cmd_categories_list)
    actions = categories.add_subparsers(dest="action")
    actions.add_parser("list", help="categories with their product counts").set_defaults(func=cmd_categories_list)
    show = actions.add_parser("show", help="one category: products, revision, vectors per model version")
    show.add_argument("name")
    show.set_defaults(func=cmd_categories_show)
    remove = actions.add_parser("delete", help="delete every product of a category")
    remove.add_argument("name")
    remove.add_argument("--yes", action="store_true", help="confirm")
    remove.set_defaults(func=cmd_categories_delete)
    rename = actions.add_parser("rename", help="rename a category (models keep predicting it)")
    rename.add_argument("old")
    rename.add_argument("new")
    rename.set_defaults(func=cmd_categories_rename)
