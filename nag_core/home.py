"""The layout of a data root (``NAG_HOME``): where inputs are found and outputs go.

Inputs (user-owned): ``pool/``, ``targets/``, ``models/``, ``nag.yaml``.
Outputs (project-owned): ``tables/`` (Parquet behind the DuckDB views), ``cache/``,
``subsets/`` and ``manifests/``, under the data root or under ``storage.url``
(``nag_core.storage``); ``warehouse.duckdb`` (with ``warehouse.views``, the hash of its
view definitions) and ``cache/fingerprints.json`` always stay in the data root.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from nag_core.errors import NagInputError
from nag_core.settings import Settings, load_settings, load_storage
from nag_core.storage import Location, location, stamp

POOL_SUFFIXES = (".parquet", ".jsonl", ".jsonl.gz")
TARGET_SUFFIXES = (".parquet", ".jsonl", ".jsonl.gz", ".json")
MIXTURE = "mixture"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def resolve_home(flag: str | None = None) -> Path:
    """``--home`` flag, else ``$NAG_HOME``, else ``./nag_home``."""
    return Path(flag or os.environ.get("NAG_HOME") or "nag_home").resolve()


def check_name(name: str, what: str, where: Path) -> str:
    """Names become Dagster partition keys and file names, so keep them plain."""
    if not _NAME.match(name):
        raise NagInputError(
            f"{where}: {what} name {name!r} is not usable as a partition key. "
            "Use letters, digits, '.', '_' or '-' (no spaces, '|' or ','), starting with a letter or digit."
        )
    return name


def _plain(name: str, what: str) -> str:
    return check_name(name, what, Path("argument"))


def strip_suffix(path: Path, suffixes: tuple[str, ...]) -> str | None:
    for suffix in suffixes:
        if path.name.endswith(suffix):
            return path.name[: -len(suffix)]
    return None


_OUTPUT_ROOTS: dict[tuple, Location] = {}


def output_root(root: Path) -> Location:
    """Where a data root's outputs live; re-read only when ``nag.yaml`` changes."""
    settings_path = Path(root) / "nag.yaml"
    key = (str(root), stamp(settings_path))
    if key not in _OUTPUT_ROOTS:
        storage = load_storage(settings_path)
        _OUTPUT_ROOTS[key] = Path(root) if storage is None else location(storage.url, storage.options, base=Path(root))
    return _OUTPUT_ROOTS[key]


@dataclass(frozen=True)
class Home:
    root: Path

    @property
    def pool_dir(self) -> Path:
        return self.root / "pool"

    @property
    def targets_dir(self) -> Path:
        return self.root / "targets"

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @property
    def settings_path(self) -> Path:
        return self.root / "nag.yaml"

    @property
    def warehouse_path(self) -> Path:
        return self.root / "warehouse.duckdb"

    @property
    def outputs(self) -> Location:
        return output_root(self.root)

    @property
    def tables_dir(self) -> Location:
        return self.outputs / "tables"

    @property
    def subsets_dir(self) -> Location:
        return self.outputs / "subsets"

    @property
    def manifests_dir(self) -> Location:
        return self.outputs / "manifests"

    def settings(self) -> Settings:
        return load_settings(self.settings_path)

    # Names also arrive from the command line and from Dagster run tags, so every path
    # built from one is checked: '../x' or 'a/b' never leaves the data root.
    def activation_cache_path(self, model: str, shard: str) -> Location:
        return self.outputs / "cache" / "activations" / _plain(model, "model") / f"{_plain(shard, 'shard')}.parquet"

    def target_cache_path(self, model: str, target: str) -> Location:
        return self.outputs / "cache" / "target_activations" / _plain(model, "model") / f"{_plain(target, 'target')}.parquet"

    def subset_path(self, name: str) -> Location:
        return self.subsets_dir / f"{name}.parquet"

    def manifest_path(self, name: str) -> Location:
        return self.manifests_dir / f"{name}.json"

    def shard_files(self) -> dict[str, Path]:
        """Pool shards by partition key (the file stem); two files with one stem is an error."""
        shards: dict[str, Path] = {}
        if not self.pool_dir.is_dir():
            return shards
        for path in sorted(self.pool_dir.iterdir()):
            stem = strip_suffix(path, POOL_SUFFIXES)
            if stem is None or path.name.startswith("."):
                continue
            check_name(stem, "shard", path)
            if stem in shards:
                raise NagInputError(
                    f"{self.pool_dir}: shards {shards[stem].name} and {path.name} share the key {stem!r}; rename one."
                )
            shards[stem] = path
        return shards

    def shard_file(self, shard: str) -> Path:
        """One shard's file, found by its possible names rather than by listing the whole pool."""
        _plain(shard, "shard")
        found = [p for p in (self.pool_dir / f"{shard}{suffix}" for suffix in POOL_SUFFIXES) if p.is_file()]
        if not found:
            raise NagInputError(f"{self.pool_dir}: no shard file for partition {shard!r} (expected {shard}.parquet or {shard}.jsonl)")
        if len(found) > 1:
            raise NagInputError(f"{self.pool_dir}: shards {found[0].name} and {found[1].name} share the key {shard!r}; rename one.")
        return found[0]

    def target_dirs(self) -> dict[str, Path]:
        targets: dict[str, Path] = {}
        if not self.targets_dir.is_dir():
            return targets
        for path in sorted(self.targets_dir.iterdir()):
            if path.is_dir() and not path.name.startswith("."):
                if path.name == MIXTURE:
                    raise NagInputError(f"{path}: the target name {MIXTURE!r} is reserved for the multi-target mixture; rename the folder.")
                targets[check_name(path.name, "target", path)] = path
        return targets

    def target_dir(self, target: str) -> Path:
        path = self.targets_dir / _plain(target, "target")
        if not path.is_dir():
            raise NagInputError(f"{self.targets_dir}: no folder for target {target!r}")
        return path

    @property
    def recipes_dir(self) -> Path:
        return self.root / "recipes"

    def recipe_files(self) -> dict[str, Path]:
        """Recipes by name (the file stem of ``recipes/<name>.yaml``); hidden and other files are ignored."""
        if not self.recipes_dir.is_dir():
            return {}
        return {check_name(p.name[: -len(".yaml")], "recipe", p): p
                for p in sorted(self.recipes_dir.glob("*.yaml")) if not p.name.startswith(".")}

    def embedding_cache_path(self, model: str, shard: str) -> Location:
        return self.outputs / "cache" / "embeddings" / _plain(model, "model") / f"{_plain(shard, 'shard')}.parquet"

    @property
    def proxy_lm_dir(self) -> Path:
        return self.root / "cache" / "proxy_lm"

    def distilled_scorer_path(self, model: str, target: str) -> Location:
        """The fitted distilled scorer of one (model, target): an .npz of plain arrays (``DistilledScorer``)."""
        return self.outputs / "cache" / "distilled" / _plain(model, "model") / f"{_plain(target, 'target')}.npz"
