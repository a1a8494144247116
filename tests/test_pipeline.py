"""The whole graph on the real MiniLM: the demo pool, three targets, and incremental reruns."""

import json
import os

import dagster as dg
import polars as pl
import pyarrow.parquet as pq
import pytest
from conftest import run_clean

from nag_core.demo_corpus import DEMO_TARGET_DOMAINS
from nag_core.freshness import STAGES, State, partition_key
from nag_core.home import Home
from nag_core.warehouse import Warehouse
from nag_select.runner import run_stale

pytestmark = pytest.mark.slow


def test_each_target_selects_its_own_domain(built_demo):
    home, _, _ = built_demo
    wh = Warehouse(home)
    docs = wh.read("documents", columns=["docid", "domain"])
    pool_domain = {d: docs.filter(pl.col("domain") == d).height for d in DEMO_TARGET_DOMAINS.values()}
    for target, domain in DEMO_TARGET_DOMAINS.items():
        subset = pl.read_parquet(home / "subsets" / f"{target}__minilm-l6.parquet")
        share = subset.filter(pl.col("domain") == domain).height / subset.height
        recall = subset.filter(pl.col("domain") == domain).height / pool_domain[domain]
        assert share >= 0.7, (target, share)
        assert recall >= 0.9, (target, recall)
        assert {"docid", "score", "rank", "text", "domain", "source"} <= set(subset.columns)
        assert subset["score"].is_sorted(descending=True)


def test_warehouse_tables_and_lineage(built_demo):
    home, _, _ = built_demo
    wh = Warehouse(home)
    wh.refresh_views()
    kept = wh.query("SELECT count(*) FROM pool_kept").item()
    assert wh.query("SELECT count(*) FROM documents").item() == 455
    assert wh.query("SELECT count(*) FROM dedup_removed WHERE stage = 'exact'").item() == 5
    assert kept == 450  # 455 minus the 5 planted copies; no false near-duplicates
    signals = wh.query("SELECT target, model, count(*) AS n, min(value) AS lo, max(value) AS hi, "
                       "count(DISTINCT run_id) AS runs, count(DISTINCT config_hash) AS cfg FROM signals "
                       "WHERE signal = 'nag_frequency' GROUP BY ALL ORDER BY target")
    assert signals["n"].to_list() == [kept] * 3
    assert signals["lo"].min() >= 0 and signals["hi"].max() <= 1
    assert signals["runs"].to_list() == [1, 1, 1] and signals["cfg"].to_list() == [1, 1, 1]
    families = wh.query("SELECT asset, signal, count(*) AS n, count(DISTINCT docid) AS docs, count(DISTINCT target) AS targets "
                        "FROM signals GROUP BY ALL ORDER BY asset, signal")
    expected = {("influence_scores", s): 3 * kept for s in ("nag_bad", "nag_contrastive", "nag_frequency", "nag_good")}
    expected |= {(a, s): 3 * kept for a, s in (("embedding_scores", "embedding"), ("dsir_scores", "dsir"), ("bm25_scores", "bm25"))}
    expected |= {("quality_signals", s): kept for s in ("quality_alnum_share", "quality_length", "quality_ngram_entropy",
                                                        "quality_repetition_ratio")}
    assert dict(zip(zip(families["asset"], families["signal"]), families["n"])) == expected
    assert (families["docs"] == kept).all()
    nag = wh.query("SELECT docid, target, signal, value FROM signals WHERE asset = 'influence_scores'").pivot(
        on="signal", index=["docid", "target"], values="value")
    assert (nag["nag_contrastive"] - (nag["nag_good"] - nag["nag_bad"])).abs().max() < 1e-9  # good minus bad
    assert nag["nag_good"].min() >= 0 and nag["nag_bad"].min() >= 0
    graphs = wh.query("SELECT target, layer, sum(weight) AS w FROM neuron_graphs GROUP BY ALL")
    assert graphs.height == 3 * 6 and graphs["w"].to_list() == pytest.approx([1.0] * 18)
    subsets = wh.query("SELECT * FROM subsets ORDER BY subset")
    assert subsets["subset"].to_list() == ["clinical_medicine__minilm-l6", "grade_school_math__minilm-l6",
                                           "math_and_code__recipe", "mixture__minilm-l6", "python_code__minilm-l6"]
    assert (subsets["selected_tokens"] <= subsets["budget_tokens"]).all()
    members = wh.query("SELECT subset, count(*) AS n FROM subset_members GROUP BY ALL ORDER BY subset")
    assert members["n"].to_list() == subsets["documents"].to_list()


