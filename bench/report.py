"""The benchmark table: each figure beside its baseline, the ratio, and the goal it must reach."""
from __future__ import annotations

from dataclasses import dataclass

from evaluation.tables import markdown_table


@dataclass(frozen=True)
class Row:
    """One line of the table.

    Attributes:
        figure: what was measured.
        value: the measurement, with its unit.
        baseline: what it is compared with, measured in the same run.
        ratio: value ÷ baseline as the goal states it (``None`` for a figure without a baseline).
        goal: the goal, in words ("" when the figure has none).
        verdict: "met", or by how much the goal is missed.
        why: what limits the figure, shown when the goal is missed.
    """

    figure: str
    value: str
    baseline: str = ""
    ratio: float | None = None
    goal: str = ""
    verdict: str = ""
    why: str = ""

    @property
    def missed(self) -> bool:
        return self.verdict.startswith("NOT")


def at_least(figure: str, value: str, baseline: str, ratio: float, target: float, goal: str, why: str = "") -> Row:
    """A row whose goal is ``ratio ≥ target``."""
    verdict = "met" if ratio >= target else f"NOT met: {100 * (1 - ratio / target):.0f}% short"
    return Row(figure, value, baseline, ratio, goal, verdict, why)


def at_most(figure: str, value: str, baseline: str, ratio: float, target: float, goal: str, why: str = "") -> Row:
    """A row whose goal is ``ratio ≤ target``."""
    verdict = "met" if ratio <= target else f"NOT met: {100 * (ratio / target - 1):.0f}% over"
    return Row(figure, value, baseline, ratio, goal, verdict, why)


def markdown(rows: list[Row]) -> str:
    lines = [markdown_table(["figure", "measured", "baseline (same run)", "ratio", "goal", "verdict"],
                            [(row.figure, row.value, row.baseline, "" if row.ratio is None else f"{row.ratio:.3g}×",
                              row.goal, row.verdict) for row in rows])]
    reasons: dict[str, list[str]] = {}  # one reason, once, for every figure it limits
    for row in rows:
        if row.missed and row.why:
            reasons.setdefault(row.why, []).append(row.figure)
    if reasons:
        lines += ["", "What limits the goals that are missed:", ""]
        lines += [f"- **{'; '.join(figures)}**: {why}" for why, figures in reasons.items()]
    return "\n".join(lines)
