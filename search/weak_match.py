"""The weak-match verdict: when even the best result is not close, the search says plainly that nothing in
the catalogue looks much like the photo (the page, the API and the command line alike).

"Not close" depends on the model, so each model carries its own threshold, calibrated on its training pictures
(``model.calibration``, kept in its card); the ``min_similarity`` setting overrides it for every model.
"""
from __future__ import annotations

from config.settings import FALLBACK_MIN_SIMILARITY


def is_weak(best_similarity: float | None, min_similarity: float) -> bool:
    """True when there is no result (``best_similarity`` None) or the first one is under ``min_similarity``
    (both percent)."""
    return best_similarity is None or best_similarity < min_similarity


def threshold(setting: float | None, calibrated: float | None) -> float:
    """The threshold a search applies: the setting when set, else the served model's calibrated one, else (a model
    trained before models were calibrated) ``FALLBACK_MIN_SIMILARITY``."""
    if setting is not None:
        return setting
    return FALLBACK_MIN_SIMILARITY if calibrated is None else calibrated
