"""Per-category vector matrices kept in memory and refreshed when their category changes.

Every search first reads each category's revision (one small query); a matrix is reloaded only when
its category's revision moved, which works across any number of serving processes. The products'
descriptions are cached with their vectors, so a search reads nothing else from the database. A
category at or above the approximate-search threshold is held as a FAISS IVF index instead of a plain
matrix (``search.ann``), rebuilt when its revision moves. Building one takes seconds to minutes, so it
happens in a background thread while the category is ranked exactly: no search waits for it.
"""
from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace

import numpy as np

from db.store import ProductInfo, Store
from search.ann import AnnPolicy, IvfIndex
from search.ranking import Ranked, rank

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CategoryMatrix:
    """One category's vectors as of ``revision``: a plain matrix (exact ranking) or an IVF index."""

    revision: int
    product_ids: np.ndarray  # (n,) int64
    vectors: np.ndarray | None  # (n, d) float32, C-contiguous; None when ``ann`` holds them
    sq_norms: np.ndarray | None  # (n,) float32, with ``vectors``
    products: dict[int, ProductInfo]  # by product id
    ann: IvfIndex | None = None

    def nearest(self, query: np.ndarray, k: int, metric: str) -> Ranked:
        """The ``k`` nearest products, positions into ``product_ids``."""
        if self.ann is not None:
            return self.ann.nearest(query, k, metric)
        assert self.vectors is not None and self.sq_norms is not None  # an exact matrix holds them
        return rank(query, self.vectors, self.sq_norms, k, metric)


class VectorIndex:
    """Cached category matrices of one model version.

    Args:
        store: where vectors are read from.
        model_version: only vectors of this version are loaded, so models are never mixed.
        ann: which categories get an approximate index.
    """

    def __init__(self, store: Store, model_version: str, ann: AnnPolicy = AnnPolicy()):
        self.store = store
        self.model_version = model_version
        self.ann = ann
        self._cache: dict[str, CategoryMatrix] = {}
        self._lock = threading.Lock()
        self._builder: ThreadPoolExecutor | None = None  # started by the first large category
        self._builds: list[Future] = []

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
                if self.ann.applies(len(ids)):
                    self._build_index(category, cached)
            return cached

    def _build_index(self, category: str, exact: CategoryMatrix) -> None:
        """Build the category's IVF index in the background; it replaces the matrix if still current."""
        vectors = exact.vectors
        assert vectors is not None  # an exact matrix holds them

        def build() -> None:
            try:
                ann = IvfIndex(vectors, self.ann.nprobe)
            except Exception:  # the exact matrix keeps serving: a failed build costs speed, not answers
                log.exception("building the approximate index of %r failed", category)
                return
            with self._lock:
                if self._cache.get(category) is exact:
                    self._cache[category] = replace(exact, vectors=None, sq_norms=None, ann=ann)

        if self._builder is None:
            self._builder = ThreadPoolExecutor(1, thread_name_prefix="ann-build")
        self._builds = [f for f in self._builds if not f.done()] + [self._builder.submit(build)]

    def wait_for_indexes(self) -> None:
        """Block until every approximate index being built is in place (tests and benchmarks)."""
        wait(list(self._builds))
