"""Argument types of the command line: a bad value is refused by argparse with a clear line, before any work."""
from __future__ import annotations

import argparse
import math
import reprlib
from pathlib import Path

from db.schema import LARGEST_ID


def product_id(text: str) -> int:
    """A product id as typed: a whole number the store's ids can reach (a larger one cannot be looked up)."""
    if (number := _whole(text)) is not None:
        return number
    raise argparse.ArgumentTypeError(f"{reprlib.repr(text)} is not a product id: ids are whole numbers up to "
                                     f"{LARGEST_ID}")


def positive(text: str) -> int:
    """A count or a limit: 1 or more."""
    if (number := _whole(text)) is not None and number >= 1:
        return number
    raise argparse.ArgumentTypeError(f"{reprlib.repr(text)} is not a whole number from 1 to {LARGEST_ID}")


def zero_or_more(text: str) -> int:
    """A count where 0 means every one."""
    if (number := _whole(text)) is not None:
        return number
    raise argparse.ArgumentTypeError(f"{reprlib.repr(text)} is not a whole number from 0 to {LARGEST_ID}")


def port(text: str) -> int:
    """A TCP port to listen on."""
    if (number := _whole(text)) is not None and 1 <= number <= 65535:
        return number
    raise argparse.ArgumentTypeError(f"{reprlib.repr(text)} is not a port: a whole number from 1 to 65535")


def _whole(text: str) -> int | None:
    """The number written, if it is a whole number the store can bind (no sign; at most 19 digits before int()
    reads it, as int() refuses thousands of digits with a message of its own)."""
    digits = text.strip()
    if digits.isdecimal() and len(digits.lstrip("0")) <= len(str(LARGEST_ID)) and int(digits) <= LARGEST_ID:
        return int(digits)
    return None


def report_folder(text: str) -> Path:
    """Where a report goes: a folder, or none yet; a file there is refused before any work."""
    if (path := Path(text)).exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file: give a folder for the report")
    return path


def shares(text: str) -> list[float]:
    """Comma-separated numbers from 0 to 1 (narrowing thresholds), each once."""
    return _numbers(text, lambda value: 0 <= value <= 1, "a number from 0 to 1")


def percentages(text: str) -> list[float]:
    """Comma-separated similarities from 0 to 100 (weak-match thresholds), each once."""
    return _numbers(text, lambda value: 0 <= value <= 100, "a similarity from 0 to 100 (%)")


def non_negatives(text: str) -> list[float]:
    """Comma-separated numbers of 0 or more (merge weights), each once."""
    return _numbers(text, lambda value: 0 <= value < math.inf, "a number of 0 or more")


def _numbers(text: str, fits, what: str) -> list[float]:
    values = []
    for part in text.split(","):
        try:
            value = float(part)
        except ValueError:
            value = math.nan
        if not fits(value):  # NaN fits nothing
            raise argparse.ArgumentTypeError(f"{reprlib.repr(part.strip())} is not {what}")
        values.append(value)
    return list(dict.fromkeys(values))
