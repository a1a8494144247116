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
from pathlib import Path

from nag_core.bookkeeping import FingerprintStore, read_ledger, read_ledger_row
from nag_core.errors import NagInputError
from nag_core.hashing import digest
from nag_core.home import Home
from nag_core.models import ModelRef, discover_models
from nag_core.recipes import Recipe, load_recipe
from nag_core.settings import Settings
from nag_core.signal_families import SIGNAL_FAMILY, per_target
from nag_core.warehouse import Warehouse, partition_id

# Bump an asset's code version when its logic changes what it writes.
CODE_VERSIONS = {
    "raw_pool": "1",
    "target_examples": "1",
    "dedup_pool": "3",
    "activation_cache": "1",
    "embedding_cache": "1",
    "target_activations": "1",
    "neuron_graph": "1",
    "proxy_lm": "1",
    "influence_scores": "2",
    "embedding_scores": "1",
    "dsir_scores": "1",
    "bm25_scores": "2",  # 2: scored shard by shard (sums may differ in the last bit)
    "gradient_scores": "1",
    "quality_signals": "1",
    "distilled_scores": "1",  # after influence_scores: the runner goes stage by stage in this order
    "selected_subset": "2",
    "mixture_subset": "2",
    "recipe_subset": "1",
}
STAGES = tuple(CODE_VERSIONS)

# Partition dimensions of each asset, in Dagster's order (dimension names sorted).
DIMENSIONS = {
    "raw_pool": ("shard",),
    "dedup_pool": ("shard",),
    "activation_cache": ("model", "shard"),
    "embedding_cache": ("model", "shard"),
    "target_examples": ("model", "target"),
    "target_activations": ("model", "target"),
    "neuron_graph": ("model", "target"),
    "proxy_lm": (),
    "influence_scores": ("model", "target"),
    "embedding_scores": ("model", "target"),
    "dsir_scores": ("target",),
    "bm25_scores": ("target",),
    "gradient_scores": ("target",),
    "quality_signals": ("shard",),
    "distilled_scores": ("model", "target"),
    "selected_subset": ("model", "target"),
    "mixture_subset": ("model",),
    "recipe_subset": ("recipe",),
}
SETTINGS_STAGE = {
    "raw_pool": "raw_pool", "dedup_pool": "dedup_pool", "activation_cache": "activations",
    "embedding_cache": "embeddings", "target_activations": "activations", "neuron_graph": "neuron_graph",
    "proxy_lm": "proxy_lm", "influence_scores": "scores", "embedding_scores": "embeddings",
    "gradient_scores": "gradient", "quality_signals": "quality", "distilled_scores": "distilled",
    "selected_subset": "selection", "mixture_subset": "selection",
}
# Which ``signals.families`` option switches an optional asset on (NAG and the subsets are always on).
OPTIONAL_ASSETS = {"embedding_cache": ("embedding",), "embedding_scores": ("embedding",), "dsir_scores": ("dsir",),
                   "bm25_scores": ("bm25",), "gradient_scores": ("gradient",), "quality_signals": ("quality", "perplexity"),
                   "proxy_lm": ("gradient", "perplexity"), "distilled_scores": ("distilled",)}


def partition_key(asset: str, **dims: str) -> str:
    """The Dagster partition key string: values joined by '|' in dimension-name order."""
    return "|".join(dims[d] for d in DIMENSIONS[asset])


def split_key(asset: str, key: str) -> dict[str, str]:
    dims = DIMENSIONS[asset]
    return dict(zip(dims, key.split("|"), strict=True)) if dims else {}


