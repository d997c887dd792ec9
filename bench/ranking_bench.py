"""Benchmark 4 and the scaling figures: ranking synthetic 512-d vectors, against FAISS ``IndexFlatL2``.

FAISS is the baseline only; the product ranks with ``search.ranking.rank``.
"""
from __future__ import annotations

from dataclasses import dataclass

import faiss
import numpy as np

from bench.model_bench import median_seconds
from search.ranking import rank

DIM = 512


def unit_vectors(n: int, seed: int = 0) -> np.ndarray:
    """``n`` random unit-length float32 vectors, like the model's embeddings."""
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, DIM), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def queries_near(vectors: np.ndarray, count: int, seed: int = 1) -> np.ndarray:
    """Queries close to stored vectors (a photo of a catalogued product), not uniform noise."""
    rng = np.random.default_rng(seed)
    near = vectors[rng.integers(0, len(vectors), count)] + 0.05 * rng.standard_normal((count, DIM), dtype=np.float32)
    return near / np.linalg.norm(near, axis=1, keepdims=True)


@dataclass(frozen=True)
class Versus:
    ours: float  # median seconds per query
    faiss: float
    identical: int  # queries whose top-k ids, in order, are the same
    queries: int


def versus_faiss(vectors: np.ndarray, queries: np.ndarray, k: int) -> Versus:
    """Median time per single query of ``rank`` and of FAISS ``IndexFlatL2.search`` on the same data."""
    sq_norms = np.einsum("ij,ij->i", vectors, vectors)
    index = faiss.IndexFlatL2(DIM)
    index.add(vectors)
    ours = [median_seconds(lambda q=q: rank(q, vectors, sq_norms, k), 3) for q in queries]
    theirs = [median_seconds(lambda q=q: index.search(q[None], k), 3) for q in queries]
    identical = sum(np.array_equal(rank(q, vectors, sq_norms, k).positions, index.search(q[None], k)[1][0])
                    for q in queries)
    return Versus(float(np.median(ours)), float(np.median(theirs)), identical, len(queries))


@dataclass(frozen=True)
class Scale:
    n: int
    cached_bytes: int  # what the index keeps in memory: the matrix and its squared norms
    rank_seconds: float  # median per query, top 30


def scaling(sizes: tuple[int, ...], queries: int = 5) -> list[Scale]:
    """Memory and ranking time of one cached matrix of ``n`` vectors, for each size."""
    measured = []
    for n in sizes:
        vectors = unit_vectors(n, seed=n)
        sq_norms = np.einsum("ij,ij->i", vectors, vectors)
        times = [median_seconds(lambda q=q: rank(q, vectors, sq_norms, 30), 3) for q in queries_near(vectors, queries)]
        measured.append(Scale(n, vectors.nbytes + sq_norms.nbytes, float(np.median(times))))
        del vectors, sq_norms
    return measured
