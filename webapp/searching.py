"""One search as the web app runs it: search, keep the trace for the reviewer, shape the API's answer."""
from __future__ import annotations

from flask import url_for

from webapp import lookalike, schemas
from webapp.pictures import figures, jpeg
from webapp.review import explain
from webapp.traces import Trace


def search_and_trace(image: bytes, params: dict) -> Trace:
    """Run the search and keep, in memory, what the pages show (not the picture itself)."""
    state = lookalike()
    service = state.service
    result = service.search(image, **params)
    best_vector = (service.store.vector(result.matches[0].product.id, service.model.version)
                   if result.matches else None)
    return state.traces.put(result, jpeg(result.query), explain(result, best_vector), figures(result))


def is_weak(trace: Trace) -> bool:
    """True when even the best match is below the documented similarity threshold."""
    matches = trace.result.matches
    return not matches or matches[0].similarity < lookalike().settings.min_similarity


def result_body(trace: Trace) -> schemas.SearchResult:
    """The API's answer to a search."""
    result, settings = trace.result, lookalike().settings
    category, probability = result.predicted
    exact = result.exact_match
    return schemas.SearchResult(
        predicted=schemas.Probability(category=category, probability=probability),
        probabilities=[schemas.Probability(category=c, probability=p) for c, p in result.probabilities],
        searched_categories=result.searched,
        rule=result.rule,
        metric=result.metric,
        scope=result.scope,
        safety_net=None if exact is None else schemas.SafetyNet(
            product_id=exact.product.id, category=exact.product.category, distance=exact.distance,
            max_distance=settings.exact_distance),
        weak_match=is_weak(trace),
        min_similarity=settings.min_similarity,
        results=[schemas.RankedProduct(
            product_id=m.product.id, external_id=m.product.external_id, category=m.product.category,
            metadata=m.product.attributes, distance=m.distance, similarity=m.similarity,
            image_url=url_for("shop.product_image", product_id=m.product.id)) for m in result.matches],
        box=None if result.box is None else schemas.Region(x=result.box.x, y=result.box.y, w=result.box.w,
                                                           h=result.box.h),
        box_source=result.box_source,
        image_size=schemas.ImageSize(width=result.query_size[0], height=result.query_size[1]),
        timings_ms=result.timings_ms,
        review_url=url_for("review.trace", trace_id=trace.id),
    )