@dataclass
class State:
    """What the data root holds now, with each digest computed at most once."""

    home: Home
    _ledger: dict[tuple[str, str], dict] | None = field(default=None, repr=False)

    @cached_property
    def settings(self) -> Settings:
        return self.home.settings()

    @cached_property
    def shard_files(self) -> dict[str, Path]:
        return self.home.shard_files()

    @cached_property
    def shards(self) -> dict[str, str]:
        store = FingerprintStore(self.home.root)  # re-hashes only files whose stat changed
        digests = {name: store.file(path) for name, path in self.shard_files.items()}
        store.save()
        return digests

    def shard_digest(self, shard: str) -> str | None:
        """One shard's digest, without the others' when they are not known yet: a shard's run needs only its own."""
        if "shards" in self.__dict__:
            return self.shards.get(shard)
        path = self.shard_files.get(shard)
        if path is None:
            return None
        store = FingerprintStore(self.home.root)
        digest_ = store.file(path)
        store.save()
        return digest_

    @cached_property
    def targets(self) -> dict[str, str]:
        store = FingerprintStore(self.home.root)
        digests = {name: store.target(path) for name, path in self.home.target_dirs().items()}
        store.save()
        return digests

    @cached_property
    def models(self) -> dict[str, ModelRef]:
        return discover_models(self.home)

    @property
    def ledger(self) -> dict[tuple[str, str], dict]:
        if self._ledger is None:  # cheap to rebuild: only files changed since the last read are read
            self._ledger = read_ledger(Warehouse(self.home.root).table_dir("materializations"))
        return self._ledger

    def forget_ledger(self) -> None:
        self._ledger = None

    def data_version(self, asset: str, key: str) -> str | None:
        if self._ledger is None:  # one file, not a listing of every partition's
            row = read_ledger_row(Warehouse(self.home.root).table_dir("materializations")
                                  / f"{partition_id(asset, *key.split('|'))}.parquet")
        else:
            row = self.ledger.get((asset, key))
        return None if row is None else row["data_version"]

    @cached_property
    def recipes(self) -> dict[str, Recipe | NagInputError]:
        """Every recipe file, parsed; a broken one is kept as its error so that its run fails loudly."""
        out: dict[str, Recipe | NagInputError] = {}
        for name, path in self.home.recipe_files().items():
            try:
                out[name] = load_recipe(path)
            except NagInputError as exc:
                out[name] = exc
        return out

    def enabled(self, asset: str) -> bool:
        options = OPTIONAL_ASSETS.get(asset)
        return options is None or any(o in self.settings.signals.families for o in options)

    def partitions(self, asset: str) -> list[str]:
        if not self.enabled(asset):
            return []
        dims = DIMENSIONS[asset]
        values = {"shard": sorted(self.shards), "target": sorted(self.targets), "model": sorted(self.models),
                  "recipe": sorted(self.recipes)}
        keys = [[]]
        for d in dims:
            keys = [k + [v] for k in keys for v in values[d]]
        return ["|".join(k) for k in keys]

    def _all_shards(self, asset: str, model: str | None = None) -> list[str | None]:
        """Data versions of one per-shard asset over every current shard ([None] while there are none)."""
        shards = sorted(self.shards)
        if not shards:
            return [None]
        dims = {"model": model} if model is not None else {}
        return [self.data_version(asset, partition_key(asset, shard=s, **dims)) for s in shards]

    def _examples(self, target: str) -> str | None:
        """A target's examples (the same text for every model, so any model's partition will do)."""
        versions = [self.data_version("target_examples", partition_key("target_examples", model=m, target=target))
                    for m in sorted(self.models)]
        return next((v for v in versions if v is not None), None)

    def signal_inputs(self, signal_asset: str, target: str | None, model: str | None) -> list[str | None]:
        """Data versions of the signal partitions a subset reads (per-shard families: every shard)."""
        dims = DIMENSIONS[signal_asset]
        if dims == ("shard",):
            return self._all_shards(signal_asset)
        values = {"target": target, "model": model}
        return [self.data_version(signal_asset, "|".join(values[d] for d in dims))]

    def _recipe_upstream(self, name: str) -> list:
        recipe = self.recipes[name]
        if isinstance(recipe, NagInputError) or recipe.model not in self.models \
                or any(t not in self.targets for t in (recipe.targets or ())) \
                or not all(self.enabled(SIGNAL_FAMILY[s]) for s in recipe.signals):
            return ["invalid", str(recipe)]  # runs, and fails with the error that says what to fix
        targets = recipe.resolved_targets(list(self.targets))
        upstream: list = [recipe.digest, *self._all_shards("dedup_pool")]
        for signal in recipe.signals:
            family = SIGNAL_FAMILY[signal]
            for t in (targets if per_target(signal) else [None]):
                upstream += self.signal_inputs(family, t, recipe.model)
        return upstream

    def fingerprint(self, asset: str, key: str) -> str | None:
        """The input fingerprint of one partition, or None while an input is missing."""
        p = split_key(asset, key)
        settings_hash = self.settings.hash_for(SETTINGS_STAGE[asset]) if asset in SETTINGS_STAGE else ""
        upstream: list = []
        model = self.models.get(p["model"]) if "model" in p else None
        if asset == "raw_pool":
            token_model = self.models.get(self.settings.token_count_model)
            upstream = [self.shard_digest(p["shard"]), token_model.fingerprint if token_model else None]
        elif asset == "dedup_pool":
            upstream = [self.data_version("raw_pool", p["shard"])]
            if self.settings.dedup.decontaminate:  # the targets' examples decide removals too
                upstream += [self.data_version("target_examples", k) for k in self.partitions("target_examples")]
        elif asset in ("activation_cache", "embedding_cache"):
            upstream = [self.data_version("dedup_pool", p["shard"]), model and model.fingerprint]
        elif asset == "target_examples":
            upstream = [self.targets.get(p["target"])]
        elif asset == "target_activations":
            upstream = [self.data_version("target_examples", key), model and model.fingerprint]
        elif asset == "neuron_graph":
            upstream = [self.data_version("target_activations", key)]
        elif asset == "proxy_lm":
            upstream = self._all_shards("dedup_pool")
        elif asset == "influence_scores":
            upstream = [self.data_version("neuron_graph", key), *self._all_shards("activation_cache", p["model"])]
        elif asset == "embedding_scores":
            upstream = [self._examples(p["target"]), *self._all_shards("embedding_cache", p["model"])]
        elif asset in ("dsir_scores", "bm25_scores"):
            upstream = [self._examples(p["target"]), *self._all_shards("dedup_pool")]
        elif asset == "gradient_scores":
            upstream = [self._examples(p["target"]), self.data_version("proxy_lm", ""), *self._all_shards("dedup_pool")]
        elif asset == "quality_signals":
            upstream = [self.data_version("dedup_pool", p["shard"])]
            if "perplexity" in self.settings.signals.families:
                upstream.append(self.data_version("proxy_lm", ""))
        elif asset == "distilled_scores":  # the NAG scores it imitates, and the texts it reads
            upstream = [self.data_version("influence_scores", key), *self._all_shards("dedup_pool")]
        elif asset == "selected_subset":
            upstream = [self.data_version("influence_scores", key)]
        elif asset == "mixture_subset":
            scores = [self.data_version("influence_scores", partition_key("influence_scores", model=p["model"], target=t))
                      for t in sorted(self.targets)]
            upstream = scores if scores else [None]
        elif asset == "recipe_subset":
            upstream = self._recipe_upstream(p["recipe"])
        else:
            raise KeyError(asset)
        if any(u is None for u in upstream):
            return None
        return digest(asset, CODE_VERSIONS[asset], settings_hash, upstream)

    def stale(self, asset: str, keys: Iterable[str] | None = None) -> list[str]:
        """Partitions whose inputs are ready and whose recorded fingerprint differs."""
        out = []
        self.ledger  # noqa: B018  (every partition's row is needed: one listing, not a file per key)
        if asset == "raw_pool":
            self.shards  # noqa: B018  (every shard's digest at once: one save of the fingerprint store)
        for key in self.partitions(asset) if keys is None else keys:
            fp = self.fingerprint(asset, key)
            row = self.ledger.get((asset, key))
            if fp is not None and (row is None or row["fingerprint"] != fp):
                out.append(key)
        return out
