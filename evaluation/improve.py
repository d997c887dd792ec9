"""``lookalike improve``: evaluate the served model, train a new one, embed the catalogue with it, evaluate
it on the same queries, report before/after, and activate it only if it is better on the named metric.

Each step's outcome is written to ``OUT/improve.json`` as soon as it is done, so an interrupted run started
again with the same ``--out`` continues where it stopped (re-embedding also resumes mid-way by itself).
"""
from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING

from catalogue.folder import CatalogueFile
from config import Settings
from db.registry import ModelRegistry
from db.store import Store
from evaluation.tables import markdown_table

if TYPE_CHECKING:  # the training stack loads only when a run trains
    from model.training import TrainConfig

# Metrics a decision can rest on, read from an evaluation summary, and whether higher is better.
METRICS: dict[str, tuple[Callable[[dict], float], bool]] = {
    "top1_category_accuracy": (lambda s: s["top1_category_accuracy"], True),
    "top3_category_accuracy": (lambda s: s["top3_category_accuracy"], True),
    "missed_category_rate": (lambda s: s["missed_category_rate"], False),
    **{f"{name}@{k}": (lambda s, name=name, k=k: s["retrieval"][f"@{k}"][name], True)
       for name in ("precision", "recall", "map") for k in (1, 5, 10, 30)},
}
STATE_FILE = "improve.json"


def check_metric(name: str) -> str:
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; choose one of: {', '.join(METRICS)}")
    return name


@dataclass
class Run:
    """What an improvement run has done so far (``OUT/improve.json``)."""

    metric: str
    before_version: str
    before: dict | None = None
    candidate: str | None = None
    embedded: bool = False
    after: dict | None = None
    decision: dict = field(default_factory=dict)

    @classmethod
    def resume(cls, out: Path, metric: str, active_version: str) -> Run:
        path = out / STATE_FILE
        if not path.is_file():
            return cls(metric, active_version)
        run = cls(**json.loads(path.read_text()))
        if run.before_version != active_version and not run.decision:
            raise RuntimeError(f"{out} holds a run that started from model {run.before_version}, but "
                               f"{active_version} is active now: choose another --out to start afresh")
        return replace(run, metric=metric)

    def save(self, out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True)
        (out / STATE_FILE).write_text(json.dumps(self.__dict__, indent=2) + "\n")


def improve(settings: Settings, store: Store, files: Sequence[CatalogueFile], queries: Sequence[CatalogueFile],
            out: Path, metric: str, force: bool = False, train_options: Mapping[str, object] | None = None,
            relevance: Mapping[str, list[str]] | None = None, say: Callable[[str], None] = print) -> Run:
    """Run (or resume) the improvement loop and write ``OUT/report.md``; returns what was done."""
    from bootstrap import build_service, open_network

    registry = ModelRegistry(store)
    active = registry.active()
    if active is None:
        raise RuntimeError("no model is active: register and activate one first ('lookalike models add', "
                           "'lookalike models activate VERSION')")
    run = Run.resume(out, check_metric(metric), active.version)
    if run.decision:
        say(f"this run is finished already ({run.decision['reason']}); choose another --out for a new one")
        return run
    if run.candidate is None:
        _training_config(settings, registry, train_options or {})  # refused before the first step's work, not after
    if run.before is None:
        say(f"1/5 evaluating the active model {run.before_version} on {len(queries)} queries")
        service = build_service(settings, open_network(settings, True, store, run.before_version), store)
        run.before = _evaluate(service, queries, relevance, out / "before", f"Before: {run.before_version}")
        run.save(out)
    if run.candidate is None:
        say("2/5 training a new model")
        run.candidate = _train(settings, registry, files, out, train_options or {})
        run.save(out)
    if not run.embedded:
        say(f"3/5 embedding the catalogue with {run.candidate}")
        _embed(settings, store, run.candidate)
        run.embedded = True
        run.save(out)
    if run.after is None:
        say(f"4/5 evaluating {run.candidate} on the same queries")
        service = build_service(settings, open_network(settings, True, store, run.candidate), store)
        run.after = _evaluate(service, queries, relevance, out / "after", f"After: {run.candidate}")
        run.save(out)
    read, higher_is_better = METRICS[run.metric]
    before, after = read(run.before), read(run.after)
    better = after > before if higher_is_better else after < before
    if better or force:
        registry.activate(run.candidate)
    run.decision = {"activated": better or force, "before": before, "after": after,
                    "reason": (f"{run.metric} {before:.4f} → {after:.4f}: "
                               + ("better, activated" if better else
                                  "not better, activated anyway (--force)" if force else
                                  f"not better, {run.before_version} stays active"))}
    run.save(out)
    write_report(run, out)
    say(f"5/5 {run.decision['reason']}; report: {out / 'report.md'}")
    if not run.decision["activated"]:
        say(f"{run.candidate} stays registered (ingest keeps its vectors up to date): "
            f"'lookalike models prune {run.candidate}' drops it")
    return run


