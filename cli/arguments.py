"""Argument types of the command line: a bad value is refused by argparse with a clear line, before any work."""
from __future__ import annotations

import argparse

from db.schema import LARGEST_ID


def product_id(text: str) -> int:
    """A product id as typed: a whole number the store's ids can reach (a larger one cannot be looked up)."""
    if text.strip().isdecimal() and int(text) <= LARGEST_ID:
        return int(text)
    raise argparse.ArgumentTypeError(f"{text!r} is not a product id: ids are whole numbers up to {LARGEST_ID}")


def positive(text: str) -> int:
    if text.strip().isdecimal() and int(text) >= 1:
        return int(text)
    raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 1 or more")
