"""The activation cache on disk: one Parquet file per (model, shard), plus the reference format.

Columns: ``docid`` and, per neuron type, ``<type>_idx`` (fixed-size list of L*K uint16,
layer-major, each layer's neurons in descending impact) and ``<type>_val`` (the
matching mean |impact| as float16, so later signals can weight neurons). The schema
metadata records model, tokenizer hash, K, L, neuron types, max_length and the
settings hash, so a cache can never be silently mixed with another.

The reference NAG tool exchanges features as JSONL records
``{"docid": ..., "fwd_up_feature": {"layer_topk_value_index": [L*K ints]}}``;
``export_jsonl`` and ``import_jsonl`` convert both ways.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from nag_core.atomic import atomic_path, write_parquet
from nag_core.errors import NagInputError
from nag_core.extraction import Features
from nag_core.storage import Location, read_arrow, read_schema

META_KEY = b"nag"


def to_table(docids: Sequence[str], features: dict[str, Features], meta: dict) -> pa.Table:
    n = len(docids)
    columns: dict[str, pa.Array] = {"docid": pa.array(list(docids), pa.string())}
    for nt, f in features.items():
        _, L, K = f.indices.shape
        flat_idx = pa.array(np.ascontiguousarray(f.indices.reshape(-1)), pa.uint16())
        flat_val = pa.array(np.ascontiguousarray(f.values.reshape(-1).astype(np.float16)), pa.float16())
        columns[f"{nt}_idx"] = pa.FixedSizeListArray.from_arrays(flat_idx, L * K) if n else pa.array([], pa.list_(pa.uint16(), L * K))
        columns[f"{nt}_val"] = pa.FixedSizeListArray.from_arrays(flat_val, L * K) if n else pa.array([], pa.list_(pa.float16(), L * K))
    table = pa.table(columns)
    return table.replace_schema_metadata({META_KEY: json.dumps(meta, sort_keys=True).encode()})


def write_cache(path: Location, docids: Sequence[str], features: dict[str, Features], meta: dict) -> Location:
    return write_parquet(to_table(docids, features, meta), path)


def read_meta(path: Location) -> dict:
    schema = read_schema(path)
    raw = (schema.metadata or {}).get(META_KEY)
    if raw is None:
        raise NagInputError(f"{path}: not an activation cache written by this project (no '{META_KEY.decode()}' metadata)")
    return json.loads(raw)


def read_cache(path: Location, neuron_type: str, with_values: bool = False) -> tuple[list[str], np.ndarray, np.ndarray | None, dict]:
    """docids, indices (n, L, K) uint16, values (n, L, K) float32 or None, metadata."""
    meta = read_meta(path)
    if neuron_type not in meta["neuron_types"]:
        raise NagInputError(f"{path}: cache holds {meta['neuron_types']}, not {neuron_type!r}; re-run extraction with it in neuron_types")
    cols = ["docid", f"{neuron_type}_idx"] + ([f"{neuron_type}_val"] if with_values else [])
    table = read_arrow(path, columns=cols)
    L, K = meta["num_layers"], meta["top_k"]
    n = table.num_rows

    def unpack(col: str, dtype) -> np.ndarray:
        chunked = table.column(col).combine_chunks()
        flat = chunked.values.to_numpy(zero_copy_only=False) if n else np.zeros(0, dtype)
        return flat.astype(dtype, copy=False).reshape(n, L, K)

    idx = unpack(f"{neuron_type}_idx", np.uint16)
    vals = unpack(f"{neuron_type}_val", np.float32) if with_values else None
    return table.column("docid").to_pylist(), idx, vals, meta


def export_jsonl(paths: Sequence[Location], out: Path, neuron_type: str = "fwd_up") -> int:
    """Write caches in the reference JSONL format; returns the number of records."""
    count = 0
    with atomic_path(out) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for path in paths:
            docids, idx, _, _ = read_cache(path, neuron_type)
            flat = idx.reshape(len(docids), -1).astype(np.int64)
            for docid, row in zip(docids, flat, strict=True):
                fh.write(json.dumps({"docid": docid, f"{neuron_type}_feature": {"layer_topk_value_index": row.tolist()}}) + "\n")
                count += 1
    return count


def import_jsonl(path: Path, neuron_type: str, num_layers: int, top_k: int) -> tuple[list[str], np.ndarray]:
    """Read reference JSONL features into (docids, indices (n, L, K) uint16)."""
    key = f"{neuron_type}_feature"
    docids, rows = [], []
    with open(path, encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            rec = json.loads(line)
            feat = rec.get(key)
            if feat is None or "docid" not in rec:
                raise NagInputError(f"{path}: line {line_no} lacks 'docid' or '{key}'")
            values = feat["layer_topk_value_index"] if isinstance(feat, dict) else feat
            if len(values) != num_layers * top_k:
                raise NagInputError(f"{path}: line {line_no} has {len(values)} indices, expected L*K = {num_layers}*{top_k}")
            docids.append(str(rec["docid"]))
            rows.append(values)
    arr = np.asarray(rows, dtype=np.int64).reshape(len(rows), num_layers, top_k)
    if arr.size and (arr.min() < 0 or arr.max() >= 1 << 16):
        raise NagInputError(f"{path}: neuron indices outside [0, 65535]")
    return docids, arr.astype(np.uint16)
