"""Recipes in the asset graph, and the audit of every selected document (explain, diff, SQL views).

All on the demo data root built once with the real MiniLM: its ``recipes/math_and_code.yaml``
fuses NAG contrastive, embedding cosine and DSIR for two targets after a quality filter,
balanced BIDS-style.
"""

import json

import dagster as dg
import numpy as np
import polars as pl
import pytest
from conftest import run_clean

from nag_core.audit import diff, explain
from nag_core.demo_corpus import DEMO_TARGET_DOMAINS
from nag_core.features import read_cache
from nag_core.freshness import State
from nag_core.graph import build_profile
from nag_core.home import Home
from nag_core.recipe_ops import run_recipe
from nag_core.recipes import load_recipe
from nag_core.warehouse import Warehouse
from nag_select.cli import main
from nag_select.runner import run_stale
from sensors import recipe_sensor

pytestmark = pytest.mark.slow
SUBSET = "math_and_code__recipe"


def test_recipe_subset_balances_two_targets_from_three_signal_families(built_demo):
    home, _, _ = built_demo
    subset = pl.read_parquet(home / "subsets" / f"{SUBSET}.parquet")
    manifest = json.loads((home / "manifests" / f"{SUBSET}.json").read_text())
    assert manifest["kind"] == "recipe" and manifest["targets"] == ["grade_school_math", "python_code"]
    assert manifest["selected_tokens"] <= manifest["budget_tokens"]
    for target in ("grade_school_math", "python_code"):
        mine = subset.filter(pl.col("target") == target)
        assert mine.filter(pl.col("domain") == DEMO_TARGET_DOMAINS[target]).height / mine.height >= 0.9, target
    tokens = manifest["stats"]["tokens_by_target"]
    assert abs(tokens["grade_school_math"] - tokens["python_code"]) <= subset["token_num"].max()  # BIDS keeps them level
    assert {s["asset"] for s in manifest["signals_used"]} == {"quality_signals", "influence_scores", "embedding_scores",
                                                              "dsir_scores"}


def test_stored_recipe_decisions_equal_a_rerun_from_the_signals_table(built_demo):
    home, _, _ = built_demo
    wh = Warehouse(home)
    recipe = load_recipe(home / "recipes" / "math_and_code.yaml")
    pool = wh.read("pool_kept", columns=["docid", "token_num"])
    signals = wh.read("signals", columns=["docid", "signal", "target", "value"]).filter(pl.col("signal").is_in(recipe.signals))
    again = run_recipe(recipe, ["grade_school_math", "python_code"], pool, signals)
    stored = wh.read("subset_decisions", [SUBSET]).sort(["target", "docid"])
    rerun = again.decisions.sort(["target", "docid"])
    assert stored["outcome"].to_list() == rerun["outcome"].to_list()
    np.testing.assert_allclose(stored["score"].fill_null(np.nan).to_numpy(), rerun["score"].fill_null(np.nan).to_numpy())
    members = wh.read("subset_members", [SUBSET]).sort("rank")
    assert members["docid"].to_list() == again.members["docid"].to_list()


def test_nag_scores_are_the_papers_formula_on_the_sliced_layers(demo_copy):
    (demo_copy / "nag.yaml").write_text("score_layers: last:2\n")
    report = run_clean(demo_copy)
    ran = {a for a, _ in report.materialized}
    assert "activation_cache" not in ran and "influence_scores" in ran
    home = Home(demo_copy)
    _, t_idx, _, meta = read_cache(home.target_cache_path("minilm-l6", "python_code"), "fwd_up")
    weights = build_profile(t_idx, meta["widths"]["fwd_up"])[1]
    docids, idx, _, _ = read_cache(home.activation_cache_path("minilm-l6", "shard-001"), "fwd_up")
    expected = {d: np.mean([weights[layer, idx[i, layer]].sum() for layer in (4, 5)]) for i, d in enumerate(docids)}
    stored = Warehouse(demo_copy).read("signals", ["influence_scores@minilm-l6@python_code"]).filter(
        pl.col("signal") == "nag_frequency", pl.col("shard") == "shard-001")
    assert stored.height == len(docids)
    assert max(abs(v - expected[d]) for d, v in zip(stored["docid"], stored["value"])) < 1e-12
    assert json.loads((demo_copy / "manifests" / "python_code__minilm-l6.json").read_text())["recipe"]["score_layers"] == "last:2"


