"""Per-category vector matrices kept in memory and refreshed when their category changes.

Every search first reads each category's revision (one small query); a matrix is reloaded only when
its category's revision moved, which works across any number of serving processes. The products'
descriptions are cached with their vectors, so a search reads nothing else from the database.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from db.store import ProductInfo, Store


@dataclass(frozen=True)
class CategoryMatrix:
    revision: int
    product_ids: np.ndarray  # (n,) int64
    vectors: np.ndarray  # (n, d) float32, C-contiguous
    sq_norms: np.ndarray  # (n,) float32
    products: dict[int, ProductInfo]  # by product id


class VectorIndex:
    """Cached category matrices of one model version.

    Args:
        store: where vectors are read from.
        model_version: only vectors of this version are loaded, so models are never mixed.
    """

    def __init__(self, store: Store, model_version: str):
        self.store = store
        self.model_version = model_version
        self._cache: dict[str, CategoryMatrix] = {}
        self._lock = threading.Lock()

    def revisions(self) -> dict[str, int]:
        return self.store.category_revisions()

    def matrix(self, category: str, revision: int) -> CategoryMatrix:
        """The category's vectors as of ``revision`` (from the cache when it is current)."""
        cached = self._cache.get(category)
        if cached is not None and cached.revision == revision:
            return cached
        with self._lock:
            cached = self._cache.get(category)
            if cached is None or cached.revision != revision:
                ids, vectors = self.store.category_vectors(category, self.model_version)
                vectors = np.ascontiguousarray(vectors, dtype=np.float32)
                cached = CategoryMatrix(revision, ids, vectors, np.einsum("ij,ij->i", vectors, vectors),
                                        self.store.products(ids))
                self._cache[category] = cached
            return cached
