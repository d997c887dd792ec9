"""The weak-match verdict: when even the best result is not close, the search says plainly that nothing in
the catalogue looks much like the photo (the page, the API and the command line alike).

"Not close" depends on the model, so each model carries its own threshold, calibrated on its training pictures
(``model.calibration``, kept in its card); the ``min_similarity`` setting overrides it for every model.
"""
from __future__ import annotations

from config.settings import FALLBACK_MIN_SIMILARITY


def is_weak(best_similarity: float | None, min_similarity: float) -> bool:
    """True when there is no result (``best_similarity`` None) or even the most similar one is under
    ``min_similarity`` (both percent)."""
    return best_similarity is None or best_similarity < min_similarity


def reason(best_similarity: float, min_similarity: float) -> str:
    """Why a match is weak, in words: both figures to one decimal, as the results show similarities, or to as many
    more as it takes (up to 4) for a weak match not to read as close as the threshold.

    Example:
        >>> reason(41.1, 45.86)
        'the best match is only 41.1 % similar (a match is close from 45.9 %)'
        >>> reason(45.86, 45.87)
        'the best match is only 45.86 % similar (a match is close from 45.87 %)'
    """
    digits = 1
    while digits < 4 and f"{best_similarity:.{digits}f}" == f"{min_similarity:.{digits}f}":
        digits += 1
    return (f"the best match is only {best_similarity:.{digits}f} % similar "
            f"(a match is close from {min_similarity:.{digits}f} %)")


def threshold(setting: float | None, calibrated: float | None) -> float:
    """The threshold a search applies: the setting when set, else the served model's calibrated one, else (a model
    trained before models were calibrated) ``FALLBACK_MIN_SIMILARITY``."""
    if setting is not None:
        return setting
    return FALLBACK_MIN_SIMILARITY if calibrated is None else calibrated
