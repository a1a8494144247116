"""Recipes: strict parsing with errors that name the file, step and key, and the operators' exact values."""

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from nag_core.errors import NagInputError
from nag_core.recipe_ops import COMBINED, normalize, run_recipe
from nag_core.recipes import load_recipe, parse_recipe

PATH = Path("recipes/r.yaml")


def recipe(*steps, targets=("a",)):
    return parse_recipe("r", {"model": "minilm-l6", "targets": list(targets), "steps": list(steps)}, PATH)


FUSE = {"fuse": {"signals": {"nag_contrastive": 1.0}, "normalize": "rank", "missing": "error"}}
SELECT = {"select": {"budget_fraction": 0.5}}


@pytest.mark.parametrize("steps, needle", [
    ([{"fuse": {"signals": {"nag_contrastiv": 1.0}}}, SELECT], "step 1 (fuse).signals: unknown signal 'nag_contrastiv'"),
    ([FUSE, {"select": {"budget_fraction": 1.5}}], "step 2 (select).budget_fraction: must be <= 1.0, got 1.5"),
    ([FUSE, {"select": {"budget_fraction": 0}}], "step 2 (select).budget_fraction: must be > 0.0"),
    ([FUSE, {"select": {"budget": 0.2}}], "step 2 (select): unknown key(s) ['budget']"),
    ([SELECT, FUSE], "step 2 (fuse): is out of order"),
    ([FUSE], "must end with a 'select' step"),
    ([SELECT], "needs one 'fuse' step"),
    ([FUSE, {"balance": "fair"}, SELECT], "step 2 (balance): must be one of ['bids', 'equal_budget']"),
    ([{"filter": {"signal": "quality_length"}}, FUSE, SELECT], "step 1 (filter): needs 'min', 'max' or both"),
    ([{"fuse": {"signals": {"dsir": "high"}}}, SELECT], "step 1 (fuse).signals.dsir: must be a finite number"),
    ([{"fuse": {"signals": {"dsir": 1}, "missing": "skip"}}, SELECT], "step 1 (fuse).missing: must be one of"),
    ([{"sort": {}}, SELECT], "step 1: unknown operator 'sort'"),
])
def test_malformed_recipes_name_the_file_step_and_key(steps, needle):
    with pytest.raises(NagInputError) as err:
        recipe(*steps)
    assert str(err.value).startswith(f"{PATH}: ") and needle in str(err.value), str(err.value)


def test_top_level_keys_targets_and_yaml_errors(tmp_path):
    with pytest.raises(NagInputError, match=r"recipe: unknown key\(s\) \['stepz'\]"):
        parse_recipe("r", {"stepz": []}, PATH)
    with pytest.raises(NagInputError, match="targets: lists a target twice"):
        parse_recipe("r", {"targets": ["a", "a"], "steps": [FUSE, SELECT]}, PATH)
    bad = tmp_path / "broken.yaml"
    bad.write_text("steps: [fuse: {signals: {dsir: 1}\n")
    with pytest.raises(NagInputError, match=r"broken.yaml: not valid YAML"):
        load_recipe(bad)
    hostile = tmp_path / "a;drop.yaml"
    hostile.write_text("steps: []\n")
    with pytest.raises(NagInputError, match="recipe name 'a;drop' is not usable"):
        load_recipe(hostile)
    r = parse_recipe("r", {"targets": "all", "steps": [FUSE, SELECT]}, PATH)
    with pytest.raises(NagInputError, match=r"'targets' names \['zz'\]"):
        parse_recipe("r", {"targets": ["zz"], "steps": [FUSE, SELECT]}, PATH).resolved_targets(["a"])
    assert r.resolved_targets(["b", "a"]) == ["a", "b"]


def test_digest_ignores_formatting_but_not_content():
    a = recipe(FUSE, SELECT)
    b = parse_recipe("r", {"targets": ["a"], "model": "minilm-l6", "steps": [FUSE, {"select": {"budget_fraction": 0.5}}]}, PATH)
    c = recipe(FUSE, {"select": {"budget_fraction": 0.4}})
    assert a.digest == b.digest != c.digest