def test_manifest_records_recipe_signals_and_input_versions(built_demo):
    home, _, _ = built_demo
    manifest = json.loads((home / "manifests" / "grade_school_math__minilm-l6.json").read_text())
    assert manifest["recipe"]["top_k"] == 20 and manifest["recipe"]["budget_fraction"] == 0.2
    (used,) = manifest["signals_used"]
    assert {k: used[k] for k in ("signal", "asset", "partition", "target", "model")} == {
        "signal": "nag_frequency", "asset": "influence_scores", "partition": "minilm-l6|grade_school_math",
        "target": "grade_school_math", "model": "minilm-l6"}
    state = State(Home(home))
    assert used["data_version"] == state.data_version("influence_scores", "minilm-l6|grade_school_math")
    assert used["config_hash"] == state.settings.hash_for("scores") and used["run_id"]
    assert set(manifest["inputs"]["shards"]) == {"shard-000", "shard-001", "shard-002"}
    assert all(v["activation_cache"] for v in manifest["inputs"]["shards"].values())
    assert manifest["inputs"]["model"]["fingerprint"]
    assert manifest["versions"]["transformers"]
    stamped = pq.read_schema(home / "subsets" / "grade_school_math__minilm-l6.parquet").metadata[b"nag_manifest"]
    assert json.loads(stamped)["inputs"] == manifest["inputs"]


def test_runs_are_recorded_in_the_dagster_instance(built_demo):
    _, instance, report = built_demo
    per_asset = {a: sum(1 for x, _ in report.materialized if x == a) for a, _ in report.materialized}
    assert per_asset == {"raw_pool": 3, "dedup_pool": 3, "activation_cache": 3, "embedding_cache": 3, "target_examples": 3,
                         "target_activations": 3, "neuron_graph": 3, "influence_scores": 3, "embedding_scores": 3,
                         "dsir_scores": 3, "bm25_scores": 3, "quality_signals": 3, "selected_subset": 3,
                         "mixture_subset": 1, "recipe_subset": 1}
    mats = instance.fetch_materializations(dg.AssetKey("selected_subset"), limit=10).records
    assert len(mats) == 3
    meta = mats[0].asset_materialization.metadata
    assert meta["token_share"].value <= 0.2 and "plot" in meta
    checks = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [dg.AssetCheckKey(dg.AssetKey("activation_cache"), "covers_every_document")])
    assert checks


def test_nothing_is_stale_after_a_run(built_demo):
    home, _, _ = built_demo
    state = State(Home(home))
    assert {asset: state.stale(asset) for asset in STAGES} == {asset: [] for asset in STAGES}