def _evaluate(service, queries, relevance, out: Path, title: str) -> dict:
    from evaluation import report

    evaluation = report.run(service, queries, relevance)
    summary = report.summarise(evaluation, service.store.category_counts(), service.model.categories)
    report.write_report(evaluation, summary, out, service.model.categories, title, service.store)
    return summary


def _train(settings: Settings, registry: ModelRegistry, files, out: Path, options: Mapping[str, object]) -> str:
    """Train with the active model's recipe changed by ``options`` (``_training_config``), and register the result.
    A model saved by an interrupted run (its card is written last) is registered, not retrained."""
    from model.card import card_path
    from model.training import train
    from model.versions import ModelFiles

    saved = out / "model" / "model.keras"
    if not card_path(saved).is_file():
        train(files, _training_config(settings, registry, options)).model.save(saved)
    card = ModelFiles(settings.resolved_models_dir).add(saved)
    if card.version not in registry.versions():
        registry.register(card.version, card.backbone, card.categories)
    return card.version


def _training_config(settings: Settings, registry: ModelRegistry, options: Mapping[str, object]) -> TrainConfig:
    """The active model's recipe (its card's training settings) changed by ``options``; an unknown setting, or a
    value no training can run with, is refused (``TrainConfig`` checks the values)."""
    from model.card import ModelCard
    from model.training import TrainConfig
    from model.versions import ModelFiles

    known = {f.name for f in fields(TrainConfig)}
    unknown = set(options) - known
    if unknown:
        raise ValueError(f"unknown training setting {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}")
    active = registry.active()
    assert active is not None, "improve runs from an active model"
    recipe = ModelCard.read(ModelFiles(settings.resolved_models_dir).path(active.version)).training
    return TrainConfig(**{**{k: v for k, v in recipe.items() if k in known}, **options})


def _embed(settings: Settings, store: Store, version: str) -> None:
    from bootstrap import build_loader, open_network

    build_loader(settings, store, [open_network(settings, True, store, version)]).reembed()


def write_report(run: Run, out: Path) -> None:
    """``report.md`` with the before/after table and pictures, and ``comparison.png``."""
    rows = [(name, read(run.before), read(run.after), higher) for name, (read, higher) in METRICS.items()]
    comparison_figure(rows, run.before_version, run.candidate, out / "comparison.png")
    lines = [f"# Improving the model: {run.before_version} → {run.candidate}", "",
             f"Decision on **{run.metric}**: {run.decision['reason']}.", "",
             "![before and after](comparison.png)", "",
             markdown_table(["metric", "before", "after", "change"],
                            [_change_row(name, before, after, higher, name == run.metric)
                             for name, before, after, higher in rows])]
    for side, title in (("before", run.before_version), ("after", run.candidate)):
        lines += ["", f"## {side.capitalize()}: {title}", "", f"[summary]({side}/summary.md)", ""]
        if (out / side / "confusion_matrix.png").is_file():
            lines.append(f"![confusion matrix, {side}]({side}/confusion_matrix.png)")
        lines.append(f"![searches, {side}]({side}/collage.png)")
    (out / "report.md").write_text("\n".join(lines) + "\n")


def _change_row(name: str, before: float, after: float, higher: bool, chosen: bool) -> tuple[str, ...]:
    gained = (after - before) if higher else (before - after)
    return (f"**{name}**" if chosen else name, f"{before:.4f}", f"{after:.4f}",
            f"{'+' if gained > 0 else ''}{gained:.4f} {'better' if gained > 0 else 'worse' if gained < 0 else ''}")


def comparison_figure(rows: Sequence[tuple[str, float, float, bool]], before: str, after: str, path: Path) -> None:
    """Every metric before and after, side by side (all are shares between 0 and 1)."""
    import matplotlib
    import numpy as np

    matplotlib.use("Agg")  # no display
    import matplotlib.pyplot as plt

    names = [name for name, *_ in rows]
    y = np.arange(len(names))
    height = 0.32 * len(names) + 1.5
    fig, ax = plt.subplots(figsize=(7, height))
    ax.barh(y - 0.2, [b for _, b, _, _ in rows], 0.4, label=f"before ({before})", color="tab:gray")
    ax.barh(y + 0.2, [a for _, _, a, _ in rows], 0.4, label=f"after ({after})", color="tab:blue")
    ax.set_yticks(y, [name + ("" if higher else " (lower is better)") for name, _, _, higher in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    fig.legend(fontsize=8, loc="lower center", ncol=2)  # below the axis, clear of the bars
    ax.set_title("Before and after")
    fig.tight_layout(rect=(0, 0.35 / height, 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)
