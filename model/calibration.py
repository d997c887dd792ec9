"""The weak-match threshold of one model, calibrated on its own catalogue when it is trained.

How close a best match gets depends on the model: a network trained on a small catalogue spreads its embeddings
differently from one trained on a large one, so one absolute threshold calls a fifth of one model's real queries
weak and almost none of another's (docs/quality.md, "The weak-match threshold"). What does follow the model is
how close each catalogue product's nearest other product of its own category gets: a real product of that
category is about that close to the catalogue, and a photo whose best match is farther than nearly all of them
is not much like anything the shop sells.
"""
from __future__ import annotations

import numpy as np

# The share of catalogue products whose nearest neighbour falls under the threshold: the measured 5th percentile
# followed the shop's own queries' 5th percentile under both the demo's model and the 6,000-photo one.
PERCENTILE = 5.0
_ROWS = 1024  # rows compared at a time: a large category's full similarity matrix would not fit in memory


def min_similarity(embeddings: np.ndarray, labels: np.ndarray) -> float | None:
    """The ``PERCENTILE``-th percentile of each picture's similarity (percent, as the search reports it: cosine
    × 100, clipped at 0) to the most similar other picture of its category.

    Args:
        embeddings: (n, d) unit-length embeddings.
        labels: (n,) the category of each.

    Returns:
        the threshold in percent, or None when no category has two pictures.

    Example:
        >>> min_similarity(np.array([[1, 0], [0.5, 0.866], [0, 1]]), np.array([0, 0, 1]))  # cos 0.5; 1 alone
        50.0
    """
    embeddings = np.asarray(embeddings, np.float32)
    nearest = []
    for label in np.unique(labels):
        group = embeddings[labels == label]
        if len(group) < 2:
            continue  # a lone picture has no other picture of its category
        for start in range(0, len(group), _ROWS):
            similarities = group[start:start + _ROWS] @ group.T
            rows = np.arange(len(similarities))
            similarities[rows, start + rows] = -np.inf  # not itself
            nearest.append(similarities.max(1))
    if not nearest:
        return None
    return float(np.percentile(100.0 * np.clip(np.concatenate(nearest), 0.0, None), PERCENTILE))
