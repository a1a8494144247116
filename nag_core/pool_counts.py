"""The pool's neuron frequencies, counted once per shard when its cache is written.

The contrastive profile divides a target's neuron frequencies by the pool's. Counts add
up across shards, so each shard's (layer, neuron) counts are stored beside its cache in
the warehouse table ``neuron_counts`` and the pool background is their sum: one
DuckDB aggregate over a few thousand rows per shard, instead of re-reading every cache
each time a target is scored. A cache written before counts existed (or imported from
elsewhere) is counted on first use and its counts stored then.
"""

from __future__ import annotations

import duckdb
import numpy as np
import polars as pl

from nag_core.features import read_cache
from nag_core.graph import neuron_counts
from nag_core.home import Home
from nag_core.storage import register
from nag_core.warehouse import Warehouse, partition_id


def counts_frame(model: str, shard: str, neuron_type: str, counts: np.ndarray) -> pl.DataFrame:
    layers, neurons = np.nonzero(counts)
    return pl.DataFrame({"model": model, "shard": shard, "neuron_type": neuron_type, "layer": layers.astype(np.int32),
                         "neuron": neurons.astype(np.int32), "count": counts[layers, neurons].astype(np.int64)})


def write_shard_counts(home: Home, model: str, shard: str, indices_by_type: dict[str, np.ndarray],
                       widths: dict[str, int]) -> None:
    frames = [counts_frame(model, shard, nt, neuron_counts(idx, widths[nt])) for nt, idx in indices_by_type.items()]
    Warehouse(home.root).write("neuron_counts", partition_id(model, shard), pl.concat(frames))


def pool_counts(home: Home, model: str, shards: list[str], neuron_type: str, shape: tuple[int, int]) -> np.ndarray:
    """(L, N) int64 sum of the shards' counts of ``neuron_type``."""
    wh = Warehouse(home.root)
    have = set(wh.partitions("neuron_counts"))
    for shard in shards:
        if partition_id(model, shard) not in have:
            path = home.activation_cache_path(model, shard)
            _, idx, _, meta = read_cache(path, neuron_type)
            write_shard_counts(home, model, shard, {neuron_type: idx}, {neuron_type: meta["widths"][neuron_type]})
    files = [str(wh.table_dir("neuron_counts") / f"{partition_id(model, s)}.parquet") for s in shards]
    total = np.zeros(shape, np.int64)
    if not files:
        return total
    con = register(duckdb.connect(), wh.outputs)
    try:
        rows = con.sql("SELECT layer, neuron, sum(count)::BIGINT AS n FROM read_parquet($files) "
                       "WHERE neuron_type = $nt GROUP BY ALL", params={"files": files, "nt": neuron_type}).pl()
    finally:
        con.close()
    if rows.height:
        total[rows["layer"].to_numpy(), rows["neuron"].to_numpy()] = rows["n"].to_numpy()
    return total
