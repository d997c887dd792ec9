"""The reviewer's page: every step of one search, with its real numbers."""
from __future__ import annotations

import numpy as np
from flask import Blueprint, Response, abort, render_template
from sqlalchemy.exc import SQLAlchemyError

from search.localisation import MARGIN
from webapp.state import lookalike
from webapp.traces import kept_for

blueprint = Blueprint("review", __name__)

EXCERPT = 8  # values shown of each vector, and terms written out in the distance formula


@blueprint.get("/review/<trace_id>")
def trace(trace_id: str):
    found = _trace(trace_id)
    matched = [match.product.id for match in found.result.matches]
    # The page tells what the search saw; a product deleted since is said so, not shown as still stored.
    try:
        deleted = set(matched) - set(lookalike().service.store.products(matched))
    except SQLAlchemyError:  # the database is away: the page, kept in memory, still serves, without those marks
        deleted = set()
    return render_template("review.html", trace=found, settings=lookalike().settings, margin=MARGIN,
                           deleted=deleted, kept=kept_for(lookalike().settings.trace_ttl_seconds))


@blueprint.get("/review/<trace_id>/upload.jpg")
def upload(trace_id: str):
    return _private_jpeg(_trace(trace_id).thumbnail)


@blueprint.get("/review/<trace_id>/<any(heatmap, crop):name>.jpg")
def picture(trace_id: str, name: str):
    found = _trace(trace_id).pictures.get(name)
    if found is None:
        abort(404, description=f"this search has no {name} picture")
    return _private_jpeg(found)


def _private_jpeg(data: bytes) -> Response:
    response = Response(data, mimetype="image/jpeg")
    response.cache_control.private = True
    response.cache_control.no_store = True
    return response


def _trace(trace_id: str):
    found = lookalike().traces.get(trace_id)
    if found is None:
        abort(404, description="this search is no longer available: searches are kept in memory for "
                               f"{kept_for(lookalike().settings.trace_ttl_seconds)} only")
    return found


def explain(result, best_vector: np.ndarray | None, gallery_views: int) -> dict:
    """The numbers of each step, ready to print (computed when the search runs: the trace keeps no arrays).

    Args:
        gallery_views: how many augmented views of its photo each stored vector holds (the model card's).
    """
    x = result.model_input
    q = result.embedding
    steps = {
        "input_shape": x.shape,
        "input_min": float(x.min()),
        "input_max": float(x.max()),
        "input_excerpt": [" ".join("[" + ", ".join(f"{v:6.3f}" for v in pixel) + "]" for pixel in row)
                          for row in x[:3, :3, :]],  # top-left 3×3 pixels, every channel
        "embedding_dim": int(q.shape[0]),
        "embedding_norm": float(np.linalg.norm(q)),
        "embedding_excerpt": _excerpt(q),
        "best_vector": None,
        "gallery_views": gallery_views,
        "localisation": _localisation(result),
    }
    if best_vector is not None and result.matches:
        diff = q - best_vector
        terms = [f"({a:.4f} − {b:.4f})²" for a, b in zip(q[:EXCERPT], best_vector[:EXCERPT])]
        sum_sq = float(diff @ diff)
        steps["best_vector"] = {
            "dim": int(best_vector.shape[0]),
            "norm": float(np.linalg.norm(best_vector)),
            "excerpt": _excerpt(best_vector),
            "formula": f"d = √( {' + '.join(terms)} + … {q.shape[0] - EXCERPT} more terms )",
            "sum_sq": sum_sq,
            "distance": float(np.sqrt(sum_sq)),
            "cosine": float(q @ best_vector / (np.linalg.norm(q) * np.linalg.norm(best_vector))),
        }
    return steps


def _localisation(result) -> dict | None:
    """The map's size and peak, the threshold, the map's box with its share of the photo, and the part of the photo
    the map covers (the shopper's box; None: the whole photo)."""
    found = result.localisation
    if found is None:
        return None
    row, col = np.unravel_index(int(np.argmax(found.heat)), found.heat.shape)
    return {
        "map_shape": found.heat.shape,
        "peak_cell": (int(row), int(col)),
        "threshold": found.threshold,
        "box": found.box,
        "box_share": found.box.share(result.query_size) if found.box else None,
        "region": found.region,
    }


def _excerpt(vector: np.ndarray) -> str:
    return "[" + ", ".join(f"{v:.4f}" for v in vector[:EXCERPT]) + f", … ({len(vector) - EXCERPT} more)]"
