"""Pictures for the reports, drawn with matplotlib (no display needed)."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
from PIL import Image  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay  # noqa: E402

from catalogue.folder import CatalogueFile  # noqa: E402
from search.service import SearchResult  # noqa: E402


def confusion_matrix(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str], path: Path) -> None:
    size = max(6, 0.28 * len(labels))
    fig, ax = plt.subplots(figsize=(size, size))
    ConfusionMatrixDisplay.from_predictions(y_true, y_pred, labels=list(labels), ax=ax, colorbar=False,
                                            xticks_rotation="vertical", include_values=len(labels) <= 15)
    ax.set_title("Predicted category vs true category")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def collage(queries: Sequence[CatalogueFile], results: Sequence[SearchResult], relevant: Sequence[set[str]],
            image_of: Callable[[int], Image.Image], path: Path, matches: int = 5) -> None:
    """One row per query: the query, then its top matches with similarity (green title = relevant)."""
    fig, axes = plt.subplots(len(queries), matches + 1, figsize=(2 * (matches + 1), 2.4 * len(queries)),
                             squeeze=False)
    for row, (query, result, rel) in zip(axes, zip(queries, results, relevant)):
        row[0].imshow(Image.open(query.path).convert("RGB"))
        row[0].set_title(f"query: {query.category}\n→ {result.predicted[0]}", fontsize=8)
        for ax, match in zip(row[1:], result.matches[:matches]):
            ax.imshow(image_of(match.product.id))
            ax.set_title(f"{match.product.category}\n{match.similarity:.1f} %", fontsize=8,
                         color="green" if match.product.category in rel else "red")
        for ax in row:
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def narrowing_curve(rows: Sequence[dict], path: Path) -> None:
    """Missed-category rate against the narrowing threshold τ, and precision@10 for each merge weight."""
    fig, left = plt.subplots(figsize=(6.5, 4))
    first_weight = rows[0]["settings"]["merge_weight"]
    missed = [r for r in rows if r["settings"]["merge_weight"] == first_weight]  # the merge does not change it
    left.plot([r["settings"]["tau"] for r in missed], [100 * r["missed_category_rate"] for r in missed], "o-",
              color="tab:red", label="missed category")
    left.set_xlabel("τ (summed probability of the categories searched)")
    left.set_ylabel("missed-category rate (%)", color="tab:red")
    right = left.twinx()
    for weight in sorted({r["settings"]["merge_weight"] for r in rows}):
        chosen = [r for r in rows if r["settings"]["merge_weight"] == weight]
        right.plot([r["settings"]["tau"] for r in chosen], [r["retrieval"]["@10"]["precision"] for r in chosen],
                   "s--", label=f"precision@10, merge weight {weight:g}")
    right.set_ylabel("precision@10")
    fig.legend(loc="lower left", fontsize="small")
    left.set_title("Confidence-aware narrowing and merging")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def training_curves(history: dict[str, list[float]], path: Path, title: str) -> None:
    """Loss and accuracy per epoch, training and validation."""
    fig, (loss, accuracy) = plt.subplots(1, 2, figsize=(9, 3.5))
    epochs = range(1, len(history["loss"]) + 1)
    for ax, metric in ((loss, "loss"), (accuracy, "probabilities_accuracy")):
        ax.plot(epochs, history[metric], label="train")
        if f"val_{metric}" in history:
            ax.plot(epochs, history[f"val_{metric}"], label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric.replace("probabilities_", "category "))
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
