"""The evaluation report: labelled query images searched against the ingested catalogue.

Writes ``summary.json``, ``summary.md``, ``confusion_matrix.png`` (when query labels are model
categories) and ``collage.png`` into an output folder.
"""
from __future__ import annotations

import io
import json
import random
import time
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.metrics import accuracy_score, classification_report, top_k_accuracy_score
from tqdm import tqdm

from catalogue.folder import CatalogueFile
from db.store import Store
from evaluation.metrics import map_at_k, pad_hits, precision_at_k, recall_at_k
from evaluation.tables import markdown_table
from images.decoding import ImageError, decode_image
from search.policy import SearchPolicy
from search.service import SearchResult, SearchService

KS = (1, 5, 10, 30)


@dataclass
class Evaluation:
    """Per-query outcomes, kept so summaries and pictures can be drawn from them."""

    files: list[CatalogueFile] = field(default_factory=list)
    results: list[SearchResult] = field(default_factory=list)
    relevant: list[set[str]] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)


def load_relevance(path: Path | None) -> dict[str, list[str]] | None:
    """A JSON object mapping each query label to the catalogue categories that count as relevant.

    Raises:
        ValueError: the file holds anything else.
    """
    if path is None:
        return None
    relevance = json.loads(Path(path).read_text())
    if not (isinstance(relevance, dict) and all(isinstance(categories, list) and all(isinstance(c, str)
                                                                                     for c in categories)
                                                for categories in relevance.values())):
        raise ValueError(f"{path}: give an object mapping each query label to a list of catalogue categories, "
                         'e.g. {"t-shirt": ["Tshirts"], "skirt": []}')
    return relevance


def check_labels(queries: Sequence[CatalogueFile], relevance: Mapping[str, list[str]] | None,
                 stored: Collection[str]) -> list[str]:
    """What a user must know before the figures: a relevance map naming categories the store does not hold is
    refused (they could never be found); labels the map leaves out, or with no such category, are returned as
    warnings (their queries are skipped, or can only miss).

    Raises:
        ValueError: the map names categories that are not stored.
    """
    labels = Counter(query.category for query in queries)
    if relevance is None:
        absent = sorted(set(labels) - set(stored))
        return [f"no catalogue category named {label!r}: its {labels[label]} queries can only miss ('--relevance' "
                "maps labels to categories)" for label in absent]
    unknown = sorted({c for categories in relevance.values() for c in categories} - set(stored))
    if unknown:
        raise ValueError(f"the relevance map names categories the catalogue does not hold: {', '.join(unknown)} "
                         f"(it holds {', '.join(sorted(stored))})")
    return [f"{label!r} is not in the relevance map: its {labels[label]} queries are skipped"
            for label in sorted(set(labels) - set(relevance))]


def run(service: SearchService, queries: Sequence[CatalogueFile], relevance: Mapping[str, list[str]] | None = None,
        k: int = 30, batch_size: int = 64, progress: bool = True, **search_options) -> Evaluation:
    """Search every query (in batches: one forward pass per batch) under the service's policy and keep what each
    got; arguments as ``sweep``."""
    [evaluation] = sweep(service, queries, [service.policy], relevance, k, batch_size, progress, **search_options)
    return evaluation


def sweep(service: SearchService, queries: Sequence[CatalogueFile], policies: Sequence[SearchPolicy],
          relevance: Mapping[str, list[str]] | None = None, k: int = 30, batch_size: int = 64, progress: bool = True,
          metric: str | None = None, scope: str | None = None) -> list[Evaluation]:
    """Search every query under each policy: the network sees each query once (one forward pass per batch), and
    each policy answers from its outputs.

    Args:
        relevance: query label → relevant catalogue categories; by default a label is its own category.
            Queries whose label maps to no category are skipped.

    Returns:
        One evaluation per policy, in order; a query's latency is its own decoding and answer plus its share of
        the batch's preprocessing and forward pass (``SearchResult.timings_ms``).
    """
    service.check(k, metric, scope)
    evaluations = [Evaluation() for _ in policies]
    usable = [q for q in queries if relevance is None or relevance.get(q.category)]
    for start in tqdm(range(0, len(usable), batch_size), desc="evaluate", disable=not progress):
        batch, images, decode_ms, rejected = [], [], [], []
        for query in usable[start:start + batch_size]:
            started = time.perf_counter()
            try:
                images.append(decode_image(query.path.read_bytes(), service.max_image_pixels,
                                           service.model.input_size).rgb)
                batch.append(query)
                decode_ms.append((time.perf_counter() - started) * 1000.0)
            except (ImageError, OSError) as e:
                rejected.append((str(query.path), str(e)))
        for evaluation in evaluations:
            evaluation.rejected += rejected
        if not batch:
            continue
        seen = service.look(images)
        for policy, evaluation in zip(policies, evaluations):
            results = service.answer(seen, k, metric, scope, policy)
            for query, result, decoded_ms in zip(batch, results, decode_ms):
                evaluation.files.append(query)
                evaluation.results.append(result)
                evaluation.relevant.append(set(relevance[query.category]) if relevance else {query.category})
                evaluation.latency_ms.append(decoded_ms + sum(result.timings_ms.values()))
    return evaluations