def test_new_shard_extracts_only_itself_then_rescores(demo_copy):
    untouched = demo_copy / "cache" / "activations" / "minilm-l6" / "shard-000.parquet"
    before = os.stat(untouched).st_mtime_ns
    pl.DataFrame({"docid": ["new-1", "new-2"], "text": ["Add 3 apples to 4 apples: how many apples? 7.",
                                                        "The patient was prescribed 20 mg of atorvastatin."]}
                 ).write_parquet(demo_copy / "pool" / "shard-003.parquet")
    report = run_clean(demo_copy)
    ran = {(a, k) for a, k in report.materialized}
    assert ("raw_pool", "shard-003") in ran and ("activation_cache", "minilm-l6|shard-003") in ran
    assert not any(k.endswith(("shard-000", "shard-001", "shard-002")) for _, k in ran)
    assert not any(a in ("target_examples", "target_activations", "neuron_graph") for a, _ in ran)
    assert sum(a == "influence_scores" for a, _ in ran) == 3
    assert os.stat(untouched).st_mtime_ns == before
    scores = Warehouse(demo_copy).read("signals", ["influence_scores@minilm-l6@grade_school_math"])
    assert scores.filter(pl.col("signal") == "nag_frequency").height == 452
    assert ("recipe_subset", "math_and_code") in ran  # its signals changed with the pool


def test_new_target_and_budget_change_touch_only_what_they_affect(demo_copy):
    target = demo_copy / "targets" / "recipes"
    target.mkdir()
    (target / "r.jsonl").write_text("\n".join(json.dumps({"text": f"Whisk {i} eggs with sugar, bake at 180C for 25 minutes."})
                                              for i in range(8)))
    report = run_clean(demo_copy)
    assert {a for a, _ in report.materialized} == {"target_examples", "target_activations", "neuron_graph",
                                                   "influence_scores", "embedding_scores", "dsir_scores", "bm25_scores",
                                                   "selected_subset", "mixture_subset"}  # not the recipe: fixed targets
    assert all("recipes" in k or a == "mixture_subset" for a, k in report.materialized)
    subset = pl.read_parquet(demo_copy / "subsets" / "recipes__minilm-l6.parquet")
    assert subset.filter(pl.col("domain") == "cooking").height / subset.height >= 0.7

    (demo_copy / "nag.yaml").write_text("budget_fraction: 0.1\n")
    report = run_clean(demo_copy)
    assert {a for a, _ in report.materialized} == {"selected_subset", "mixture_subset"}
    sizes = Warehouse(demo_copy).read("subsets").filter(pl.col("kind") != "recipe")  # a recipe has its own budget
    assert (sizes["selected_tokens"] <= (sizes["pool_tokens"] * 0.1)).all()


def test_contrastive_profile_rescores_without_reextracting(demo_copy):
    """Switching ``profile`` re-runs scores and subsets only, and the stored values are the log-ratio formula's."""
    import numpy as np

    from nag_core.checks import scores_valid
    from nag_core.features import read_cache
    from nag_core.graph import contrastive_profile, neuron_counts

    (demo_copy / "nag.yaml").write_text("profile: contrastive\ncontrast_smoothing: 0.5\n")
    report = run_clean(demo_copy)
    assert {a for a, _ in report.materialized} == {"selected_subset", "mixture_subset"}  # every NAG signal is stored already
    wh = Warehouse(demo_copy)
    signals = wh.read("signals", ["influence_scores@minilm-l6@grade_school_math"]).filter(pl.col("signal") == "nag_contrastive")
    home = Home(demo_copy)
    shards = [read_cache(home.activation_cache_path("minilm-l6", s), "fwd_up") for s in ("shard-000", "shard-001", "shard-002")]
    width = shards[0][3]["widths"]["fwd_up"]
    pool_counts = sum(neuron_counts(idx, width) for _, idx, _, _ in shards)
    target_idx = read_cache(home.target_cache_path("minilm-l6", "grade_school_math"), "fwd_up")[1]
    weights = contrastive_profile(neuron_counts(target_idx, width), pool_counts, 0.5)
    expected = {d: float(np.mean([weights[layer, idx[i, layer]].sum() for layer in range(idx.shape[1])]))
                for docids, idx, _, _ in shards for i, d in enumerate(docids)}
    stored = dict(zip(signals["docid"].to_list(), signals["value"].to_list(), strict=True))
    assert stored.keys() <= expected.keys() and len(stored) == 450
    assert max(abs(stored[d] - expected[d]) for d in stored) < 1e-9
    assert min(stored.values()) < 0 < max(stored.values())  # log ratios: off-target documents score below zero
    ok, text, _ = scores_valid(State(home), partition_key("influence_scores", model="minilm-l6", target="grade_school_math"))
    assert ok and text == "450 contrastive scores; all finite: True"
    manifest = json.loads((demo_copy / "manifests" / "grade_school_math__minilm-l6.json").read_text())
    assert manifest["recipe"]["profile"] == "contrastive" and manifest["recipe"]["contrast_smoothing"] == 0.5
    assert manifest["signals_used"][0]["signal"] == "nag_contrastive"
    for target, domain in DEMO_TARGET_DOMAINS.items():
        subset = pl.read_parquet(demo_copy / "subsets" / f"{target}__minilm-l6.parquet")
        assert subset.filter(pl.col("domain") == domain).height / subset.height >= 0.7, target


