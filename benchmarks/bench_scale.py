"""Scale: wall time and peak memory per stage at 10K-1M documents, and the fixed cost of a Dagster run.

    python benchmarks/bench_scale.py [--sizes 10000 100000 1000000] [--overhead 10 100 1000] [--smoke] [--out DIR]

Two parts, on synthetic but valid data roots (seeded pseudo-word documents in four
"domains", two targets drawn from two of them, ``token_num`` given as in the reference
NAG parquet, so no tokenizer pass):

* **Stages.** Each stage runs as ``nag-select run --only STAGE`` in its own subprocess;
  peak RSS is that process's ``ru_maxrss`` from ``os.wait4``, so the stages' memory is
  not mixed. Features are adopted with ``nag-select import-features --dir`` (the JSONL is
  written by the benchmark beforehand and not timed), so no extraction runs.
* **Per-run overhead.** A data root of N tiny shards (5 documents) is filled with batched
  runs, then K new shards are added and materialised (raw_pool + dedup_pool) one
  Dagster run per shard, then K more in one batched run. Seconds per run that stay
  flat as N grows mean bookkeeping no longer scales with the pool. The bookkeeping of
  one ``State`` is also timed on the same root the old way (hash every shard file,
  read every ledger file) and the new way (remembered fingerprints, incremental ledger).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_common as C  # noqa: E402

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

DOCS_PER_SHARD = 10_000
DOMAINS = 4
VOCAB = 8_000
LAYERS, TOP_K, WIDTH = 6, 20, 1536  # the bundled MiniLM's fwd_up shape at the default K
STAGES = (("raw pool", "run", "raw_pool"), ("dedup", "run", "dedup_pool"), ("import features", "import", None),
          ("target side", "run", "target_examples,target_activations,neuron_graph"),
          ("scoring", "run", "influence_scores"), ("selection + subset writing", "run", "selected_subset"),
          ("mixture subset", "run", "mixture_subset"))
SMOKE_STAGES = (("raw pool + dedup", "run", "raw_pool,dedup_pool"), ("import features", "import", None),
                ("the rest", "run", "target_examples,target_activations,neuron_graph,influence_scores,selected_subset,"
                                    "mixture_subset"))  # fewer process start-ups


# ---------------------------------------------------------------- synthetic data root

def vocabulary(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    syllables = np.array([c + v for c in "bdfgklmnprstvz" for v in "aeiou"])
    words = {"".join(rng.choice(syllables, rng.integers(2, 4))) for _ in range(VOCAB * 2)}
    return np.array(sorted(words)[:VOCAB])


def documents(n: int, start: int, seed: int, vocab: np.ndarray) -> pl.DataFrame:
    """n documents of 30-80 words; each domain draws 70% of its words from its own quarter of the vocabulary."""
    rng = np.random.default_rng(seed)
    domain = rng.integers(0, DOMAINS, n)
    lengths = rng.integers(30, 81, n)
    quarter = VOCAB // DOMAINS
    texts = []
    for d, length in zip(domain, lengths, strict=True):
        own = rng.random(length) < 0.7
        idx = np.where(own, d * quarter + rng.integers(0, quarter, length), rng.integers(0, VOCAB, length))
        texts.append(" ".join(vocab[idx]))
    return pl.DataFrame({"docid": [f"d{start + i:08d}" for i in range(n)], "text": texts,
                         "token_num": lengths.astype(np.int64), "domain": [f"domain{d}" for d in domain]})


def build_home(home: Path, n_docs: int, per_shard: int, seed: int = 0) -> int:
    """Pool shards, two 20-example targets (domains 0 and 1) and a small nag.yaml; returns the shard count."""
    vocab = vocabulary(seed)
    (home / "pool").mkdir(parents=True)
    n_shards = max(1, -(-n_docs // per_shard))
    for s in range(n_shards):
        n = min(per_shard, n_docs - s * per_shard)
        documents(n, s * per_shard, seed * 100_003 + s, vocab).write_parquet(home / "pool" / f"shard-{s:05d}.parquet")
    for t, name in enumerate(("target_a", "target_b")):
        folder = home / "targets" / name
        folder.mkdir(parents=True)
        examples = documents(200, 0, 999 + t, vocab).filter(pl.col("domain") == f"domain{t}").head(20)
        (folder / "examples.jsonl").write_text("".join(json.dumps({"text": x}) + "\n" for x in examples["text"]))
    return n_shards


def write_features(home: Path, out: Path, seed: int = 0) -> None:
    """Reference-format JSONL per shard: each domain prefers its own band of neurons, so scores are not flat."""
    out.mkdir(parents=True, exist_ok=True)
    band = WIDTH // DOMAINS
    for path in sorted((home / "pool").glob("*.parquet")):
        frame = pl.read_parquet(path, columns=["docid", "domain"])
        rng = np.random.default_rng([seed, int(path.stem.rsplit("-", 1)[1])])
        d = frame["domain"].str.strip_prefix("domain").cast(pl.Int64).to_numpy()
        own = rng.random((frame.height, LAYERS * TOP_K)) < 0.6
        idx = np.where(own, d[:, None] * band + rng.integers(0, band, own.shape), rng.integers(0, WIDTH, own.shape))
        with open(out / f"{path.stem}.jsonl", "w", encoding="utf-8") as fh:
            for docid, row in zip(frame["docid"].to_list(), idx.tolist(), strict=True):
                fh.write(f'{{"docid": "{docid}", "fwd_up_feature": {{"layer_topk_value_index": [{",".join(map(str, row))}]}}}}\n')


# ---------------------------------------------------------------- measuring a stage

# A small launcher: a child forked from this (large) benchmark process would start with its RSS.
_LAUNCHER = ("import json, resource, subprocess, sys; rc = subprocess.call(sys.argv[1:]); "
             "print(json.dumps({'rc': rc, 'maxrss_kib': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))")


def cli_measured(args: list[str], env: dict) -> dict:
    """Run ``nag-select`` in a subprocess; wall seconds and that process's peak RSS (MiB)."""
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _LAUNCHER, sys.executable, "-m", "nag_select.cli", *args], cwd=C.ROOT,
                          env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t
    lines = proc.stdout.strip().splitlines()
    usage = json.loads(lines[-1]) if lines else {"rc": proc.returncode, "maxrss_kib": 0}
    if usage["rc"] != 0:
        raise SystemExit(f"nag-select {' '.join(args)} failed ({usage['rc']}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return {"seconds": seconds, "peak_rss_mib": usage["maxrss_kib"] / 1024, "output": proc.stdout}


def stage_table(n_docs: int, per_shard: int, work: Path, stages=STAGES, deadline: float = float("inf")) -> dict:
    """``deadline`` (a ``time.perf_counter`` value): later stages are not started once it has passed."""
    home = work / f"scale-{n_docs}"
    t = time.perf_counter()
    n_shards = build_home(home, n_docs, per_shard)
    build_seconds = time.perf_counter() - t
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "DAGSTER_HOME": str(work / f"dagster-{n_docs}"),
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    rows = []
    for label, kind, stage in stages:
        if time.perf_counter() > deadline:
            rows.append({"stage": label, "seconds": None, "peak_rss_mib": None})
            print(f"  {n_docs:>9,} docs  {label:<28} not run: past --deadline-s", flush=True)
            continue
        if kind == "import":
            write_features(home, work / f"features-{n_docs}")
            r = cli_measured(["import-features", "--home", str(home), "--model", "minilm-l6",
                              "--dir", str(work / f"features-{n_docs}")], env)
        else:
            r = cli_measured(["run", "--home", str(home), "--only", stage], env)
        rows.append({"stage": label, "seconds": r["seconds"], "peak_rss_mib": r["peak_rss_mib"]})
        print(f"  {n_docs:>9,} docs  {label:<28} {r['seconds']:8.1f} s  {r['peak_rss_mib']:8.0f} MiB", flush=True)
    kept_dir = home / "tables" / "pool_kept"
    kept = pl.scan_parquet(str(kept_dir / "*.parquet")).select(pl.len()).collect().item() if kept_dir.is_dir() else None
    shutil.rmtree(home)
    shutil.rmtree(work / f"features-{n_docs}", ignore_errors=True)
    return {"documents": n_docs, "shards": n_shards, "kept": kept, "build_seconds": build_seconds, "stages": rows}


# ---------------------------------------------------------------- per-run overhead

def old_bookkeeping_seconds(home: Path) -> float:
    """One State's input discovery as before the fingerprint store: hash every shard, read every ledger file."""
    from nag_core.hashing import file_digest
    from nag_core.home import Home
    from nag_core.warehouse import Warehouse

    t = time.perf_counter()
    {name: file_digest(p) for name, p in Home(home).shard_files().items()}
    rows = Warehouse(home).read("materializations")
    {(r["asset"], r["partition"]): r for r in rows.iter_rows(named=True)}
    return time.perf_counter() - t


def new_bookkeeping_seconds(home: Path, new_process: bool) -> float:
    """The same through ``State``; ``new_process`` forgets this process's memory first (the store file stays)."""
    from nag_core import bookkeeping
    from nag_core.freshness import State
    from nag_core.home import Home

    if new_process:
        bookkeeping._digests.clear()
        bookkeeping._loaded_stores.clear()
        bookkeeping._ledger_rows.clear()
    t = time.perf_counter()
    state = State(Home(home))
    state.shards, state.ledger  # noqa: B018
    return time.perf_counter() - t


def tiny_shards(home: Path, start: int, n: int) -> None:
    vocab = vocabulary(1)
    for s in range(start, start + n):
        documents(5, s * 5, 7 + s, vocab).write_parquet(home / "pool" / f"shard-{s:05d}.parquet")


def overhead_row(n_shards: int, k: int, work: Path) -> dict:
    import dagster as dg

    from nag_select.runner import run_stale

    k = max(1, min(k, n_shards // 3))  # fill, one-run-each and batched shards must all fit in N
    home = work / f"overhead-{n_shards}"
    (home / "pool").mkdir(parents=True)
    (home / "targets" / "t").mkdir(parents=True)
    (home / "targets" / "t" / "t.jsonl").write_text('{"text": "a target"}\n')
    tiny_shards(home, 0, n_shards - 2 * k)
    instance = dg.DagsterInstance.ephemeral()
    quiet = {"device": "cpu", "log": lambda m: None, "only": ["raw_pool", "dedup_pool"]}
    fill = run_stale(home, instance, **quiet)
    tiny_shards(home, n_shards - 2 * k, k)
    cpu = time.process_time()
    single = run_stale(home, instance, batch=False, **quiet)
    single_cpu = time.process_time() - cpu
    tiny_shards(home, n_shards - k, k)
    time.sleep(1.1)  # let the new files settle so they are remembered (bookkeeping.RACY_SECONDS)
    cpu = time.process_time()
    batched = run_stale(home, instance, batch=True, **quiet)
    batched_cpu = time.process_time() - cpu
    for r in (fill, single, batched):
        if r.failures:
            raise SystemExit(f"overhead run failed: {r.failures}")
    old = min(old_bookkeeping_seconds(home) for _ in range(3))
    cold = new_bookkeeping_seconds(home, new_process=True)
    warm = min(new_bookkeeping_seconds(home, new_process=False) for _ in range(3))
    shutil.rmtree(home)
    runs = len(single.materialized)
    return {"shards": n_shards, "k": k, "single_runs": runs, "single_s_per_run": single.seconds / runs,
            "single_cpu_s_per_run": single_cpu / runs, "batched_cpu_s_per_shard": batched_cpu / len(batched.materialized),
            "batched_s_per_shard": batched.seconds / len(batched.materialized), "batched_partitions": len(batched.materialized),
            "old_state_s": old, "new_state_cold_s": cold, "new_state_warm_s": warm}


# ---------------------------------------------------------------- report

def report(overhead: list[dict], scale: list[dict], smoke: bool) -> list[str]:
    m = C.machine()
    md = ["# Scale", "", C.machine_line(m), ""]
    if overhead:
        md += ["## Fixed cost per Dagster run", "",
               "Data roots of N tiny shards (5 documents each; extraction not involved). *one run per shard*: "
               "K new shards materialised (raw_pool, dedup_pool) with one Dagster run per shard and partition, "
               "as `run_stale(batch=False)`; *batched*: K more in one run per stage (the default). Wall seconds "
               "and CPU seconds (this process, DuckDB's threads included; less sensitive to other load on the "
               "machine) per partition. *State bookkeeping*: discovering inputs for one run (hash the shard files, "
               "read the ledger), the old way and through `State` now, on the same root.", "",
               "| shards N | K | s per partition, one run each | CPU s, one run each | s per partition, batched | "
               "CPU s, batched | batched speed-up | "
               "State bookkeeping, old (s) | now, new process (s) | now, same process (s) | old / now (same process) |",
               "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in overhead:
            cpu = (f"{r['single_cpu_s_per_run']:.3f}", f"{r['batched_cpu_s_per_shard']:.3f}") \
                if "single_cpu_s_per_run" in r else ("-", "-")
            md.append(f"| {r['shards']:,} | {r['k']} | {r['single_s_per_run']:.3f} | {cpu[0]} | "
                      f"{r['batched_s_per_shard']:.3f} | {cpu[1]} | "
                      f"{r['single_s_per_run'] / r['batched_s_per_shard']:.1f}x | {r['old_state_s']:.4f} | "
                      f"{r['new_state_cold_s']:.4f} | {r['new_state_warm_s']:.4f} | "
                      f"{r['old_state_s'] / r['new_state_warm_s']:.0f}x |")
        md += ["", "Overhead rows: " + "; ".join(f"N={r['shards']:,}: {r['code']}" for r in overhead) + ".", ""]
    if scale:
        md += ["## Stages at scale", "",
               f"Synthetic pools in shards of {scale[0]['documents'] // scale[0]['shards']:,} documents. Each stage is "
               "`nag-select run --only STAGE` (or `import-features --dir`) in its own process: wall seconds include "
               "Python and Dagster start-up (about 5 s); peak RSS is that process's maximum resident set.", "",
               "| documents | shards | kept after dedup | stage | wall (s) | peak RSS (MiB) |", "|---:|---:|---:|---|---:|---:|"]
        for s in scale:
            done = [r for r in s["stages"] if r["seconds"] is not None]
            for i, row in enumerate(s["stages"]):
                kept = f"{s['kept']:,}" if s["kept"] is not None else "-"
                lead = f"| {s['documents']:,} | {s['shards']} | {kept} |" if i == 0 else "| | | |"
                cells = f"{row['seconds']:.1f} | {row['peak_rss_mib']:.0f}" if row["seconds"] is not None else \
                    "not run (time limit) | -"
                md.append(f"{lead} {row['stage']} | {cells} |")
            md.append(f"| | | | **{'all' if len(done) == len(s['stages']) else 'stages run'}** ({s['code']}) | "
                      f"{sum(r['seconds'] for r in done):.1f} | {max((r['peak_rss_mib'] for r in done), default=0):.0f} |")
        md.append("")
    if smoke:
        md.append("Smoke run: tiny sizes, numbers not meaningful.")
    return md


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000])
    ap.add_argument("--per-shard", type=int, default=DOCS_PER_SHARD)
    ap.add_argument("--overhead", type=int, nargs="*", default=[10, 100, 1000], help="shard counts for the per-run table")
    ap.add_argument("--k", type=int, default=10, help="new shards per overhead measurement")
    ap.add_argument("--deadline-s", type=float, default=float("inf"), help="start no stage after this many seconds")
    ap.add_argument("--merge", action="store_true", help="keep rows of earlier runs in --out/scale.json not measured now")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes (< 60 s)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.smoke:
        args.sizes, args.per_shard, args.overhead, args.k = [400], 200, [3], 1
    out = C.results_dir(args.out, args.smoke)
    stamp = f"{code_state()}, measured {time.strftime('%H:%M UTC', time.gmtime())}"
    with tempfile.TemporaryDirectory(prefix="nag-scale-") as tmp:
        work = Path(tmp)
        overhead = []
        for n in args.overhead:
            overhead.append(overhead_row(n, args.k, work))
            r = overhead[-1]
            print(f"  {n} shards: {r['single_s_per_run']:.3f} s per run, {r['batched_s_per_shard']:.3f} s per shard "
                  f"batched; State {r['old_state_s']:.4f} s old vs {r['new_state_warm_s']:.4f} s now", flush=True)
        deadline = time.perf_counter() + args.deadline_s
        scale = [stage_table(n, args.per_shard, work, SMOKE_STAGES if args.smoke else STAGES, deadline) for n in args.sizes]
    for row in overhead + scale:
        row["code"] = stamp
    if args.merge and (out / "scale.json").exists():  # rows of earlier invocations, replaced where measured again
        before = json.loads((out / "scale.json").read_text())
        overhead = _merged(before["overhead"], overhead, "shards")
        scale = _merged(before["scale"], scale, "documents")
    (out / "scale.json").write_text(json.dumps({"overhead": overhead, "scale": scale}, indent=1))
    print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    return C.write_report(out, "scale.md", report(overhead, scale, args.smoke))


def _merged(before: list[dict], now: list[dict], key: str) -> list[dict]:
    rows = {r[key]: r for r in before} | {r[key]: r for r in now}
    return [rows[k] for k in sorted(rows)]


def code_state() -> str:
    """HEAD and whether the working tree differs from it: other work lands in the same checkout meanwhile."""
    def git(*a):
        return subprocess.run(["git", *a], cwd=C.ROOT, capture_output=True, text=True).stdout.strip()
    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return f"commit {head}" + (" plus uncommitted changes" if git("status", "--porcelain", "--untracked-files=no") else "")


if __name__ == "__main__":
    sys.exit(main())
