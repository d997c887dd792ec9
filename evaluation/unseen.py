"""Does the embedding keep the backbone's instance information on photos the model never saw?

Altered copies (``evaluation.instances.alter``) of unseen photos look for their originals among all of them, once by
the network's embedding and once by the backbone's raw pooled features (cosine), the same pictures through the same
preprocessing. A head that forgot what tells two products apart would find fewer originals than its own input.
"""
from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import top_k_accuracy_score

from catalogue.folder import CatalogueFile
from evaluation.instances import alter
from evaluation.tables import markdown_table
from images.decoding import ImageError, decode_image
from model.network import KerasNetwork


@dataclass(frozen=True)
class UnseenReport:
    photos: int
    found: dict[str, dict[int, float]]  # representation → k → share of altered photos finding their original

    def markdown(self, title: str) -> str:
        ks = sorted(next(iter(self.found.values())))
        return markdown_table([f"{title} ({self.photos} photos)", *(f"top {k}" for k in ks)],
                              [(name, *(f"{shares[k]:.1%}" for k in ks)) for name, shares in self.found.items()],
                              right_aligned=range(1, len(ks) + 1)) + "\n"


def compare_on_unseen(network: KerasNetwork, files: Sequence[CatalogueFile], max_pixels: int, count: int = 500,
                      seed: int = 0, ks: Sequence[int] = (1, 5)) -> UnseenReport:
    """Instance retrieval among ``count`` unseen photos: the embedding against the backbone's pooled features."""
    rng = random.Random(seed)
    pictures = []
    for entry in rng.sample(list(files), min(count, len(files))):
        try:
            pictures.append(decode_image(entry.path.read_bytes(), max_pixels, 2 * network.input_size).rgb)
        except (ImageError, OSError):
            continue  # an unreadable photo is simply not part of the comparison
    if len(pictures) < 2:
        raise ValueError(f"{len(pictures)} readable photos of {len(files)} files: the comparison needs two at least")
    originals = network.arrays(pictures)
    altered = network.arrays([alter(p, rng) for p in pictures])
    truth = np.arange(len(pictures))
    found = {}
    for name, represent in (("embedding", lambda x: network.predict(x).embeddings),
                            ("backbone's pooled features", network.pooled_features)):
        gallery, queries = (_unit(represent(batch)) for batch in (originals, altered))
        scores = queries @ gallery.T
        found[name] = {k: float(top_k_accuracy_score(truth, scores, k=k, labels=truth)) for k in ks}
    return UnseenReport(len(pictures), found)


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
