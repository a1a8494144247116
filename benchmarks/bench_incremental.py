"""Incremental work: a full run, then the run after adding one shard, then after adding one target.

    python benchmarks/bench_incremental.py [--out benchmarks/results] [--smoke]

The real pipeline (``nag_select.runner.run_stale``, real Dagster runs, the bundled
MiniLM) runs on a data root built from the shared labelled pool: N shards and two
targets. The delta runs should cost in proportion to the delta: one shard of N+1 is
extracted, every target is rescored; one target is extracted, scored and selected.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_common as C  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def write_targets(home: Path, names: list[str], per_target: int) -> None:
    specs = {"gsm8k": C.SHARED / "targets" / "gsm8k" / "test.jsonl",
             "arc_easy": C.SHARED / "targets" / "arc_easy" / "test.jsonl",
             "boolq": C.SHARED / "targets" / "boolq" / "dev.jsonl"}
    for name in names:
        folder = home / "targets" / name
        folder.mkdir(parents=True, exist_ok=True)
        lines = specs[name].read_text(encoding="utf-8").splitlines()[:per_target]
        (folder / "examples.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


def timed_run(home: Path, instance) -> dict:
    from nag_select.runner import run_stale

    t = time.perf_counter()
    report = run_stale(home, instance, device="cpu", log=lambda m: None)
    if report.failures:
        raise SystemExit(f"pipeline failed: {report.failures}")
    by_asset: dict[str, int] = {}
    for asset, _ in report.materialized:
        by_asset[asset] = by_asset.get(asset, 0) + 1
    return {"seconds": time.perf_counter() - t, "partitions": len(report.materialized), "by_asset": by_asset}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(C.RESULTS))
    ap.add_argument("--smoke", action="store_true", help="tiny run (CI)")
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--docs-per-shard", type=int, default=400)
    args = ap.parse_args()
    if not C.POOL.exists():
        print(f"skipped: {C.POOL} is absent (the shared evaluation data beside the project)")
        return 0
    import dagster as dg

    n_shards, per_shard, per_target = (2, 20, 10) if args.smoke else (args.shards, args.docs_per_shard, 100)
    pool = pl.read_parquet(C.POOL).sample(n=(n_shards + 1) * per_shard, seed=C.SPLIT_SEED, shuffle=True)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        (home / "pool").mkdir(parents=True)
        for i in range(n_shards):
            pool.slice(i * per_shard, per_shard).write_parquet(home / "pool" / f"shard-{i:03d}.parquet")
        write_targets(home, ["gsm8k", "arc_easy"], per_target)
        instance = dg.DagsterInstance.ephemeral()
        full = timed_run(home, instance)
        pool.slice(n_shards * per_shard, per_shard).write_parquet(home / "pool" / f"shard-{n_shards:03d}.parquet")
        shard = timed_run(home, instance)
        write_targets(home, ["boolq"], per_target)
        target = timed_run(home, instance)
        noop = timed_run(home, instance)

    rows = [("full run", f"{n_shards} shards x {per_shard} docs, 2 targets", full),
            ("+1 shard", f"{per_shard} new docs ({1 / (n_shards + 1):.0%} of the pool)", shard),
            ("+1 target", f"{per_target} examples", target),
            ("nothing changed", "-", noop)]
    m = C.machine()
    lines = ["# Incremental work", "", C.machine_line(m), "",
             f"Real pipeline (`run_stale`, one Dagster run per stale partition, MiniLM on CPU) on a data root built "
             f"from `{C.POOL.name}` (seeded sample). Each row runs after the change in its first column.", "",
             "| run | change | partitions materialised | seconds | vs full run | what ran |",
             "|---|---|---:|---:|---:|---|"]
    for name, change, r in rows:
        what = ", ".join(f"{a} {n}" for a, n in r["by_asset"].items()) or "nothing"
        lines.append(f"| {name} | {change} | {r['partitions']} | {r['seconds']:.1f} | {r['seconds'] / full['seconds']:.2f}x | {what} |")
    lines += ["", f"- Adding one shard extracted only that shard ({shard['by_asset'].get('activation_cache', 0)} activation-cache "
              f"partition of {n_shards + 1}) and rescored every target; its cost is {shard['seconds'] / full['seconds']:.2f}x "
              f"the full run, for {1 / (n_shards + 1):.0%} of the pool's documents.",
              f"- Adding one target extracted only its examples and scored the existing caches: "
              f"{target['seconds'] / full['seconds']:.2f}x the full run.",
              f"- A run with nothing stale took {noop['seconds']:.1f} s (hashing inputs and reading the ledger)."]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    text = "\n".join(lines) + "\n"
    (out / "incremental.md").write_text(text, encoding="utf-8")
    (out / "incremental.json").write_text(json.dumps({n: r for n, _, r in rows}, indent=2), encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
