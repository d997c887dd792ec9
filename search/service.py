"""The search service: image bytes in, ranked products with the reasons out.

Steps: decode (EXIF upright, RGB) → the shopper's box, if any → resize → the model's preprocessing → one forward
pass giving class probabilities, the embedding and the activation map → without a shopper's box, the product's
box from that map, and when it is clearly smaller than the photo one more forward pass on the crop around it
(search/localisation.py): ``look``. Then, under a search policy (search/policy.py): the nearest stored products'
vote joins the classifier's probabilities (search/voting.py) → choose the categories to search
(search/narrowing.py), with the category of the catalogue's nearest product → rank their cached vectors and merge
them (search/merging.py) → that nearest product first when it is near enough (the exact-product safety net,
search/safety_net.py) → the weak-match verdict (search/weak_match.py): ``answer``.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from PIL import Image

from config import DEFAULTS
from config.choices import Scope
from db.store import ProductInfo, Store
from images.decoding import decode_image
from model.inference import Network
from search.ann import AnnPolicy
from search.index import VectorIndex
from search.localisation import MARGIN, Box, Localisation, localise
from search.merging import merge, squared_distances
from search.narrowing import narrow
from search.parameters import SearchError, SearchParameters
from search.policy import SearchPolicy
from search.safety_net import cover, goes_first, reach
from search.voting import blend, vote
from search.weak_match import is_weak, reason

# Where the searched region came from (``SearchResult.box_source``).
WHOLE, SHOPPER, LOCALISED = "whole photo", "shopper", "localised"


@dataclass(frozen=True)
class Match:
    product: ProductInfo
    distance: float
    similarity: float  # percent, see search.ranking


@dataclass
class SearchResult:
    """Everything one search computed, so a reviewer can see each step.

    Attributes:
        probabilities: (category, probability) for every model category, most probable first: the classifier's
            blended with the nearest products' vote (``search.voting``), what narrowing and merging used.
        searched: categories whose vectors were compared.
        rule: why those categories were searched, in words.
        matches: the ranked results, best first.
        policy: the thresholds the search applied (the weak-match threshold settled: never None).
        query: the decoded upload, upright RGB, large ones at reduced scale (kept in memory only; None in a
            result kept for later, see ``without_pixels``).
        query_size: the upload's own (width, height), upright.
        model_input: the preprocessed network input (size, size, 3); None like ``query``.
        embedding: the query's unit-length embedding.
        timings_ms: milliseconds per step.
        exact_match: the catalogue's nearest product when the exact-product safety net put it first (None when
            it did not fire: too far, or first already).
        box: the region of the query that was embedded, in pixels of the upload (of ``query`` for
            ``search_images``); None: the whole photo.
        box_source: ``whole photo``, ``shopper`` (the box came with the request) or ``localised`` (the
            activation map's box with its margin).
        localisation: the activation map of the whole photo, or of the shopper's box (its ``region``), and the
            map's box (same pixels as ``box``), whether or not the crop was searched; None from a graph without
            the map.
        crop: the pixels that were embedded when a box was searched; None like ``query``.
        classifier: the classifier's own probabilities, most probable first.
        votes: each category's share of the nearest products' vote (empty when the policy takes no vote).
    """

    probabilities: list[tuple[str, float]]
    searched: list[str]
    rule: str
    matches: list[Match]
    metric: str
    scope: str
    policy: SearchPolicy
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
    classifier: list[tuple[str, float]] = field(default_factory=list)
    votes: dict[str, float] = field(default_factory=dict)

    @property
    def predicted(self) -> tuple[str, float]:
        return self.probabilities[0]

    @property
    def exact_reach(self) -> float:
        """How near the catalogue's nearest product must lie to go first, in this search's metric."""
        return reach(self.policy.exact_distance, self.metric)

    @property
    def best_similarity(self) -> float | None:
        """The most similar match's similarity: not always the first's, as merging weighs the categories'
        probabilities too (``search.merging``). None without matches."""
        return max((match.similarity for match in self.matches), default=None)

    @property
    def weak(self) -> bool:
        """Even the best match is not close: nothing in the catalogue looks much like the query."""
        applied = self.policy.min_similarity
        assert applied is not None, "SearchService.answer settles the threshold"
        return is_weak(self.best_similarity, applied)

    @property
    def weak_reason(self) -> str | None:
        """Why the match is weak, in words (None when it is not, or nothing was found): the page and the command
        line say the same."""
        if not self.weak or self.best_similarity is None:
            return None
        assert self.policy.min_similarity is not None, "SearchService.answer settles the threshold"
        return reason(self.best_similarity, self.policy.min_similarity)

    def without_pixels(self) -> SearchResult:
        """This result without the picture and the network input, which are nearly all of its memory."""
        return replace(self, query=None, model_input=None, crop=None)


@dataclass
class Seen:
    """One picture as the network saw it: everything a search policy needs to answer it (``SearchService.look``).

    Attributes:
        probabilities: (category, probability) for every model category, most probable first.
        timings_ms: the milliseconds of its steps so far (a batch's shared equally).
        The others as in ``SearchResult``.
    """

    image: Image.Image
    model_input: np.ndarray
    probabilities: list[tuple[str, float]]
    embedding: np.ndarray
    timings_ms: dict[str, float]
    box: Box | None
    box_source: str
    localisation: Localisation | None
    crop: Image.Image | None


class SearchService:
    """Classify → narrow → rank, with a model and a store passed in.

    Args:
        model: the trained network (on either runtime).
        store: the catalogue store.
        top_k: default number of results.
        metric, scope: defaults (``euclidean|cosine``, ``category|all``).
        max_image_pixels: uploads larger than this are refused.
        policy: the thresholds of narrowing, merging, the safety net and the weak-match verdict, unless a
            search brings its own.
        localise_max_share: the crop around the product's box is searched instead of the whole photo when the
            box covers at most this share of it (0: never).
        localise_threshold: the box surrounds the largest region where the map reaches this share of its peak.
            The defaults are the settings' defaults.
        ann: which categories are searched through an approximate index.
    """

    def __init__(self, model: Network, store: Store, top_k: int = DEFAULTS.top_k, metric: str = DEFAULTS.metric,
                 scope: str = DEFAULTS.scope, max_image_pixels: int = DEFAULTS.max_image_pixels,
                 policy: SearchPolicy = SearchPolicy(), localise_max_share: float = DEFAULTS.localise_max_share,
                 localise_threshold: float = DEFAULTS.localise_threshold, ann: AnnPolicy = AnnPolicy()):
        self.model = model
        self.store = store
        self.index = VectorIndex(store, model.version, ann)
        self.top_k = top_k
        self.metric = metric
        self.scope = scope
        self.max_image_pixels = max_image_pixels
        self.policy = policy
        self.localise_max_share = localise_max_share
        self.localise_threshold = localise_threshold

    def warm_up(self) -> None:
        """Run the network once and read the catalogue's vectors now, so the first shopper waits for neither."""
        self.model.warm_up()
        self.index.load_all()

    def search(self, image: bytes, k: int | None = None, metric: str | None = None,
               scope: str | None = None, box: Box | None = None, policy: SearchPolicy | None = None) -> SearchResult:
        """Search the catalogue for products that look like ``image`` (untrusted bytes), or like the part of it
        in ``box`` (pixels of the upload, upright), under ``policy`` (by default the service's).

        Raises:
            SearchError: k, metric, scope or box out of range.
            images.decoding.ImageError: the bytes are not a usable image.
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
                                      [None if box is None else box.scaled(*to_rgb, rgb.size)], policy)
        result.query_size = size

        def to_upload(found: Box) -> Box:
            return found.scaled(1 / to_rgb[0], 1 / to_rgb[1], size)

        if box is not None:
            result.box = box
        elif result.box is not None:
            result.box = to_upload(result.box)
        if result.localisation:
            found = result.localisation
            result.localisation = replace(found, box=found.box and to_upload(found.box),
                                          region=found.region and to_upload(found.region))
        result.timings_ms = {"decode": decode_ms, **result.timings_ms}
        return result

    def search_images(self, images: Sequence[Image.Image], k: int | None = None, metric: str | None = None,
                      scope: str | None = None, boxes: Sequence[Box | None] | None = None,
                      policy: SearchPolicy | None = None) -> list[SearchResult]:
        """Search for several decoded RGB pictures with one batched forward pass (and one more for the crops
        around the products that localisation finds): ``answer(look(images, boxes))``.

        Args:
            boxes: per picture, the region to search (in its pixels, checked by the caller), or None to let
                localisation decide.
        """
        self.check(k, metric, scope)
        return self.answer(self.look(images, boxes), k, metric, scope, policy)

    def look(self, images: Sequence[Image.Image], boxes: Sequence[Box | None] | None = None) -> list[Seen]:
        """The network's part of a search, for several decoded RGB pictures in one batched forward pass: what
        ``answer`` needs, under any policy. Arguments as ``search_images``; the preprocessing and forward-pass
        timings are the batch's, shared equally."""
        lap = Laps()
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
        return [Seen(image, model_input, sorted(zip(self.model.categories, probs.tolist()), key=lambda item: -item[1]),
                     embedding, dict(timings), boxes[i], sources[i], localisations[i], crops[i] if boxes[i] else None)
                for i, (image, model_input, probs, embedding) in enumerate(zip(images, inputs, all_probabilities,
                                                                                embeddings))]

    def answer(self, seen: Sequence[Seen], k: int | None = None, metric: str | None = None,
               scope: str | None = None, policy: SearchPolicy | None = None) -> list[SearchResult]:
        """The search's part after the network, for pictures it has seen: the vote, narrow, rank and merge, the
        safety net, under ``policy`` (by default the service's). ``look`` once and ``answer`` under several policies
        compares them on one forward pass.

        Raises:
            SearchError: k, metric or scope out of range.
        """
        k, metric, scope = self.check(k, metric, scope)
        policy = (policy or self.policy).applied(self.model.min_similarity)
        lap = Laps()
        revisions = self.index.revisions()
        results = []
        for one in seen:
            lap()
            voters = policy.vote_neighbours if policy.vote_weight > 0 else 0
            voted, nearest = self._neighbours(one.embedding, revisions, metric, voters, policy.exact_distance > 0)
            neighbours_ms = lap()
            shares = vote(voted, voters, policy.vote_temperature) if voters else {}
            probabilities = blend(one.probabilities, shares, policy.vote_weight)
            if scope == Scope.ALL:  # not the emptied categories, whose rows stay to keep their revisions counting
                searched = sorted(c for c in revisions if self.index.matrix(c, revisions[c]).product_ids.size)
                rule = "scope 'all': every category in the catalogue"
            else:
                searched, rule = cover(*narrow(probabilities, policy), nearest.product.category if nearest else None)
            narrow_ms = lap()
            # Scope 'all' leaves the categories out of the ranking too: distance alone.
            weights = dict(probabilities) if scope == Scope.CATEGORY else None
            matches = self._rank(one.embedding, weights, searched, revisions, k, metric, policy.merge_weight)
            rank_ms = lap()
            exact = probe(nearest, matches, metric, policy.exact_distance)
            if exact:
                matches = [exact, *[m for m in matches if m.product.id != exact.product.id][:k - 1]]
            steps = {**one.timings_ms, "neighbours": neighbours_ms, "narrow": narrow_ms, "rank": rank_ms,
                     "safety_net": lap()}
            results.append(SearchResult(probabilities, searched, rule, matches, metric, scope, policy, one.image,
                                        one.image.size, one.model_input, one.embedding, steps, exact, one.box,
                                        one.box_source, one.localisation, one.crop, one.probabilities, shares))
        return results

    def _localise(self, images: Sequence[Image.Image], maps: np.ndarray, boxes: list[Box | None], sources: list[str],
                  crops: list[Image.Image]) -> list[Localisation | None]:
        """Each picture's map and its box; without a given box, where the map's box covers at most
        ``localise_max_share`` of the picture, the box with its margin becomes the region searched (``boxes``,
        ``sources`` and ``crops`` are updated in place)."""
        found: list[Localisation | None] = []
        for i, (image, activation) in enumerate(zip(images, maps)):
            given = boxes[i]
            if given is not None:  # the map of the shopper's box, placed where the box is
                found.append(localise(activation, crops[i].size, self.localise_threshold).within(given, image.size))
                continue
            located = localise(activation, image.size, self.localise_threshold)
            found.append(located)
            if located.box and located.box.share(image.size) <= self.localise_max_share:
                box = located.box.widened(MARGIN, image.size)
                boxes[i], sources[i], crops[i] = box, LOCALISED, box.crop(image)
        return found

    def _inputs(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self.model.preprocess(self.model.arrays(images))

    def check(self, k: int | None = None, metric: str | None = None,
              scope: str | None = None, box: Box | None = None) -> tuple[int, str, str]:
        """The search parameters with their defaults filled in (before any work on an image; a box is checked
        against the image once decoded).

        Raises:
            SearchError: k, metric, scope or box out of range.
        """
        checked = SearchParameters.read({"k": self.top_k if k is None else k, "metric": metric or self.metric,
                                         "scope": scope or self.scope, "box": box})
        if checked.box is not None:
            check_box(checked.box)
        assert checked.k is not None and checked.metric and checked.scope  # each was given
        return checked.k, checked.metric, checked.scope

    def _rank(self, embedding: np.ndarray, probabilities: dict[str, float] | None, categories: list[str],
              revisions: dict[str, int], k: int, metric: str, merge_weight: float) -> list[Match]:
        """The ``k`` best of the searched categories, merged (``search.merging``; by distance alone without
        ``probabilities``)."""
        squared, found = {}, {}
        for category in categories:
            if category not in revisions:
                continue  # the model knows the category, but the catalogue has no products in it
            matrix = self.index.matrix(category, revisions[category])
            found[category] = matrix, matrix.ranked.nearest(embedding, k, metric)
            squared[category] = squared_distances(found[category][1].distances, metric)
        matches = []
        for category, position in merge(squared, probabilities, merge_weight, k):
            matrix, ranked = found[category]
            pid = int(matrix.product_ids[ranked.positions[position]])
            matches.append(Match(matrix.products[pid], float(ranked.distances[position]),
                                 float(ranked.similarities[position])))
        return matches

    def _neighbours(self, embedding: np.ndarray, revisions: dict[str, int], metric: str, voters: int,
                    probing: bool) -> tuple[dict[str, np.ndarray], Match | None]:
        """Each category's d² of its ``voters`` nearest by the vectors the vote reads (``search.voting``), and,
        when ``probing``, the whole catalogue's nearest by the vectors searches rank by (the safety net's). A pass
        over every stored vector, through the approximate index for large categories: its cost grows with the
        catalogue."""
        voted: dict[str, np.ndarray] = {}
        nearest = None
        for category, revision in sorted(revisions.items()):
            matrix = self.index.matrix(category, revision)
            found = matrix.voters.nearest(embedding, voters, metric) if voters else None
            if found is not None:
                voted[category] = squared_distances(found.distances, metric)
            if probing:
                # Where the vote reads the very vectors searches rank by, its pass found the nearest already.
                best = (found if found is not None and matrix.voters is matrix.ranked
                        else matrix.ranked.nearest(embedding, 1, metric))
                if len(best.positions) and (nearest is None or best.distances[0] < nearest.distance):
                    nearest = Match(matrix.products[int(matrix.product_ids[best.positions[0]])],
                                    float(best.distances[0]), float(best.similarities[0]))
        return voted, nearest


class Laps:
    """A stopwatch: each call gives the milliseconds since the previous one (or since it was made)."""

    def __init__(self):
        self._last = time.perf_counter()

    def __call__(self) -> float:
        now, then = time.perf_counter(), self._last
        self._last = now
        return (now - then) * 1000.0


def probe(nearest: Match | None, matches: list[Match], metric: str, exact_distance: float) -> Match | None:
    """The exact-product safety net (``search.safety_net``): the catalogue's nearest product
    (``SearchService._neighbours``) when it goes first and the ranking did not put it there."""
    if nearest is None or not goes_first(float(squared_distances(np.array([nearest.distance]), metric)[0]),
                                         exact_distance):
        return None
    return None if matches and matches[0].product.id == nearest.product.id else nearest


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

