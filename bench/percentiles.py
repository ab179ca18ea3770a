"""Percentiles of measured samples, one definition for every benchmark."""

from __future__ import annotations

from collections.abc import Sequence


def percentile(values: Sequence[float], share: float) -> float | None:
    """The sample at rank `share` of the sorted samples (the higher one where the rank falls between two, so a p99
    is never flattered); None when there are none."""
    return _at(sorted(values), share) if values else None


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """p50, p99 and the max, to four decimals (as the results files hold them); zeros when there are none."""
    if not values:
        return {"p50": 0.0, "p99": 0.0, "max": 0.0}
    ordered = sorted(values)
    return {
        name: round(value, 4)
        for name, value in (("p50", _at(ordered, 0.5)), ("p99", _at(ordered, 0.99)), ("max", ordered[-1]))
    }


def _at(ordered: Sequence[float], share: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]
