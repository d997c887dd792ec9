"""The search service: image bytes in, ranked products with the reasons out.

Steps: decode (EXIF upright, RGB) → resize → the model's preprocessing → one forward pass giving class
probabilities and the embedding → choose the categories to search → rank their cached vectors.
"""
from __future__ import annotations

import reprlib
import time
from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np
from PIL import Image

from config.settings import METRICS, SCOPES
from db.store import ProductInfo, Store
from model.images import decode_image, to_array
from model.inference import Network
from search.ann import AnnPolicy
from search.index import VectorIndex


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
        query: the decoded upload, upright RGB, large ones at reduced scale (kept in memory only; None in a
            result kept for later, see ``without_pixels``).
        query_size: the upload's own (width, height), upright.
        model_input: the preprocessed network input (size, size, 3); None like ``query``.
        embedding: the query's unit-length embedding.
        timings_ms: milliseconds per step.
    """

    probabilities: list[tuple[str, float]]
    searched: list[str]
    rule: str
    matches: list[Match]
    metric: str
    scope: str
    query: Image.Image | None
    query_size: tuple[int, int]
    model_input: np.ndarray | None
    embedding: np.ndarray
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def predicted(self) -> tuple[str, float]:
        return self.probabilities[0]

    def without_pixels(self) -> "SearchResult":
        """This result without the picture and the network input, which are nearly all of its memory."""
        return replace(self, query=None, model_input=None)


class SearchService:
    """Classify → narrow → rank, with a model and a store passed in.

    Args:
        model: the trained network (on either runtime).
        store: the catalogue store.
        top_k: default number of results.
        metric, scope: defaults (``euclidean|cosine``, ``category|all``).
        max_image_pixels: uploads larger than this are refused.
        max_k: the largest k a caller may ask for.
        tau, max_categories: confidence-aware narrowing (``tau`` 0 searches the most probable category only).
            The defaults are the settings' defaults.
        ann: which categories are searched through an approximate index.
    """

    def __init__(self, model: Network, store: Store, top_k: int = 30, metric: str = "euclidean",
                 scope: str = "category", max_image_pixels: int = 40_000_000, max_k: int = 500,
                 tau: float = 0.9, max_categories: int = 3, ann: AnnPolicy = AnnPolicy()):
        self.model = model
        self.store = store
        self.index = VectorIndex(store, model.version, ann)
        self.top_k = top_k
        self.metric = metric
        self.scope = scope
        self.max_image_pixels = max_image_pixels
        self.max_k = max_k
        self.tau = tau
        self.max_categories = max_categories

    def search(self, image: bytes, k: int | None = None, metric: str | None = None,
               scope: str | None = None) -> SearchResult:
        """Search the catalogue for products that look like ``image`` (untrusted bytes).

        Raises:
            SearchError: k, metric or scope out of range.
            model.images.ImageError: the bytes are not a usable image.
        """
        self.check(k, metric, scope)
        started = time.perf_counter()
        decoded = decode_image(image, self.max_image_pixels, self.model.input_size)
        decode_ms = (time.perf_counter() - started) * 1000.0
        [result] = self.search_images([decoded.rgb], k, metric, scope)
        result.query_size = (decoded.width, decoded.height)
        result.timings_ms = {"decode": decode_ms, **result.timings_ms}
        return result

    def search_images(self, images: Sequence[Image.Image], k: int | None = None, metric: str | None = None,
                      scope: str | None = None) -> list[SearchResult]:
        """Search for several decoded RGB pictures with one batched forward pass.

        The preprocessing and forward-pass timings of each result are the batch's, shared equally.
        """
        k, metric, scope = self.check(k, metric, scope)
        clock = time.perf_counter()

        def lap() -> float:
            nonlocal clock
            now, then = time.perf_counter(), clock
            clock = now
            return (now - then) * 1000.0

        inputs = self.model.preprocess(np.stack([to_array(image, self.model.input_size) for image in images]))
        preprocess_ms = lap() / len(images)
        prediction = self.model.predict_preprocessed(inputs)
        forward_ms = lap() / len(images)
        revisions = self.index.revisions()
        results = []
        for image, model_input, probs, embedding in zip(images, inputs, prediction.probabilities,
                                                        prediction.embeddings):
            lap()
            probabilities = sorted(zip(self.model.categories, probs.tolist()), key=lambda item: -item[1])
            searched, rule = self._narrow(probabilities, revisions, scope)
            narrow_ms = lap()
            matches = self._rank(embedding, searched, revisions, k, metric)
            timings = {"preprocess": preprocess_ms, "forward_pass": forward_ms, "narrow": narrow_ms, "rank": lap()}
            results.append(SearchResult(probabilities, searched, rule, matches, metric, scope, image, image.size,
                                        model_input, embedding, timings))
        return results

    def check(self, k: int | None = None, metric: str | None = None,
              scope: str | None = None) -> tuple[int, str, str]:
        """The search parameters with their defaults filled in (before any work on an image).

        Raises:
            SearchError: k, metric or scope out of range.
        """
        k = self.top_k if k is None else k
        metric = metric or self.metric
        scope = scope or self.scope
        if not 1 <= k <= self.max_k:
            raise SearchError(f"k must be between 1 and {self.max_k}, got {reprlib.repr(k)}")
        if metric not in METRICS:
            raise SearchError(f"metric must be one of {', '.join(METRICS)}, got {reprlib.repr(metric)}")
        if scope not in SCOPES:
            raise SearchError(f"scope must be one of {', '.join(SCOPES)}, got {reprlib.repr(scope)}")
        return k, metric, scope

    def _narrow(self, probabilities: list[tuple[str, float]], revisions: dict[str, int],
                scope: str) -> tuple[list[str], str]:
        """The categories to search: every one, or the fewest most probable whose probabilities reach τ."""
        if scope == "all":
            return sorted(revisions), "scope 'all': every category in the catalogue"
        chosen: list[tuple[str, float]] = []
        total = 0.0
        for category, p in probabilities:
            chosen.append((category, p))
            total += p
            if total >= self.tau or len(chosen) >= self.max_categories:
                break
        if len(chosen) == 1 and self.tau <= 0:
            return [chosen[0][0]], f"the most probable category ({chosen[0][0]}, p = {chosen[0][1]:.3f})"
        terms = " + ".join(f"{c} {p:.3f}" for c, p in chosen)
        return [c for c, _ in chosen], (f"the fewest most probable categories whose probabilities reach "
                                        f"τ = {self.tau:g} (at most {self.max_categories}): {terms} = {total:.3f}")

    def _rank(self, embedding: np.ndarray, categories: list[str], revisions: dict[str, int], k: int,
              metric: str) -> list[Match]:
        candidates = []  # (distance, similarity, product id) from every searched category
        products: dict[int, ProductInfo] = {}
        for category in categories:
            if category not in revisions:
                continue  # the model knows the category, but the catalogue has no products in it
            matrix = self.index.matrix(category, revisions[category])
            ranked = matrix.nearest(embedding, k, metric)
            ids = matrix.product_ids[ranked.positions].tolist()
            candidates += zip(ranked.distances.tolist(), ranked.similarities.tolist(), ids)
            products.update((pid, matrix.products[pid]) for pid in ids if pid in matrix.products)
        candidates.sort()
        candidates = candidates[:k]
        return [Match(products[pid], distance, similarity) for distance, similarity, pid in candidates
                if pid in products]
