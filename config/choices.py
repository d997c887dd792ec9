"""The names a person gives a setting, a command-line option or an API parameter, each list declared once.

The command line takes its ``choices`` from these, the settings and the search parameters validate against
them, and the OpenAPI document lists them.
"""
from __future__ import annotations

from enum import StrEnum


class Choice(StrEnum):
    """A fixed list of names; a member is its name as a string."""

    @classmethod
    def values(cls) -> list[str]:
        """The names as plain strings (argparse shows ``repr`` of its choices)."""
        return [member.value for member in cls]


class Metric(Choice):
    """How embeddings are compared (search.ranking)."""

    EUCLIDEAN = "euclidean"
    COSINE = "cosine"


class Scope(Choice):
    """Which categories a search covers: the most probable ones (narrowing) or every one."""

    CATEGORY = "category"
    ALL = "all"


class Runtime(Choice):
    """What runs the network (model.inference)."""

    ONNX = "onnx"
    KERAS = "keras"


class Optimizer(Choice):
    """How the head is trained (model.training)."""

    ADAM = "adam"
    RMSPROP = "rmsprop"
