"""The Kubernetes deployment example in deploy/k8s/ loads: instance config, executor config, Helm values.

Dagster's own schemas check the files. The instance and Helm checks need only dagster; the
checks against dagster-k8s's and dagster-postgres's class schemas need the optional
``deploy`` extra (``pip install -e '.[deploy]'``) and are skipped, with that message, without
it. Nothing connects to Postgres or Kubernetes: the environment names fake hosts.
"""

from __future__ import annotations

import importlib.util
import tomllib
from pathlib import Path

import pytest
import yaml

from nag_core.errors import NagInputError

DEPLOY = Path(__file__).resolve().parents[1] / "deploy" / "k8s"
NEED_DEPLOY = "needs the optional deploy extra (pip install -e '.[deploy]'): dagster-k8s / dagster-postgres not installed"
FAKE_ENV = {"DAGSTER_PG_HOST": "postgres.invalid", "DAGSTER_PG_USERNAME": "dagster", "DAGSTER_PG_PASSWORD": "not-a-secret",
            "DAGSTER_PG_DB": "dagster"}
GPU = "nvidia.com/gpu"


@pytest.fixture
def fake_env(monkeypatch):
    for k, v in FAKE_ENV.items():
        monkeypatch.setenv(k, v)


def _yaml(name: str):
    return yaml.safe_load((DEPLOY / name).read_text(encoding="utf-8"))


def _instance_config() -> dict:
    from dagster._core.instance.config import dagster_instance_config

    config, custom_class = dagster_instance_config(str(DEPLOY), "dagster.yaml")
    assert custom_class is None
    return config


def model_pool_assets() -> set[str]:
    """Assets whose op is in the "model" concurrency pool: the ones that load a neural network."""
    from nag_assets.graph_assets import build_assets
    from nag_core.settings import Settings

    out = set()
    for a in build_assets(Settings()):
        if getattr(a, "op", None) is not None and a.op.pool == "model":
            out |= {k.to_user_string() for k in a.keys}
    return out


def test_instance_config_passes_dagsters_schema_with_postgres_storage_and_k8s_launcher(fake_env):
    config = _instance_config()
    for key, module, cls in (("run_storage", "dagster_postgres.run_storage", "PostgresRunStorage"),
                             ("event_log_storage", "dagster_postgres.event_log", "PostgresEventLogStorage"),
                             ("schedule_storage", "dagster_postgres.schedule_storage", "PostgresScheduleStorage")):
        assert (config[key]["module"], config[key]["class"]) == (module, cls)
        assert config[key]["config"]["postgres_db"]["hostname"] == {"env": "DAGSTER_PG_HOST"}  # no literal host
    assert "storage" not in config and "sqlite" not in str(config).lower()
    launcher = config["run_launcher"]
    assert (launcher["module"], launcher["class"]) == ("dagster_k8s", "K8sRunLauncher")
    assert {"NAG_HOME=/nag_home", "NAG_EXECUTOR=k8s"} <= set(launcher["config"]["env_vars"])
    mounts = {m["name"]: m["mountPath"] for m in launcher["config"]["volume_mounts"]}
    claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in launcher["config"]["volumes"]}
    assert mounts == {"nag-home": "/nag_home"} and claims == {"nag-home": "nag-home"}
    assert config["concurrency"]["pools"] == {"default_limit": 8, "granularity": "op"}
    # Dagster's own classes import without the extra: a module path that moved fails here, not at start-up.
    from dagster._core.instance.ref import class_from_code_pointer
    from dagster._core.run_coordinator import QueuedRunCoordinator

    coordinator = config["run_coordinator"]
    assert class_from_code_pointer(coordinator["module"], coordinator["class"]) is QueuedRunCoordinator


def test_a_broken_instance_config_is_refused(tmp_path, fake_env):
    """The schema check above can fail: a misspelt key is an error, not a silently ignored line."""
    from dagster._core.errors import DagsterInvalidConfigError
    from dagster._core.instance.config import dagster_instance_config

    text = (DEPLOY / "dagster.yaml").read_text(encoding="utf-8").replace("run_coordinator:", "run_cordinator:")
    (tmp_path / "dagster.yaml").write_text(text)
    with pytest.raises(DagsterInvalidConfigError, match="run_cordinator"):
        dagster_instance_config(str(tmp_path), "dagster.yaml")


def test_instance_classes_accept_their_config(fake_env):
    pytest.importorskip("dagster_k8s", reason=NEED_DEPLOY)
    pytest.importorskip("dagster_postgres", reason=NEED_DEPLOY)
    from dagster._config import process_config
    from dagster._core.instance.ref import class_from_code_pointer

    config = _instance_config()
    for key in ("run_storage", "event_log_storage", "schedule_storage", "run_launcher"):
        cls = class_from_code_pointer(config[key]["module"], config[key]["class"])
        result = process_config(cls.config_type(), config[key].get("config") or {})
        assert result.success, (key, [e.message for e in result.errors])
        if key == "run_storage":  # env references resolve to the fake host, and nothing connected
            assert result.value["postgres_db"]["hostname"] == "postgres.invalid"
        if key == "run_launcher":
            assert result.value["instance_config_map"] == "dagster-instance"
            assert result.value["job_namespace"] == "nag"


