"""Shared by the crash and concurrency tests: a small data root and a run-independent snapshot of its outputs."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
# Differ between two runs that computed the same thing.
RUN_COLUMNS = ("run_id", "created_at", "parquet_path", "manifest_path")
_RUN_ID = re.compile(r"@[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def small_home(root: Path, shards: int = 3, docs: int = 60) -> Path:
    """Several shards (so a kill can land between and inside them) and two targets.

    Each document is a seeded random sequence of 40 words, so dedup keeps it, except that every
    fourth document of every shard is the same text in all shards: cross-shard duplicates, which
    only the first shard keeps (so shards must be deduplicated in order).
    """
    words = ["math", "sum", "code", "loop", "law", "court", "food", "bake", "game", "team"]

    def text(seed: str) -> str:
        rng = random.Random(seed)
        return " ".join(f"{rng.choice(words)}{rng.randrange(11)}" for _ in range(40))

    (root / "pool").mkdir(parents=True)
    for s in range(shards):
        texts = [text(f"shared-{i}" if i % 4 == 0 else f"s{s}-{i}") for i in range(docs)]
        pl.DataFrame({"docid": [f"s{s}-{i:03d}" for i in range(docs)], "text": texts}).write_parquet(root / "pool" / f"s{s}.parquet")
    # Two cheap text signals beside NAG: enough assets to kill in, without loading more models.
    (root / "nag.yaml").write_text("signals:\n  families: [dsir, bm25]\n")
    for name, text in (("t_math", "math sum math3 sum4"), ("t_food", "food bake food1 bake2")):
        (root / "targets" / name).mkdir(parents=True)
        (root / "targets" / name / "t.jsonl").write_text(json.dumps({"text": text}) + "\n")
    return root


def run_cli(home: Path, *extra: str, **kwargs) -> subprocess.Popen:
    """``nag-select run`` in its own process, as a user starts it."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    env.pop("DAGSTER_HOME", None)
    return subprocess.Popen([sys.executable, "-m", "nag_select.cli", "run", "--home", str(home), "--device", "cpu", *extra],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


def _rows(frame: pl.DataFrame) -> list:
    frame = frame.drop([c for c in RUN_COLUMNS if c in frame.columns])
    return sorted((tuple(str(v) for v in row) for row in frame.select(sorted(frame.columns)).rows()))


def _scrub(value: object, home: str) -> object:
    """A manifest without run ids and timestamps, its paths relative to the data root."""
    if isinstance(value, dict):
        return {k: _scrub(v, home) for k, v in value.items() if k not in RUN_COLUMNS}
    if isinstance(value, list):
        return [_scrub(v, home) for v in value]
    return value.replace(home, "<home>") if isinstance(value, str) else value


def snapshot(home: Path) -> dict[str, object]:
    """Every warehouse table, subset, manifest and cache, with run ids, timestamps and paths left out."""
    out: dict[str, object] = {}
    for d in sorted((home / "tables").iterdir()):
        files = sorted(d.glob("*.parquet"))
        rows = _rows(pl.concat([pl.read_parquet(f) for f in files], how="diagonal_relaxed")) if files else []
        names = [f.name for f in files]
        if any(_RUN_ID.search(n) for n in names):  # a history table, one file per run: compare what it holds
            names, rows = sorted({_RUN_ID.sub("", n) for n in names}), sorted(set(rows))
        out[f"tables/{d.name}"] = (names, rows)
    for f in sorted((home / "subsets").glob("*.parquet")):
        out[f"subsets/{f.name}"] = _rows(pl.read_parquet(f))
    for f in sorted((home / "manifests").glob("*.json")):
        out[f"manifests/{f.name}"] = _scrub(json.loads(f.read_text()), str(home))
    for f in sorted((home / "cache").glob("*activations/*/*.parquet")):
        table = pq.read_table(f)
        out[f.relative_to(home).as_posix()] = (table.to_pydict(), table.schema.metadata)
    return out


def leftovers(home: Path) -> list[Path]:
    """Temporary files anywhere in the outputs."""
    return sorted(p for d in ("tables", "cache", "subsets", "manifests") for p in (home / d).rglob("*.tmp"))


def differences(a: object, b: object, where: str = "") -> list[str]:
    """Paths at which two snapshots differ, with both values (short), for a readable failure."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b), key=str) for d in differences(a.get(k), b.get(k), f"{where}/{k}")]
    return [] if a == b else [f"{where}: {repr(a)[:200]} != {repr(b)[:200]}"]
