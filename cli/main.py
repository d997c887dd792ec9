"""``lookalike``: the admin's and developer's command line.

The model and the store are built here, once, from the settings, and passed to what uses them.
"""
from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import signal
import sys
import time
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from cli import catalogue, improve, models
from cli.arguments import non_negatives, percentages, port, positive, report_folder, shares, zero_or_more
from config import Settings
from config.choices import Metric, Optimizer, Scope
from config.settings import DEMO_DIR, DEMO_WEIGHTS
from evaluation.output import report_files


def cmd_db(args, settings: Settings) -> None:
    from db import migrate

    if args.action == "upgrade":
        migrate.upgrade(settings.resolved_database_url, args.revision or "head")
    else:
        migrate.downgrade(settings.resolved_database_url, args.revision or "-1")
    print(f"database at revision {migrate.current_revision(_engine(settings)) or 'none'}")


def _engine(settings: Settings):
    from db.store import create_db_engine

    return create_db_engine(settings.resolved_database_url)


def cmd_train(args, settings: Settings) -> None:
    from catalogue.folder import list_catalogue, relabel
    from model.training import TrainConfig

    chosen = {name: getattr(args, name) for name in TRAIN_OPTIONS if getattr(args, name) is not None}
    config = TrainConfig(**{"backbone": settings.backbone, "weights": settings.weights,
                            "input_size": settings.input_size, "batch_size": settings.batch_size, **chosen})
    mapping = json.loads(args.label_map.read_text()) if args.label_map else {}
    files = [entry for folder in args.catalogue for entry in relabel(list_catalogue(folder), mapping)]
    train_and_save(files, config, settings.resolved_model_path)


# ``lookalike train`` options that override a TrainConfig field of the same name (its defaults are the recipe).
TRAIN_OPTIONS = ("backbone", "weights", "input_size", "optimizer", "learning_rate", "epochs", "top_learning_rate",
                 "top_epochs", "views", "instance_holdout", "neighbourhood_weight", "validation_split", "patience")


def train_and_save(files, config, model_path: Path) -> None:
    from model.training import train

    started = time.perf_counter()
    result = train(files, config)
    for path, reason in result.rejected:
        print(f"skipped {path}: {reason}")
    result.model.save(model_path)
    final = {k: round(v, 4) for k, v in result.history.items() if k.startswith("val_")}
    print(f"saved model {result.model.version} to {model_path} ({len(result.model.categories)} categories, "
          f"{result.epochs_run} epochs, {result.seconds_per_epoch:.2f} s/epoch, "
          f"{time.perf_counter() - started:.0f} s in all{', ' + str(final) if final else ''})")
    if result.model.min_similarity is not None:
        print(f"weak-match threshold calibrated on the training pictures: {result.model.min_similarity:.1f} %")


def cmd_export(args, settings: Settings) -> None:
    """Export the trained model's ONNX graph again (models saved before serving moved to ONNX Runtime)."""
    from model.card import onnx_path
    from model.network import KerasNetwork

    network = KerasNetwork.load(settings.resolved_model_path, settings.batch_size)
    network.export(settings.resolved_model_path)
    print(f"exported model {network.version} to {onnx_path(settings.resolved_model_path)} "
          f"(sha256 {network.card.onnx_sha256[:16]}…)")


def cmd_search(args, settings: Settings) -> None:
    from bootstrap import build_service

    service = build_service(settings)
    print(format_result(service.search(Path(args.image).read_bytes(), args.k, args.metric, args.scope)))


def format_result(result) -> str:
    """A search result as a plain-text table."""
    category, p = result.predicted
    lines = [f"predicted category: {category} ({100 * p:.1f} %); searched: {', '.join(result.searched)}",
             f"{'#':>3}  {'product':>8}  {'external id':<14} {'category':<16} {'distance':>8}  {'similarity':>10}"]
    for i, match in enumerate(result.matches, 1):
        lines.append(f"{i:>3}  {match.product.id:>8}  {match.product.external_id[:14]:<14} "
                     f"{match.product.category[:16]:<16} {match.distance:>8.4f}  {match.similarity:>9.1f}%")
    if not result.matches:
        lines.append("  (no stored products in the searched categories: 'lookalike categories' lists those stored)")
    elif result.weak:
        lines.append(f"nothing in the catalogue looks much like this image: {result.weak_reason}")
    lines.append("timings: " + ", ".join(f"{k} {v:.1f} ms" for k, v in result.timings_ms.items()))
    return "\n".join(lines)


