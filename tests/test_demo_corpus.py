"""The demo home must be reproducible and must hold exactly what the demo run relies on."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
import yaml

from nag_core import demo_corpus
from nag_core.demo_corpus import DEMO_TARGET_DOMAINS, normalise, write_demo_home


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _pool(root: Path) -> pl.DataFrame:
    pool = root / "pool"
    frames = [pl.read_parquet(pool / "shard-000.parquet"), pl.read_parquet(pool / "shard-001.parquet"), pl.read_ndjson(pool / "shard-002.jsonl")]
    shards = ["shard-000.parquet", "shard-001.parquet", "shard-002.jsonl"]
    return pl.concat([f.with_columns(shard=pl.lit(s)) for f, s in zip(frames, shards)])


def _target_texts(root: Path) -> dict[str, list[str]]:
    """Read each target the way a user's folder would be read: files plus an optional template."""
    out = {}
    for name in DEMO_TARGET_DOMAINS:
        folder = root / "targets" / name
        spec = folder / "target.yaml"
        template = yaml.safe_load(spec.read_text())["template"] if spec.exists() else "{text}"
        rows: list[dict] = []
        for path in sorted(folder.iterdir()):
            if path.suffix == ".jsonl":
                rows += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            elif path.suffix == ".json":
                rows += json.loads(path.read_text())
            elif path.suffix == ".parquet":
                rows += pl.read_parquet(path).to_dicts()
        out[name] = [template.format(**row) for row in rows]
    return out


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("demo")
    return root, write_demo_home(root, seed=0)


def test_module_does_not_import_dagster():
    assert "dagster" not in Path(demo_corpus.__file__).read_text()


def test_same_seed_gives_identical_bytes(home, tmp_path):
    root, _ = home
    write_demo_home(tmp_path / "again", seed=0)
    first, second = _files(root), _files(tmp_path / "again")
    assert sorted(first) == sorted(second)
    for name in first:
        assert first[name] == second[name], name


def test_different_seed_differs(home, tmp_path):
    root, _ = home
    write_demo_home(tmp_path / "other", seed=1)
    first, other = _files(root), _files(tmp_path / "other")
    assert sorted(first) == sorted(other)
    for name in first:
        if not name.endswith(".yaml"):
            assert first[name] != other[name], name


def test_layout_and_summary(home):
    root, summary = home
    assert set(_files(root)) == {
        "pool/shard-000.parquet", "pool/shard-001.parquet", "pool/shard-002.jsonl",
        "targets/grade_school_math/train.jsonl", "targets/grade_school_math/target.yaml",
        "targets/python_code/examples.json", "targets/python_code/target.yaml",
        "targets/clinical_medicine/examples.parquet", "recipes/math_and_code.yaml",
    }
    df = _pool(root)
    assert summary["documents"] == df.height == 6 * demo_corpus.DOCS_PER_DOMAIN + 5
    assert summary["shards"] == ["pool/shard-000.parquet", "pool/shard-001.parquet", "pool/shard-002.jsonl"]
    assert summary["targets"] == list(DEMO_TARGET_DOMAINS)
    counts = dict(df.group_by("domain").len().iter_rows())
    assert summary["domains"] == counts
    assert set(counts) == set(demo_corpus.DOMAINS)
    assert sum(counts.values()) - 5 == 6 * demo_corpus.DOCS_PER_DOMAIN
    assert all(demo_corpus.DOCS_PER_DOMAIN <= c <= demo_corpus.DOCS_PER_DOMAIN + 5 for c in counts.values())
    per_shard = dict(df.group_by("shard").len().iter_rows())
    assert all(140 <= n <= 160 for n in per_shard.values()), per_shard


def test_pool_columns_and_docids(home):
    df = _pool(home[0])
    for path in sorted((home[0] / "pool").iterdir()):
        cols = pl.read_parquet(path).columns if path.suffix == ".parquet" else pl.read_ndjson(path).columns
        assert cols == ["docid", "text", "domain", "source"]
    assert df["docid"].n_unique() == df.height
    assert df["docid"].str.contains(r"^demo-\d{6}$").all()
    assert (df["source"] == "demo").all()
    # every domain is mixed into every shard, not written shard by shard
    assert df.group_by("shard").agg(pl.col("domain").n_unique())["domain"].min() == 6


def test_lengths_vary_within_range(home):
    words = [len(t.split()) for t in _pool(home[0])["text"]]
    assert min(words) >= demo_corpus.MIN_WORDS and max(words) <= demo_corpus.MAX_WORDS
    assert max(words) - min(words) > 100


def test_planted_duplicates_are_exactly_as_planned(home):
    df = _pool(home[0])
    texts = df["text"].to_list()
    assert len(texts) - len(set(texts)) == demo_corpus.EXACT_DUPLICATES
    keys = [normalise(t) for t in texts]
    assert len(keys) - len(set(keys)) == demo_corpus.EXACT_DUPLICATES + demo_corpus.CASE_VARIANTS
    # all copies sit in the one shard, beside their originals
    dup_keys = {k for k in keys if keys.count(k) > 1}
    shards = set(df.filter(pl.Series([k in dup_keys for k in keys]))["shard"])
    assert shards == {demo_corpus.DUPLICATE_SHARD}
    # the copies keep their original's domain
    for k in dup_keys:
        assert len({d for d, kk in zip(df["domain"], keys) if kk == k}) == 1


def test_targets_are_readable_and_new(home):
    root, _ = home
    targets = _target_texts(root)
    assert set(targets) == set(DEMO_TARGET_DOMAINS)
    pool_keys = {normalise(t) for t in _pool(root)["text"]}
    pool_texts = set(_pool(root)["text"])
    for name, texts in targets.items():
        assert len(texts) == demo_corpus.TARGET_EXAMPLES, name
        assert len(set(texts)) == len(texts), name
        assert all(t.strip() for t in texts)
        assert not set(texts) & pool_texts, name
        assert not {normalise(t) for t in texts} & pool_keys, name


def test_target_formats(home):
    root = home[0] / "targets"
    first = json.loads((root / "grade_school_math" / "train.jsonl").read_text().splitlines()[0])
    assert set(first) == {"question", "answer"} and "The answer is" in first["answer"]
    code = json.loads((root / "python_code" / "examples.json").read_text())
    assert all(set(row) == {"prompt", "canonical_solution", "task_id"} for row in code)
    for row in code:  # each example is a complete, valid function
        compile(row["prompt"] + row["canonical_solution"], row["task_id"], "exec")
    assert pl.read_parquet(root / "clinical_medicine" / "examples.parquet").columns == ["text"]
    assert not (root / "clinical_medicine" / "target.yaml").exists()


def test_code_documents_are_valid_python(home):
    df = _pool(home[0]).filter(pl.col("domain") == "code")
    for docid, text in df.select("docid", "text").iter_rows():
        compile(text, docid, "exec")
