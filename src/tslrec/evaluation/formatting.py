"""How figures are written in every table (run results, experiments, the results page).

Kept free of torch and polars so that tools which only read JSON figures stay light.
"""

from __future__ import annotations


def signed_percent(value: float) -> str:
    """A percentage with its sign: "+1.2%", "-0.4%"."""
    return f"{value:+.1f}%"


def percent_change(before: float, after: float) -> str:
    """The relative change as "+1.2%" ("+0.0%" from a zero baseline, where it is undefined)."""
    return signed_percent((after - before) / before * 100 if before else 0.0)


def mean_std(mean: float, std: float, seeds: int) -> str:
    """Mean ± std over several seeds; a lone seed has no spread to show."""
    return f"{mean:.4f} ± {std:.4f}" if seeds > 1 else f"{mean:.4f}"
