"""The search service: image bytes in, ranked products with the reasons out.

Steps: decode (EXIF upright, RGB) → resize → the model's preprocessing → one forward pass giving class
probabilities and the embedding → choose the categories to search → rank their cached vectors.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from config.settings import METRICS, SCOPES, Settings
from db.migrate import require_current
from db.store import ProductInfo, Store
from model.images import decode_image, to_array
from model.network import EmbeddingModel
from search.index import VectorIndex
from search.ranking import rank


class SearchError(ValueError):
    """A search request that cannot be answered as asked (bad parameters); the message says why."""


@dataclass(frozen=True)
class Match:
    product: ProductInfo
    distance: float
    similarity: float  # percent, see search.ranking


@dataclass
class SearchResult:
    """Everything one search computed, so a reviewer can see each step.

    Attributes:
        probabilities: (category, probability) for every model category, most probable first.
        searched: categories whose vectors were compared.
        rule: why those categories were searched, in words.
        matches: the ranked results, best first.
        query: the decoded upload, upright RGB (kept in memory only).
        model_input: the preprocessed network input (size, size, 3).
        embedding: the query's unit-length embedding.
        timings_ms: milliseconds per step.
    """

    probabilities: list[tuple[str, float]]
    searched: list[str]
    rule: str
    matches: list[Match]
    metric: str
    scope: str
    query: Image.Image
    model_input: np.ndarray
    embedding: np.ndarray
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def predicted(self) -> tuple[str, float]:
        return self.probabilities[0]


class SearchService:
    """Classify → narrow → rank, with a model and a store passed in.

    Args:
        model: the trained network.
        store: the catalogue store.
        top_k: default number of results.
        metric, scope: defaults (``euclidean|cosine``, ``category|all``).
        max_image_pixels: uploads larger than this are refused.
        max_k: the largest k a caller may ask for.
    """

    @classmethod
    def from_settings(cls, settings: Settings) -> "SearchService":
        """Load the trained model and open the store named by the settings (once per process)."""
        store = Store.from_url(settings.resolved_database_url)
        require_current(store.engine)
        model = EmbeddingModel.load(settings.resolved_model_path, settings.batch_size)
        model.warm_up()
        return cls(model, store, settings.top_k, settings.metric, settings.scope, settings.max_image_pixels)

    def __init__(self, model: EmbeddingModel, store: Store, top_k: int = 30, metric: str = "euclidean",
                 scope: str = "category", max_image_pixels: int = 40_000_000, max_k: int = 500):
        self.model = model
        self.store = store
        self.index = VectorIndex(store, model.version)
        self.top_k = top_k
        self.metric = metric
        self.scope = scope
        self.max_image_pixels = max_image_pixels
        self.max_k = max_k

    def search(self, image: bytes, k: int | None = None, metric: str | None = None,
               scope: str | None = None) -> SearchResult:
        """Search the catalogue for products that look like ``image``.

        Raises:
            SearchError: k, metric or scope out of range.
            model.images.ImageError: the bytes are not a usable image.
        """
        k = self.top_k if k is None else k
        metric = metric or self.metric
        scope = scope or self.scope
        if not 1 <= k <= self.max_k:
            raise SearchError(f"k must be between 1 and {self.max_k}, got {k}")
        if metric not in METRICS:
            raise SearchError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
        if scope not in SCOPES:
            raise SearchError(f"scope must be one of {', '.join(SCOPES)}, got {scope!r}")

        timings: dict[str, float] = {}
        clock = time.perf_counter()

        def lap(step: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            timings[step] = (now - clock) * 1000.0
            clock = now

        decoded = decode_image(image, self.max_image_pixels)
        model_input = self.model.preprocess(to_array(decoded.rgb, self.model.input_size)[None])
        lap("decode_and_preprocess")
        prediction = self.model.predict_preprocessed(model_input)
        lap("forward_pass")
        probabilities = sorted(zip(self.model.categories, prediction.probabilities[0].tolist()),
                               key=lambda item: -item[1])
        embedding = prediction.embeddings[0]
        revisions = self.index.revisions()
        searched, rule = self._narrow(probabilities, revisions, scope)
        lap("narrow")
        matches = self._rank(embedding, searched, revisions, k, metric)
        lap("rank")
        return SearchResult(probabilities, searched, rule, matches, metric, scope, decoded.rgb, model_input[0],
                            embedding, timings)

    @staticmethod
    def _narrow(probabilities: list[tuple[str, float]], revisions: dict[str, int],
                scope: str) -> tuple[list[str], str]:
        if scope == "all":
            return sorted(revisions), "scope 'all': every category in the catalogue"
        best, p = probabilities[0]
        return [best], f"the most probable category ({best}, p = {p:.3f})"

    def _rank(self, embedding: np.ndarray, categories: list[str], revisions: dict[str, int], k: int,
              metric: str) -> list[Match]:
        candidates = []  # (distance, similarity, product id) from every searched category
        products: dict[int, ProductInfo] = {}
        for category in categories:
            if category not in revisions:
                continue  # the model knows the category, but the catalogue has no products in it
            matrix = self.index.matrix(category, revisions[category])
            ranked = rank(embedding, matrix.vectors, matrix.sq_norms, k, metric)
            ids = matrix.product_ids[ranked.positions].tolist()
            candidates += zip(ranked.distances.tolist(), ranked.similarities.tolist(), ids)
            products.update((pid, matrix.products[pid]) for pid in ids if pid in matrix.products)
        candidates.sort()
        candidates = candidates[:k]
        return [Match(products[pid], distance, similarity) for distance, similarity, pid in candidates
                if pid in products]
