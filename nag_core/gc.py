"""``nag-select gc``: remove the outputs of shards, targets and models that no longer exist.

A shard that is deleted or renamed leaves its warehouse partition files, activation
caches and ledger rows behind. Scoring reads only current shards, but stale
``documents`` rows still claim their docids (a renamed shard's rows would clash with its
old self), and stale files cost disk. Every output's file name says which shard, target
and model it belongs to, so the set of files that *should* exist follows from the
inputs present now; everything else under a known layout is garbage. Files whose layout
this module does not know (a table added later, ``cache/fingerprints.json``) are never
touched, and the temporary files of dead writers are swept too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from nag_core import segments
from nag_core.atomic import stale_temp_files
from nag_core.errors import NagInputError
from nag_core.freshness import DIMENSIONS
from nag_core.home import MIXTURE, Home
from nag_core.recipe_steps import recipe_subset_name
from nag_core.settings import DEFAULT_MODEL_NAME
from nag_core.storage import Location, is_local
from nag_core.signal_families import FAMILIES
from nag_core.warehouse import Warehouse, partition_id

SHARD_TABLES = ("documents", "quarantine", "pool_kept", "dedup_removed", "dedup_signatures", "dedup_bands")
# Not managed (kept whatever the inputs): dedup_settings (keyed by settings hash), target_examples below.
OUTPUT_DIRS = ("tables", "cache", "subsets", "manifests")
CACHE_KINDS = ("activations", "target_activations", "embeddings", "distilled")  # cache/<kind>/<model>/...


@dataclass
class Garbage:
    files: list[Location] = field(default_factory=list)
    temp_files: list[Path] = field(default_factory=list)

    @property
    def all(self) -> list[Location]:
        return sorted(self.files + self.temp_files)


def _current(home: Home) -> dict[str, list[str]]:
    models = [DEFAULT_MODEL_NAME]
    if home.models_dir.is_dir():
        models += sorted(p.name for p in home.models_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    return {"shard": sorted(home.shard_files()), "target": sorted(home.target_dirs()), "model": models,
            "recipe": sorted(home.recipe_files())}


def _keys(dims: tuple[str, ...], values: dict[str, list[str]]) -> list[list[str]]:
    keys: list[list[str]] = [[]]
    for d in dims:
        keys = [k + [v] for k in keys for v in values[d]]
    return keys


def live_files(home: Home) -> dict[Location, set[str]]:
    """Folder -> the file names that belong to current inputs, for every folder gc manages."""
    cur = _current(home)
    wh = Warehouse(home.root)
    live: dict[Location, set[str]] = {}
    for table in SHARD_TABLES:
        live[wh.table_dir(table)] = {f"{s}.parquet" for s in cur["shard"]}
    live[wh.table_dir("target_examples")] = {f"{t}.parquet" for t in cur["target"]}
    live[wh.table_dir("neuron_graphs")] = {f"{partition_id(t, m)}.parquet" for t in cur["target"] for m in cur["model"]}
    live[wh.table_dir("neuron_counts")] = {f"{partition_id(m, s)}.parquet" for m in cur["model"] for s in cur["shard"]}
    live[wh.table_dir("signals")] = {f"{partition_id(asset, *key)}.parquet"
                                     for asset in FAMILIES for key in _keys(DIMENSIONS[asset], cur)}
    subsets = {f"{t}__{m}" for t in [*cur["target"], MIXTURE] for m in cur["model"]}
    subsets |= {recipe_subset_name(r) for r in cur["recipe"]}
    for table in ("subsets", "subset_members", "subset_decisions", "subset_signal_values"):
        live[wh.table_dir(table)] = {f"{n}.parquet" for n in subsets}
    for table in ("subset_history", "subset_signal_history"):  # <subset>@<run id>: every run of a live subset
        d = wh.table_dir(table)
        live[d] = {p.name for p in d.glob("*.parquet") if p.name.split("@")[0] in subsets} if d.is_dir() else set()
    live[home.subsets_dir] = {f"{n}.parquet" for n in subsets}
    live[home.manifests_dir] = {f"{n}.json" for n in subsets}
    live[wh.table_dir("materializations")] = {
        f"{partition_id(asset, *(key or ['']))}.parquet" for asset, dims in DIMENSIONS.items() for key in _keys(dims, cur)}
    for model in _model_dirs(home):
        for kind in ("activations", "embeddings"):
            live[home.outputs / "cache" / kind / model] = {f"{s}.parquet" for s in cur["shard"]} if model in cur["model"] else set()
        live[home.outputs / "cache" / "target_activations" / model] = (
            {f"{t}.parquet" for t in cur["target"]} if model in cur["model"] else set())
        live[home.outputs / "cache" / "distilled" / model] = (  # distilled scorers, one per (model, target)
            {f"{t}.npz" for t in cur["target"]} if model in cur["model"] else set())
    return live


def _model_dirs(home: Home) -> set[str]:
    out = set()
    for kind in CACHE_KINDS:
        d = home.outputs / "cache" / kind
        if d.is_dir():
            out |= {p.name for p in d.iterdir() if p.is_dir()}
    return out


def find_garbage(home: Home, allow_empty_pool: bool = False) -> Garbage:
    """What ``collect`` would remove. An empty pool is refused unless asked: it would remove every output."""
    if not home.shard_files() and not allow_empty_pool:
        raise NagInputError(f"{home.pool_dir}: no pool shards, so gc would remove the outputs of every shard. "
                            "Check --home, or pass --allow-empty-pool if that is what you want.")
    garbage = Garbage()
    for folder, names in live_files(home).items():
        if folder.is_dir():
            garbage.files += [p for p in folder.iterdir()
                              if p.is_file() and not p.name.startswith(".") and p.suffix in (".parquet", ".json", ".npz")
                              and p.name not in names]
    garbage.files.sort()
    garbage.temp_files = stale_temp_files([home.outputs / d for d in OUTPUT_DIRS])
    return garbage


def collect(home: Home, dry_run: bool = False, allow_empty_pool: bool = False) -> Garbage:
    """Remove stale outputs (see the module docstring), then refresh the warehouse views."""
    garbage = find_garbage(home, allow_empty_pool)
    if dry_run:
        return garbage
    for path in garbage.all:
        path.unlink(missing_ok=True)
    wh = Warehouse(home.root)
    for table in segments.LOOKUP_COLUMNS:  # segments hold copies of removed rows: rebuilt without them on next use
        if any(path.parent == wh.table_dir(table) for path in garbage.files):
            segments.clear(wh, table)
    for kind in CACHE_KINDS:  # an object store has no empty folders to remove
        d = home.outputs / "cache" / kind
        for sub in (d.iterdir() if is_local(d) and d.is_dir() else []):
            if sub.is_dir() and not any(sub.iterdir()):
                sub.rmdir()
    wh.refresh_views()
    return garbage
