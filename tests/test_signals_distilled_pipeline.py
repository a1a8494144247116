"""The distilled scorer as a pipeline signal: fitted on a seeded sample of NAG scores, run on every kept document."""

import json
import random
import shutil

import dagster as dg
import numpy as np
import polars as pl
import pytest
from conftest import run_clean, tiny_home
from scipy.stats import spearmanr

from nag_core.freshness import State
from nag_core.gc import find_garbage
from nag_core.home import Home
from nag_core.signal_steps import distilled_sample
from nag_core.signals.distilled import DistilledScorer
from nag_core.warehouse import Warehouse
from nag_select.runner import run_stale

pytestmark = pytest.mark.slow

_rng = random.Random(7)
_NAMES = ["Tom", "Ann", "Priya", "Carlos", "Mei", "Olu", "Sven", "Lena", "Yusuf", "Ines", "Kofi", "Rosa"]
_THINGS = ["apples", "marbles", "pencils", "stickers", "oranges", "coins", "books", "cookies"]
_MATH = ["{a} has {x} {t} and buys {y} more. How many {t} does {a} have now? {a} has {s} {t}.",
         "If {a} gives {y} of {x} {t} to {b}, then {a} keeps {d} {t} and {b} gets {y}.",
         "{a} splits {p} {t} equally among {x} friends, so each friend receives {y} {t}.",
         "A box holds {x} {t}. {b} fills {y} boxes, which makes {p} {t} altogether."]
_LAW = ["The tenant shall pay the landlord {x} dollars on the first day of each month under clause {y}.",
        "Under section {y} of the statute, {a} may appeal the judgment within {x} days of the court's order.",
        "The contract between {a} and {b} is void if either party breaches the confidentiality clause.",
        "The defendant, {b}, was found liable for negligence and ordered to pay damages of {p} dollars.",
        "The court held that the lease terminated when {a} failed to give {x} days' written notice."]


def _fill(template: str) -> str:
    a, b = _rng.sample(_NAMES, 2)
    x, y = _rng.randint(2, 40), _rng.randint(2, 9)
    return template.format(a=a, b=b, t=_rng.choice(_THINGS), x=x, y=y, s=x + y, d=max(x - y, 0), p=x * y)


MATH = [_fill(_MATH[i % len(_MATH)]) for i in range(20)]
LAW = [_fill(_LAW[i % len(_LAW)]) for i in range(20)]
TARGET = [_fill(_MATH[i % len(_MATH)]) for i in range(8)]  # contrastive NAG needs a few examples to be sharp
SETTINGS = """\
signals:
  families: [distilled]
  distilled: {sample_fraction: 0.5, min_documents: 8, n_features: 65536}
"""


