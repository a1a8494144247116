"""Outputs on an fsspec store against outputs in the data root: one pipeline, timed side by side.

    python benchmarks/bench_backends.py [--docs 4000] [--shards 8] [--out DIR] [--smoke] [--report-only]

Builds the inputs of one data root (``--docs`` documents of ``mixed_pool_dev``, the seeded
sample of ``bench_storage.py``, in ``--shards`` shards, one GSM8K target, default
settings) and runs the pipeline on two copies, each in its own fresh process:

* ``local``: every output in the data root (renames, ``os.scandir``, DuckDB on paths);
* ``memory``: ``storage.url: memory://...``, fsspec's in-memory filesystem. It takes the
  object-store code path (uploads instead of renames, listings through fsspec, DuckDB
  reading through a registered filesystem) with no network, so the ratio is the cost of
  that code path, not of a remote store's latency or bandwidth.

Each process times the first run (every stage), reruns with nothing stale (listings and
ledger reads only) and an incremental run after one more shard arrives.
Both copies must select the same documents; the benchmark fails otherwise. Writes
``backends.md`` (``--smoke``: 120 documents, benchmarks/out/smoke).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_common as C  # noqa: E402
from bench_storage import write_inputs  # noqa: E402

BACKENDS = ("local", "memory")
RERUNS = 3  # a rerun takes a fraction of a second: the median of three


def measure(home: Path, backend: str, extra_shard: Path) -> dict:
    """The three timed runs on one data root, in this process (``--one``)."""
    import dagster as dg

    from nag_core.home import Home
    from nag_core.storage import read_parquet
    from nag_select.runner import run_stale

    if backend == "memory":
        with (home / "nag.yaml").open("a", encoding="utf-8") as fh:
            fh.write(f"storage:\n  url: memory://bench-{home.parent.name}\n")

    def timed() -> float:
        t0 = time.perf_counter()
        report = run_stale(home, dg.DagsterInstance.ephemeral(), device="cpu", log=lambda m: None)
        if report.failures:
            raise SystemExit(f"{backend}: pipeline failed: {report.failures}")
        return time.perf_counter() - t0

    first = timed()
    rerun = statistics.median(timed() for _ in range(RERUNS))
    extra_shard.rename(home / "pool" / "late.parquet")
    incremental = timed()
    out = Home(home).outputs
    files = [p for folder in ("tables", "cache", "subsets", "manifests") for p in (out / folder).rglob("*") if p.is_file()]
    subsets = {p.name: sorted(read_parquet(p, columns=["docid"])["docid"].to_list())
               for p in Home(home).subsets_dir.iterdir()}
    return {"first_s": first, "rerun_s": rerun, "incremental_s": incremental, "files": len(files),
            "bytes": sum(p.stat().st_size for p in files), "subsets": subsets}


def run_backend(inputs: Path, backend: str, tmp: Path) -> dict:
    """Copy the inputs and measure them in a fresh interpreter, so neither backend inherits warm caches."""
    import shutil

    home = tmp / backend / "home"
    shutil.copytree(inputs / "home", home)
    extra = tmp / backend / "extra.parquet"
    shutil.copy(inputs / "extra.parquet", extra)
    result = tmp / backend / "result.json"
    subprocess.run([sys.executable, __file__, "--one", backend, "--home", str(home), "--extra", str(extra),
                    "--result", str(result)], check=True)
    return json.loads(result.read_text(encoding="utf-8"))


def report(results: dict[str, dict], docs: int, shards: int, machine: dict) -> list[str]:
    local = results["local"]
    rows = ["| run | local (s) | memory store (s) | memory / local |", "|---|---:|---:|---:|"]
    for key, label in (("first_s", f"first run ({shards} shards, every stage)"), ("rerun_s", f"rerun, nothing stale (median of {RERUNS})"),
                       ("incremental_s", "one more shard (extract it, rescore, reselect)")):
        rows.append(f"| {label} | {local[key]:.2f} | {results['memory'][key]:.2f} | "
                    f"{results['memory'][key] / local[key]:.2f} |")
    return [
        "## Outputs on an fsspec store",
        "",
        C.machine_line(machine),
        "",
        f"Data root: {docs:,} documents of `mixed_pool_dev` (seeded sample, seed 0) in {shards} shards plus one more "
        "shard added for the incremental run; one target (50 GSM8K questions); default settings (MiniLM-L6, top_k 20, "
        "max_length 120, near-dedup, signal families embedding, dsir, bm25, quality). Each backend runs in its own "
        "fresh process. `memory` is `storage.url: memory://...`: the object-store code path (one upload per output, "
        "fsspec listings, DuckDB reading through the registered filesystem), without network latency.",
        "",
        *rows,
        "",
        f"Outputs (`tables/`, `cache/`, `subsets/`, `manifests/`): local {local['files']:,} files, {local['bytes']:,} "
        f"bytes; memory store {results['memory']['files']:,} objects, {results['memory']['bytes']:,} bytes. Both "
        f"selected the same documents in all {len(local['subset_documents'])} subsets (checked docid by docid).",
        "",
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=4000)
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--out", default=None)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--report-only", action="store_true", help="rewrite backends.md from backends.json, running nothing")
    ap.add_argument("--one", choices=BACKENDS, help=argparse.SUPPRESS)
    ap.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--extra", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        args.result.write_text(json.dumps(measure(args.home, args.one, args.extra)), encoding="utf-8")
        return 0
    out = C.results_dir(args.out, args.smoke)
    if args.report_only:
        saved = json.loads((out / "backends.json").read_text(encoding="utf-8"))
        return C.write_report(out, "backends.md", report(saved["results"], saved["docs"], saved["shards"], saved["machine"]))
    docs = 120 if args.smoke else args.docs
    machine = C.machine()
    with tempfile.TemporaryDirectory(prefix="nag-backends-") as tmp:
        inputs = Path(tmp) / "inputs"
        write_inputs(inputs / "home", docs + docs // args.shards, args.shards + 1, settings="")
        # the last shard arrives later: it waits outside the pool until the incremental run
        sorted((inputs / "home" / "pool").glob("*.parquet"))[-1].rename(inputs / "extra.parquet")
        results = {b: run_backend(inputs, b, Path(tmp)) for b in BACKENDS}
    if results["memory"]["subsets"] != results["local"]["subsets"]:
        raise SystemExit("the memory store selected different documents from the local run")
    for r in results.values():
        r["subset_documents"] = {k: len(v) for k, v in r.pop("subsets").items()}
    (out / "backends.json").write_text(json.dumps({"docs": docs, "shards": args.shards, "machine": machine,
                                                   "results": results}, indent=1), encoding="utf-8")
    return C.write_report(out, "backends.md", report(results, docs, args.shards, machine))


if __name__ == "__main__":
    raise SystemExit(main())
