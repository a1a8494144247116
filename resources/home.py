"""The data root (NAG_HOME) as a Dagster resource."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from nag_core.freshness import State
from nag_core.home import Home
from nag_core.warehouse import Warehouse


class NagHomeResource(dg.ConfigurableResource):
    """Points every asset at one data root; its warehouse views are refreshed after writes."""

    path: str

    def home(self) -> Home:
        return Home(Path(self.path))

    def state(self) -> State:
        return State(self.home())

    def warehouse(self) -> Warehouse:
        return Warehouse(Path(self.path))
