"""Outputs on S3 through s3fs, against a local S3 API server (moto's), with every command in its own process.

The in-memory store (``test_storage.py``) lives inside one process; this is the shared-store
case a cluster has: ``nag-select run --parallel 2`` (worker processes), then ``query``,
``status`` and a rerun in fresh processes, all reading the same bucket over HTTP.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import polars as pl
import pytest
from test_cli import make_home

pytestmark = pytest.mark.slow
pytest.importorskip("s3fs", reason="needs the s3 extra: pip install -e '.[test,s3]' (make install does)")
pytest.importorskip("moto.server", reason="needs moto[server] from the test extra: pip install -e '.[test,s3]'")

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def s3_endpoint():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    pytest.fail("moto's S3 server did not start")
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


def nag(*args, home, check=True):
    env = {**os.environ, **CREDENTIALS, "HF_HUB_OFFLINE": "1", "DAGSTER_HOME": str(home.parent / "dagster_home")}
    run = subprocess.run([sys.executable, "-m", "nag_select.cli", *args, "--home", str(home)],
                         capture_output=True, text=True, env=env, timeout=600)
    assert not check or run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    return run


def test_parallel_runs_and_later_commands_share_outputs_on_s3(tmp_path, s3_endpoint, monkeypatch):
    import s3fs

    from nag_core import storage
    from nag_core.home import Home

    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    s3fs.S3FileSystem(endpoint_url=s3_endpoint).mkdir("nag-ci")
    local = make_home(tmp_path / "local" / "home")
    nag("run", home=local)
    remote = make_home(tmp_path / "remote" / "home")
    (remote / "nag.yaml").write_text(f"storage:\n  url: s3://nag-ci/outputs\n  options: {{endpoint_url: '{s3_endpoint}'}}\n")

    nag("run", "--parallel", "2", home=remote)  # worker processes write to the bucket and read each other's outputs

    assert not (remote / "tables").exists() and not (remote / "subsets").exists()
    outputs = Home(remote).outputs
    assert str(outputs) == "s3://nag-ci/outputs" and outputs.fs.exists("nag-ci/outputs/tables/documents/a.parquet")
    names = sorted(p.name for p in Home(remote).subsets_dir.iterdir())
    assert names == sorted(p.name for p in (local / "subsets").iterdir()) == ["law__minilm-l6.parquet",
                                                                          "math__minilm-l6.parquet",
                                                                          "mixture__minilm-l6.parquet"]
    for name in names:
        mine = storage.read_parquet(Home(remote).subsets_dir / name).select("docid", "target", "rank", "domain")
        theirs = pl.read_parquet(local / "subsets" / name).select("docid", "target", "rank", "domain")
        assert mine.sort("target", "rank").equals(theirs.sort("target", "rank")), name
    assert set(storage.read_parquet(Home(remote).subsets_dir / "math__minilm-l6.parquet")["domain"]) == {"math"}

    sql = "SELECT subset, count(*) AS n FROM subset_members GROUP BY ALL ORDER BY ALL"
    assert nag("query", sql, home=remote).stdout == nag("query", sql, home=local).stdout  # DuckDB reads the bucket
    status = nag("status", home=remote).stdout
    assert status.splitlines()[0] == "outputs: s3://nag-ci/outputs" and " 0 stale" in status
    rerun = nag("run", home=remote).stdout
    assert "0 partitions materialised" in rerun and "nothing was stale" in rerun
