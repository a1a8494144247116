"""Which Dagster executor the code location's jobs use, chosen by the deployment, not by the code.

Unset ``NAG_EXECUTOR`` (the default, and what ``nag-select`` and the tests use): Dagster's
default executor. ``NAG_EXECUTOR=k8s``: dagster-k8s's ``k8s_job_executor``, which runs every
step in its own Kubernetes pod, configured from the YAML file ``NAG_EXECUTOR_CONFIG`` names
(``deploy/k8s/executor.yaml``: one GPU for each step of an asset in the ``model`` pool, so
one extraction partition gets one GPU). Runs that sensors and automation launch carry no
run config, which is why the configuration is bound here rather than passed per run.

dagster-k8s is an optional dependency (``pip install -e '.[deploy]'``); it is imported
only when asked for.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import dagster as dg
import yaml

from nag_core.errors import NagInputError

EXECUTORS = ("k8s",)


def load_executor_config(path: Path) -> dict:
    """The executor's config mapping from a YAML file (an empty file means the executor's defaults)."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise NagInputError(f"NAG_EXECUTOR_CONFIG={path}: cannot read the executor config ({exc})") from exc
    if raw is not None and not isinstance(raw, dict):
        raise NagInputError(f"NAG_EXECUTOR_CONFIG={path}: expected a mapping of executor settings, "
                            f"got {type(raw).__name__}")
    return raw or {}


def executor_from_env(env: Mapping[str, str] | None = None) -> dg.ExecutorDefinition | None:
    """The executor ``NAG_EXECUTOR`` asks for, configured from ``NAG_EXECUTOR_CONFIG``; None for Dagster's default."""
    env = os.environ if env is None else env
    kind = env.get("NAG_EXECUTOR", "").strip()
    if not kind:
        return None
    if kind not in EXECUTORS:
        raise NagInputError(f"NAG_EXECUTOR={kind!r} is not known; use one of {list(EXECUTORS)} or leave it unset")
    try:
        from dagster_k8s import k8s_job_executor
    except ImportError as exc:
        raise NagInputError("NAG_EXECUTOR=k8s needs dagster-k8s: pip install -e '.[deploy]'") from exc
    path = env.get("NAG_EXECUTOR_CONFIG", "").strip()
    config = load_executor_config(Path(path)) if path else {}
    from dagster._config import validate_config

    validated = validate_config(k8s_job_executor.config_schema.config_type, config)
    if not validated.success:
        raise NagInputError(f"NAG_EXECUTOR_CONFIG={path}: not a valid k8s_job_executor config: "
                            + "; ".join(e.message for e in validated.errors))
    return k8s_job_executor.configured(config, name="nag_k8s_job_executor")
