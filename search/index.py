"""Per-category vector matrices kept in memory and refreshed when their category changes.

Every search first reads each category's revision (one small query); a matrix is reloaded only when
its category's revision moved, which works across any number of serving processes. The products'
descriptions are cached with their vectors, so a search reads nothing else from the database. Each
category holds two sets of vectors: the ones searches rank by, and the ones the neighbours' vote reads (the
photos' own embeddings, ``model.gallery``), one shared set where they are the same. A category at or above
the approximate-search threshold holds each set as a FAISS IVF index instead of a plain matrix
(``search.ann``), rebuilt when its revision moves. Building one takes seconds to minutes, so it
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
class Vectors:
    """One set of a category's vectors, in its products' order: a plain matrix (exact ranking) or an IVF index."""

    matrix: np.ndarray | None  # (n, d) float32, C-contiguous; None when ``ann`` holds them
    sq_norms: np.ndarray | None  # (n,) float32, with ``matrix``
    ann: IvfIndex | None = None

    @classmethod
    def exact(cls, matrix: np.ndarray) -> Vectors:
        matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        return cls(matrix, np.einsum("ij,ij->i", matrix, matrix))

    def nearest(self, query: np.ndarray, k: int, metric: str) -> Ranked:
        """The ``k`` nearest vectors, positions into the category's ``product_ids``."""
        if self.ann is not None:
            return self.ann.nearest(query, k, metric)
        assert self.matrix is not None and self.sq_norms is not None  # an exact set holds them
        return rank(query, self.matrix, self.sq_norms, k, metric)


@dataclass(frozen=True)
class CategoryMatrix:
    """One category's vectors as of ``revision``: those searches rank by and those the neighbours' vote reads (the
    same object where they are equal)."""

    revision: int
    product_ids: np.ndarray  # (n,) int64
    ranked: Vectors
    voters: Vectors
    products: dict[int, ProductInfo]  # by product id


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

    def load_all(self) -> None:
        """Read every category's vectors now: each search's vote and safety net pass over all of them."""
        for category, revision in self.revisions().items():
            self.matrix(category, revision)

    def matrix(self, category: str, revision: int) -> CategoryMatrix:
        """The category's vectors as of ``revision`` (from the cache when it is current)."""
        cached = self._cache.get(category)
        if cached is not None and cached.revision >= revision:
            return cached  # revisions only grow: what a later search loaded serves one that read them earlier
        with self._lock:
            cached = self._cache.get(category)
            if cached is None or cached.revision < revision:
                found = self.store.category_vectors(category, self.model_version)
                ranked = Vectors.exact(found.vectors)
                voters = ranked if np.array_equal(found.vectors, found.voters) else Vectors.exact(found.voters)
                cached = CategoryMatrix(revision if found.revision is None else found.revision, found.ids, ranked,
                                        voters, found.products)
                self._cache[category] = cached
                if self.ann.applies(len(found.ids)):
                    self._build_index(category, cached)
            return cached

    def _build_index(self, category: str, exact: CategoryMatrix) -> None:
        """Build the category's IVF indexes in the background; they replace the matrices if still current."""

        def indexed(vectors: Vectors) -> Vectors:
            assert vectors.matrix is not None  # an exact set holds it
            return Vectors(None, None, IvfIndex(vectors.matrix, self.ann.nprobe))

        def build() -> None:
            if self._cache.get(category) is not exact:
                return  # a newer load replaced it while this build waited
            try:
                ranked = indexed(exact.ranked)
                voters = ranked if exact.voters is exact.ranked else indexed(exact.voters)
            except Exception:  # the exact matrices keep serving: a failed build costs speed, not answers
                log.exception("building the approximate index of %r failed", category)
                return
            with self._lock:
                if self._cache.get(category) is exact:
                    self._cache[category] = replace(exact, ranked=ranked, voters=voters)

        if self._builder is None:
            self._builder = ThreadPoolExecutor(1, thread_name_prefix="ann-build")
        self._builds = [f for f in self._builds if not f.done()] + [self._builder.submit(build)]

    def wait_for_indexes(self) -> None:
        """Block until every approximate index being built is in place (tests and benchmarks)."""
        wait(list(self._builds))
