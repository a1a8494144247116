"""Model loading as a Dagster resource: one load per process, whatever the number of steps."""

from __future__ import annotations

import dagster as dg

from nag_core.models import ModelPool

_POOLS: dict[str, ModelPool] = {}


class ModelResource(dg.ConfigurableResource):
    """``device``: auto (CUDA in bf16 when present, else CPU fp32), cpu or cuda."""

    device: str = "auto"

    def pool(self) -> ModelPool:
        # Resources are rebuilt for every run; the pool outlives them so that the
        # in-process runner loads each model once across all its runs.
        if self.device not in _POOLS:
            _POOLS[self.device] = ModelPool(self.device)
        return _POOLS[self.device]