def summarise(evaluation: Evaluation, catalogue_counts: Mapping[str, int], categories: Sequence[str]) -> dict:
    """Accuracy, retrieval metrics at every k, missed-category share and latency."""
    n = len(evaluation.results)
    if n == 0:
        raise ValueError("no usable query images")
    ranked = [[c for c, _ in r.probabilities] for r in evaluation.results]
    top1 = np.mean([ranked_q[0] in rel for ranked_q, rel in zip(ranked, evaluation.relevant)])
    top3 = np.mean([bool(set(ranked_q[:3]) & rel) for ranked_q, rel in zip(ranked, evaluation.relevant)])
    missed = np.mean([not (set(r.searched) & rel) for r, rel in zip(evaluation.results, evaluation.relevant)])
    width = max(KS)
    hits = pad_hits([[m.product.category in rel for m in r.matches] for r, rel in
                     zip(evaluation.results, evaluation.relevant)], width)
    n_relevant = np.array([sum(catalogue_counts.get(c, 0) for c in rel) for rel in evaluation.relevant])
    latency = np.array(evaluation.latency_ms)
    summary = {
        "queries": n,
        "rejected": len(evaluation.rejected),
        "top1_category_accuracy": float(top1),
        "top3_category_accuracy": float(top3),
        "missed_category_rate": float(missed),
        "mean_categories_searched": float(np.mean([len(r.searched) for r in evaluation.results])),
        "safety_net_fired": float(np.mean([r.exact_match is not None for r in evaluation.results])),
        "neighbours_ms_p50": float(np.median([r.timings_ms["neighbours"] for r in evaluation.results])),
        "localised": float(np.mean([r.box_source == "localised" for r in evaluation.results])),
        "retrieval": {f"@{k}": {"precision": precision_at_k(hits, k), "recall": recall_at_k(hits, n_relevant, k),
                                "map": map_at_k(hits, n_relevant, k)} for k in KS},
        "latency_ms_per_query": {"mean": float(latency.mean()), "p50": float(np.percentile(latency, 50)),
                                 "p95": float(np.percentile(latency, 95))},
    }
    labels_are_categories = all(f.category in categories for f in evaluation.files)
    if labels_are_categories:
        y_true = [f.category for f in evaluation.files]
        y_pred = [q[0] for q in ranked]
        scores = np.array([[dict(r.probabilities)[c] for c in categories] for r in evaluation.results])
        summary["sklearn"] = {
            "accuracy": float(accuracy_score(y_true, y_pred)),
            "top3_accuracy": float(top_k_accuracy_score(y_true, scores, k=3, labels=list(categories))),
            "classification_report": classification_report(y_true, y_pred, output_dict=True, zero_division=0),
        }
    return summary


def write_report(evaluation: Evaluation, summary: dict, out: Path, categories: Sequence[str], title: str,
                 store: Store, collage_rows: int = 8) -> None:
    """Write the JSON and Markdown summaries and the pictures into ``out``."""
    from evaluation import figures

    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "summary.md").write_text(markdown(summary, title))
    if "sklearn" in summary:
        figures.confusion_matrix([f.category for f in evaluation.files],
                                 [r.predicted[0] for r in evaluation.results], categories, out / "confusion_matrix.png")
    rng = random.Random(0)
    sample = sorted(rng.sample(range(len(evaluation.results)), min(collage_rows, len(evaluation.results))))
    figures.collage([evaluation.files[i] for i in sample], [evaluation.results[i] for i in sample],
                    [evaluation.relevant[i] for i in sample], lambda pid: _product_image(store, pid),
                    out / "collage.png")


def _product_image(store: Store, product_id: int) -> Image.Image:
    data, _ = store.image(product_id)
    return Image.open(io.BytesIO(data)).convert("RGB")


def markdown(summary: dict, title: str) -> str:
    latency = summary["latency_ms_per_query"]
    lines = [f"# {title}", "",
             f"- queries: {summary['queries']} (rejected: {summary['rejected']})",
             f"- top-1 category accuracy: {summary['top1_category_accuracy']:.2%}",
             f"- top-3 category accuracy: {summary['top3_category_accuracy']:.2%}",
             f"- missed-category rate (true category not searched): {summary['missed_category_rate']:.2%}",
             f"- categories searched per query (mean): {summary['mean_categories_searched']:.2f}",
             f"- exact-product safety net fired: {summary['safety_net_fired']:.2%}",
             "- the passes over every category for the vote and the safety net: "
             f"p50 {summary['neighbours_ms_p50']:.2f} ms",
             "- latency per query (its decoding and answer, the batch's forward pass shared): "
             f"mean {latency['mean']:.1f} ms, p50 {latency['p50']:.1f} ms, p95 {latency['p95']:.1f} ms",
             "", markdown_table(["k", "precision@k", "recall@k", "mAP@k"],
                                [(k.lstrip("@"), f"{m['precision']:.4f}", f"{m['recall']:.4f}", f"{m['map']:.4f}")
                                 for k, m in summary["retrieval"].items()])]
    if "sklearn" in summary:
        report = summary["sklearn"]["classification_report"]
        lines += ["", "## Per class (scikit-learn)", "",
                  markdown_table(["class", "precision", "recall", "F1", "support"],
                                 [(name, f"{row['precision']:.3f}", f"{row['recall']:.3f}", f"{row['f1-score']:.3f}",
                                   int(row["support"])) for name, row in report.items() if isinstance(row, dict)])]
    return "\n".join(lines) + "\n"


def narrowing_table(rows: Sequence[dict]) -> str:
    """The τ × merge-weight sweep as a Markdown table."""
    return markdown_table(["τ", "merge weight", "categories searched (mean)", "missed-category rate", "precision@10",
                           "latency p50 (ms)"],
                          [(f"{r['settings']['tau']:g}", f"{r['settings']['merge_weight']:g}",
                            f"{r['mean_categories_searched']:.2f}", f"{r['missed_category_rate']:.2%}",
                            f"{r['retrieval']['@10']['precision']:.4f}", f"{r['latency_ms_per_query']['p50']:.1f}")
                           for r in rows]) + "\n"
