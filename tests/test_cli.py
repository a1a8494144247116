"""The console script, run as a user runs it: in a subprocess, on a small real data root."""

import json
import os
import subprocess
import sys

import polars as pl
import pytest

pytestmark = pytest.mark.slow

MATH = ["Tom has {n} apples and buys {m} more. How many apples does he have? {n} + {m} = {s}.",
        "A train travels {n} km per hour for {m} hours. It covers {n} * {m} km in total."]
LAW = ["The lessee shall pay rent of {n} dollars on day {m} of each month under clause {s} of this lease.",
       "The court held that the contract was void because clause {n} breached statute {m}."]


def make_home(root):
    (root / "pool").mkdir(parents=True)
    rows = [{"docid": f"m{i}", "text": MATH[i % 2].format(n=i, m=i + 2, s=2 * i + 2), "domain": "math"} for i in range(20)]
    rows += [{"docid": f"l{i}", "text": LAW[i % 2].format(n=i, m=i + 3, s=i + 7), "domain": "law"} for i in range(20)]
    pl.DataFrame(rows[::2]).write_parquet(root / "pool" / "a.parquet")
    with open(root / "pool" / "b.jsonl", "w") as fh:
        for row in rows[1::2]:
            fh.write(json.dumps(row) + "\n")
    for name, template in (("math", MATH), ("law", LAW)):
        (root / "targets" / name).mkdir(parents=True)
        with open(root / "targets" / name / "train.jsonl", "w") as fh:
            for i in range(6):
                fh.write(json.dumps({"text": template[i % 2].format(n=i + 50, m=i + 9, s=i + 61)}) + "\n")
    return root


def cli(*args, home):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "DAGSTER_HOME": str(home.parent / "dagster_home")}
    return subprocess.run([sys.executable, "-m", "nag_select.cli", *args, "--home", str(home)],
                          capture_output=True, text=True, env=env, timeout=600)


def test_run_prints_summary_then_reruns_nothing_and_exports(tmp_path):
    home = make_home(tmp_path / "home")
    first = cli("run", home=home)
    assert first.returncode == 0, first.stderr
    assert "Telemetry" not in first.stderr and "Warning" not in first.stderr, first.stderr[:2000]
    assert "math__minilm-l6  (single" in first.stdout and "by domain: math=" in first.stdout
    assert "mixture__minilm-l6  (mixture" in first.stdout
    math = pl.read_parquet(home / "subsets" / "math__minilm-l6.parquet")
    assert set(math["domain"]) == {"math"}

    second = cli("run", home=home)
    assert second.returncode == 0 and "0 partitions materialised" in second.stdout and "nothing was stale" in second.stdout
    status = cli("status", home=home)
    assert "selected_subset" in status.stdout and " 0 stale" in status.stdout
    assert status.stdout.splitlines()[0] == f"outputs: {home}"

    out = tmp_path / "features.jsonl"
    export = cli("export-features", "--model", "minilm-l6", "--out", str(out), home=home)
    assert export.returncode == 0, export.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 40
    assert set(records[0]) == {"docid", "fwd_up_feature"}
    assert len(records[0]["fwd_up_feature"]["layer_topk_value_index"]) == 6 * 20

    # The other direction: adopt those features as shard a's cache; nothing downstream changes.
    (home / "cache" / "activations" / "minilm-l6" / "a.parquet").unlink()
    imported = cli("import-features", "--model", "minilm-l6", "--shard", "a", "--in", str(out), home=home)
    assert imported.returncode == 0, imported.stderr
    assert "0 partitions materialised" in cli("run", home=home).stdout
    truncated = tmp_path / "partial.jsonl"
    truncated.write_text("\n".join(out.read_text().splitlines()[:3]) + "\n")
    partial = cli("import-features", "--model", "minilm-l6", "--shard", "a", "--in", str(truncated), home=home)
    assert partial.returncode == 2 and "no features for" in partial.stderr

    query = cli("query", "SELECT count(*) AS n FROM subset_members WHERE subset = 'law__minilm-l6'", home=home)
    assert query.returncode == 0 and "n" in query.stdout
    assert (tmp_path / "dagster_home" / "history").exists() or any((tmp_path / "dagster_home").iterdir())


def test_errors_are_one_clear_line_with_exit_code_2(tmp_path):
    missing = cli("run", home=tmp_path / "nope")
    assert missing.returncode == 2 and "no such data root" in missing.stderr and "Traceback" not in missing.stderr
    home = make_home(tmp_path / "home")
    (home / "nag.yaml").write_text("top_k: 0\n")
    bad = cli("run", home=home)
    assert bad.returncode == 2 and "top_k" in bad.stderr and "nag.yaml" in bad.stderr
    export = cli("export-features", "--model", "ghost", "--out", str(tmp_path / "x.jsonl"), home=home)
    assert export.returncode == 2 and "no activation cache for model 'ghost'" in export.stderr
