"""Markdown tables, as every report and benchmark writes them."""
from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]], right_aligned: Collection[int] = ()) -> str:
    """A GitHub-flavoured Markdown table, without a trailing newline; cells are written as ``str()`` gives them.

    Args:
        right_aligned: the (0-based) columns whose figures line up on the right (``---:``).
    """
    def line(cells: Iterable[object]) -> str:
        return "| " + " | ".join(map(str, cells)) + " |"

    separator = "|" + "".join("---:|" if column in right_aligned else "---|" for column in range(len(header)))
    return "\n".join([line(header), separator, *map(line, rows)])
