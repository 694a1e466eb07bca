"""Helpers shared by the benchmarks."""

from __future__ import annotations

from typing import List


def percentile(values: List[float], q: float) -> float:
    """The value at quantile ``q`` (0 to 1) of ``values``, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]
