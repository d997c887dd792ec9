"""One search as the web app runs it: search, keep the trace for the reviewer, shape the JSON answer."""
from __future__ import annotations

from flask import url_for

from search.policy import SearchPolicy
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
    return state.traces.put(result, jpeg(result.query), explain(result, best_vector), figures(result))


def result_json(trace: Trace) -> dict:
    result = trace.result
    category, probability = result.predicted
    return {
        "predicted": {"category": category, "probability": probability},
        "probabilities": [{"category": c, "probability": p} for c, p in result.probabilities],
        "searched_categories": result.searched,
        "rule": result.rule,
        "safety_net": None if result.exact_match is None else {
            "product_id": result.exact_match.product.id, "category": result.exact_match.product.category,
            "distance": result.exact_match.distance, "max_distance": result.policy.exact_distance},
        "metric": result.metric,
        "scope": result.scope,
        "weak_match": result.weak,
        "min_similarity": result.policy.min_similarity,
        "results": [{
            "product_id": m.product.id,
            "external_id": m.product.external_id,
            "category": m.product.category,
            "metadata": m.product.metadata,
            "distance": m.distance,
            "similarity": m.similarity,
            "image_url": url_for("shop.product_image", product_id=m.product.id),
        } for m in result.matches],
        "box": None if result.box is None else {"x": result.box.x, "y": result.box.y, "w": result.box.w,
                                                 "h": result.box.h},
        "box_source": result.box_source,
        "image_size": {"width": result.query_size[0], "height": result.query_size[1]},
        "timings_ms": result.timings_ms,
        "review_url": url_for("review.trace", trace_id=trace.id),
    }
