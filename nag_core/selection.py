"""Choosing documents under a token budget (paper §3).

Single target: rank by score, highest first, docid ascending on ties; keep the longest
prefix whose cumulative tokens stay within floor(fraction * total pool tokens). If even
the first document exceeds the budget it is kept alone, so a subset is never empty.

Multi-target mixture (paper §3.5): with M targets each target selects fraction / M of
the pool on its own, and the subsets are concatenated. A document chosen by several
targets appears once per target, as in the paper; ``copies`` counts them.
"""

from __future__ import annotations

import polars as pl


def select_by_budget(scored: pl.DataFrame, fraction: float) -> pl.DataFrame:
    """``scored`` has docid, score, token_num; returns the kept rows with ``rank`` and ``cum_tokens``."""
    if not 0 < fraction <= 1:
        raise ValueError(f"budget fraction must be in (0, 1], got {fraction}")
    if scored.is_empty():
        return scored.with_columns(pl.lit(None, pl.Int64).alias("rank"), pl.lit(None, pl.Int64).alias("cum_tokens"))
    total = int(scored["token_num"].sum())
    budget = int(total * fraction)
    ranked = (
        scored.sort(["score", "docid"], descending=[True, False])
        .with_row_index("rank", offset=1)
        .with_columns(pl.col("rank").cast(pl.Int64), pl.col("token_num").cum_sum().alias("cum_tokens"))
    )
    kept = ranked.filter(pl.col("cum_tokens") <= budget)
    return kept if not kept.is_empty() else ranked.head(1)


def budget_tokens(total_tokens: int, fraction: float) -> int:
    return int(total_tokens * fraction)


def equal_budget_mixture(scores_by_target: dict[str, pl.DataFrame], fraction: float) -> pl.DataFrame:
    """Concatenate per-target selections at fraction/M each; adds ``target`` and ``copies``."""
    if not scores_by_target:
        raise ValueError("a mixture needs at least one target")
    share = fraction / len(scores_by_target)
    parts = [select_by_budget(frame, share).with_columns(pl.lit(t).alias("target"))
             for t, frame in sorted(scores_by_target.items())]
    mixed = pl.concat(parts, how="vertical_relaxed")
    return mixed.with_columns(pl.len().over("docid").cast(pl.Int64).alias("copies"))
