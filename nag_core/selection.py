"""Choosing documents under a token budget (paper §3).

Single target: rank by score, highest first, docid ascending on ties; keep the longest
prefix whose cumulative tokens stay within floor(fraction * total pool tokens). If even
the first document exceeds the budget, the budget selects nothing: that is an error
naming the setting, the budget and document sizes, and the smallest fraction that
selects something (a subset is never empty, and never over its budget).

Multi-target mixture (paper §3.5): with M targets each target selects fraction / M of
the pool on its own, and the subsets are concatenated. A document chosen by several
targets appears once per target, as in the paper; ``copies`` counts them.
"""

from __future__ import annotations

import math

import polars as pl

from nag_core.errors import NagInputError


def select_by_budget(scored: pl.DataFrame, fraction: float, setting: str = "budget_fraction",
                     shares: int = 1, label: str = "") -> pl.DataFrame:
    """``scored`` has docid, score, token_num; returns the kept rows with ``rank`` and ``cum_tokens``.

    The budget is ``fraction / shares`` of the pool's tokens (``shares``: a mixture's targets).
    ``setting`` (e.g. ``"<root>/nag.yaml: budget_fraction"``) and ``label`` (e.g. a target)
    name the budget in the error raised when it selects nothing.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"budget fraction must be in (0, 1], got {fraction}")
    if scored.is_empty():
        return scored.with_columns(pl.lit(None, pl.Int64).alias("rank"), pl.lit(None, pl.Int64).alias("cum_tokens"))
    total = int(scored["token_num"].sum())
    budget = int(total * (fraction / shares))
    ranked = (
        scored.sort(["score", "docid"], descending=[True, False])
        .with_row_index("rank", offset=1)
        .with_columns(pl.col("rank").cast(pl.Int64), pl.col("token_num").cum_sum().alias("cum_tokens"))
    )
    kept = ranked.filter(pl.col("cum_tokens") <= budget)
    if kept.is_empty():
        raise NagInputError(nothing_selected(setting, fraction, shares, label, total, budget,
                                             int(ranked["token_num"][0]), int(scored["token_num"].min())))
    return kept


def nothing_selected(setting: str, fraction: float, shares: int, label: str, total: int, budget: int,
                     first: int, smallest: int) -> str:
    """Why a budget selects nothing, with the smallest fraction that would select the first-ranked document."""
    per = f", shared by {shares} targets," if shares > 1 else ""
    head = (f"{setting} {fraction:g}{per} gives a budget of {budget:,} tokens{f' for {label}' if label else ''} "
            f"(of {total:,} pool tokens), which selects nothing: the best-ranked document alone has {first:,} tokens "
            f"and the smallest {smallest:,}. ")
    need = first * shares / total
    if need > 1:
        return head + ("No budget_fraction can fit it; add documents to the pool"
                       + (" or select for fewer targets." if shares > 1 else "."))
    return head + f"Raise budget_fraction to at least {_at_least(need, total, shares, first)}, or add documents to the pool."


def _at_least(need: float, total: int, shares: int, first: int) -> str:
    """``need`` rounded up to 3 significant digits, to a value whose budget really fits ``first`` tokens."""
    digits = max(2, 2 - math.floor(math.log10(need)))
    value = math.ceil(need * 10**digits - 1e-9) / 10**digits
    while int(total * (value / shares)) < first and value < 1:
        value = round(value + 10**-digits, digits)
    return f"{min(value, 1.0):.{digits}f}".rstrip("0").rstrip(".")


def budget_tokens(total_tokens: int, fraction: float) -> int:
    return int(total_tokens * fraction)


def equal_budget_mixture(scores_by_target: dict[str, pl.DataFrame], fraction: float,
                         setting: str = "budget_fraction") -> pl.DataFrame:
    """Concatenate per-target selections at fraction/M each; adds ``target`` and ``copies``."""
    if not scores_by_target:
        raise ValueError("a mixture needs at least one target")
    m = len(scores_by_target)
    parts = [select_by_budget(frame, fraction, setting, shares=m, label=f"target {t!r}").with_columns(pl.lit(t).alias("target"))
             for t, frame in sorted(scores_by_target.items())]
    mixed = pl.concat(parts, how="vertical_relaxed")
    return mixed.with_columns(pl.len().over("docid").cast(pl.Int64).alias("copies"))
