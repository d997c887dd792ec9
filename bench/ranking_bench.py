"""Exact ranking of 512-d vectors against FAISS ``IndexFlatL2``, and the
approximate index of large categories (``search.ann``) against exact ranking.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial

import faiss
import numpy as np

from bench.model_bench import median_seconds
from search.ann import IvfIndex
from search.ranking import rank

DIM = 512


def unit_vectors(n: int, seed: int = 0) -> np.ndarray:
    """``n`` random unit-length float32 vectors, like the model's embeddings."""
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, DIM), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def clustered_unit_vectors(n: int, seed: int = 0, per_cluster: int = 50, spread: float = 0.04) -> np.ndarray:
    """``n`` unit vectors in groups of about ``per_cluster`` around random centres (the cosine between two
    members of a group is about 0.55), like the embeddings of a catalogue's look-alike products.
    Uniform random vectors have no neighbourhoods to find, so no index, approximate or not, is tested by them."""
    rng = np.random.default_rng(seed)
    centres = unit_vectors(max(1, n // per_cluster), seed + 1)
    vectors = centres[rng.integers(0, len(centres), n)] + spread * rng.standard_normal((n, DIM), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def queries_near(vectors: np.ndarray, count: int, seed: int = 1, noise: float = 0.05) -> np.ndarray:
    """Queries close to stored vectors (a photo of a catalogued product), not uniform noise."""
    rng = np.random.default_rng(seed)
    near = vectors[rng.integers(0, len(vectors), count)] + noise * rng.standard_normal((count, DIM), dtype=np.float32)
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
        times = [median_seconds(partial(rank, q, vectors, sq_norms, 30), 3) for q in queries_near(vectors, queries)]
        measured.append(Scale(n, vectors.nbytes + sq_norms.nbytes, float(np.median(times))))
        del vectors, sq_norms
    return measured


@dataclass(frozen=True)
class Approximate:
    n: int
    recall: float  # mean share of the exact top k that the index returns
    exact_seconds: float  # median per query
    ann_seconds: float
    build_seconds: float
    exact_bytes: int  # the matrix and its squared norms
    ann_bytes: int


def ann_versus_exact(vectors: np.ndarray, queries: np.ndarray, k: int, nprobe: int) -> Approximate:
    """Recall@k, time per query, build time and memory of the IVF index against exact ranking."""
    sq_norms = np.einsum("ij,ij->i", vectors, vectors)
    started = time.perf_counter()
    index = IvfIndex(vectors, nprobe)
    build = time.perf_counter() - started
    exact = [rank(q, vectors, sq_norms, k).positions for q in queries]
    approximate = [index.nearest(q, k).positions for q in queries]
    recall = float(np.mean([len(set(a.tolist()) & set(e.tolist())) / len(e) for a, e in zip(approximate, exact)]))
    exact_time = np.median([median_seconds(lambda q=q: rank(q, vectors, sq_norms, k), 3) for q in queries])
    ann_time = np.median([median_seconds(lambda q=q: index.nearest(q, k), 3) for q in queries])
    return Approximate(len(vectors), recall, float(exact_time), float(ann_time), build,
                       vectors.nbytes + sq_norms.nbytes, index.nbytes)
