"""Signal rows written one shard at a time, so memory holds one shard's rows, not the pool's.

A signal partition (one asset and target, or model and target, or shard) holds a value per
kept document and signal. At a million documents the four NAG signals were stamped,
concatenated and sorted as one frame, which took 2.1 GiB. Here each shard's rows are
stamped with their lineage, sorted by (signal, docid) and appended to the partition file
as their own Parquet row group; only running statistics stay in memory. The file goes
through ``nag_core.atomic``, so readers see the old partition or the whole new one.

The data version is the digest of the shard chunks' digests, in the order written (shard
order), so it changes exactly when a value, a docid or a signal name does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from nag_core.atomic import atomic_path
from nag_core.errors import NagInputError
from nag_core.freshness import State, split_key
from nag_core.hashing import digest
from nag_core.step_result import code_version
from nag_core.warehouse import Warehouse, partition_id

SIGNAL_COLUMNS = ("docid", "shard", "signal", "target", "model", "value", "asset", "run_id", "config_hash", "code_version")
SCHEMA = pa.schema([(c, pa.float64() if c == "value" else pa.string()) for c in SIGNAL_COLUMNS])
# Which settings stage each signal asset's values depend on (``Settings.hash_for``).
_STAGE = {"influence_scores": "scores", "embedding_scores": "embeddings", "gradient_scores": "gradient",
          "quality_signals": "quality", "distilled_scores": "distilled"}


@dataclass(frozen=True)
class SignalsWritten:
    data_version: str
    rows: int
    documents: int  # docids are unique across shards, so the chunks' distinct counts add up
    config_hash: str
    summary: pl.DataFrame  # signal, documents, min, mean, max


def no_documents_error(state: State) -> NagInputError:
    return NagInputError(f"{state.home.pool_dir}: no document to score: every shard is empty, or all its rows were "
                         "quarantined or removed by dedup (see the 'quarantine' and 'dedup_removed' tables). "
                         "Add documents under pool/.")


def write_signals(state: State, asset: str, key: str, chunks: Iterable[pl.DataFrame], run_id: str,
                  required: bool = False) -> SignalsWritten:
    """Write ``chunks`` (docid, shard, signal, value[, target, model]; one shard each) as the partition's rows.

    ``required``: no row at all is an error (nothing scorable in the pool), and nothing is
    written; otherwise an empty partition is written, as for a shard dedup emptied.
    """
    p = split_key(asset, key)
    config_hash = state.settings.hash_for(_STAGE[asset]) if asset in _STAGE else digest(asset, length=12)
    stamps = {"asset": asset, "run_id": run_id, "config_hash": config_hash, "code_version": code_version(asset)}
    path = Warehouse(state.home.root).table_dir("signals") / f"{partition_id(asset, *key.split('|'))}.parquet"
    digests, stats, rows, documents = [], [], 0, 0
    with atomic_path(path) as tmp, pq.ParquetWriter(tmp, SCHEMA, compression="zstd") as writer:
        for chunk in chunks:
            if chunk.is_empty():
                continue
            frame = chunk.with_columns(
                *(pl.lit(p.get(c)).cast(pl.String).alias(c) for c in ("target", "model") if c not in chunk.columns),
                *(pl.lit(v).alias(c) for c, v in stamps.items()), pl.col("value").cast(pl.Float64),
            ).select(SIGNAL_COLUMNS).sort(["signal", "docid"])
            writer.write_table(frame.to_arrow().cast(SCHEMA))
            digests.append(digest(frame["signal"].to_list(), frame["docid"].to_list(),
                                  digest(np.round(frame["value"].to_numpy(), 12).tobytes().hex())))
            stats.append(frame.group_by("signal").agg(pl.len().alias("n"), pl.col("value").min().alias("min"),
                                                      pl.col("value").sum().alias("sum"), pl.col("value").max().alias("max")))
            rows += frame.height
            documents += frame["docid"].n_unique()
        if required and not rows:
            raise no_documents_error(state)
    summary = (pl.concat(stats).group_by("signal").agg(pl.col("n").sum().alias("documents"), pl.col("min").min(),
                                                       (pl.col("sum").sum() / pl.col("n").sum()).alias("mean"),
                                                       pl.col("max").max()).sort("signal")
               if stats else pl.DataFrame(schema={"signal": pl.String, "documents": pl.UInt32, "min": pl.Float64,
                                                  "mean": pl.Float64, "max": pl.Float64}))
    return SignalsWritten(digest(asset, digests), rows, documents, config_hash, summary)
