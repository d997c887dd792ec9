"""The search service: image bytes in, ranked products with the reasons out.

Steps: decode (EXIF upright, RGB) → the shopper's box, if any → resize → the model's preprocessing → one forward
pass giving class probabilities, the embedding and the activation map → without a shopper's box, the product's
box from that map, and when it is clearly smaller than the photo one more forward pass on the crop around it
(search/localisation.py) → choose the categories to search → rank their cached vectors.
"""
from __future__ import annotations

import math
import reprlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from PIL import Image

from config.settings import (
    EXACT_DISTANCE,
    LOCALISE_MAX_SHARE,
    LOCALISE_THRESHOLD,
    MERGE_WEIGHT,
    METRICS,
    NARROW_TAU,
    SCOPES,
)
from db.store import ProductInfo, Store
from model.images import decode_image, to_array
from model.inference import Network
from search.ann import AnnPolicy
from search.index import VectorIndex
from search.localisation import MARGIN, Box, Localisation, localise

# Where the searched region came from (``SearchResult.box_source``).
WHOLE, SHOPPER, LOCALISED = "whole photo", "shopper", "localised"


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
        exact_match: the product the exact-product safety net put first, from a category that was not
            searched (None when it did not fire).
        box: the region of the query that was embedded, in pixels of the upload (of ``query`` for
            ``search_images``); None: the whole photo.
        box_source: ``whole photo``, ``shopper`` (the box came with the request) or ``localised`` (the
            activation map's box with its margin).
        localisation: the activation map of the whole photo and its box (same pixels as ``box``), whether or
            not the crop was searched; None with a shopper's box or a graph without the map.
        crop: the pixels that were embedded when a box was searched; None like ``query``.
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
    exact_match: Match | None = None
    box: Box | None = None
    box_source: str = WHOLE
    localisation: Localisation | None = None
    crop: Image.Image | None = None

    @property
    def predicted(self) -> tuple[str, float]:
        return self.probabilities[0]

    def without_pixels(self) -> SearchResult:
        """This result without the picture and the network input, which are nearly all of its memory."""
        return replace(self, query=None, model_input=None, crop=None)


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
        merge_weight: results of several categories are merged by ``d² − merge_weight · ln p(category)``.
        exact_distance: the safety net's reach: the nearest product of the categories not searched goes first
            when it is closer than this and than every searched result (0: off).
        localise_max_share: the crop around the product's box is searched instead of the whole photo when the
            box covers at most this share of it (0: never).
        localise_threshold: the box surrounds the largest region where the map reaches this share of its peak.
            The defaults are the settings' defaults.
        ann: which categories are searched through an approximate index.
    """

    def __init__(self, model: Network, store: Store, top_k: int = 30, metric: str = "euclidean",
                 scope: str = "category", max_image_pixels: int = 40_000_000, max_k: int = 500,
                 tau: float = NARROW_TAU, max_categories: int = 3, merge_weight: float = MERGE_WEIGHT,
                 exact_distance: float = EXACT_DISTANCE, localise_max_share: float = LOCALISE_MAX_SHARE,
                 localise_threshold: float = LOCALISE_THRESHOLD, ann: AnnPolicy = AnnPolicy()):
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
        self.merge_weight = merge_weight
        self.exact_distance = exact_distance
        self.localise_max_share = localise_max_share
        self.localise_threshold = localise_threshold

    def search(self, image: bytes, k: int | None = None, metric: str | None = None,
               scope: str | None = None, box: Box | None = None) -> SearchResult:
        """Search the catalogue for products that look like ``image`` (untrusted bytes), or like the part of it
        in ``box`` (pixels of the upload, upright).

        Raises:
            SearchError: k, metric, scope or box out of range.
            model.images.ImageError: the bytes are not a usable image.
        """
        self.check(k, metric, scope, box)
        started = time.perf_counter()
        decoded = decode_image(image, self.max_image_pixels, self.model.input_size)
        decode_ms = (time.perf_counter() - started) * 1000.0
        size, rgb = (decoded.width, decoded.height), decoded.rgb
        if box is not None:
            check_box(box, size)
        # A large upload is decoded at reduced scale: boxes move between its pixels and the upload's.
        to_rgb = (rgb.width / size[0], rgb.height / size[1])
        [result] = self.search_images([rgb], k, metric, scope,
                                      [None if box is None else box.scaled(*to_rgb, rgb.size)])
        result.query_size = size

        def to_upload(found: Box) -> Box:
            return found.scaled(1 / to_rgb[0], 1 / to_rgb[1], size)

        if box is not None:
            result.box = box
        elif result.box is not None:
            result.box = to_upload(result.box)
        if result.localisation and result.localisation.box:
            result.localisation = replace(result.localisation, box=to_upload(result.localisation.box))
        result.timings_ms = {"decode": decode_ms, **result.timings_ms}
        return result

    def search_images(self, images: Sequence[Image.Image], k: int | None = None, metric: str | None = None,
                      scope: str | None = None, boxes: Sequence[Box | None] | None = None) -> list[SearchResult]:
        """Search for several decoded RGB pictures with one batched forward pass (and one more for the crops
        around the products that localisation finds).

        Args:
            boxes: per picture, the region to search (in its pixels, checked by the caller), or None to let
                localisation decide.

        The preprocessing and forward-pass timings of each result are the batch's, shared equally.
        """
        k, metric, scope = self.check(k, metric, scope)
        clock = time.perf_counter()

        def lap() -> float:
            nonlocal clock
            now, then = time.perf_counter(), clock
            clock = now
            return (now - then) * 1000.0

        boxes = list(boxes or [None] * len(images))
        sources = [WHOLE if box is None else SHOPPER for box in boxes]
        crops = [image if box is None else box.crop(image) for image, box in zip(images, boxes)]
        inputs = self._inputs(crops)
        preprocess_ms = lap() / len(images)
        prediction = self.model.predict_preprocessed(inputs)
        all_probabilities, embeddings = prediction.probabilities, prediction.embeddings
        forward_ms = lap() / len(images)
        timings = {"preprocess": preprocess_ms, "forward_pass": forward_ms}
        localisations: list[Localisation | None] = [None] * len(images)
        if prediction.activation_maps is not None:
            localisations = self._localise(images, prediction.activation_maps, boxes, sources, crops)
            timings["localise"] = lap() / len(images)
            again = [i for i, source in enumerate(sources) if source == LOCALISED]
            if again:  # the crops' own pass replaces the whole photos' answers
                inputs[again] = self._inputs([crops[i] for i in again])
                second = self.model.predict_preprocessed(inputs[again])
                all_probabilities[again], embeddings[again] = second.probabilities, second.embeddings
                timings["forward_pass_crop"] = lap() / len(images)
        revisions = self.index.revisions()
        results = []
        for i, (image, model_input, probs, embedding) in enumerate(zip(images, inputs, all_probabilities,
                                                                        embeddings)):
            lap()
            probabilities = sorted(zip(self.model.categories, probs.tolist()), key=lambda item: -item[1])
            searched, rule = self._narrow(probabilities, revisions, scope)
            narrow_ms = lap()
            # Scope 'all' leaves the classifier out of the ranking too: distance alone.
            weights = dict(probabilities) if scope == "category" else {}
            matches = self._rank(embedding, weights, searched, revisions, k, metric)
            rank_ms = lap()
            exact = self._probe(embedding, searched, revisions, metric, matches)
            if exact:
                matches = [exact, *matches[:k - 1]]
            steps = {**timings, "narrow": narrow_ms, "rank": rank_ms, "safety_net": lap()}
            results.append(SearchResult(probabilities, searched, rule, matches, metric, scope, image, image.size,
                                        model_input, embedding, steps, exact, boxes[i], sources[i],
                                        localisations[i], crops[i] if boxes[i] else None))
        return results

    def _localise(self, images: Sequence[Image.Image], maps: np.ndarray, boxes: list[Box | None], sources: list[str],
                  crops: list[Image.Image]) -> list[Localisation | None]:
        """Each picture without a given box: its map's box; where that box covers at most ``localise_max_share`` of
        the picture, the box with its margin becomes the region searched (``boxes``, ``sources`` and ``crops`` are
        updated in place)."""
        found: list[Localisation | None] = []
        for i, (image, activation) in enumerate(zip(images, maps)):
            located = None if boxes[i] else localise(activation, image.size, self.localise_threshold)
            found.append(located)
            if located and located.box and located.box.share(image.size) <= self.localise_max_share:
                box = located.box.widened(MARGIN, image.size)
                boxes[i], sources[i], crops[i] = box, LOCALISED, box.crop(image)
        return found

    def _inputs(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self.model.preprocess(np.stack([to_array(image, self.model.input_size) for image in images]))

    def check(self, k: int | None = None, metric: str | None = None,
              scope: str | None = None, box: Box | None = None) -> tuple[int, str, str]:
        """The search parameters with their defaults filled in (before any work on an image; a box is checked
        against the image once decoded).

        Raises:
            SearchError: k, metric, scope or box out of range.
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
        if box is not None:
            check_box(box)
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
        merged = (f"; their results merged by d² − {self.merge_weight:g} · ln p(category)"
                  if len(chosen) > 1 and self.merge_weight else "")
        return [c for c, _ in chosen], (f"the fewest most probable categories whose probabilities reach "
                                        f"τ = {self.tau:g} (at most {self.max_categories}): {terms} = {total:.3f}"
                                        f"{merged}")

    def _rank(self, embedding: np.ndarray, probabilities: dict[str, float], categories: list[str],
              revisions: dict[str, int], k: int, metric: str) -> list[Match]:
        """The ``k`` best of the searched categories, merged by ``d² − merge_weight · ln p(category)`` (by distance
        alone without ``probabilities``): within a category that is the distance order; across categories a less
        probable one must fit clearly better."""
        candidates: list[tuple[float, float, float, int]] = []  # (merge key, distance, similarity, product id)
        products: dict[int, ProductInfo] = {}
        for category in categories:
            if category not in revisions:
                continue  # the model knows the category, but the catalogue has no products in it
            matrix = self.index.matrix(category, revisions[category])
            ranked = matrix.nearest(embedding, k, metric)
            ids = matrix.product_ids[ranked.positions].tolist()
            penalty = -self.merge_weight * math.log(probabilities[category]) if probabilities else 0.0
            keys = squared_distances(ranked.distances, metric) + penalty
            candidates += zip(keys.tolist(), ranked.distances.tolist(), ranked.similarities.tolist(), ids)
            products.update((pid, matrix.products[pid]) for pid in ids if pid in matrix.products)
        candidates.sort()
        return [Match(products[pid], distance, similarity) for _, distance, similarity, pid in candidates[:k]
                if pid in products]

    def _probe(self, embedding: np.ndarray, searched: list[str], revisions: dict[str, int], metric: str,
               matches: list[Match]) -> Match | None:
        """The exact-product safety net: the nearest product of the categories not searched, when it is within
        ``exact_distance`` and closer than the best searched result. It costs one more pass over the vectors not
        searched (the whole catalogue at worst, through the approximate index for large categories)."""
        if self.exact_distance <= 0:
            return None
        reach = self.exact_distance ** 2
        if matches:
            reach = min(reach, float(squared_distances(np.array([matches[0].distance], np.float32), metric)[0]))
        best: Match | None = None
        for category in sorted(set(revisions) - set(searched)):
            matrix = self.index.matrix(category, revisions[category])
            ranked = matrix.nearest(embedding, 1, metric)
            if not len(ranked.positions):
                continue
            pid = int(matrix.product_ids[ranked.positions[0]])
            d2 = float(squared_distances(ranked.distances[:1], metric)[0])
            if d2 < reach and pid in matrix.products:
                reach = d2
                best = Match(matrix.products[pid], float(ranked.distances[0]), float(ranked.similarities[0]))
        return best


def check_box(box: Box, size: tuple[int, int] | None = None) -> None:
    """Refuse a box with no area or a negative corner, or, given the picture's ``size`` (width, height), one that
    is not inside it.

    Raises:
        SearchError: with the rule (and the picture's size).
    """
    if box.x < 0 or box.y < 0 or box.w < 1 or box.h < 1:
        raise SearchError(f"box {box} (x,y,w,h) needs x ≥ 0, y ≥ 0, w ≥ 1 and h ≥ 1")
    if size and (box.right > size[0] or box.bottom > size[1]):
        raise SearchError(f"box {box} (x,y,w,h) is not inside the {size[0]} × {size[1]} px image: it needs "
                          f"x + w ≤ {size[0]} and y + h ≤ {size[1]}")


def squared_distances(distances: np.ndarray, metric: str) -> np.ndarray:
    """Squared Euclidean distances between unit vectors, from either metric's distances (cosine: d² = 2(1 − cos))."""
    return distances ** 2 if metric == "euclidean" else 2.0 * distances
