"""SIGKILL mid-extraction and mid-write, then rerun: the result equals a clean run, with nothing left over."""

import random
import shutil
import signal
import threading

import dagster as dg
import pytest
from reliability_helpers import differences, leftovers, run_cli, small_home, snapshot

from nag_core.warehouse import Warehouse
from nag_select.runner import run_stale

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """The reference: one uninterrupted run (in process) on a pristine copy."""
    home = small_home(tmp_path_factory.mktemp("clean") / "home")
    pristine = tmp_path_factory.mktemp("pristine") / "home"
    shutil.copytree(home, pristine)
    report = run_stale(home, dg.DagsterInstance.ephemeral(), device="cpu", log=lambda m: None)
    assert not report.failures
    return home, pristine


def kill_when(proc, marker: str, delay_s: float) -> list[str]:
    """Read the run's output; ``delay_s`` after the first line containing ``marker``, SIGKILL it."""
    lines: list[str] = []
    timer = None
    for line in proc.stdout:
        lines.append(line)
        if timer is None and marker in line:
            timer = threading.Timer(delay_s, proc.send_signal, [signal.SIGKILL])
            timer.start()
    proc.wait(120)
    if timer is not None:
        timer.cancel()
    return lines


@pytest.mark.parametrize(("marker", "seed"), [
    ("materialising activation_cache", 1),  # inside a forward pass or the cache write
    ("materialising influence_scores", 2),  # while signals are written
    ("materialising selected_subset", 3),  # mid-write of subset Parquet, manifest and rows
])
def test_killed_run_then_rerun_equals_a_clean_run(clean, tmp_path, marker, seed):
    clean_home, pristine = clean
    home = tmp_path / "home"
    shutil.copytree(pristine, home)
    delay = random.Random(seed).uniform(0.0, 0.5)
    proc = run_cli(home)
    out = kill_when(proc, marker, delay)
    assert proc.returncode == -signal.SIGKILL, "".join(out[-20:])  # it really died mid-run

    rerun = run_cli(home)
    log = rerun.communicate(timeout=300)[0]
    assert rerun.returncode == 0, log
    assert leftovers(home) == []
    assert differences(snapshot(home), snapshot(clean_home)) == []

    again = run_cli(home)  # no change: no work
    log = again.communicate(timeout=300)[0]
    assert again.returncode == 0 and "0 partitions materialised" in log and "materialising" not in log, log


def test_materialising_a_partition_twice_leaves_one_copy(clean, tmp_path):
    clean_home, _ = clean
    home = tmp_path / "home"
    shutil.copytree(clean_home, home)
    before = snapshot(home)
    wh = Warehouse(home)
    for name in ("raw_pool@s1", "dedup_pool@s1", "activation_cache@minilm-l6@s1"):
        wh.delete("materializations", name)  # forget that these were built: they run again
    report = run_stale(home, dg.DagsterInstance.ephemeral(), device="cpu", log=lambda m: None)
    assert sorted(report.materialized) == [("activation_cache", "minilm-l6|s1"), ("dedup_pool", "s1"), ("raw_pool", "s1")]
    assert differences(snapshot(home), before) == []  # same rows, once each; downstream untouched (same data versions)
