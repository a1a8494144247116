"""Output checks that read back what a step wrote, so a check can catch a real fault.

Each returns (passed, description, metadata). The Dagster assets attach them as asset
checks; a notebook can call them directly.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from nag_core.dedup_store import kept_by_other_shards
from nag_core.features import read_cache
from nag_core.freshness import State, split_key
from nag_core.warehouse import Warehouse, partition_id, scratch_duckdb

Check = tuple[bool, str, dict]


def no_silent_drops(state: State, shard: str, rows_in_file: int) -> Check:
    wh = Warehouse(state.home.root)
    docs = wh.read("documents", [shard], columns=["docid"]).height
    quarantined = wh.read("quarantine", [shard], columns=["row_index"]).height
    ok = docs + quarantined == rows_in_file
    return ok, f"{docs} documents + {quarantined} quarantined = {docs + quarantined} of {rows_in_file} rows", \
        {"documents": docs, "quarantined": quarantined, "rows": rows_in_file}


def dedup_accounts_for_input(state: State, shard: str) -> Check:
    wh = Warehouse(state.home.root)
    n_in = wh.read("documents", [shard], columns=["docid"]).height
    kept = wh.read("pool_kept", [shard], columns=["docid"])
    removed = wh.read("dedup_removed", [shard], columns=["removed_docid"])
    overlap = len(set(kept["docid"].to_list()) & set(removed["removed_docid"].to_list()))
    ok = kept.height + removed.height == n_in and overlap == 0
    return ok, f"kept {kept.height} + removed {removed.height} vs input {n_in}; {overlap} docs both kept and removed", \
        {"input": n_in, "kept": kept.height, "removed": removed.height}


def one_keeper_per_cluster(state: State, shard: str) -> Check:
    """Every near/exact cluster points at exactly one kept document, and that document was kept."""
    wh = Warehouse(state.home.root)
    audit = wh.read("dedup_removed", [shard], columns=["cluster_id", "kept_docid", "stage"]).filter(pl.col("stage") != "contamination")
    keepers = audit.group_by("cluster_id").agg(pl.col("kept_docid").n_unique().alias("n"))
    multi = int((keepers["n"] > 1).sum()) if keepers.height else 0
    # Most keepers are in this shard; only the others are looked up, so the check costs no more with more shards.
    elsewhere = set(audit["kept_docid"].to_list()) - set(wh.read("pool_kept", [shard], columns=["docid"])["docid"].to_list())
    lost = sorted(elsewhere - kept_by_other_shards(wh, shard, pl.Series(sorted(elsewhere), dtype=pl.String)))
    return multi == 0 and not lost, f"{keepers.height} clusters; {multi} with two keepers; {len(lost)} keepers not in the pool", \
        {"clusters": keepers.height, "clusters_with_two_keepers": multi, "missing_keepers": lost[:10]}


def removal_rate_within_bound(state: State, shard: str) -> Check:
    """A warning, not an error: 90% removed usually means a broken shard or a bad setting."""
    wh = Warehouse(state.home.root)
    n_in = wh.read("documents", [shard], columns=["docid"]).height
    removed = wh.read("dedup_removed", [shard], columns=["removed_docid"]).height
    near = state.settings.dedup.near
    bound = near.max_removal_rate if near is not None else 0.5
    rate = removed / n_in if n_in else 0.0
    return rate <= bound, f"removed {rate:.1%} of {n_in} documents (bound {bound:.0%})", {"removal_rate": rate, "bound": bound}


def cache_covers_shard(state: State, key: str) -> Check:
    p = split_key("activation_cache", key)
    kept = set(Warehouse(state.home.root).read("pool_kept", [p["shard"]], columns=["docid"])["docid"].to_list())
    docids, idx, _, meta = read_cache(state.home.activation_cache_path(p["model"], p["shard"]), state.settings.score_neuron_type)
    missing, extra = len(kept - set(docids)), len(set(docids) - kept)
    width = meta["widths"][state.settings.score_neuron_type]
    in_range = bool(idx.size == 0 or int(idx.max()) < width)
    ok = missing == 0 and extra == 0 and in_range
    return ok, f"{len(docids)} cached for {len(kept)} kept documents; {missing} missing, {extra} extra; indices < {width}: {in_range}", \
        {"cached": len(docids), "missing": missing, "extra": extra}


def _nag_values(state: State, model: str, target: str) -> np.ndarray:
    """The values of the signal the default subsets rank by, read back from what the step wrote."""
    from nag_core.selection_steps import nag_partition, signal_name

    rows = Warehouse(state.home.root).read("signals", [nag_partition(model, target)], columns=["value"],
                                           where=[("signal", "=", signal_name(state.settings))])
    return rows["value"].to_numpy()


def scores_valid(state: State, key: str) -> Check:
    """Finite scores; frequency-profile scores must also lie in [0, 1] (contrastive ones are log ratios, any sign)."""
    p = split_key("influence_scores", key)
    values = _nag_values(state, p["model"], p["target"])
    finite = bool(np.isfinite(values).all())
    if state.settings.profile == "contrastive":
        return finite, f"{values.size} contrastive scores; all finite: {finite}", {"scores": int(values.size)}
    in_range = bool(((values >= 0) & (values <= 1 + 1e-9)).all())
    return finite and in_range, f"{values.size} scores; all finite: {finite}; all in [0, 1]: {in_range}", \
        {"scores": int(values.size)}


def subset_respects_budget(state: State, name: str) -> Check:
    row = Warehouse(state.home.root).read("subsets", [name]).row(0, named=True)
    ok = 0 < row["documents"] and row["selected_tokens"] <= row["budget_tokens"]  # a budget that fits nothing is refused
    return ok, f"{row['selected_tokens']} selected tokens vs budget {row['budget_tokens']}", \
        {"selected_tokens": row["selected_tokens"], "budget_tokens": row["budget_tokens"]}


def signals_cover_pool(state: State, asset: str, key: str) -> Check:
    """Every signal of the partition has one finite value per kept document it should score."""
    from nag_core.freshness import DIMENSIONS

    wh = Warehouse(state.home.root)
    path = wh.table_dir("signals") / f"{partition_id(asset, *key.split('|'))}.parquet"
    shards = [key] if DIMENSIONS[asset] == ("shard",) else sorted(state.shards)
    kept = wh.read("pool_kept", shards, columns=["docid"]).height
    with scratch_duckdb(path) as con:  # aggregated as it streams: the partition holds a row per document and signal
        per_signal = con.sql("SELECT signal, count(*) AS n, count(DISTINCT docid) AS unique, "
                             "coalesce(bool_and(isfinite(value)), true) AS finite FROM read_parquet($path) "
                             "GROUP BY signal ORDER BY signal", params={"path": str(path)}).pl()
    bad = per_signal.filter((pl.col("n") != kept) | (pl.col("unique") != kept) | ~pl.col("finite"))
    ok = (per_signal.height > 0 or kept == 0) and bad.is_empty()
    return ok, (f"{per_signal.height} signal(s) x {kept} kept documents; "
                f"{'all complete and finite' if ok else 'incomplete or non-finite: ' + ', '.join(bad['signal'].to_list())}"), \
        {"kept_documents": kept, "signals": per_signal["signal"].to_list()}
