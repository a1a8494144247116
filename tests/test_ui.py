"""The Dagster UI on a built data root: lineage, runs and metadata, over GraphQL and in a real browser."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg
import pytest

from nag_core.warehouse import Warehouse
from nag_select.runner import run_stale

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def graphql(port, query):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=json.dumps({"query": query}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())["data"]


@pytest.fixture
def webserver(demo_copy, tmp_path):
    """Reselect into a persistent instance, then serve the UI on it, as `nag-select ui` does."""
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    Warehouse(demo_copy).delete("materializations", "selected_subset@minilm-l6@grade_school_math")
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        report = run_stale(demo_copy, instance, device="cpu", log=lambda m: None)
    assert ("selected_subset", "minilm-l6|grade_school_math") in report.materialized
    port = free_port()
    env = {**os.environ, "NAG_HOME": str(demo_copy), "DAGSTER_HOME": str(dagster_home), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "dagster_webserver", "-w", str(REPO / "workspace.yaml"), "-h", "127.0.0.1",
                             "-p", str(port)], cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5)
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail("dagster-webserver did not start")
            time.sleep(1)
    yield port
    proc.terminate()
    proc.wait(30)


def test_ui_serves_lineage_runs_and_metadata(webserver):
    data = graphql(webserver, "{ assetNodes { assetKey { path } dependencyKeys { path } } }")
    deps = {n["assetKey"]["path"][0]: {d["path"][0] for d in n["dependencyKeys"]} for n in data["assetNodes"]}
    assert deps["selected_subset"] == {"influence_scores", "dedup_pool"}
    assert deps["influence_scores"] == {"neuron_graph", "activation_cache"}
    assert deps["raw_pool"] == {"pool_files"}
    runs = graphql(webserver, '{ runsOrError { ... on Runs { results { status pipelineName } } } }')["runsOrError"]["results"]
    assert {"status": "SUCCESS", "pipelineName": "reselect_job"} in runs

    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium); the GraphQL checks above passed")
    dom = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                          "--disable-background-networking", "--disable-component-update", "--disable-sync",
                          f"--user-data-dir={Path(os.environ.get('TMPDIR', '/tmp')) / f'nag-ui-{webserver}'}",
                          "--virtual-time-budget=30000", "--dump-dom",
                          f"http://127.0.0.1:{webserver}/assets/selected_subset"],
                         capture_output=True, text=True, timeout=180).stdout
    assert "influence_scores" in dom  # the upstream asset in the lineage panel
    assert "token_share" in dom  # materialisation metadata rendered by the browser