def test_executor_config_gives_one_gpu_to_exactly_the_model_steps():
    config = _yaml("executor.yaml")
    per_step = config["per_step_k8s_config"]
    model_steps = model_pool_assets()
    assert {"activation_cache", "target_activations"} <= model_steps  # extraction is among them
    assert set(per_step) == model_steps, "every asset in the 'model' pool, and only those, gets a GPU"
    for step, cfg in per_step.items():
        assert cfg["container_config"]["resources"]["limits"][GPU] == 1, step
        assert any(t["key"] == GPU for t in cfg["pod_spec_config"]["tolerations"]), step
    assert GPU not in str(config["step_k8s_config"])  # CPU steps (dedup, scoring, selection) get none


def test_executor_config_passes_k8s_job_executors_schema():
    pytest.importorskip("dagster_k8s", reason=NEED_DEPLOY)
    from dagster._config import process_config
    from dagster_k8s import k8s_job_executor

    config = _yaml("executor.yaml")
    result = process_config(k8s_job_executor.config_schema.config_type, config)
    assert result.success, [e.message for e in result.errors]
    assert result.value["per_step_k8s_config"]["activation_cache"]["container_config"]["resources"]["limits"][GPU] == 1
    bad = {**config, "per_step_k8s_config": {"activation_cache": {"container": {}}}}  # misspelt: container_config
    assert not process_config(k8s_job_executor.config_schema.config_type, bad).success


def test_code_location_binds_the_k8s_executor_from_the_environment(tmp_path, monkeypatch):
    pytest.importorskip("dagster_k8s", reason=NEED_DEPLOY)
    from nag_assets.definitions import build_definitions
    from nag_assets.executors import executor_from_env

    (tmp_path / "pool").mkdir()
    monkeypatch.setenv("NAG_EXECUTOR", "k8s")
    monkeypatch.setenv("NAG_EXECUTOR_CONFIG", str(DEPLOY / "executor.yaml"))
    defs = build_definitions(tmp_path)
    job = defs.resolve_job_def("activations_job")
    assert job.executor_def.name == "nag_k8s_job_executor"
    (tmp_path / "bad.yaml").write_text("per_step_k8s_config: {activation_cache: {container: {}}}\n")
    with pytest.raises(NagInputError, match="not a valid k8s_job_executor config"):
        executor_from_env({"NAG_EXECUTOR": "k8s", "NAG_EXECUTOR_CONFIG": str(tmp_path / "bad.yaml")})


def test_executor_choice_without_the_deploy_extra_is_a_clear_error():
    from nag_assets.executors import executor_from_env

    assert executor_from_env({}) is None  # the default: Dagster's own executor
    with pytest.raises(NagInputError, match="not known"):
        executor_from_env({"NAG_EXECUTOR": "celery"})
    if importlib.util.find_spec("dagster_k8s") is None:
        with pytest.raises(NagInputError, match=r"pip install -e '\.\[deploy\]'"):
            executor_from_env({"NAG_EXECUTOR": "k8s"})


def test_helm_values_load_the_projects_code_location_with_postgres_and_the_shared_data_root():
    values = _yaml("values.yaml")
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    args = deployment["dagsterApiGrpcArgs"]
    assert args[args.index("-m") + 1] == "nag_assets.definitions"
    assert importlib.util.find_spec("nag_assets.definitions") is not None
    assert deployment["includeConfigInLaunchedRuns"]["enabled"] is True  # env and volumes reach run and step pods
    env = {e["name"]: e["value"] for e in deployment["env"]}
    mounts = {m["name"]: m["mountPath"] for m in deployment["volumeMounts"]}
    assert env["NAG_HOME"] == mounts["nag-home"] == "/nag_home"
    assert env["NAG_EXECUTOR"] == "k8s"
    # The executor config the code server reads is the file in this folder, copied into the image.
    dockerfile = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    assert "COPY . /opt/nag" in dockerfile and "'.[deploy,s3]'" in dockerfile
    assert env["NAG_EXECUTOR_CONFIG"] == "/opt/nag/deploy/k8s/executor.yaml"
    claim = deployment["volumes"][0]["persistentVolumeClaim"]["claimName"]
    pvc = _yaml("pvc.yaml")
    assert claim == pvc["metadata"]["name"] and pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["postgresql"]["enabled"] is False and values["postgresql"]["postgresqlHost"]
    assert "postgresqlPassword" not in values["postgresql"]  # the secret is set at install time, not committed
    assert values["dagsterDaemon"]["runCoordinator"]["type"] == "QueuedRunCoordinator"


def test_the_example_settings_put_outputs_on_s3_and_the_image_can_reach_it():
    from nag_core.settings import load_settings

    settings = load_settings(DEPLOY / "nag.yaml")  # every key is a known setting with a valid value
    assert settings.storage is not None and settings.storage.url.startswith("s3://")
    assert settings.storage.options == {}  # credentials come from the pod, never from this file
    extras = tomllib.loads((DEPLOY.parents[1] / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    assert any(dep.startswith("s3fs") for dep in extras["s3"])  # what the image's '.[deploy,s3]' installs
