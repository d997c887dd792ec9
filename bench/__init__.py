"""The speed benchmarks: every figure measured side by side with its baseline in one run.

Run ``make bench`` (or ``python -m bench``; ``--quick`` for small sizes while developing). The table is
printed and written to ``docs/benchmarks.md``.
"""
