"""The code location: assets, sensors, schedule and resources for one data root.

``workspace.yaml`` loads ``defs`` from here, reading NAG_HOME from the environment.
Asset code versions include the hash of the settings each asset reads, so editing
``nag.yaml`` and reloading the location marks exactly the affected assets stale.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

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
    )


defs = build_definitions(resolve_home())