def test_bad_shard_fails_clearly_and_keeps_stored_data(demo_copy):
    good = Warehouse(demo_copy).read("documents", ["shard-000"]).height
    (demo_copy / "pool" / "shard-000.parquet").unlink()
    (demo_copy / "pool" / "shard-000.jsonl").write_text('{"text": "fine"}\n{"text": oops}\n')
    report = run_stale(demo_copy, dg.DagsterInstance.ephemeral(), device="cpu", log=lambda m: None)
    assert [(a, k) for a, k, _ in report.failures] == [("raw_pool", "shard-000")]
    assert "shard-000.jsonl: line 2 is not valid JSON" in report.failures[0][2]
    assert Warehouse(demo_copy).read("documents", ["shard-000"]).height == good
    assert (demo_copy / "subsets" / "grade_school_math__minilm-l6.parquet").exists()


def test_near_duplicates_and_contamination_are_removed_with_an_audit_trail(demo_copy):
    wh = Warehouse(demo_copy)
    docs = wh.read("documents").sort("docid")
    original = docs.filter(pl.col("domain") == "law").row(0, named=True)
    words = original["text"].split()
    edited = " ".join(words[:-1] + ["amended."])  # one-word edit: Jaccard well above 0.8
    example = json.loads((demo_copy / "targets" / "grade_school_math" / "train.jsonl").read_text().splitlines()[0])
    leaked = f"{example['question']} {example['answer']}"
    pl.DataFrame({"docid": ["near-copy", "leak"], "text": [edited, leaked]}).write_parquet(demo_copy / "pool" / "shard-009.parquet")
    (demo_copy / "nag.yaml").write_text("dedup:\n  decontaminate: true\n")
    report = run_clean(demo_copy)
    assert ("dedup_pool", "shard-009") in report.materialized

    audit = wh.read("dedup_removed", ["shard-009"])
    by_id = {r["removed_docid"]: r for r in audit.iter_rows(named=True)}
    assert by_id["near-copy"]["stage"] == "near" and by_id["near-copy"]["kept_docid"] == original["docid"]
    assert by_id["near-copy"]["verified_jaccard"] >= 0.8
    assert by_id["leak"]["stage"] == "contamination" and by_id["leak"]["matched_target"] == "grade_school_math"
    assert by_id["leak"]["matched_example"] == "train.jsonl:0"
    assert "leak" not in wh.read("pool_kept", ["shard-009"])["docid"].to_list()
    assert wh.read("documents", ["shard-009"]).height == 2  # removed documents stay retrievable
    wh.refresh_views()
    by_stage = wh.query("SELECT stage, removed FROM dedup_removals_by_shard WHERE shard = 'shard-009' ORDER BY stage")
    assert dict(by_stage.iter_rows()) == {"contamination": 1, "near": 1}
    # Switching decontamination on re-decides the old shards too: every removal names its example.
    leaks = wh.query("SELECT count(*) AS n, count(matched_example) AS named FROM dedup_removed WHERE stage = 'contamination'")
    assert leaks["n"].item() == leaks["named"].item() >= 1
