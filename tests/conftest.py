"""Shared fixtures: offline Hugging Face, and a demo data root built and selected once per session."""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
warnings.filterwarnings("ignore", message=".*is currently in beta.*")

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "eval"


@pytest.fixture(scope="session")
def built_demo(tmp_path_factory):
    """A demo data root after one full `run_stale`, plus the instance that recorded it."""
    import dagster as dg

    from nag_core.demo_corpus import write_demo_home
    from nag_select.runner import run_stale

    home = tmp_path_factory.mktemp("demo") / "home"
    write_demo_home(home, seed=0)
    instance = dg.DagsterInstance.ephemeral()
    report = run_stale(home, instance, device="cpu", log=lambda m: None)
    assert not report.failures, report.failures
    return home, instance, report


def run_clean(home: Path):
    """``run_stale`` on a fresh ephemeral instance; every partition must succeed."""
    import dagster as dg

    from nag_select.runner import run_stale

    report = run_stale(home, dg.DagsterInstance.ephemeral(), device="cpu", log=lambda m: None)
    assert not report.failures, report.failures
    return report


@pytest.fixture
def demo_copy(built_demo, tmp_path):
    """A private copy of the built demo root, for tests that change inputs."""
    home, _, _ = built_demo
    copy = tmp_path / "home"
    shutil.copytree(home, copy, ignore=shutil.ignore_patterns("dagster_home"))
    return copy


@pytest.fixture(scope="module")
def one_torch_thread():
    """Small CPU matmuls gain nothing from threads, and contended intra-op threads slow them badly."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_home(root: Path, pool_texts: list[str], targets: dict[str, str]) -> Path:
    """A data root with one shard ``s1`` and one single-example target per entry."""
    import polars as pl

    (root / "pool").mkdir(parents=True)
    pl.DataFrame({"text": pool_texts}).write_parquet(root / "pool" / "s1.parquet")
    for name, text in targets.items():
        (root / "targets" / name).mkdir(parents=True)
        (root / "targets" / name / "t.jsonl").write_text(json.dumps({"text": text}) + "\n")
    return root


def assert_same_topk(a_idx, a_val, b_idx, b_val, where: str, tol: float = 1e-5) -> None:
    """Two extractions of one document agree: values close, indices equal except where two
    neurons' impacts tie to within float rounding (batched matmuls round differently)."""
    np.testing.assert_allclose(a_val, b_val, rtol=tol, atol=tol, err_msg=where)
    for layer in range(a_idx.shape[0]):
        ai, bi = a_idx[layer].tolist(), b_idx[layer].tolist()
        for p in np.flatnonzero(a_idx[layer] != b_idx[layer]):
            # a swap inside the top-K, or the K-th place taken by a neuron tied with it
            other = b_val[layer, bi.index(ai[p])] if ai[p] in bi else b_val[layer, -1]
            assert abs(a_val[layer, p] - other) <= tol * (1 + abs(other)), (
                f"{where}: layer {layer} indices {ai} != {bi} beyond a tie")


def requires_shared(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is absent: these tests read the shared evaluation data beside the project (../shared)")
    return path
