"""Settings read from ``NAG_HOME/nag.yaml``, with the paper's defaults.

Each asset depends on only some settings. ``Settings.hash_for(stage)`` hashes exactly
those, so changing the token budget re-selects subsets but never re-extracts
activations, while changing ``top_k`` makes every activation cache stale.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from nag_core.errors import NagInputError
from nag_core.hashing import digest
from nag_core.minhash import MinHashSettings
from nag_core.signal_families import DEFAULT_ENABLED, OPTIONAL
from nag_core.storage import StorageSettings

PROFILES = ("frequency", "contrastive")
NEURON_TYPES = ("fwd_up", "fwd_down", "att_q", "att_k", "att_v", "att_o")
DEFAULT_MODEL_NAME = "minilm-l6"


@dataclass(frozen=True)
class DedupSettings:
    """Exact dedup on a normalised-text hash, then MinHash near-dedup (``near: null`` turns it off).

    ``decontaminate`` also removes pool documents that near-duplicate any target
    example, so a selection cannot pull a benchmark's own items into training.
    """

    normalizer: str = "nfkc_casefold_ws"
    near: MinHashSettings | None = field(default_factory=MinHashSettings)
    decontaminate: bool = False
    signal_column: str | None = None  # payload column whose highest value wins, with keep_rule best_signal

    def __post_init__(self) -> None:
        if self.near is not None and self.near.keep_rule == "best_signal" and not self.signal_column:
            raise NagInputError("'dedup.near.keep_rule: best_signal' needs 'dedup.signal_column': the pool payload "
                                "column (say, a quality score) whose highest value is kept in each cluster")


@dataclass(frozen=True)
class ProxyLMSettings:
    """The small byte-level causal LM behind perplexity and gradient influence.

    No pretrained causal LM is available offline, so, as LESS warms up on a random 5% of
    the pool, one is trained from scratch on a seeded sample of the kept pool: documents
    whose docid hashes into the first ``sample_fraction`` of the hash range, at least
    ``min_documents`` and at most ``max_documents`` of them (lowest hashes first).
    """

    sample_fraction: float = 0.05
    min_documents: int = 200
    max_documents: int = 2000
    steps: int = 200
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.sample_fraction, (int, float)) or not 0 < self.sample_fraction <= 1:
            raise NagInputError(f"'signals.proxy_lm.sample_fraction' must be in (0, 1], got {self.sample_fraction!r}")
        for name in ("min_documents", "max_documents", "steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise NagInputError(f"'signals.proxy_lm.{name}' must be a positive integer, got {value!r}")
        if not isinstance(self.seed, int):
            raise NagInputError(f"'signals.proxy_lm.seed' must be an integer, got {self.seed!r}")


@dataclass(frozen=True)
class DistilledSettings:
    """The distilled scorer (``signals.families: [distilled]``): a cheap imitation of one NAG signal.

    Documents whose seeded docid hash falls in the first ``sample_fraction`` of the hash
    range (at least ``min_documents``, at most ``max_documents``, lowest hashes first) are
    the training sample; their ``signal`` values are the labels of a ridge regression
    (``alpha``) on ``n_features`` hashed word uni+bigrams (``nag_core.signals.distilled``).
    The defaults are the benchmark's (``benchmarks/results/distilled.md``: 20 %, 2^20, alpha 1).
    """

    signal: str = "nag_contrastive"
    sample_fraction: float = 0.2
    min_documents: int = 20
    max_documents: int = 200_000
    n_features: int = 2 ** 20
    alpha: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        teachers = ("nag_frequency", "nag_contrastive", "nag_good", "nag_bad")
        if self.signal not in teachers:
            raise NagInputError(f"'signals.distilled.signal' must be one of {list(teachers)} (the NAG signals it "
                                f"imitates), got {self.signal!r}")
        if isinstance(self.sample_fraction, bool) or not isinstance(self.sample_fraction, (int, float)) \
                or not 0 < self.sample_fraction <= 1:
            raise NagInputError(f"'signals.distilled.sample_fraction' must be in (0, 1], got {self.sample_fraction!r}")
        for name in ("min_documents", "max_documents", "n_features"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 2:
                raise NagInputError(f"'signals.distilled.{name}' must be an integer >= 2, got {value!r}")
        if self.min_documents > self.max_documents:
            raise NagInputError(f"'signals.distilled.min_documents' ({self.min_documents}) exceeds "
                                f"'max_documents' ({self.max_documents})")
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)) or not self.alpha > 0:
            raise NagInputError(f"'signals.distilled.alpha' must be a positive number, got {self.alpha!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise NagInputError(f"'signals.distilled.seed' must be an integer, got {self.seed!r}")


@dataclass(frozen=True)
class SignalSettings:
    """Which optional signal families the pipeline builds, and their settings.

    NAG (frequency, contrastive, good, bad) is always built. The cheap families are on
    by default; ``gradient`` and ``perplexity`` train and run the proxy LM, so they are
    opt-in (see the README for their cost per document), and so is ``distilled``.
    """

    families: tuple[str, ...] = DEFAULT_ENABLED
    proxy_lm: ProxyLMSettings = field(default_factory=ProxyLMSettings)
    distilled: DistilledSettings = field(default_factory=DistilledSettings)
    gradient_dim: int = 2048  # random-projection width of the LESS gradient features

    def __post_init__(self) -> None:
        unknown = [f for f in self.families if f not in OPTIONAL]
        if unknown:
            raise NagInputError(f"'signals.families' has unknown entries {unknown}; choose from {list(OPTIONAL)}")
        if isinstance(self.gradient_dim, bool) or not isinstance(self.gradient_dim, int) or self.gradient_dim < 1:
            raise NagInputError(f"'signals.gradient_dim' must be a positive integer, got {self.gradient_dim!r}")


@dataclass(frozen=True)
class Settings:
    top_k: int = 20  # K neurons kept per layer (paper §2.3 default)
    max_length: int = 120  # tokens read per document (paper default)
    neuron_types: tuple[str, ...] = ("fwd_up",)  # what the activation cache stores
    score_neuron_type: str = "fwd_up"  # which stored type builds graphs and scores
    profile: str = "frequency"  # frequency (paper) | contrastive (log ratio to the pool's neuron frequencies)
    contrast_smoothing: float = 0.5  # additive smoothing of the contrastive profile's counts
    score_layers: Any = "all"  # all | first:N | last:N | [layer, ...]: which layers NAG scores average over
    budget_fraction: float = 0.2  # share of pool tokens kept per target (paper r_f)
    batch_size: int = 32
    device: str = "auto"  # auto | cpu | cuda
    token_count_model: str = DEFAULT_MODEL_NAME  # counts tokens when a shard has no token_num
    dedup: DedupSettings = field(default_factory=DedupSettings)
    signals: SignalSettings = field(default_factory=SignalSettings)
    storage: StorageSettings | None = None  # outputs on an fsspec filesystem (nag_core.storage); None: in the data root

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> NagInputError:
            return NagInputError(f"nag.yaml: setting '{name}' {why}")

        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 1:
            raise bad("top_k", f"must be a positive integer, got {self.top_k!r}")
        if isinstance(self.max_length, bool) or not isinstance(self.max_length, int) or self.max_length < 1:
            raise bad("max_length", f"must be a positive integer, got {self.max_length!r}")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise bad("batch_size", f"must be a positive integer, got {self.batch_size!r}")
        unknown = [t for t in self.neuron_types if t not in NEURON_TYPES]
        if unknown or not self.neuron_types:
            raise bad("neuron_types", f"must be a non-empty list from {list(NEURON_TYPES)}, got {list(self.neuron_types)}")
        if self.score_neuron_type not in self.neuron_types:
            raise bad("score_neuron_type", f"must be one of neuron_types {list(self.neuron_types)}, got {self.score_neuron_type!r}")
        if self.profile not in PROFILES:
            raise bad("profile", f"must be one of {list(PROFILES)}, got {self.profile!r}")
        if isinstance(self.contrast_smoothing, bool) or not isinstance(self.contrast_smoothing, (int, float)) \
                or not self.contrast_smoothing > 0:
            raise bad("contrast_smoothing", f"must be a positive number, got {self.contrast_smoothing!r}")
        if isinstance(self.budget_fraction, bool) or not isinstance(self.budget_fraction, (int, float)) \
                or not 0 < self.budget_fraction <= 1:
            raise bad("budget_fraction", f"must be a number in (0, 1], got {self.budget_fraction!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise bad("device", f"must be auto, cpu or cuda, got {self.device!r}")
        parse_layers(self.score_layers, None)

    # Which settings each stage reads; a stage's hash changes only when these do.
    _STAGE_FIELDS = {
        "raw_pool": ("token_count_model",),
        "dedup_pool": ("dedup",),
        "activations": ("top_k", "max_length", "neuron_types"),
        "neuron_graph": ("top_k", "max_length", "score_neuron_type"),
        # Every NAG signal is computed whatever the profile, so the profile only picks what subsets rank by.
        "scores": ("top_k", "max_length", "score_neuron_type", "contrast_smoothing", "score_layers"),
        "selection": ("budget_fraction", "profile"),
        "embeddings": ("max_length",),
        "proxy_lm": ("signals.proxy_lm",),
        "gradient": ("signals.proxy_lm", "signals.gradient_dim"),
        "quality": ("signals.proxy_lm", "signals.families"),
        "distilled": ("signals.distilled",),
    }

    def hash_for(self, stage: str) -> str:
        def value(path: str) -> Any:
            obj: Any = self
            for part in path.split("."):
                obj = getattr(obj, part)
            return _plain(obj)

        values = {name: value(name) for name in self._STAGE_FIELDS[stage]}
        if stage == "quality" and "perplexity" not in self.signals.families:
            values = {}  # text statistics alone read no setting
        return digest(stage, values, length=12)

    def as_dict(self) -> dict[str, Any]:
        return _plain(self)


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple):
        return list(value)
    return value


def load_settings(path: Path) -> Settings:
    """Read ``nag.yaml``; a missing file means all defaults."""
    path = Path(path)
    if not path.exists():
        return Settings()
    raw = _read_raw(path)
    known = {f.name for f in dataclasses.fields(Settings)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise NagInputError(f"{path}: unknown setting(s) {unknown}. Known settings: {sorted(known)}")
    kwargs = dict(raw)
    if "neuron_types" in kwargs:
        nt = kwargs["neuron_types"]
        kwargs["neuron_types"] = tuple([nt] if isinstance(nt, str) else nt)
    try:
        if "dedup" in kwargs:
            kwargs["dedup"] = _dedup_settings(kwargs["dedup"] or {})
        if "signals" in kwargs:
            kwargs["signals"] = _signal_settings(kwargs["signals"] or {})
        if kwargs.get("storage") is not None:
            kwargs["storage"] = _storage_settings(kwargs["storage"])
        return Settings(**kwargs)
    except NagInputError as exc:
        raise NagInputError(f"{path}: {exc}") from None


def load_storage(path: Path) -> StorageSettings | None:
    """Only the ``storage`` section: where outputs are is needed even when another setting is wrong."""
    path = Path(path)
    raw = _read_raw(path) if path.exists() else {}
    try:
        return None if raw.get("storage") is None else _storage_settings(raw["storage"])
    except NagInputError as exc:
        raise NagInputError(f"{path}: {exc}") from None


def _read_raw(path: Path) -> dict:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise NagInputError(f"{path}: not valid YAML ({exc}). Fix the syntax or delete the file to use defaults.") from exc
    if not isinstance(raw, dict):
        raise NagInputError(f"{path}: expected a mapping of setting: value, got {type(raw).__name__}")
    return raw


def _storage_settings(raw: Any) -> StorageSettings:
    return StorageSettings(**_section(raw, StorageSettings, "storage"))


def _section(raw: Any, cls: type, name: str) -> dict:
    """A nested section's values, after checking it is a mapping of ``cls``'s fields only."""
    known = {f.name for f in dataclasses.fields(cls)}
    if not isinstance(raw, dict) or set(raw) - known:
        raise NagInputError(f"'{name}' must be a mapping with keys from {sorted(known)}, got {raw!r}")
    return dict(raw)


def _dedup_settings(raw: Any) -> DedupSettings:
    values = _section(raw, DedupSettings, "dedup")
    if "near" in values:
        near = values["near"]
        if near in (None, False):
            values["near"] = None
        elif isinstance(near, dict):
            near_known = {f.name for f in dataclasses.fields(MinHashSettings)}
            if set(near) - near_known:
                raise NagInputError(f"'dedup.near' has unknown key(s) {sorted(set(near) - near_known)}; known: {sorted(near_known)}")
            values["near"] = MinHashSettings(**near)
        else:
            raise NagInputError(f"'dedup.near' must be a mapping of MinHash settings or null, got {near!r}")
    if not isinstance(values.get("decontaminate", False), bool):
        raise NagInputError(f"'dedup.decontaminate' must be true or false, got {values['decontaminate']!r}")
    return DedupSettings(**values)


def _signal_settings(raw: Any) -> SignalSettings:
    values = _section(raw, SignalSettings, "signals")
    if "families" in values:
        fam = values["families"]
        if isinstance(fam, str):
            fam = [fam]
        if not isinstance(fam, list):
            raise NagInputError(f"'signals.families' must be a list from {list(OPTIONAL)}, got {fam!r}")
        values["families"] = tuple(fam)
    if "proxy_lm" in values:
        values["proxy_lm"] = ProxyLMSettings(**_section(values["proxy_lm"] or {}, ProxyLMSettings, "signals.proxy_lm"))
    if "distilled" in values:
        values["distilled"] = DistilledSettings(**_section(values["distilled"] or {}, DistilledSettings,
                                                           "signals.distilled"))
    return SignalSettings(**values)


def parse_layers(spec: Any, num_layers: int | None) -> list[int] | None:
    """Layer indices that ``score_layers`` names (None for all; with ``num_layers`` None only the syntax is checked).

    The reference's ``slice_layers.py`` scores with the first or last layers only: early
    layers carry surface form, late layers topic and task, so a slice trades one for the other.
    """
    def bad(why: str) -> NagInputError:
        return NagInputError(f"nag.yaml: setting 'score_layers' {why}; use all, first:N, last:N or a list of layer indices")

    if spec == "all":
        return None if num_layers is None else list(range(num_layers))
    if isinstance(spec, str) and spec.count(":") == 1:
        where, count = spec.split(":")
        if where not in ("first", "last") or not count.isdigit() or int(count) < 1:
            raise bad(f"is {spec!r}")
        n = int(count)
        if num_layers is None:
            return None
        if n > num_layers:
            raise bad(f"asks for {n} layers but the model has {num_layers}")
        return list(range(n)) if where == "first" else list(range(num_layers - n, num_layers))
    if isinstance(spec, list) and spec and all(isinstance(x, int) and not isinstance(x, bool) for x in spec):
        if len(set(spec)) != len(spec) or min(spec) < 0:
            raise bad(f"lists a negative or repeated layer: {spec}")
        if num_layers is not None and max(spec) >= num_layers:
            raise bad(f"names layer {max(spec)} but the model has layers 0..{num_layers - 1}")
        return None if num_layers is None else sorted(spec)
    raise bad(f"is {spec!r}")


def settings_yaml(settings: Settings) -> str:
    """The settings as commented YAML, used to write a starter ``nag.yaml``."""
    return yaml.safe_dump(settings.as_dict(), sort_keys=False)
