"""An approximate index for categories too large to rank exactly on every search.

FAISS's inverted-file index (IVF) clusters a category's vectors with k-means; a search scans only the
``nprobe`` clusters nearest the query instead of every row. The candidates it returns are then ranked
exactly (``search.ranking.rank`` on their stored vectors), so distances and similarities mean what they
mean for an exactly ranked category. Below ``min_vectors`` exact ranking is fast enough and stays.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from config import DEFAULTS
from config.choices import Metric
from search.ranking import Ranked, rank

# FAISS's k-means needs about 40 points per centroid to place them well (it warns below 39); more only
# lengthens the build, which is most of an index's cost.
TRAINING_POINTS_PER_LIST = 40


@dataclass(frozen=True)
class AnnPolicy:
    """When and how a category gets an approximate index.

    Attributes:
        min_vectors: categories with at least this many vectors get one; 0 turns approximate search off.
        nprobe: clusters scanned per search (more: better recall, slower).
    """

    min_vectors: int = DEFAULTS.ann_min_vectors
    nprobe: int = DEFAULTS.ann_nprobe

    def applies(self, count: int) -> bool:
        return 0 < self.min_vectors <= count


def list_count(n: int) -> int:
    """Clusters for ``n`` vectors: about 4√n, FAISS's rule of thumb, so each list holds ~√n/4 vectors."""
    return max(1, min(n // TRAINING_POINTS_PER_LIST, int(4 * math.sqrt(n))))


class IvfIndex:
    """A FAISS ``IndexIVFFlat`` over one category's vectors (L2, the vectors kept exactly in the lists).

    Args:
        vectors: (n, d) float32, C-contiguous; positions in it are the ids the index returns.
        nprobe: clusters scanned per search.
        seed: k-means seed, so an index is rebuilt the same way from the same vectors.
    """

    def __init__(self, vectors: np.ndarray, nprobe: int, seed: int = 0):
        import faiss  # only processes holding a large category pay for loading FAISS

        n, dim = vectors.shape
        nlist = list_count(n)
        self.index = faiss.IndexIVFFlat(faiss.IndexFlatL2(dim), dim, nlist, faiss.METRIC_L2)
        self.index.cp.seed = seed
        sample = np.random.default_rng(seed).choice(n, min(n, nlist * TRAINING_POINTS_PER_LIST), replace=False)
        self.index.train(vectors[np.sort(sample)])
        self.index.add(vectors)
        self.index.make_direct_map()  # so the candidates' vectors can be read back for exact ranking
        self.index.nprobe = min(nprobe, nlist)
        self.sq_norms = np.einsum("ij,ij->i", vectors, vectors)

    @property
    def nbytes(self) -> int:
        """Memory held: the vectors in the inverted lists, their ids, the direct map and the centroids."""
        n, dim = self.index.ntotal, self.index.d
        return n * (dim * 4 + 8 + 8) + self.index.nlist * dim * 4 + self.sq_norms.nbytes

    def nearest(self, query: np.ndarray, k: int, metric: str = Metric.EUCLIDEAN) -> Ranked:
        """The ``k`` nearest stored vectors among the scanned clusters, ranked exactly."""
        _, ids = self.index.search(query[None].astype(np.float32, copy=False), k)
        candidates = ids[0][ids[0] >= 0]
        vectors = self.index.reconstruct_batch(candidates)
        ranked = rank(query, vectors, self.sq_norms[candidates], k, metric)
        return Ranked(candidates[ranked.positions], ranked.distances, ranked.similarities)
