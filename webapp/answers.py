"""One search as the web app runs it: search, keep the trace for the reviewer, shape the API's answer."""
from __future__ import annotations

from flask import url_for

from search.policy import SearchPolicy
from webapp import schemas
from webapp.pictures import figures, jpeg
from webapp.review import explain
from webapp.state import lookalike
from webapp.traces import Trace


def search_and_trace(image: bytes, params: dict) -> Trace:
    """Run the search under the app's settings and keep, in memory, what the pages show (not the picture itself)."""
    state = lookalike()
    service = state.service
    result = service.search(image, **params, policy=SearchPolicy.from_settings(state.settings))
    best_vector = (service.store.vector(result.matches[0].product.id, service.model.version)
                   if result.matches else None)
    return state.traces.put(result, jpeg(result.query), explain(result, best_vector, service.model.card.gallery_views),
                             figures(result))


def result_body(trace: Trace) -> schemas.SearchResult:
    """The API's answer to a search."""
    result = trace.result
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
            max_distance=result.exact_reach),
        weak_match=result.weak,
        min_similarity=result.policy.min_similarity,
        results=[schemas.RankedProduct(
            product_id=m.product.id, external_id=m.product.external_id, category=m.product.category,
            metadata=m.product.metadata, distance=m.distance, similarity=m.similarity,
            image_url=url_for("shop.product_image", product_id=m.product.id)) for m in result.matches],
        box=None if result.box is None else schemas.Region(x=result.box.x, y=result.box.y, w=result.box.w,
                                                           h=result.box.h),
        box_source=result.box_source,
        image_size=schemas.ImageSize(width=result.query_size[0], height=result.query_size[1]),
        timings_ms=result.timings_ms,
        review_url=url_for("review.trace", trace_id=trace.id),
    )
