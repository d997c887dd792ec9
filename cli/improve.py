"""``lookalike improve``: the whole loop from the served model to a better one, in one resumable command."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from config import Settings


def cmd_improve(args, settings: Settings) -> None:
    from bootstrap import adopt_served_model, open_store
    from catalogue.folder import list_catalogue
    from evaluation import improve, report

    improve.check_metric(args.metric)
    options = dict(_option(item) for item in args.train)
    store = open_store(settings)
    adopt_served_model(settings, store)
    files = [entry for folder in args.catalogue for entry in list_catalogue(folder)]
    improve.improve(settings, store, files, list_catalogue(args.queries), args.out, args.metric, args.force,
                    options, report.load_relevance(args.relevance))


def _option(item: str) -> tuple[str, object]:
    """``KEY=VALUE``, the value read as JSON when it is JSON (numbers, true/false), else as text."""
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise ValueError(f"--train takes KEY=VALUE (e.g. epochs=20), got {item!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def add_commands(sub: argparse._SubParsersAction) -> None:
    from evaluation.improve import METRICS

    improve = sub.add_parser("improve", help="evaluate the active model, train a new one, embed, evaluate again, "
                             "report, and activate it if better (resumable: run again with the same --out)")
    improve.add_argument("catalogue", type=Path, nargs="+", help="training images: folders of category folders")
    improve.add_argument("--queries", type=Path, required=True, help="labelled query photos (category folders)")
    improve.add_argument("--out", type=Path, required=True, help="the run's folder: state, report, pictures")
    improve.add_argument("--metric", default="map@10", help=f"what 'better' means: {', '.join(METRICS)}")
    improve.add_argument("--force", action="store_true", help="activate the new model even if it is not better")
    improve.add_argument("--train", action="append", default=[], metavar="KEY=VALUE",
                         help="change the active model's training recipe, e.g. --train epochs=30 --train views=4")
    improve.add_argument("--relevance", type=Path, help="JSON: query label → relevant catalogue categories")
    improve.set_defaults(func=cmd_improve)
