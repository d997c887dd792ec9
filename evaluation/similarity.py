"""How alike is the best match? Photos of what the shop sells against photos of what it does not.

The table shows how many photos each weak-match threshold would call weak, and how many the search itself called
weak at the threshold it applied (the served model's own, or ``LOOKALIKE_MIN_SIMILARITY``): a good threshold calls
few in-catalogue photos weak and most photos of things the catalogue does not hold.
"""
from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from catalogue.folder import CatalogueFile
from evaluation.tables import markdown_table
from images.decoding import ImageError, decode_image
from search.service import SearchService
from search.weak_match import is_weak, threshold


@dataclass(frozen=True)
class BestMatches:
    """The best match's similarity (percent) of each photo of one folder, as the shopper's search finds it, and
    whether the search called it weak, at the threshold it applied (``min_similarity``)."""

    folder: str
    similarities: np.ndarray
    weak: np.ndarray
    min_similarity: float

    def row(self, thresholds: Sequence[float]) -> tuple[object, ...]:
        p5, p50, p95 = np.percentile(self.similarities, [5, 50, 95])
        return (self.folder, len(self.similarities), f"{p5:.1f} – {p50:.1f} – {p95:.1f}",
                *(f"{np.mean([is_weak(s, t) for s in self.similarities]):.0%}" for t in thresholds),
                f"{np.mean(self.weak):.0%}")


def best_matches(service: SearchService, folder: str, files: Sequence[CatalogueFile], count: int = 200,
                 batch_size: int = 32, seed: int = 0) -> BestMatches:
    """Search ``count`` photos drawn from ``files`` (batched) and keep each one's best similarity."""
    pictures = []
    for entry in random.Random(seed).sample(list(files), min(count, len(files))):
        try:
            pictures.append(decode_image(entry.path.read_bytes(), service.max_image_pixels,
                                         service.model.input_size).rgb)
        except (ImageError, OSError):
            continue  # an unreadable photo is simply not part of the table
    if not pictures:
        raise ValueError(f"no readable photos in {folder}")
    results = [result for start in range(0, len(pictures), batch_size)
               for result in service.search_images(pictures[start:start + batch_size], k=1)]
    return BestMatches(folder, np.array([r.best_similarity or 0.0 for r in results]),
                       np.array([r.weak for r in results], bool),
                       threshold(service.policy.min_similarity, service.model.min_similarity))


def markdown(rows: Sequence[BestMatches], thresholds: Sequence[float]) -> str:
    """The table; its last column: weak as searched, at the threshold the search applied (the first row's: one
    service searched them all)."""
    header = ["photos", "n", "best match: 5th – 50th – 95th percentile (%)",
              *(f"weak under {t:g} %" for t in thresholds), f"weak as searched (under {rows[0].min_similarity:.1f} %)"]
    return markdown_table(header, [row.row(thresholds) for row in rows],
                          right_aligned={1, *range(3, len(header))}) + "\n"
