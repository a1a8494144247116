"""Bytes on disk per kept document, for every artifact the pipeline writes: the storage side of scaling.

    python benchmarks/bench_storage.py [--docs 2000] [--shards 2] [--out benchmarks/results] [--smoke]

Builds a data root from ``--docs`` documents of the dev pool (a seeded sample of ``mixed_pool_dev``),
in ``--shards`` shards, one target (the first 50 GSM8K questions), default settings (MiniLM-L6,
top_k 20, max_length 120, near-dedup on) plus the distilled signal, runs the whole pipeline
once with ``nag-select run``'s runner, and sums the files under each output folder. The
README's "Scaling past one machine" multiplies these per-document figures out to a 150B-token
pool. Writes ``storage.md`` to ``--out`` (``--smoke``: 200 documents, benchmarks/out/smoke).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import polars as pl  # noqa: E402

POOL = ROOT.parent / "shared" / "data" / "eval" / "pool" / "mixed_pool_dev.parquet"
TARGET = ROOT.parent / "shared" / "data" / "eval" / "targets" / "gsm8k" / "test.jsonl"
SETTINGS = "signals:\n  families: [embedding, dsir, bm25, quality, distilled]\n"

# (label, path under the data root, what one row is)
ARTIFACTS = (
    ("pool input (the user's shards)", "pool", "document"),
    ("`documents` table (text copy, hashes, token counts)", "tables/documents", "document"),
    ("`pool_kept`", "tables/pool_kept", "kept document"),
    ("`dedup_signatures`", "tables/dedup_signatures", "kept document"),
    ("`dedup_bands` (20 LSH bands per document)", "tables/dedup_bands", "kept document"),
    ("activation cache (fwd_up, L=6, K=20: uint16 index + float16 value)", "cache/activations", "kept document"),
    ("`neuron_counts` (per shard, not per document)", "tables/neuron_counts", "shard"),
    ("embedding cache (384 float32)", "cache/embeddings", "kept document"),
    ("`signals`, all families", "tables/signals", "signal value"),
)


def folder_bytes(path: Path) -> tuple[int, int]:
    files = [p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")] if path.is_dir() else []
    return len(files), sum(p.stat().st_size for p in files)


def write_inputs(home: Path, docs: int, shards: int, settings: str = SETTINGS) -> pl.DataFrame:
    """The data root's inputs: a seeded sample of the dev pool in ``shards`` shards, one GSM8K target."""
    pool = pl.read_parquet(POOL).sample(n=docs, seed=0).sort("docid").select("docid", pl.col("doc").alias("text"),
                                                                              "token_num")
    (home / "pool").mkdir(parents=True)
    for i in range(shards):
        part = pool.slice(i * docs // shards, (i + 1) * docs // shards - i * docs // shards)
        part.write_parquet(home / "pool" / f"s{i:02d}.parquet")
    (home / "targets" / "gsm8k").mkdir(parents=True)
    lines = TARGET.read_text(encoding="utf-8").splitlines()[:50]
    (home / "targets" / "gsm8k" / "q.jsonl").write_text(
        "".join(json.dumps({"text": json.loads(x)["question"]}) + "\n" for x in lines), encoding="utf-8")
    (home / "nag.yaml").write_text(settings, encoding="utf-8")
    return pool


def build(home: Path, docs: int, shards: int) -> dict:
    from nag_core.warehouse import Warehouse
    from nag_select.runner import run_stale

    import dagster as dg

    pool = write_inputs(home, docs, shards)
    t0 = time.perf_counter()
    report = run_stale(home, dg.DagsterInstance.ephemeral(), device="cpu", log=lambda m: None)
    if report.failures:
        raise SystemExit(f"pipeline failed: {report.failures}")
    wh = Warehouse(home)
    signals = wh.read("signals", columns=["signal"])
    return {"seconds": time.perf_counter() - t0, "documents": wh.read("documents", columns=["docid"]).height,
            "kept": wh.read("pool_kept", columns=["docid"]).height, "signal_rows": signals.height,
            "signals_per_doc": signals["signal"].n_unique(), "text_bytes": int(pool["text"].str.len_bytes().sum())}


def table(home: Path, facts: dict, shards: int) -> list[str]:
    rows = ["| artifact | files | bytes | unit | bytes per unit |", "|---|---:|---:|---|---:|"]
    per = {"document": facts["documents"], "kept document": facts["kept"], "shard": shards,
           "signal value": facts["signal_rows"]}
    for label, rel, unit in ARTIFACTS:
        n, size = folder_bytes(home / rel)
        rows.append(f"| {label} | {n} | {size:,} | {unit} | {size / max(1, per[unit]):,.1f} |")
    n, size = folder_bytes(home / "cache" / "distilled")
    rows.append(f"| distilled scorer (`cache/distilled`, per model x target) | {n} | {size:,} | scorer | "
                f"{size / max(1, n):,.0f} |")
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=2000)
    ap.add_argument("--shards", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args(argv)
    docs = 200 if args.smoke else args.docs
    out = args.out or (ROOT / "benchmarks" / ("out/smoke" if args.smoke else "results"))
    tmp = Path(tempfile.mkdtemp(prefix="nag-storage-"))
    try:
        home = tmp / "home"
        facts = build(home, docs, args.shards)
        rows = table(home, facts, args.shards)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    load = os.getloadavg()
    lines = [
        "## Storage per document",
        "",
        f"Date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC. Python {platform.python_version()}, "
        f"{platform.platform()}. Load average when written: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}.",
        "",
        f"Data root: {docs:,} documents of `mixed_pool_dev` (seeded sample, seed 0) ({facts['text_bytes'] / docs:,.0f} bytes of text "
        f"per document on average) in {args.shards} shards; {facts['kept']:,} kept after dedup; one target (50 GSM8K "
        f"questions); MiniLM-L6, top_k 20, max_length 120; signal families embedding, dsir, bm25, quality, distilled "
        f"plus NAG ({facts['signals_per_doc']} signals per kept document, {facts['signal_rows']:,} rows). "
        f"Whole pipeline: {facts['seconds']:.0f} s. Sizes are Parquet files as written (zstd/snappy, "
        "dictionary-encoded strings), summed per folder.",
        "",
        *rows,
        "",
        "Per-file overhead (footers, schemas) is included, so folders with few files per shard (neuron_counts, "
        "signals) read slightly high at this size.",
        "",
    ]
    out.mkdir(parents=True, exist_ok=True)
    (out / "storage.md").write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