def test_normalisations():
    v = np.array([3.0, 1.0, 2.0, 2.0, np.nan])
    np.testing.assert_allclose(normalize(v, "rank")[:4], [1.0, 0.25, 0.625, 0.625])  # ties share (2+3)/2 = 2.5 of 4
    np.testing.assert_allclose(normalize(v, "minmax")[:4], [1.0, 0.0, 0.5, 0.5])
    z = normalize(v, "zscore")[:4]
    np.testing.assert_allclose(z, (v[:4] - 2.0) / np.std(v[:4]))
    assert np.isnan(normalize(v, "rank")[4])
    assert (normalize(np.array([5.0, 5.0]), "zscore") == 0).all() and (normalize(np.array([5.0, 5.0]), "minmax") == 0).all()


def pool(n=10, source=None):
    frame = pl.DataFrame({"docid": [f"d{i}" for i in range(n)], "token_num": [10] * n})
    return frame.with_columns(pl.Series("source", source)) if source is not None else frame


def signals(values: dict[tuple[str, str | None], list[float | None]]) -> pl.DataFrame:
    rows = [(f"d{i}", s, t, v) for (s, t), vs in values.items() for i, v in enumerate(vs) if v is not None]
    return pl.DataFrame(rows, schema={"docid": pl.String, "signal": pl.String, "target": pl.String, "value": pl.Float64},
                        orient="row")


def test_single_target_keeps_the_top_prefix_and_records_every_decision():
    sig = signals({("nag_contrastive", "a"): [float(i) for i in range(10)],
                   ("quality_alnum_share", None): [0.9] * 9 + [0.1]})
    r = recipe({"filter": {"signal": "quality_alnum_share", "min": 0.5}}, FUSE, {"select": {"budget_fraction": 0.3}})
    res = run_recipe(r, ["a"], pool(), sig)
    # d9 has the best score but fails the filter; the budget (30 of 100 tokens) keeps d8, d7, d6.
    assert res.members["docid"].to_list() == ["d8", "d7", "d6"]
    assert res.members["cum_tokens"].to_list() == [10, 20, 30]
    out = dict(zip(res.decisions["docid"], res.decisions["outcome"]))
    assert out["d9"] == "filtered" and out["d5"] == "budget" and out["d8"] == "selected"
    steps = dict(zip(res.decisions["docid"], res.decisions["step"]))
    assert steps["d9"] == 1 and steps["d8"] == 3
    assert res.stats["budget_tokens"] == 30 and res.stats["filtered"] == 1
    d8 = res.signal_values.filter(pl.col("docid") == "d8", pl.col("signal") == "nag_contrastive").row(0, named=True)
    assert d8["value"] == 8.0 and d8["norm"] == pytest.approx(1.0) and d8["rank"] == 1.0 and d8["weight"] == 1.0


def test_missing_policies_are_explicit():
    sig = signals({("nag_contrastive", "a"): [float(i) for i in range(9)] + [None]})
    with pytest.raises(NagInputError, match=r"step 1 \(fuse\): signal 'nag_contrastive' has no value for 1 document.*d9"):
        run_recipe(recipe(FUSE, SELECT), ["a"], pool(), sig)
    zero = recipe({"fuse": {"signals": {"nag_contrastive": 1.0}, "missing": "zero"}}, SELECT)
    res = run_recipe(zero, ["a"], pool(), sig)
    assert res.decisions.filter(pl.col("docid") == "d9")["score"].to_list() == [0.0]
    drop = recipe({"fuse": {"signals": {"nag_contrastive": 1.0}, "missing": "drop"}}, SELECT)
    res = run_recipe(drop, ["a"], pool(), sig)
    assert res.decisions.filter(pl.col("docid") == "d9")["outcome"].to_list() == ["dropped_missing"]


def test_fused_score_is_the_weighted_sum_of_normalised_signals():
    sig = signals({("nag_contrastive", "a"): [0.0, 1.0, 2.0, 3.0], ("dsir", "a"): [3.0, 2.0, 1.0, 0.0]})
    r = recipe({"fuse": {"signals": {"nag_contrastive": 1.0, "dsir": 0.5}, "normalize": "minmax"}}, SELECT)
    res = run_recipe(r, ["a"], pool(4), sig)
    fused = dict(zip(res.decisions["docid"], res.decisions["score"]))
    expected = {f"d{i}": i / 3 + 0.5 * (3 - i) / 3 for i in range(4)}
    assert fused == pytest.approx(expected)


