"""Selection recipes: an ordered list of operators over cached signals (AutoSelection's idea).

A recipe lives in ``NAG_HOME/recipes/<name>.yaml`` and becomes one partition of the
``recipe_subset`` asset::

    model: minilm-l6
    targets: [asdiv, medqa]          # or: all
    steps:
      - filter: {signal: quality_alnum_share, min: 0.5}
      - fuse: {signals: {nag_contrastive: 1.0, embedding: 1.0, dsir: 0.5}, normalize: rank, missing: zero}
      - balance: bids                # or: equal_budget
      - select: {budget_fraction: 0.2, max_source_share: 0.5, source_column: source}

The shape is fixed so that every subset can be explained step by step: any number of
``filter`` steps, then exactly one ``fuse``, then at most one ``balance``, then ``select``
last. Parsing is strict: an unknown key, a signal that does not exist, a weight that is
not a number or a step out of order is an error naming the file, the step and the key,
because a silently ignored typo would change which documents are trained on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from nag_core.errors import NagInputError
from nag_core.hashing import digest
from nag_core.signal_families import SIGNALS

NORMALIZERS = ("rank", "minmax", "zscore")
MISSING = ("error", "zero", "drop")
BALANCERS = ("bids", "equal_budget")
RECIPE_SUFFIX = ".yaml"


@dataclass(frozen=True)
class Filter:
    signal: str
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class Fuse:
    weights: tuple[tuple[str, float], ...]  # (signal, weight), in the file's order
    normalize: str = "rank"
    missing: str = "error"


@dataclass(frozen=True)
class Balance:
    method: str


@dataclass(frozen=True)
class Select:
    budget_fraction: float = 0.2
    max_source_share: float | None = None
    source_column: str = "source"


Step = Filter | Fuse | Balance | Select


@dataclass(frozen=True)
class Recipe:
    name: str
    model: str
    targets: tuple[str, ...] | None  # None: every target of the data root
    steps: tuple[Step, ...]
    path: Path
    digest: str  # of the parsed content: reformatting the file changes nothing

    @property
    def filters(self) -> list[Filter]:
        return [s for s in self.steps if isinstance(s, Filter)]

    @property
    def fuse(self) -> Fuse:
        return next(s for s in self.steps if isinstance(s, Fuse))

    @property
    def balance(self) -> Balance | None:
        return next((s for s in self.steps if isinstance(s, Balance)), None)

    @property
    def select(self) -> Select:
        return self.steps[-1]  # type: ignore[return-value]

    @property
    def signals(self) -> list[str]:
        """Every signal the recipe reads, filters first, without repeats."""
        names = [f.signal for f in self.filters] + [s for s, _ in self.fuse.weights]
        return list(dict.fromkeys(names))

    def resolved_targets(self, available: list[str]) -> list[str]:
        if self.targets is None:
            return sorted(available)
        missing = sorted(set(self.targets) - set(available))
        if missing:
            raise NagInputError(f"{self.path}: 'targets' names {missing}, which are not folders under targets/ "
                                f"(known: {sorted(available)}). Add the folders or fix the names.")
        return list(self.targets)

    def as_dict(self) -> dict[str, Any]:
        """The normalised recipe, as stamped into manifests."""
        steps: list[dict] = []
        for s in self.steps:
            if isinstance(s, Filter):
                steps.append({"filter": {"signal": s.signal, "min": s.min, "max": s.max}})
            elif isinstance(s, Fuse):
                steps.append({"fuse": {"signals": dict(s.weights), "normalize": s.normalize, "missing": s.missing}})
            elif isinstance(s, Balance):
                steps.append({"balance": s.method})
            else:
                steps.append({"select": {"budget_fraction": s.budget_fraction, "max_source_share": s.max_source_share,
                                         "source_column": s.source_column}})
        return {"model": self.model, "targets": list(self.targets) if self.targets else "all", "steps": steps}


class _Where:
    """Builds error messages that name the file, the step and the key."""

    def __init__(self, path: Path):
        self.path = path

    def error(self, where: str, problem: str) -> NagInputError:
        return NagInputError(f"{self.path}: {where}: {problem}")


def _number(w: _Where, where: str, value: Any, lo: float | None = None, hi: float | None = None,
            lo_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise w.error(where, f"must be a finite number, got {value!r}")
    if lo is not None and (value < lo or (lo_open and value == lo)):
        raise w.error(where, f"must be {'>' if lo_open else '>='} {lo}, got {value!r}")
    if hi is not None and value > hi:
        raise w.error(where, f"must be <= {hi}, got {value!r}")
    return float(value)


def _signal(w: _Where, where: str, name: Any) -> str:
    if name not in SIGNALS:
        raise w.error(where, f"unknown signal {name!r}; known signals: {', '.join(SIGNALS)}")
    return name


def _keys(w: _Where, where: str, body: Any, allowed: set[str], required: set[str] = frozenset()) -> dict:
    if not isinstance(body, dict):
        raise w.error(where, f"must be a mapping with keys from {sorted(allowed)}, got {body!r}")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise w.error(where, f"unknown key(s) {unknown}; allowed: {sorted(allowed)}")
    absent = sorted(required - set(body))
    if absent:
        raise w.error(where, f"missing key(s) {absent}")
    return body


def _filter(w: _Where, where: str, body: Any) -> Filter:
    body = _keys(w, where, body, {"signal", "min", "max"}, {"signal"})
    lo = _number(w, f"{where}.min", body["min"]) if body.get("min") is not None else None
    hi = _number(w, f"{where}.max", body["max"]) if body.get("max") is not None else None
    if lo is None and hi is None:
        raise w.error(where, "needs 'min', 'max' or both")
    if lo is not None and hi is not None and lo > hi:
        raise w.error(where, f"min {lo} is above max {hi}: no document could pass")
    return Filter(_signal(w, f"{where}.signal", body["signal"]), lo, hi)


def _fuse(w: _Where, where: str, body: Any) -> Fuse:
    body = _keys(w, where, body, {"signals", "normalize", "missing"}, {"signals"})
    signals = body["signals"]
    if isinstance(signals, str):
        signals = {signals: 1.0}
    if not isinstance(signals, dict) or not signals:
        raise w.error(f"{where}.signals", f"must be a non-empty mapping of signal: weight, got {signals!r}")
    weights = tuple((_signal(w, f"{where}.signals", s), _number(w, f"{where}.signals.{s}", v)) for s, v in signals.items())
    if all(v == 0 for _, v in weights):
        raise w.error(f"{where}.signals", "every weight is 0: the fused score would rank nothing")
    normalize = body.get("normalize", "rank")
    if normalize not in NORMALIZERS:
        raise w.error(f"{where}.normalize", f"must be one of {list(NORMALIZERS)}, got {normalize!r}")
    missing = body.get("missing", "error")
    if missing not in MISSING:
        raise w.error(f"{where}.missing", f"must be one of {list(MISSING)}, got {missing!r}")
    return Fuse(weights, normalize, missing)


def _select(w: _Where, where: str, body: Any) -> Select:
    body = _keys(w, where, body or {}, {"budget_fraction", "max_source_share", "source_column"})
    fraction = _number(w, f"{where}.budget_fraction", body.get("budget_fraction", 0.2), 0.0, 1.0, lo_open=True)
    share = body.get("max_source_share")
    share = _number(w, f"{where}.max_source_share", share, 0.0, 1.0, lo_open=True) if share is not None else None
    column = body.get("source_column", "source")
    if not isinstance(column, str) or not column:
        raise w.error(f"{where}.source_column", f"must be a payload column name, got {column!r}")
    return Select(fraction, share, column)


_ORDER = {Filter: 0, Fuse: 1, Balance: 2, Select: 3}


def parse_recipe(name: str, raw: Any, path: Path) -> Recipe:
    """A validated recipe from the YAML mapping ``raw`` (``path`` is named in errors)."""
    w = _Where(path)
    raw = _keys(w, "recipe", raw, {"model", "targets", "steps", "description"}, {"steps"})
    from nag_core.settings import DEFAULT_MODEL_NAME

    model = raw.get("model", DEFAULT_MODEL_NAME)
    if not isinstance(model, str) or not model:
        raise w.error("model", f"must be a model name, got {model!r}")
    targets = raw.get("targets", "all")
    if targets == "all":
        targets = None
    elif isinstance(targets, str):
        targets = (targets,)
    elif isinstance(targets, list) and targets and all(isinstance(t, str) for t in targets):
        if len(set(targets)) != len(targets):
            raise w.error("targets", f"lists a target twice: {targets}")
        targets = tuple(targets)
    else:
        raise w.error("targets", f"must be 'all', a target name or a list of names, got {targets!r}")
    steps_raw = raw["steps"]
    if not isinstance(steps_raw, list) or not steps_raw:
        raise w.error("steps", "must be a non-empty list of operators (filter, fuse, balance, select)")
    steps: list[Step] = []
    for i, item in enumerate(steps_raw, start=1):
        if not isinstance(item, dict) or len(item) != 1:
            raise w.error(f"step {i}", f"must be one operator such as {{fuse: {{...}}}}, got {item!r}")
        (op, body), = item.items()
        where = f"step {i} ({op})"
        if op == "filter":
            step: Step = _filter(w, where, body)
        elif op == "fuse":
            step = _fuse(w, where, body)
        elif op == "balance":
            if body not in BALANCERS:
                raise w.error(where, f"must be one of {list(BALANCERS)}, got {body!r}")
            step = Balance(body)
        elif op == "select":
            step = _select(w, where, body)
        else:
            raise w.error(f"step {i}", f"unknown operator {op!r}; known: filter, fuse, balance, select")
        if steps and _ORDER[type(step)] < _ORDER[type(steps[-1])]:
            raise w.error(where, "is out of order: steps go filter* -> fuse -> balance? -> select")
        if steps and type(step) is type(steps[-1]) and not isinstance(step, Filter):
            raise w.error(where, f"a recipe has at most one {op} step")
        steps.append(step)
    kinds = [type(s) for s in steps]
    if Fuse not in kinds:
        raise w.error("steps", "needs one 'fuse' step: it defines the score that documents are ranked by")
    if kinds[-1] is not Select:
        raise w.error("steps", "must end with a 'select' step (the budget)")
    recipe = Recipe(name, model, targets, tuple(steps), Path(path), "")
    return Recipe(name, model, targets, tuple(steps), Path(path), digest("recipe", recipe.as_dict(), length=16))


def load_recipe(path: Path) -> Recipe:
    path = Path(path)
    from nag_core.home import check_name

    name = check_name(path.name[: -len(RECIPE_SUFFIX)], "recipe", path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise NagInputError(f"{path}: not valid YAML ({exc}). Fix the syntax.") from exc
    except UnicodeDecodeError as exc:
        raise NagInputError(f"{path}: not UTF-8 text ({exc}).") from exc
    return parse_recipe(name, raw, path)