def cmd_serve(args, settings: Settings) -> None:
    """Flask's development server, for the demo; production serves with gunicorn (see README)."""
    from webapp import create_app

    app = create_app(settings)
    print(f"Lookalike is serving on http://{args.host}:{args.port}/ — search by photo in a browser, or:\n"
          f"  curl -F image=@demo/queries/Watches/$(ls demo/queries/Watches | head -1) "
          f"http://{args.host}:{args.port}/api/search")
    app.run(host=args.host, port=args.port, threaded=True, debug=False)  # never the debugger, whatever FLASK_DEBUG says


def cmd_evaluate(args, settings: Settings) -> None:
    """Search labelled queries against the ingested catalogue and write the report (or a τ × merge-weight sweep:
    the network sees each query once, and every policy answers from its outputs)."""
    from dataclasses import replace

    from bootstrap import build_service, open_network, open_store
    from catalogue.folder import list_catalogue
    from evaluation import report

    if args.k < max(report.KS):
        raise ValueError(f"-k {args.k} is below the report's deepest rank: it gives precision and recall at "
                         f"{', '.join(map(str, report.KS))}")
    queries = list_catalogue(args.queries)
    relevance = report.load_relevance(args.relevance)
    taus = args.tau or [settings.narrow_tau]
    weights = args.merge_weight or [settings.merge_weight]
    store = open_store(settings)
    for warning in report.check_labels(queries, relevance, store.category_counts()):
        print(f"note: {warning}")
    service = build_service(settings, open_network(settings, batch_work=True, store=store), store)
    policies = [replace(service.policy, tau=tau, merge_weight=weight,
                        max_categories=args.max_categories or service.policy.max_categories)
                for tau, weight in itertools.product(taus, weights)]
    evaluations = report.sweep(service, queries, policies, relevance, k=args.k, metric=args.metric, scope=args.scope)
    rows = []
    for policy, evaluation in zip(policies, evaluations):
        summary = report.summarise(evaluation, service.store.category_counts(), service.model.categories)
        summary["settings"] = {"tau": policy.tau, "max_categories": policy.max_categories,
                               "merge_weight": policy.merge_weight, "exact_distance": policy.exact_distance,
                               "k": args.k, "metric": args.metric or settings.metric, "model": service.model.version}
        rows.append(summary)
    with report_files(args.out, "evaluate", service.model.version):
        for policy, evaluation, summary in zip(policies, evaluations, rows):
            swept = [f"tau-{policy.tau:g}"] * (len(taus) > 1) + [f"merge-{policy.merge_weight:g}"] * (len(weights) > 1)
            out = args.out / "-".join(swept) if swept else args.out
            report.write_report(evaluation, summary, out, service.model.categories, args.title or args.queries.name,
                                service.store)
            print(f"τ={policy.tau:g} merge weight {policy.merge_weight:g}: "
                  f"top-1 {summary['top1_category_accuracy']:.2%}, "
                  f"missed {summary['missed_category_rate']:.2%}, {summary['mean_categories_searched']:.2f} "
                  f"categories, safety net {summary['safety_net_fired']:.1%}, "
                  f"P@10 {summary['retrieval']['@10']['precision']:.4f}, "
                  f"latency p50 {summary['latency_ms_per_query']['p50']:.1f} ms → {out}")
        if len(rows) > 1:
            from evaluation.figures import narrowing_curve

            narrowing_curve(rows, args.out / "narrowing.png")
            (args.out / "narrowing.md").write_text(report.narrowing_table(rows))


def cmd_evaluate_instances(args, settings: Settings) -> None:
    from bootstrap import build_service, open_network
    from catalogue.folder import list_catalogue
    from evaluation.instances import evaluate_instances

    service = build_service(settings, open_network(settings, batch_work=True))
    table = evaluate_instances(service, list_catalogue(args.catalogue), args.count).markdown()
    with report_files(args.out, "evaluate-instances", service.model.version) as out:
        (out / "instances.md").write_text(table)
    print(table, end="")


def cmd_evaluate_unseen(args, settings: Settings) -> None:
    """The embedding against the backbone's pooled features, on photos the model never saw (Keras: needs both)."""
    from catalogue.folder import list_catalogue
    from evaluation.unseen import compare_on_unseen
    from model.network import KerasNetwork

    network = KerasNetwork.load(settings.resolved_model_path, settings.batch_size)
    tables = [compare_on_unseen(network, list_catalogue(folder), settings.max_image_pixels, args.count).markdown(
        folder.name) for folder in args.folders]
    with report_files(args.out, "evaluate-unseen", network.version) as out:
        (out / "unseen.md").write_text("\n".join(tables))
    print("\n".join(tables), end="")


