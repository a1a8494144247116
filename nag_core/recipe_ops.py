"""Executing a recipe over cached signals: filter, fuse, balance, select, with a full trace.

Every operator is a pure function of data frames, so a recipe is reproducible from the
signal values alone and every decision can be explained afterwards. The trace has one
row per (document, target) in ``decisions`` and one per (document, target, signal) in
``signal_values``; ``nag-select explain`` and ``diff`` read nothing else.

Normalisation of signal s for target t, over the documents still in play (n of them):

* ``rank``:   r(v) / n, the average 1-based rank in ascending order, so in (0, 1];
* ``minmax``: (v - min) / (max - min), 0 when every value is equal;
* ``zscore``: (v - mean) / std (population std), 0 when every value is equal.

The fused score is ``F_t(d) = sum_s w_s * norm_s,t(d)``. Target-free signals (quality)
have one value per document, shared by every target. Missing values follow the fuse
step's ``missing`` policy: ``error`` names the signal and a document, ``zero`` counts
the missing normalised value as 0, ``drop`` removes the document (recorded as
``dropped_missing``); nothing is dropped silently.

Selection spends ``B = floor(budget_fraction * pool tokens)`` where pool tokens are the
kept pool's, before any filter, so a filter shrinks what is eligible, not the budget:

* no ``balance``: one ranking by ``F(d) = mean_t F_t(d)`` (score desc, docid asc); walk it,
  skip a document whose source is at its quota, stop at the first document that would
  overflow B (as the single-target rule does).
* ``equal_budget``: each of M targets gets B / M and takes its own best remaining
  documents, targets taking turns, until its next document would overflow its share.
* ``bids`` (BIDS, Zhang et al. 2025): with F normalised per target, repeatedly add the best
  remaining document of the target furthest below its share B / M of the tokens
  selected so far (ties by target name), until no target's next document fits in B.

A document is selected at most once, credited to the target that took it. A source
quota ``max_source_share = q`` caps every value of ``source_column`` at floor(q * B) tokens.
A budget that selects nothing (not even the first-ranked document fits) is an error naming
the recipe file, the budget and document sizes, and the smallest ``budget_fraction`` that
selects something: a subset is never empty, and never over its budget.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from nag_core.errors import NagInputError
from nag_core.recipes import Filter, Recipe
from nag_core.selection import nothing_selected
from nag_core.signal_families import per_target

COMBINED = "*"  # the target label of the mean-over-targets ranking (no balance step)
OUTCOMES = ("selected", "filtered", "dropped_missing", "source_quota", "budget")


@dataclass
class RecipeResult:
    members: pl.DataFrame  # docid, target (credited), order, score, token_num, cum_tokens
    decisions: pl.DataFrame  # docid, target, score (fused), rank, outcome, step, pick (selection order), credited
    signal_values: pl.DataFrame  # docid, target, signal, value, norm, rank, weight
    stats: dict = field(default_factory=dict)


def normalize(values: np.ndarray, method: str) -> np.ndarray:
    """Normalised values of the non-NaN entries; NaN stays NaN."""
    out = np.full(values.shape, np.nan)
    ok = ~np.isnan(values)
    v = values[ok]
    if v.size == 0:
        return out
    if method == "rank":
        out[ok] = _average_rank(v) / v.size
    elif method == "minmax":
        span = v.max() - v.min()
        out[ok] = (v - v.min()) / span if span > 0 else 0.0
    elif method == "zscore":
        std = v.std()
        out[ok] = (v - v.mean()) / std if std > 0 else 0.0
    else:
        raise ValueError(f"unknown normalisation {method!r}")
    return out


def _average_rank(v: np.ndarray) -> np.ndarray:
    """1-based ascending ranks, ties sharing their average rank (so order is irrelevant)."""
    order = np.argsort(v, kind="stable")
    sorted_v = v[order]
    starts = np.flatnonzero(np.r_[True, sorted_v[1:] != sorted_v[:-1]])
    ends = np.r_[starts[1:], v.size]
    avg = (starts + ends + 1) / 2.0  # mean of ranks start+1 .. end
    ranks = np.empty(v.size)
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def _values(signals: pl.DataFrame, docids: np.ndarray, signal: str, target: str) -> np.ndarray:
    """(n,) float64 of one signal for one target, NaN where a document has no value."""
    rows = signals.filter(pl.col("signal") == signal)
    rows = rows.filter(pl.col("target") == target) if per_target(signal) else rows
    if rows["docid"].n_unique() != rows.height:
        raise NagInputError(f"signal {signal!r} for target {target!r} has several values for one document; "
                            "its asset wrote duplicate rows (rematerialise it)")
    joined = pl.DataFrame({"docid": docids}).join(rows.select("docid", "value"), on="docid", how="left", maintain_order="left")
    return joined["value"].cast(pl.Float64).fill_null(np.nan).to_numpy()


def _filter_pass(f: Filter, values: np.ndarray) -> np.ndarray:
    ok = ~np.isnan(values)
    if f.min is not None:
        ok &= np.nan_to_num(values, nan=-np.inf) >= f.min
    if f.max is not None:
        ok &= np.nan_to_num(values, nan=np.inf) <= f.max
    return ok


def run_recipe(recipe: Recipe, targets: list[str], pool: pl.DataFrame, signals: pl.DataFrame) -> RecipeResult:
    """``pool``: the kept pool (docid, token_num[, source column]); ``signals``: docid, signal, target, value."""
    if pool.is_empty():
        raise NagInputError(f"{recipe.path}: the pool is empty: add shards under pool/ (or check the dedup removals)")
    if not targets:
        raise NagInputError(f"{recipe.path}: no targets to select for; add a folder under targets/")
    pool = pool.sort("docid")
    docids = pool["docid"].to_numpy()
    tokens = pool["token_num"].to_numpy().astype(np.int64)
    n = docids.size
    alive = np.ones(n, bool)
    step_of = np.zeros(n, np.int64)  # 1-based step that removed the document, 0 if none
    outcome = np.full(n, "", dtype=object)
    trace: list[pl.DataFrame] = []

    def record(signal: str, target: str, vals: np.ndarray, norm: np.ndarray | None, weight: float | None,
               among: np.ndarray | None = None) -> None:
        """Trace rows; ``rank`` is 1 for the highest value among ``among`` (the documents still in play)."""
        rank = np.full(n, np.nan)
        ok = ~np.isnan(vals) & (among if among is not None else True)
        if ok.any():
            rank[ok] = ok.sum() + 1 - _average_rank(vals[ok])  # 1 = highest value
        trace.append(pl.DataFrame({"docid": docids, "target": target, "signal": signal, "value": vals,
                                   "norm": norm if norm is not None else np.full(n, np.nan), "rank": rank,
                                   "weight": weight}, schema_overrides={"weight": pl.Float64}))

    for i, step in enumerate(recipe.steps, start=1):
        if not isinstance(step, Filter):
            continue
        passed = np.ones(n, bool)
        for t in (targets if per_target(step.signal) else [targets[0]]):
            vals = _values(signals, docids, step.signal, t)
            record(step.signal, t if per_target(step.signal) else COMBINED, vals, None, None)
            passed &= _filter_pass(step, vals)
        newly = alive & ~passed
        outcome[newly], step_of[newly] = "filtered", i
        alive &= passed

    fuse = recipe.fuse
    fuse_step = recipe.steps.index(fuse) + 1
    raw = {t: {s: _values(signals, docids, s, t) for s, _ in fuse.weights} for t in targets}
    missing_any = np.zeros(n, bool)
    for t in targets:
        for s, _ in fuse.weights:
            missing_any |= alive & np.isnan(raw[t][s])
    if missing_any.any():
        if fuse.missing == "error":
            t, s = next((t, s) for t in targets for s, _ in fuse.weights if (alive & np.isnan(raw[t][s])).any())
            count = int((alive & np.isnan(raw[t][s])).sum())
            example = docids[np.flatnonzero(alive & np.isnan(raw[t][s]))[0]]
            raise NagInputError(
                f"{recipe.path}: step {fuse_step} (fuse): signal {s!r} has no value for {count} document(s) for target "
                f"{t!r} (e.g. {example}). Materialise that signal's asset, or set 'missing: zero' or 'missing: drop'.")
        if fuse.missing == "drop":
            outcome[missing_any], step_of[missing_any] = "dropped_missing", fuse_step
            alive &= ~missing_any
    fused: dict[str, np.ndarray] = {}
    for t in targets:
        total = np.zeros(n)
        for s, w in fuse.weights:
            vals = np.where(alive, raw[t][s], np.nan)
            norm = normalize(vals, fuse.normalize)
            record(s, t if per_target(s) else COMBINED, raw[t][s], norm, w, alive)
            total += w * np.nan_to_num(norm, nan=0.0)
        fused[t] = np.where(alive, total, np.nan)
    signal_values = (pl.concat(trace).unique(["docid", "target", "signal"], keep="last", maintain_order=True)
                     .with_columns(pl.col("value", "norm", "rank").fill_nan(None))
                     .filter(pl.col("value").is_not_null() | pl.col("norm").is_not_null()))

    select = recipe.select
    pool_tokens = int(tokens.sum())
    budget = int(pool_tokens * select.budget_fraction)
    sources = (pool[select.source_column].cast(pl.String).fill_null("<null>").to_numpy()
               if select.max_source_share is not None and select.source_column in pool.columns else None)
    if select.max_source_share is not None and sources is None:
        raise NagInputError(f"{recipe.path}: step {len(recipe.steps)} (select): source_column "
                            f"{select.source_column!r} is not a payload column of the pool; name one it has")
    quota = int(select.max_source_share * budget) if select.max_source_share is not None else None
    balance = recipe.balance
    rankings = {t: rankings_index(fused[t], alive) for t in targets}
    if balance is None:
        combined = np.mean([fused[t] for t in targets], axis=0) if len(targets) > 1 else fused[targets[0]]
        rankings = {COMBINED if len(targets) > 1 else targets[0]: rankings_index(combined, alive)}
        if len(targets) > 1:
            fused[COMBINED] = combined
        order, credit, quota_skipped = _greedy(rankings, tokens, sources, budget, quota, "single")
    else:
        order, credit, quota_skipped = _greedy(rankings, tokens, sources, budget, quota, balance.method)
    select_step = len(recipe.steps)
    if not order and alive.any():
        raise NagInputError(_nothing_selected(recipe, select_step, rankings, tokens, alive, pool_tokens, budget, quota,
                                              bool(quota_skipped)))
    selected = np.asarray(order, dtype=np.int64)
    outcome[selected], step_of[selected] = "selected", select_step
    rest = alive & (outcome == "")
    skipped = np.zeros(n, bool)
    skipped[np.asarray(sorted(quota_skipped), dtype=np.int64)] = True
    outcome[rest & skipped], step_of[rest & skipped] = "source_quota", select_step
    outcome[rest & ~skipped], step_of[rest & ~skipped] = "budget", select_step

    position = np.full(n, -1, np.int64)
    position[selected] = np.arange(1, selected.size + 1)
    credited = np.full(n, None, dtype=object)
    credited[selected] = credit
    cum = np.cumsum(tokens[selected]) if selected.size else np.zeros(0, np.int64)
    members = pl.DataFrame({"docid": docids[selected], "target": credited[selected].astype(str),
                            "order": np.arange(1, selected.size + 1, dtype=np.int64),
                            "score": np.array([fused[c][i] for c, i in zip(credit, selected)], np.float64),
                            "token_num": tokens[selected], "cum_tokens": cum.astype(np.int64)},
                           schema_overrides={"docid": pl.String, "target": pl.String})
    rows = []
    for t, f in fused.items():
        rank = np.full(n, np.nan)
        rank[rankings_index(f, alive)] = np.arange(1, int(alive.sum()) + 1)
        rows.append(pl.DataFrame({"docid": docids, "target": t, "score": f, "rank": rank,
                                  "outcome": outcome.astype(str), "step": step_of,
                                  "pick": np.where(position > 0, position, 0),
                                  "credited": np.array([c == t for c in credited])}))
    decisions = pl.concat(rows).with_columns(
        pl.col("score").fill_nan(None), pl.col("rank").fill_nan(None).cast(pl.Int64),
        pl.when(pl.col("pick") > 0).then(pl.col("pick")).otherwise(None).alias("pick"))
    per_source = ({str(s): int(tokens[selected][sources[selected] == s].sum()) for s in np.unique(sources[selected])}
                  if sources is not None and selected.size else {})
    stats = {"pool_documents": n, "pool_tokens": pool_tokens, "budget_tokens": budget,
             "selected_documents": int(selected.size), "selected_tokens": int(tokens[selected].sum()),
             "filtered": int((outcome == "filtered").sum()), "dropped_missing": int((outcome == "dropped_missing").sum()),
             "source_quota_skipped": int((outcome == "source_quota").sum()), "quota_tokens": quota,
             "tokens_by_source": per_source,
             "tokens_by_target": {t: int(tokens[selected][credited[selected] == t].sum()) for t in rankings},
             "lowest_selected_score": {t: float(members.filter(pl.col("target") == t)["score"].min())
                                       for t in rankings if (credited[selected] == t).any()}}
    return RecipeResult(members, decisions, signal_values, stats)


def _nothing_selected(recipe: Recipe, step: int, rankings: dict[str, np.ndarray], tokens: np.ndarray, alive: np.ndarray,
                      pool_tokens: int, budget: int, quota: int | None, quota_skipped: bool) -> str:
    shares = len(rankings) if recipe.balance is not None and recipe.balance.method == "equal_budget" else 1
    first = min(int(tokens[r[0]]) for r in rankings.values() if r.size)
    message = nothing_selected(f"{recipe.path}: step {step} (select).budget_fraction", recipe.select.budget_fraction,
                               shares, "", pool_tokens, budget // shares, first, int(tokens[alive].min()))
    if quota_skipped:
        message += f" (max_source_share caps each source at {quota:,} tokens: raise it too, or drop it.)"
    return message


def rankings_index(scores: np.ndarray, alive: np.ndarray) -> np.ndarray:
    """Indices of the live documents by score desc; ties by lower index, which is lower docid (the pool is sorted)."""
    idx = np.flatnonzero(alive)
    return idx[np.lexsort((idx, -scores[idx]))]


def _greedy(rankings: dict[str, np.ndarray], tokens: np.ndarray, sources: np.ndarray | None, budget: int,
            quota: int | None, mode: str) -> tuple[list[int], list[str], set[int]]:
    """Selection order, the target credited with each pick, and documents skipped for quota."""
    names = sorted(rankings)
    m = len(names)
    pointer = dict.fromkeys(names, 0)
    spent = dict.fromkeys(names, 0)
    share = {t: budget / m for t in names}
    done: set[str] = set()
    taken: set[int] = set()
    quota_skipped: set[int] = set()
    by_source: dict[str, int] = {}
    order: list[int] = []
    credit: list[str] = []
    total = 0
    turn = 0
    heap = [(0.0, t) for t in names]  # bids: (tokens selected / share, target)

    def next_doc(t: str) -> int | None:
        """The target's best document not taken yet (None when its ranking is exhausted)."""
        ranking = rankings[t]
        while pointer[t] < ranking.size and int(ranking[pointer[t]]) in taken:
            pointer[t] += 1
        return int(ranking[pointer[t]]) if pointer[t] < ranking.size else None

    while len(done) < m:
        if mode == "bids":
            _, t = heapq.heappop(heap)
        else:  # single ranking, or equal_budget targets taking turns
            t = names[turn % m]
            turn += 1
            if t in done:
                continue
        limit = share[t] if mode == "equal_budget" else budget
        used = spent[t] if mode == "equal_budget" else total
        i = next_doc(t)
        # A document that fits the budget but not its source's quota is skipped; the budget decides first.
        while i is not None and used + tokens[i] <= limit and quota is not None \
                and by_source.get(sources[i], 0) + tokens[i] > quota:
            quota_skipped.add(i)
            pointer[t] += 1
            i = next_doc(t)
        if i is None or used + tokens[i] > limit:
            done.add(t)
            continue
        taken.add(i)
        pointer[t] += 1
        order.append(i)
        credit.append(t)
        spent[t] += int(tokens[i])
        total += int(tokens[i])
        if sources is not None:
            by_source[sources[i]] = by_source.get(sources[i], 0) + int(tokens[i])
        if mode == "bids":
            heapq.heappush(heap, (spent[t] / share[t] if share[t] else float("inf"), t))
    quota_skipped -= taken
    return order, credit, quota_skipped
