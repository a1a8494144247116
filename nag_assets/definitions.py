"""The code location: assets, sensors, schedule and resources for one data root.

``workspace.yaml`` loads ``defs`` from here, reading NAG_HOME from the environment (and
``NAG_EXECUTOR``, see ``nag_assets.executors``: the Kubernetes deployment in ``deploy/k8s/``).
Asset code versions include the hash of the settings each asset reads, so editing
``nag.yaml`` and reloading the location marks exactly the affected assets stale.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from nag_assets.executors import executor_from_env
from nag_assets.graph_assets import JOBS, build_assets
from nag_core.home import Home, resolve_home
from resources import ModelResource, NagHomeResource
from sensors import SENSORS, reselect_schedule


def build_definitions(home: Path, device: str | None = None) -> dg.Definitions:
    settings = Home(Path(home)).settings()
    return dg.Definitions(
        assets=build_assets(settings),
        jobs=JOBS,
        sensors=SENSORS,
        schedules=[reselect_schedule],
        resources={"nag_home": NagHomeResource(path=str(home)), "models": ModelResource(device=device or settings.device)},
        executor=executor_from_env(),  # NAG_EXECUTOR=k8s: a pod per step (deploy/k8s/); unset: Dagster's default
    )


defs = build_definitions(resolve_home())