def test_explain_walks_every_operator_with_values_read_back(built_demo, capsys):
    home, _, _ = built_demo
    wh = Warehouse(home)
    decisions = wh.read("subset_decisions", [SUBSET])
    chosen = decisions.filter(pl.col("outcome") == "selected", pl.col("credited")).sort("pick").row(0, named=True)
    result = explain(Home(home), chosen["docid"], SUBSET)
    assert result.facts["outcome"] == "selected"
    text = result.text()
    assert f"target {chosen['target']}: score {chosen['score']:.5g}, rank {chosen['rank']} of 450" in text
    assert f"=> selected for target {chosen['target']}, pick #1 (step 4 select" in text
    value = wh.read("signals", [f"dsir_scores@{chosen['target']}"]).filter(pl.col("docid") == chosen["docid"])["value"].item()
    assert f"dsir: {value:.5g}" in text and "x weight 0.5" in text
    assert "dsir <- dsir_scores[" in text and "model minilm-l6 fingerprint" in text
    below = decisions.filter(pl.col("outcome") == "budget").sort("rank").row(0, named=True)
    assert "=> below the budget cut" in explain(Home(home), below["docid"], SUBSET).text()
    # a planted exact copy never reaches the selection, and says in favour of which document
    removed = wh.read("dedup_removed").filter(pl.col("stage") == "exact").row(0, named=True)
    text = explain(Home(home), removed["removed_docid"], SUBSET).text()
    assert f"removed by dedup, stage exact (lowest_docid), in favour of {removed['kept_docid']}" in text
    assert main(["explain", chosen["docid"], "--subset", SUBSET, "--home", str(home), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["outcome"] == "selected"
    assert main(["explain", "nope", "--subset", SUBSET, "--home", str(home)]) == 2
    assert "document 'nope' is in no pool shard" in capsys.readouterr().err


def test_sql_views_answer_the_same_questions(built_demo):
    home, _, _ = built_demo
    wh = Warehouse(home)
    wh.refresh_views()
    audit = wh.query(f"SELECT docid, target, signal, signal_value, weight FROM subset_audit WHERE subset = '{SUBSET}' "
                     "AND outcome = 'selected' AND signal = 'embedding' ORDER BY docid, target")
    assert audit.height == 2 * wh.read("subset_members", [SUBSET]).height and (audit["weight"] == 1.0).all()
    prov = wh.query("SELECT asset, count(DISTINCT signal) AS signals FROM signal_provenance GROUP BY asset ORDER BY asset")
    assert dict(prov.iter_rows()) == {"bm25_scores": 1, "dsir_scores": 1, "embedding_scores": 1, "influence_scores": 4,
                                      "quality_signals": 4}
    assert wh.query(f"SELECT count(*) FROM subset_runs WHERE subset = '{SUBSET}'").item() == 1


def test_editing_a_recipe_reruns_only_its_subset_and_diff_says_why(demo_copy, capsys):
    path = demo_copy / "recipes" / "math_and_code.yaml"
    before = Warehouse(demo_copy).read("subset_members", [SUBSET])
    path.write_text(path.read_text().replace("budget_fraction: 0.2", "budget_fraction: 0.25"))
    report = run_clean(demo_copy)
    assert report.materialized == [("recipe_subset", "math_and_code")]
    after = Warehouse(demo_copy).read("subset_members", [SUBSET])
    added = set(after["docid"]) - set(before["docid"])
    assert added and set(before["docid"]) <= set(after["docid"])
    moved, lines = diff(Home(demo_copy), SUBSET)
    assert set(moved.filter(pl.col("change") == "added")["docid"]) == added
    assert moved.filter(pl.col("change") == "removed").is_empty()
    assert all("budget -> selected with the same score and rank" in w for w in moved["why"])
    wh = Warehouse(demo_copy)
    wh.refresh_views()
    runs = wh.query(f"SELECT run_id FROM subset_runs WHERE subset = '{SUBSET}' ORDER BY created_at, run_id")["run_id"].to_list()
    last = report_run(demo_copy)
    (first,) = [r for r in runs if r != last]
    sql = wh.query(f"SELECT docid, change FROM subset_diff('{SUBSET}', '{first}', '{last}') ORDER BY docid")
    assert set(sql["docid"]) == added and set(sql["change"]) == {"added"}
    assert main(["diff", SUBSET, "--home", str(demo_copy)]) == 0
    assert f"{len(added)} added, 0 removed" in capsys.readouterr().out


def report_run(home) -> str:
    return json.loads((home / "manifests" / f"{SUBSET}.json").read_text())["run_id"]


def test_malformed_recipe_fails_its_own_run_naming_file_step_and_key(demo_copy):
    bad = demo_copy / "recipes" / "broken.yaml"
    bad.write_text("steps:\n  - fuse: {signals: {nag_contrastive: 1.0}, normalise: rank}\n  - select: {}\n")
    report = run_stale(demo_copy, dg.DagsterInstance.ephemeral(), device="cpu", log=lambda m: None)
    assert [(a, k) for a, k, _ in report.failures] == [("recipe_subset", "broken")]
    message = report.failures[0][2]
    assert f"{bad}: step 1 (fuse): unknown key(s) ['normalise']" in message
    assert (demo_copy / "subsets" / f"{SUBSET}.parquet").exists()


def test_recipe_sensor_requests_only_the_recipe_that_changed(demo_copy):
    from resources import NagHomeResource

    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("recipes", ["math_and_code"])
    resources = {"nag_home": NagHomeResource(path=str(demo_copy))}
    first = recipe_sensor(dg.build_sensor_context(instance=instance, resources=resources))
    assert first.run_requests == []  # built already: nothing is stale
    (demo_copy / "recipes" / "code_only.yaml").write_text(
        "targets: [python_code]\nsteps:\n  - fuse: {signals: {bm25: 1.0}}\n  - select: {budget_fraction: 0.1}\n")
    second = recipe_sensor(dg.build_sensor_context(instance=instance, resources=resources, cursor=first.cursor))
    assert [r.partition_key for r in second.run_requests] == ["code_only"]
    assert [r.partition_keys for r in second.dynamic_partitions_requests] == [["code_only"]]
    State(Home(demo_copy))  # the sensor changed nothing on disk
    assert not (demo_copy / "subsets" / "code_only__recipe.parquet").exists()