@pytest.fixture(scope="module")
def distilled_home(tmp_path_factory):
    home = tiny_home(tmp_path_factory.mktemp("distilled") / "home", MATH + LAW, {"math": TARGET[0]})
    (home / "targets" / "math" / "t.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in TARGET))
    (home / "nag.yaml").write_text(SETTINGS)
    (home / "recipes").mkdir()
    (home / "recipes" / "cheap.yaml").write_text(
        "targets: [math]\nsteps:\n  - fuse: {signals: {distilled_nag: 1.0}}\n  - select: {budget_fraction: 0.3}\n")
    report = run_clean(home)
    return home, report


def _signal(home, name: str) -> pl.DataFrame:
    return Warehouse(home).read("signals").filter(pl.col("signal") == name).sort("docid")


def test_distilled_rows_cover_the_kept_pool_with_lineage(distilled_home):
    home, report = distilled_home
    assert [k for a, k in report.materialized if a == "distilled_scores"] == ["minilm-l6|math"]
    assert not {a for a, _ in report.materialized} & {"dsir_scores", "bm25_scores", "embedding_scores", "proxy_lm"}
    rows = _signal(home, "distilled_nag")
    kept = sorted(Warehouse(home).read("pool_kept")["docid"].to_list())
    assert len(kept) >= 30, "the pool should survive dedup mostly intact"
    assert rows["docid"].to_list() == kept and rows["value"].is_finite().all()
    state = State(Home(home))
    assert set(rows["asset"]) == {"distilled_scores"} and set(rows["target"]) == {"math"}
    assert set(rows["model"]) == {"minilm-l6"} and set(rows["code_version"]) == {"1"}
    assert set(rows["config_hash"]) == {state.settings.hash_for("distilled")}
    assert rows["run_id"].null_count() == 0 and rows["run_id"].n_unique() == 1


def test_distilled_score_imitates_nag_contrastive_and_separates_the_domains(distilled_home):
    home, _ = distilled_home
    distilled, teacher = _signal(home, "distilled_nag"), _signal(home, "nag_contrastive")
    assert distilled["docid"].to_list() == teacher["docid"].to_list()
    rho = spearmanr(distilled["value"].to_numpy(), teacher["value"].to_numpy()).statistic
    assert rho > 0.6, rho
    # On the documents it never saw a label for, it still ranks like NAG.
    state = State(Home(home))
    docids = distilled["docid"].to_list()
    sample = set(distilled_sample(docids, state.settings))
    assert 8 <= len(sample) < len(docids) and sample == set(distilled_sample(docids, state.settings))
    rest = [i for i in range(len(docids)) if i not in sample]
    held_out = spearmanr(distilled["value"].to_numpy()[rest], teacher["value"].to_numpy()[rest]).statistic
    assert held_out > 0.6, held_out
    math_ids = set(Warehouse(home).read("documents").filter(pl.col("text").is_in(MATH))["docid"].to_list())
    is_math = np.array([d in math_ids for d in docids])
    values = distilled["value"].to_numpy()
    assert values[is_math].mean() > values[~is_math].mean()


def test_the_stored_scorer_reproduces_the_signal_and_gc_knows_it(distilled_home, tmp_path):
    home, _ = distilled_home
    path = home / "cache" / "distilled" / "minilm-l6" / "math.npz"
    scorer = DistilledScorer.from_bytes(path.read_bytes())
    assert scorer.settings["n_features"] == 65536 and scorer.settings["alpha"] == 1.0
    docs = Warehouse(home).read("documents").join(_signal(home, "distilled_nag"), on="docid").sort("docid")
    np.testing.assert_allclose(scorer.score(docs["text"].to_list()), docs["value"].to_numpy(), rtol=0, atol=1e-12)
    copy = tmp_path / "home"
    shutil.copytree(home, copy, ignore=shutil.ignore_patterns("dagster_home"))
    stale = copy / "cache" / "distilled" / "minilm-l6" / "gone.npz"
    stale.write_bytes(path.read_bytes())  # a target that no longer exists
    garbage = {p.relative_to(copy).as_posix() for p in find_garbage(Home(copy)).files}
    assert "cache/distilled/minilm-l6/gone.npz" in garbage
    assert not any(g.endswith("math.npz") or "distilled_scores@minilm-l6@math" in g for g in garbage)


def test_a_recipe_fuses_the_distilled_signal_and_records_its_provenance(distilled_home):
    home, _ = distilled_home
    manifest = json.loads((home / "manifests" / "cheap__recipe.json").read_text())
    used = {s["signal"]: s for s in manifest["signals_used"]}
    assert set(used) == {"distilled_nag"} and used["distilled_nag"]["asset"] == "distilled_scores"
    assert used["distilled_nag"]["data_version"] and used["distilled_nag"]["model"] == "minilm-l6"
    members = Warehouse(home).read("subset_members").filter(pl.col("subset") == "cheap__recipe")
    texts = Warehouse(home).read("documents").filter(pl.col("docid").is_in(members["docid"].to_list()))["text"]
    assert members.height >= 3 and sum(t in MATH for t in texts) / texts.len() >= 0.8


def test_nothing_reruns_and_switching_the_family_off_names_the_option(distilled_home, tmp_path):
    home, _ = distilled_home
    copy = tmp_path / "home"
    shutil.copytree(home, copy, ignore=shutil.ignore_patterns("dagster_home"))
    assert State(Home(copy)).stale("distilled_scores") == []
    (copy / "nag.yaml").write_text("signals:\n  families: []\n")
    report = run_stale(copy, dg.DagsterInstance.ephemeral(), device="cpu", log=lambda m: None,
                       only=["distilled_scores", "recipe_subset"])
    assert [(a, k) for a, k, _ in report.failures] == [("recipe_subset", "cheap")]
    assert "add 'distilled' to 'signals.families'" in report.failures[0][2]


@pytest.mark.parametrize("body, message", [
    ("distilled: {signal: bm25}", "must be one of"),
    ("distilled: {sample_fraction: 0}", "sample_fraction"),
    ("distilled: {min_documents: 50, max_documents: 10}", "exceeds"),
    ("distilled: {alpha: -1}", "alpha"),
    ("distilled: {sampel_fraction: 0.1}", "must be a mapping with keys"),
])
def test_bad_distilled_settings_name_the_setting(tmp_path, body, message):
    from nag_core.errors import NagInputError
    from nag_core.settings import load_settings

    path = tmp_path / "nag.yaml"
    path.write_text(f"signals:\n  families: [distilled]\n  {body}\n")
    with pytest.raises(NagInputError, match=message):
        load_settings(path)
    path.write_text("signals:\n  families: [distilled]\n  distilled: {sample_fraction: 0.1, seed: 3}\n")
    settings = load_settings(path)
    assert settings.signals.distilled.sample_fraction == 0.1 and settings.hash_for("distilled") != \
        load_settings(tmp_path / "missing.yaml").hash_for("distilled")
