"""Which asset partitions are stale: the incremental-work planner.

Every asset partition has an input fingerprint: a hash of its code version, the
settings it reads, and the data versions of exactly the inputs it consumes. An asset
records its fingerprint and the data version of what it wrote in the ``materializations``
table. A partition is stale when its recorded fingerprint differs from the one its
inputs give now, or when it was never built. Because data versions hash outputs, a
change that leaves an output identical (say, a dedup setting that removes nothing
new) stops there and does not ripple downstream.

The Dagster assets, the ``nag-select run`` loop, the sensors and the schedule all ask
this module, so they agree on what "stale" means.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property

from nag_core.hashing import digest, file_digest
from nag_core.home import Home
from nag_core.models import ModelRef, discover_models
from nag_core.settings import Settings
from nag_core.targets import target_fingerprint
from nag_core.warehouse import Warehouse

# Bump an asset's code version when its logic changes what it writes.
CODE_VERSIONS = {
    "raw_pool": "1",
    "target_examples": "1",
    "dedup_pool": "2",
    "activation_cache": "1",
    "target_activations": "1",
    "neuron_graph": "1",
    "influence_scores": "1",
    "selected_subset": "1",
    "mixture_subset": "1",
}
STAGES = tuple(CODE_VERSIONS)

# Partition dimensions of each asset, in Dagster's order (dimension names sorted).
DIMENSIONS = {
    "raw_pool": ("shard",),
    "dedup_pool": ("shard",),
    "activation_cache": ("model", "shard"),
    "target_examples": ("model", "target"),
    "target_activations": ("model", "target"),
    "neuron_graph": ("model", "target"),
    "influence_scores": ("model", "target"),
    "selected_subset": ("model", "target"),
    "mixture_subset": ("model",),
}
SETTINGS_STAGE = {
    "raw_pool": "raw_pool", "dedup_pool": "dedup_pool", "activation_cache": "activations",
    "target_activations": "activations", "neuron_graph": "neuron_graph", "influence_scores": "scores",
    "selected_subset": "selection", "mixture_subset": "selection",
}


def partition_key(asset: str, **dims: str) -> str:
    """The Dagster partition key string: values joined by '|' in dimension-name order."""
    return "|".join(dims[d] for d in DIMENSIONS[asset])


def split_key(asset: str, key: str) -> dict[str, str]:
    return dict(zip(DIMENSIONS[asset], key.split("|"), strict=True))


@dataclass
class State:
    """What the data root holds now, with each digest computed at most once."""

    home: Home
    _ledger: dict[tuple[str, str], dict] | None = field(default=None, repr=False)

    @cached_property
    def settings(self) -> Settings:
        return self.home.settings()

    @cached_property
    def shards(self) -> dict[str, str]:
        return {name: file_digest(path) for name, path in self.home.shard_files().items()}

    @cached_property
    def targets(self) -> dict[str, str]:
        return {name: target_fingerprint(path) for name, path in self.home.target_dirs().items()}

    @cached_property
    def models(self) -> dict[str, ModelRef]:
        return discover_models(self.home)

    @property
    def ledger(self) -> dict[tuple[str, str], dict]:
        if self._ledger is None:
            rows = Warehouse(self.home.root).read("materializations")
            self._ledger = {(r["asset"], r["partition"]): r for r in rows.iter_rows(named=True)}
        return self._ledger

    def forget_ledger(self) -> None:
        self._ledger = None

    def data_version(self, asset: str, key: str) -> str | None:
        row = self.ledger.get((asset, key))
        return None if row is None else row["data_version"]

    def partitions(self, asset: str) -> list[str]:
        dims = DIMENSIONS[asset]
        values = {"shard": sorted(self.shards), "target": sorted(self.targets), "model": sorted(self.models)}
        keys = [[]]
        for d in dims:
            keys = [k + [v] for k in keys for v in values[d]]
        return ["|".join(k) for k in keys]

    def fingerprint(self, asset: str, key: str) -> str | None:
        """The input fingerprint of one partition, or None while an input is missing."""
        p = split_key(asset, key)
        settings_hash = self.settings.hash_for(SETTINGS_STAGE[asset]) if asset in SETTINGS_STAGE else ""
        upstream: list = []
        model = self.models.get(p["model"]) if "model" in p else None
        if asset == "raw_pool":
            token_model = self.models.get(self.settings.token_count_model)
            upstream = [self.shards.get(p["shard"]), token_model.fingerprint if token_model else None]
        elif asset == "dedup_pool":
            upstream = [self.data_version("raw_pool", p["shard"])]
            if self.settings.dedup.decontaminate:  # the targets' examples decide removals too
                upstream += [self.data_version("target_examples", k) for k in self.partitions("target_examples")]
        elif asset == "activation_cache":
            upstream = [self.data_version("dedup_pool", p["shard"]), model and model.fingerprint]
        elif asset == "target_examples":
            upstream = [self.targets.get(p["target"])]
        elif asset == "target_activations":
            upstream = [self.data_version("target_examples", key), model and model.fingerprint]
        elif asset == "neuron_graph":
            upstream = [self.data_version("target_activations", key)]
        elif asset == "influence_scores":
            caches = [self.data_version("activation_cache", partition_key("activation_cache", model=p["model"], shard=s))
                      for s in sorted(self.shards)]
            upstream = [self.data_version("neuron_graph", key), *caches] if caches else [None]
        elif asset == "selected_subset":
            upstream = [self.data_version("influence_scores", key)]
        elif asset == "mixture_subset":
            scores = [self.data_version("influence_scores", partition_key("influence_scores", model=p["model"], target=t))
                      for t in sorted(self.targets)]
            upstream = scores if scores else [None]
        else:
            raise KeyError(asset)
        if any(u is None for u in upstream):
            return None
        return digest(asset, CODE_VERSIONS[asset], settings_hash, upstream)

    def stale(self, asset: str, keys: Iterable[str] | None = None) -> list[str]:
        """Partitions whose inputs are ready and whose recorded fingerprint differs."""
        out = []
        for key in self.partitions(asset) if keys is None else keys:
            fp = self.fingerprint(asset, key)
            row = self.ledger.get((asset, key))
            if fp is not None and (row is None or row["fingerprint"] != fp):
                out.append(key)
        return out
