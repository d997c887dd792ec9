"""The weak-match verdict: when even the best result is not close, the search says plainly that nothing in
the catalogue looks much like the photo (the page, the API and the command line alike).

"Not close" depends on the model, so each model carries its own threshold, calibrated on its training pictures
(``model.calibration``, kept in its card); the ``min_similarity`` setting overrides it for every model.
"""
from __future__ import annotations

import math

from config.settings import FALLBACK_MIN_SIMILARITY


def is_weak(best_similarity: float | None, min_similarity: float) -> bool:
    """True when there is no result (``best_similarity`` None) or even the most similar one is under
    ``min_similarity`` (both percent)."""
    return best_similarity is None or best_similarity < min_similarity


def reason(best_similarity: float, min_similarity: float) -> str:
    """Why a match is weak, in words: the best match's similarity rounded down and the threshold up, to one decimal,
    so a weak match never reads as close as the threshold."""
    best = math.floor(round(best_similarity * 10, 6)) / 10  # round first: 84.9 × 10 is 849.0000000000001
    close = math.ceil(round(min_similarity * 10, 6)) / 10
    return f"the best match is only {best:.1f} % similar (a match is close from {close:.1f} %)"


def threshold(setting: float | None, calibrated: float | None) -> float:
    """The threshold a search applies: the setting when set, else the served model's calibrated one, else (a model
    trained before models were calibrated) ``FALLBACK_MIN_SIMILARITY``."""
    if setting is not None:
        return setting
    return FALLBACK_MIN_SIMILARITY if calibrated is None else calibrated
