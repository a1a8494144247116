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
    for name in ("recipes", "retrieval", "speed", "proxy", "proxy_recipe", "dedup", "incremental", "distilled",
                 "storage", "backends"):
        assert f"| {name} | `{name}.md` | ok |" in report, name
    retrieval = (out / "retrieval.md").read_text()
    assert "| NAG | NAG contrastive |" in retrieval
    assert "| NAG contrastive, K=50, smoothing 0.5 |" in (out / "recipes.md").read_text()
    backends = (out / "backends.md").read_text()  # the run fails unless both backends selected the same documents
    assert "| rerun, nothing stale (median of 3) |" in backends and "checked docid by docid" in backends


def test_scale_benchmark_smoke(tmp_path):
    """Synthetic pool, every stage in its own process, the per-run overhead table; no shared data needed."""
    run = subprocess.run([sys.executable, "benchmarks/bench_scale.py", "--smoke", "--out", str(tmp_path)], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = (tmp_path / "scale.md").read_text()
    assert "| 3 | 1 |" in report and "| 400 | 2 | 400 | raw pool + dedup |" in report
    assert "| | | | the rest |" in report


def test_recipe_search_smoke(tmp_path):
    """The fusion search on the smoke pool: a monotone search curve, a recipe the strict parser accepts, whose
    dev mean is the grid's best, evaluated through run_recipe beside every single signal."""
    requires_shared(SHARED / "pool" / "mixed_pool_dev.parquet")
    committed = ROOT / "nag_core" / "recipe_library" / "recommended.yaml"
    before = committed.read_bytes() if committed.exists() else None
    run = subprocess.run([sys.executable, "benchmarks/bench_recipe_search.py", "--smoke", "--out", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    import json

    from nag_core.recipes import load_recipe

    data = json.loads((tmp_path / "recipe_search.json").read_text())
    assert data["grid_size"] == 93  # weights {0, 1} over 5 signals (31 vectors) x 3 normalisations
    curve = data["curve"]
    assert len(curve) == 93 and all(b >= a for a, b in zip(curve, curve[1:]))
    assert curve[-1] == data["best"]["dev_mean"] == data["top"][0]["dev_mean"]
    recipe = load_recipe(tmp_path / "recommended.yaml")
    assert recipe.select.budget_fraction == 0.2 and recipe.targets is None
    singles = {"nag_contrastive", "nag_frequency", "embedding", "dsir", "bm25", "nag_good", "nag_bad", "gradient",
               "quality_perplexity", "quality_length", "quality_ngram_entropy", "quality_alnum_share",
               "quality_repetition_ratio"}
    assert singles | {"recipe", "random"} <= set(data["reported"])  # every signal family, alone, beside the recipe
    assert all(0.0 <= v <= 1.0 for row in data["reported"].values() for v in row.values())
    report = (tmp_path / "recipe_search.md").read_text()
    assert "| recipes tried | best dev mean so far |" in report and (tmp_path / "recipe_search.png").exists()
    assert "| target | recipe | nag_good ↑ | nag_bad ↓ | gradient ↑ | quality_perplexity ↓ |" in report
    assert (committed.read_bytes() if committed.exists() else None) == before  # smoke never rewrites the library

    # --report-only: the reported section again from the stored recipe, the search's sections untouched
    search_part = report.split("## Reported targets")[0]
    run = subprocess.run([sys.executable, "benchmarks/bench_recipe_search.py", "--smoke", "--report-only", "--out",
                          str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    again = (tmp_path / "recipe_search.md").read_text()
    assert again.startswith(search_part) and again.count("## Reported targets") == 1 and "--report-only" in again
    data2 = json.loads((tmp_path / "recipe_search.json").read_text())
    assert data2["reported"] == data["reported"] and data2["curve"] == curve  # deterministic; search kept
    assert (committed.read_bytes() if committed.exists() else None) == before
