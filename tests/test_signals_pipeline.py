"""The opt-in proxy-LM signals (perplexity, gradient influence) run in the asset graph, and recipes use them."""

import json

import dagster as dg
import numpy as np
import polars as pl
import pytest
from conftest import tiny_home

from nag_core.freshness import State
from nag_core.home import Home
from nag_core.signal_steps import proxy_sample
from nag_core.warehouse import Warehouse
from nag_select.runner import run_stale

pytestmark = pytest.mark.slow

MATH = [f"Tom has {i} apples and buys {i + 3} more, so he has {2 * i + 3} apples in total." for i in range(12)]
LAW = [f"The tenant shall pay rent of {100 * i} dollars on the first day of each month under clause {i}." for i in range(12)]
SETTINGS = """\
signals:
  families: [quality, perplexity, gradient]
  proxy_lm: {steps: 15, min_documents: 8, max_documents: 16}
  gradient_dim: 256
"""


@pytest.fixture(scope="module")
def lm_home(tmp_path_factory):
    home = tiny_home(tmp_path_factory.mktemp("lm") / "home", MATH + LAW, {"math": "Ann has 4 apples and buys 5 more."})
    (home / "nag.yaml").write_text(SETTINGS)
    (home / "recipes").mkdir()
    (home / "recipes" / "lm.yaml").write_text(
        "targets: [math]\nsteps:\n  - filter: {signal: quality_perplexity, max: 50}\n"
        "  - fuse: {signals: {gradient: 1.0, nag_frequency: 1.0}, normalize: zscore}\n  - select: {budget_fraction: 0.3}\n")
    report = run_stale(home, dg.DagsterInstance.ephemeral(), device="cpu", log=lambda m: None)
    assert not report.failures, report.failures
    return home, report


def test_proxy_lm_is_trained_once_on_a_seeded_sample_and_saved_as_safetensors(lm_home):
    home, report = lm_home
    assert [k for a, k in report.materialized if a == "proxy_lm"] == [""]
    files = {p.name for p in (home / "cache" / "proxy_lm").iterdir()}
    assert any(f.endswith(".safetensors") for f in files) and not any(f.endswith((".bin", ".pt")) for f in files)
    state = State(Home(home))
    docids = Warehouse(home).read("pool_kept")["docid"].to_list()
    sample = proxy_sample(sorted(docids), state.settings)
    assert 8 <= len(sample) <= 16 and sample == proxy_sample(sorted(docids), state.settings)  # seeded, stable
    assert {a for a in ("dsir_scores", "bm25_scores", "embedding_scores")} & {a for a, _ in report.materialized} == set()


def test_perplexity_and_gradient_cover_the_pool_and_separate_domains(lm_home):
    home, _ = lm_home
    signals = Warehouse(home).read("signals")
    kept = Warehouse(home).read("pool_kept")["docid"].to_list()
    ppl = signals.filter(pl.col("signal") == "quality_perplexity")
    grad = signals.filter(pl.col("signal") == "gradient")
    assert sorted(ppl["docid"]) == sorted(kept) == sorted(grad["docid"])
    assert ppl["value"].is_finite().all() and (ppl["value"] > 0).all()
    assert ppl["target"].null_count() == ppl.height and (grad["target"] == "math").all()
    domain = grad.with_columns(pl.col("docid").is_in(Warehouse(home).read("documents").filter(
        pl.col("text").str.contains("apples"))["docid"].to_list()).alias("math"))
    means = dict(domain.group_by("math").agg(pl.col("value").mean()).iter_rows())
    assert means[True] > means[False]  # the target's own domain moves its loss most
    assert np.all(np.abs(grad["value"].to_numpy()) <= 1.0 + 1e-9)  # cosines


def test_recipe_over_proxy_lm_signals_records_their_provenance(lm_home):
    home, _ = lm_home
    manifest = json.loads((home / "manifests" / "lm__recipe.json").read_text())
    assert {s["asset"] for s in manifest["signals_used"]} == {"quality_signals", "gradient_scores", "influence_scores"}
    assert all(s["data_version"] for s in manifest["signals_used"])
    assert manifest["selected_tokens"] <= manifest["budget_tokens"]


def test_a_recipe_naming_a_switched_off_signal_says_how_to_switch_it_on(lm_home, tmp_path):
    import shutil

    home = tmp_path / "home"
    shutil.copytree(lm_home[0], home, ignore=shutil.ignore_patterns("dagster_home"))
    (home / "recipes" / "lexical.yaml").write_text("steps:\n  - fuse: {signals: {bm25: 1.0}}\n  - select: {}\n")
    report = run_stale(home, dg.DagsterInstance.ephemeral(), device="cpu", log=lambda m: None)
    assert [(a, k) for a, k, _ in report.failures] == [("recipe_subset", "lexical")]
    assert "signal 'bm25' is computed by bm25_scores, which is switched off; add 'bm25' to 'signals.families'" \
        in report.failures[0][2]