def cmd_evaluate_similarity(args, settings: Settings) -> None:
    """The best match's similarity per folder, and how many each weak-match threshold would call weak."""
    from bootstrap import build_service, open_network
    from catalogue.folder import list_catalogue
    from evaluation.similarity import best_matches, markdown

    service = build_service(settings, open_network(settings, batch_work=True))
    rows = [best_matches(service, str(folder), list_catalogue(folder), args.count, settings.batch_size)
            for folder in args.folders]
    table = markdown(rows, args.thresholds)
    with report_files(args.out, "evaluate-similarity", service.model.version) as out:
        (out / "similarity.md").write_text(table)
    print(table, end="")


def cmd_evaluate_localisation(args, settings: Settings) -> None:
    """Products pasted at known places on larger backgrounds: how well each threshold's box finds them."""
    from bootstrap import open_network
    from catalogue.folder import list_catalogue, per_category
    from evaluation.localisation import run, write

    products = per_category(list_catalogue(args.queries), args.per_category)
    network = open_network(settings, batch_work=True)
    summary = run(network, products, args.thresholds, settings.max_image_pixels)
    with report_files(args.out, "evaluate-localisation", network.version) as out:
        print(write(summary, out))


def cmd_grid(args, settings: Settings) -> None:
    """Backbones × optimizers × learning rates, each trained and tested; results table and curves."""
    from catalogue.folder import list_catalogue, per_category
    from evaluation.grid import run_grid
    from model.training import TrainConfig

    wanted = set(args.categories.split(",")) if args.categories else None

    backbones = [tuple(item.split(":", 1)) if ":" in item else (item, "imagenet") for item in args.backbones.split(",")]
    # A validation share chooses each run's best epoch, so the runs are compared at their best.
    base = TrainConfig(input_size=args.input_size, epochs=args.epochs, patience=args.patience,
                       validation_split=args.validation_split, batch_size=settings.batch_size)
    runs = run_grid(per_category(list_catalogue(args.catalogue), args.per_category, wanted),
                    per_category(list_catalogue(args.test), 0, wanted), base, backbones,
                    args.optimizers.split(","), [float(r) for r in args.learning_rates.split(",")], args.out,
                    args.note or "")
    print((args.out / "results.md").read_text(), end="")
    print(f"{len(runs)} runs; curves and checkpoints in {args.out}")


def cmd_demo(args, settings: Settings) -> None:
    """Set up the embedded demo from the committed assets: schema, model, catalogue, one search."""
    from bootstrap import adopt_served_model, build_loader, build_service, open_store
    from catalogue.folder import list_catalogue, load_metadata
    from db.migrate import upgrade
    from model.card import ModelCard
    from model.training import TrainConfig

    offline = settings.demo_backbone == "mobilenet_v2"
    print(f"Lookalike demo: backbone {settings.demo_backbone}, "
          + ("offline ImageNet weights from demo/weights (ResNet50's cannot be fetched without internet; "
             "set LOOKALIKE_DEMO_BACKBONE=resnet50 where they are available)" if offline
             else "ImageNet weights through Keras (its cache, or a download)"))
    print(f"database: {settings.resolved_database_url}")
    upgrade(settings.resolved_database_url)
    model_path = settings.resolved_model_path
    files = list_catalogue(DEMO_DIR / "catalogue")
    if not _model_fits(model_path, settings.demo_backbone):
        weights = str(DEMO_WEIGHTS) if offline else "imagenet"
        train_and_save(files, TrainConfig(backbone=settings.demo_backbone, weights=weights,
                                          batch_size=settings.batch_size), model_path)
    store = open_store(settings)
    adopt_served_model(settings, store)  # as the first ingest does: the admin commands see the demo's model
    service = build_service(settings, store=store)
    if service.model.version != (trained := ModelCard.read(model_path).version):  # a demo of another backbone before
        print(f"note: this store serves model {service.model.version}, registered by an earlier run, not {trained}: "
              f"delete {settings.data_dir} to start the demo afresh, or serve {trained} as the README's 'A new model "
              "without downtime' says")
    print(build_loader(settings, service.store, [service.model])
          .ingest(files, load_metadata(DEMO_DIR / "products.csv", files)).summary())
    query = sorted((DEMO_DIR / "queries").rglob("*.jpg"))[0]
    print(f"\nsearching with {query.relative_to(DEMO_DIR)} (k=5):")
    print(format_result(service.search(query.read_bytes(), k=5)))