def test_source_quota_caps_each_source():
    sig = signals({("nag_contrastive", "a"): [float(i) for i in range(10)]})
    res = run_recipe(recipe(FUSE, {"select": {"budget_fraction": 0.4, "max_source_share": 0.5}}), ["a"],
                     pool(source=["x"] * 5 + ["y"] * 5), sig)
    # budget 40 tokens, quota 20 per source: the two best y (d9, d8), then the two best x (d4, d3).
    assert res.members["docid"].to_list() == ["d9", "d8", "d4", "d3"]
    assert res.stats["tokens_by_source"] == {"x": 20, "y": 20}
    assert set(res.decisions.filter(pl.col("outcome") == "source_quota")["docid"]) == {"d7", "d6", "d5"}


def two_targets():
    # Target a prefers high i, target b prefers low i; b's scores are all larger in raw value.
    return signals({("nag_contrastive", "a"): [float(i) for i in range(10)],
                    ("nag_contrastive", "b"): [100.0 - i for i in range(10)]})


def test_bids_feeds_the_target_furthest_below_its_share():
    r = recipe(FUSE, {"balance": "bids"}, {"select": {"budget_fraction": 0.4}}, targets=("a", "b"))
    res = run_recipe(r, ["a", "b"], pool(), two_targets())
    assert list(zip(res.members["docid"], res.members["target"])) == [("d9", "a"), ("d0", "b"), ("d8", "a"), ("d1", "b")]
    assert res.stats["tokens_by_target"] == {"a": 20, "b": 20}


def test_equal_budget_gives_each_target_its_share_and_no_document_twice():
    sig = signals({("nag_contrastive", "a"): [float(i) for i in range(10)],
                   ("nag_contrastive", "b"): [float(i) for i in range(10)]})  # both want the same documents
    r = recipe(FUSE, {"balance": "equal_budget"}, {"select": {"budget_fraction": 0.4}}, targets=("a", "b"))
    res = run_recipe(r, ["a", "b"], pool(), sig)
    assert res.members["docid"].n_unique() == res.members.height == 4
    assert res.stats["tokens_by_target"] == {"a": 20, "b": 20}
    assert res.members["docid"].to_list() == ["d9", "d8", "d7", "d6"]


def test_without_balance_several_targets_rank_by_their_mean():
    r = recipe(FUSE, {"select": {"budget_fraction": 0.2}}, targets=("a", "b"))
    res = run_recipe(r, ["a", "b"], pool(), two_targets())
    # rank norms: a gives d_i (i+1)/10, b gives (10-i)/10: every mean is 0.55, so docid order decides.
    assert res.members["docid"].to_list() == ["d0", "d1"]
    assert set(res.decisions["target"]) == {"a", "b", COMBINED}


def test_empty_pool_and_a_budget_smaller_than_any_document():
    with pytest.raises(NagInputError, match="the pool is empty"):
        run_recipe(recipe(FUSE, SELECT), ["a"], pool(0), signals({}))
    sig = signals({("nag_contrastive", "a"): [1.0, 2.0]})
    with pytest.raises(NagInputError) as err:  # a budget of 0 tokens selects nothing: an error, never an empty subset
        run_recipe(recipe(FUSE, {"select": {"budget_fraction": 0.01}}), ["a"], pool(2), sig)
    assert str(err.value).startswith(f"{PATH}: step 2 (select).budget_fraction 0.01 gives a budget of 0 tokens")
    assert "best-ranked document alone has 10 tokens" in str(err.value) and "at least 0.5" in str(err.value)
    both = recipe(FUSE, {"balance": "equal_budget"}, {"select": {"budget_fraction": 0.15}}, targets=("a", "b"))
    with pytest.raises(NagInputError, match=r"0.15, shared by 2 targets, gives a budget of 1 tokens .* at least 1\b"):
        run_recipe(both, ["a", "b"], pool(2), two_targets())


def test_the_shipped_recommended_recipe_parses():
    import nag_core

    recipe = load_recipe(Path(nag_core.__file__).parent / "recipe_library" / "recommended.yaml")
    assert recipe.targets is None and recipe.select.budget_fraction == 0.2
    assert dict(recipe.fuse.weights) == {"nag_contrastive": 1.0, "bm25": 0.5} and recipe.fuse.normalize == "minmax"
