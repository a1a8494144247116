"""Memory section of ``bench_dedup.py``: dedup of one new shard against N earlier kept documents.

A data root is built with N synthetic earlier kept documents in shards of 100K (tables
``documents``, ``pool_kept``, ``dedup_signatures``, ``dedup_bands``, as ``dedup_pool``
writes them). Earlier texts are 60 random words; ``PLANTED`` documents per shard carry
their real signatures, the others random ones (a random signature shares a band with
nothing, so they are pure load, as unrelated documents are). The new shard holds
``NEW_DOCS`` documents: exact copies, one-word edits of planted documents, and new
random texts, so both cross-shard passes have real work.

Two subprocesses on the same root, one after the other, each reporting its peak RSS
(``VmHWM``) and the growth over its peak after imports:

* **before**: the in-memory path ``dedup_pool`` had until now: every other shard's
  ``pool_kept`` hashes, signatures and texts read whole, then ``exact_dedup`` and
  ``dedup_incremental`` on them;
* **after**: ``nag_core.pool_steps.dedup_pool`` itself (DuckDB lookups of
  :mod:`nag_core.dedup_store`), which also writes its outputs.

Their kept docids and audit rows are compared.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

from nag_core.exact_dedup import exact_dedup, norm_hash
from nag_core.hashing import text_digest
from nag_core.minhash import MinHashSettings, hash_shingles, shingles, signatures
from nag_core.near_dedup import band_rows, dedup_incremental
from nag_core.warehouse import Warehouse

SHARD_DOCS = 100_000
PLANTED = 200
NEW_DOCS = 5_000
NEW_SHARD = "zz-new"


def _texts(rng: np.random.Generator, n: int, vocab: np.ndarray) -> list[str]:
    return [" ".join(row) for row in vocab[rng.integers(0, len(vocab), size=(n, 60))].tolist()]


def build_root(root: Path, n_earlier: int, seed: int = 0) -> None:
    """Earlier shards written as dedup_pool writes them, plus the new shard's pool file."""
    settings = MinHashSettings()
    rng = np.random.default_rng(seed)
    vocab = np.array([f"v{i}" for i in range(50_000)], dtype=object)
    wh = Warehouse(root)
    planted: list[str] = []
    for s in range(max(1, n_earlier // SHARD_DOCS)):
        shard, n = f"e{s:03d}", min(SHARD_DOCS, n_earlier - s * SHARD_DOCS)
        texts = _texts(rng, n, vocab)
        ids = [f"{shard}-{i:06d}" for i in range(n)]
        th = [text_digest(t) for t in texts]
        wh.write("documents", shard, pl.DataFrame({"docid": ids, "shard": shard, "row_index": np.arange(n),
                                                   "text": texts, "token_num": 60, "text_hash": th}))
        wh.write("pool_kept", shard, pl.DataFrame({"docid": ids, "shard": shard, "token_num": 60,
                                                   "norm_hash": [norm_hash(t) for t in texts]}))
        sigs = rng.integers(0, 2**32 - 1, size=(n, settings.num_perm), dtype=np.uint32)
        sigs[:PLANTED] = signatures([hash_shingles(shingles(t, settings)) for t in texts[:PLANTED]], settings)
        rows = pl.DataFrame({"docid": ids, "shard": shard, "text_hash": th, "settings_hash": settings.settings_hash,
                             "signature": pl.Series(sigs, dtype=pl.Array(pl.UInt32, settings.num_perm))})
        wh.write("dedup_signatures", shard, rows)
        wh.write("dedup_bands", shard, band_rows(rows, settings))
        planted += texts[:PLANTED]
    pick = rng.permutation(len(planted))
    exact = [planted[i] for i in pick[:100]]
    edited = []
    for i in pick[100:200]:
        words = planted[i].split()
        words[int(rng.integers(0, len(words)))] = "changed"
        edited.append(" ".join(words))
    new = exact + edited + _texts(rng, NEW_DOCS - len(exact) - len(edited), vocab)
    (root / "pool").mkdir(parents=True, exist_ok=True)
    pl.DataFrame({"docid": [f"n{i:06d}" for i in range(len(new))], "text": new, "token_num": 60}).write_parquet(
        root / "pool" / f"{NEW_SHARD}.parquet")


def old_in_memory(root: Path, shard: str, settings_hash: str, near: MinHashSettings) -> dict:
    """The dedup_pool near/exact passes as they were: every other shard read whole."""
    wh = Warehouse(root)
    docs = wh.read("documents", [shard], columns=["docid", "text", "shard", "token_num", "text_hash"])
    kept, exact_audit = exact_dedup(docs, wh.read("pool_kept", columns=["norm_hash", "docid"], exclude=shard),
                                    settings_hash)
    prior = wh.read("dedup_signatures", exclude=shard)
    prior = prior.filter(pl.col("settings_hash") == near.settings_hash)
    prior = prior.join(wh.read("documents", columns=["docid", "text"], exclude=shard), on="docid", how="left")
    result = dedup_incremental(kept.select("docid", "text", "shard", "text_hash"), prior, near)
    removed = pl.concat([exact_audit, result.removed.with_columns(pl.lit(settings_hash).alias("settings_hash"))])
    return {"kept": sorted(result.kept_docids), "removed": removed.sort("removed_docid").rows()}


def worker(kind: str, root: str, out: str) -> None:
    from nag_core import pool_steps
    from nag_core.freshness import State
    from nag_core.home import Home

    state = State(Home(Path(root)))
    start_kib = hwm_kib()
    t0 = time.perf_counter()
    if kind == "before":
        got = old_in_memory(Path(root), NEW_SHARD, state.settings.hash_for("dedup_pool"), state.settings.dedup.near)
    else:
        pool_steps.dedup_pool(state, NEW_SHARD, "bench", log=lambda m: None)
        wh = Warehouse(Path(root))
        got = {"kept": sorted(wh.read("pool_kept", [NEW_SHARD])["docid"].to_list()),
               "removed": wh.read("dedup_removed", [NEW_SHARD]).sort("removed_docid").rows()}
    seconds = time.perf_counter() - t0
    peak = hwm_kib()  # not ru_maxrss: Linux carries the parent's peak over fork + exec into it
    Path(out).write_text(json.dumps({"seconds": seconds, "peak_mib": peak / 1024, "growth_mib": (peak - start_kib) / 1024,
                                     "kept": got["kept"], "removed": [list(map(str, r)) for r in got["removed"]]}))


def hwm_kib() -> int:
    status = Path("/proc/self/status")
    if not status.exists():
        return 0
    return int(next(x for x in status.read_text().splitlines() if x.startswith("VmHWM")).split()[1])


def measure(bench_file: str, root: Path, tmp: Path) -> dict:
    """Both paths on one root: peak RSS, growth, seconds and whether their decisions agree."""
    from nag_core import pool_steps
    from nag_core.freshness import State
    from nag_core.home import Home

    pool_steps.raw_pool(State(Home(root)), NEW_SHARD, "bench", log=lambda m: None)
    env = {**os.environ, "POLARS_MAX_THREADS": "2"}
    res = {}
    for kind in ("before", "after"):
        out = tmp / f"mem_{kind}.json"
        subprocess.run([sys.executable, bench_file, "--memory-worker", kind, str(root), str(out)], check=True, env=env)
        res[kind] = json.loads(out.read_text())
    res["same"] = res["before"]["kept"] == res["after"]["kept"] and res["before"]["removed"] == res["after"]["removed"]
    res["removed"] = len(res["after"]["removed"])
    return res


def lines(results: dict[int, dict]) -> list[str]:
    out = ["| earlier kept documents | path | seconds | peak RSS (MiB) | growth (MiB) | removed | same decisions |",
           "|---:|---|---:|---:|---:|---:|---|"]
    for n, r in results.items():
        for kind, label in (("before", "before: all earlier shards in memory"), ("after", "after: DuckDB band/hash joins")):
            m = r[kind]
            out.append(f"| {n:,} | {label} | {m['seconds']:.1f} | {m['peak_mib']:.0f} | {m['growth_mib']:.0f} | "
                       f"{len(m['removed'])} | {'yes' if r['same'] else 'NO'} |")
    ratios = ", ".join(f"{n:,}: {r['before']['peak_mib'] / r['after']['peak_mib']:.1f}x"
                       for n, r in results.items())
    return out + ["", f"Peak RSS before / after: {ratios}."]


def report(bench_file: str, sizes: list[int]) -> list[str]:
    """Build a root per size, measure both paths on it, and return the markdown section."""
    results = {}
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix="nag-dedup-mem-") as tmp:
            build_root(Path(tmp) / "home", n)
            results[n] = measure(bench_file, Path(tmp) / "home", Path(tmp))
    if not results:
        return []
    return ["## Memory: one new shard against N earlier kept documents", "",
            f"Synthetic data root (docstring of `benchmarks/dedup_memory.py`): earlier shards of {SHARD_DOCS:,} kept "
            f"60-word documents, a new shard of {NEW_DOCS:,} documents (100 exact copies and 100 one-word edits of "
            "earlier documents, the rest new). Each path runs in its own subprocess (POLARS_MAX_THREADS=2); peak RSS "
            "is its VmHWM at the end, growth is that minus its VmHWM after imports.", "", *lines(results), ""]