def _model_fits(model_path: Path, backbone: str) -> bool:
    from model.card import ModelCard, card_path, onnx_path

    if not all(path.is_file() for path in (model_path, onnx_path(model_path), card_path(model_path))):
        return False
    card = ModelCard.read(model_path)
    return card.backbone == backbone and bool(card.onnx_sha256)


def _photos_drawn_from_folders(command: argparse.ArgumentParser, folders_help: str, count: int) -> None:
    """The arguments of an evaluation that draws ``--count`` photos from each of several folders."""
    command.add_argument("folders", type=Path, nargs="+", help=folders_help)
    command.add_argument("--out", type=report_folder, required=True)
    command.add_argument("--count", type=positive, default=count, help="photos drawn from each folder")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lookalike", description="Visual product search: the command line. "
                                     "Settings come from LOOKALIKE_* environment variables (see README).")
    sub = parser.add_subparsers(dest="command", required=True)

    db = sub.add_parser("db", help="upgrade or downgrade the database schema (Alembic)")
    db.add_argument("action", choices=["upgrade", "downgrade"])
    db.add_argument("revision", nargs="?", help="target revision (default: head for upgrade, -1 for downgrade)")
    db.set_defaults(func=cmd_db)

    train = sub.add_parser("train", help="train the classifier+embedding head on a catalogue folder")
    train.add_argument("catalogue", type=Path, nargs="+", help="one or more folders of category folders")
    train.add_argument("--label-map", type=Path,
                       help="JSON: folder label → category (null drops it), for extra training photos")
    train.add_argument("--backbone", help="resnet50, mobilenet_v2, vgg16 or small_cnn (default: settings)")
    train.add_argument("--weights", help="imagenet, none or a weights file (default: settings)")
    train.add_argument("--input-size", type=int, help="square input side (default: settings, or the backbone's)")
    train.add_argument("--optimizer", choices=Optimizer.values())
    train.add_argument("--learning-rate", type=float, help="head stage, cosine decay from it")
    train.add_argument("--epochs", type=int, help="head stage")
    train.add_argument("--top-learning-rate", type=float, help="stage training the backbone's top with the head")
    train.add_argument("--top-epochs", type=int, help="0 keeps the whole backbone frozen")
    train.add_argument("--views", type=int, help="augmented views cached per training image")
    train.add_argument("--instance-holdout", type=float,
                       help="share of products kept out of the instance objective (to measure new products)")
    train.add_argument("--neighbourhood-weight", type=float,
                       help="weight of the objective keeping the backbone's neighbours in the embedding (0: none)")
    train.add_argument("--validation-split", type=float)
    train.add_argument("--patience", type=int)
    train.set_defaults(func=cmd_train)

    export = sub.add_parser("export", help="export the trained model to ONNX for serving (done by train already)")
    export.set_defaults(func=cmd_export)

    catalogue.add_commands(sub)  # ingest, products, categories
    models.add_commands(sub)  # reembed, models
    improve.add_commands(sub)

    search = sub.add_parser("search", help="search the catalogue with an image file and print a table")
    search.add_argument("image", type=Path)
    search.add_argument("-k", type=int, default=None)
    search.add_argument("--metric", choices=Metric.values())
    search.add_argument("--scope", choices=Scope.values())
    search.set_defaults(func=cmd_search)

    evaluate = sub.add_parser("evaluate", help="report accuracy and retrieval metrics on labelled queries")
    evaluate.add_argument("queries", type=Path, help="a folder of category folders of query images")
    evaluate.add_argument("--out", type=report_folder, required=True, help="folder for the report")
    evaluate.add_argument("--relevance", type=Path, help="JSON: query label → relevant catalogue categories")
    evaluate.add_argument("-k", type=positive, default=30)
    evaluate.add_argument("--metric", choices=Metric.values())
    evaluate.add_argument("--scope", choices=Scope.values())
    evaluate.add_argument("--tau", type=shares, help="narrowing threshold; several, comma-separated, make a τ sweep")
    evaluate.add_argument("--max-categories", type=positive, help="cap on categories searched")
    evaluate.add_argument("--merge-weight", type=non_negatives, help="merge weight β of d² − β·ln p; several, "
                                                                     "comma-separated, are swept (with every τ)")
    evaluate.add_argument("--title")
    evaluate.set_defaults(func=cmd_evaluate)

    instances = sub.add_parser("evaluate-instances", help="can altered catalogue photos find their original?")
    instances.add_argument("catalogue", type=Path, help="the ingested catalogue folder")
    instances.add_argument("--out", type=report_folder, required=True)
    instances.add_argument("--count", type=positive, default=500)
    instances.set_defaults(func=cmd_evaluate_instances)

    unseen = sub.add_parser("evaluate-unseen", help="instance search on photos the model never saw: the embedding "
                                                     "against the backbone's pooled features")
    _photos_drawn_from_folders(unseen, "folders of photos (any layout) the model never saw", count=500)
    unseen.set_defaults(func=cmd_evaluate_unseen)

    similar = sub.add_parser("evaluate-similarity", help="the best match's similarity on photos the shop sells and "
                                                         "does not sell: choose the weak-match threshold")
    _photos_drawn_from_folders(similar, "folders of photos (any layout)", count=200)
    similar.add_argument("--thresholds", type=percentages, default="35,40,45,50,60",
                         help="similarities (%%), comma-separated")
    similar.set_defaults(func=cmd_evaluate_similarity)

    located = sub.add_parser("evaluate-localisation", help="catalogue products pasted at known places on larger "
                                                          "backgrounds: how well the activation map's box finds them")
    located.add_argument("queries", type=Path, help="a folder of category folders of product photos on white")
    located.add_argument("--out", type=report_folder, required=True)
    located.add_argument("--per-category", type=zero_or_more, default=2, help="photos of each category (0: every one)")
    located.add_argument("--thresholds", type=shares, default="0.2,0.3,0.4,0.5,0.6,0.7",
                         help="shares of the map's peak")
    located.set_defaults(func=cmd_evaluate_localisation)

    grid = sub.add_parser("grid", help="the model comparison: backbones × optimizers × learning rates")
    grid.add_argument("catalogue", type=Path, help="training images: a folder of category folders")
    grid.add_argument("--test", type=Path, required=True, help="labelled test images, same categories")
    grid.add_argument("--out", type=Path, required=True)
    grid.add_argument("--backbones", default="small_cnn:none,vgg16,resnet50,mobilenet_v2",
                      help="comma-separated NAME or NAME:WEIGHTS (weights: imagenet, none or a file)")
    grid.add_argument("--optimizers", default=",".join(Optimizer), help="comma-separated (default: %(default)s)")
    grid.add_argument("--learning-rates", default="1e-2,1e-3,1e-4")
    grid.add_argument("--epochs", type=int, default=50)
    grid.add_argument("--patience", type=int, default=5)
    grid.add_argument("--validation-split", type=float, default=0.2)
    grid.add_argument("--input-size", type=int, default=0)
    grid.add_argument("--per-category", type=zero_or_more, default=0,
                      help="at most this many training images per category (0: every one)")
    grid.add_argument("--categories", help="comma-separated subset of categories")
    grid.add_argument("--note", help="a note repeated in every row (e.g. 'small run')")
    grid.set_defaults(func=cmd_grid)

    serve = sub.add_parser("serve", help="serve the web app with the development server (demo use)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=port, default=8000)
    serve.set_defaults(func=cmd_serve)

    demo = sub.add_parser("demo", help="set up the embedded demo (schema, model, catalogue) and run a search")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter hides our output
    args = build_parser().parse_args(argv)
    try:
        status = args.func(args, Settings.from_env()) or 0  # only a command that can half-succeed says so
        sys.stdout.flush()  # here, so that a reader gone away is caught below, not at exit
    except BrokenPipeError:  # piped into a reader that stopped early (| head): no traceback, as Python's docs advise
        with contextlib.suppress(OSError, ValueError):  # the rest of the output, flushed at exit, goes nowhere
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE  # what a shell reports for a command its reader stopped: not 1, "files rejected"
    except KeyboardInterrupt:  # Ctrl-C
        resumable = args.command in ("ingest", "reembed")  # what they committed stays, and a re-run goes on from it
        print("\nlookalike: interrupted" + (f"; what was stored is kept: run '{args.command}' again to finish"
                                            if resumable else ""), file=sys.stderr)
        return 130
    except (OSError, ValueError, RuntimeError) as e:  # a file not found or unreadable, a directory for a file, …
        print(f"lookalike: {e}", file=sys.stderr)
        return 2
    except SQLAlchemyError as e:
        print(f"lookalike: database error: {e.__class__.__name__}: {e.orig if hasattr(e, 'orig') else e}",
              file=sys.stderr)
        return 2
    return status


if __name__ == "__main__":
    sys.exit(main())
