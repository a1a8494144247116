"""Every benchmark's smoke version runs and writes its table (CI runs only these tiny versions)."""

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SHARED, requires_shared

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def test_all_benchmarks_smoke(tmp_path):
    requires_shared(SHARED / "pool" / "mixed_pool_dev.parquet")
    out = tmp_path / "smoke"
    run = subprocess.run([sys.executable, "benchmarks/run_all.py", "--smoke", "--out", str(out)], cwd=ROOT,
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = (out / "BENCHMARKS.md").read_text()
    for name in ("recipes", "retrieval", "speed", "proxy", "dedup", "incremental"):
        assert f"| {name} | `{name}.md` | ok |" in report, name
    retrieval = (out / "retrieval.md").read_text()
    assert "| NAG | NAG contrastive |" in retrieval
    assert "| NAG contrastive, K=50, smoothing 0.5 |" in (out / "recipes.md").read_text()
