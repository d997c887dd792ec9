"""The weak-match verdict: when even the best result is not close, the search says plainly that nothing in
the catalogue looks much like the photo (the page, the API and the command line alike)."""
from __future__ import annotations


def is_weak(best_similarity: float | None, min_similarity: float) -> bool:
    """True when there is no result (``best_similarity`` None) or the first one is under ``min_similarity``
    (both percent)."""
    return best_similarity is None or best_similarity < min_similarity
