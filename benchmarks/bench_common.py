"""Shared pieces of the selection benchmarks: data, target splits, cached features, scorers.

Used by ``bench_retrieval.py`` and ``bench_proxy.py`` so both rank the same pool with the
same methods on the same profile examples.

* Targets are given as ``name=PATH:DOMAIN[:FIELD=V1,V2,...]``: a JSONL / JSONL.GZ / JSON
  file, the pool domain it should retrieve, and an optional filter on a record field
  (MMLU-redux subjects). Records are rendered to text by ``render``.
* Each target's examples are shuffled with a fixed seed and split once: the first
  ``min(N, n // 2)`` are the **profile** examples (the only ones any method sees), the
  rest are **held out** (used only to evaluate, by the proxy benchmark).
* Pool features of the model-based methods (NAG top-K indices, mean-pooled embeddings)
  are cached under ``benchmarks/out/cache/``, keyed by the pool texts, the model
  fingerprint and the settings, with the seconds the computation took.
* ``proxy_features`` trains the pipeline's proxy LM on the benchmark pool (same sample
  rule and training as ``nag_core.signal_steps.proxy_lm``) and caches it with its pool-side
  features (projected gradients, bits per byte), for the ``gradient`` and
  ``quality_perplexity`` signals.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import gzip
import json
import os
import platform
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from nag_core.signals import bm25, dsir, embedding, nag, random_baseline  # noqa: E402
from nag_core.errors import NagInputError  # noqa: E402
from nag_core.hashing import digest  # noqa: E402
from nag_core.selection import select_by_budget  # noqa: E402

SHARED = ROOT.parent / "shared" / "data" / "eval"
POOL = SHARED / "pool" / "mixed_pool_dev.parquet"
OUT = ROOT / "benchmarks" / "out"
CACHE = OUT / "cache"
RESULTS = ROOT / "benchmarks" / "results"
METHODS = ("random", "dsir", "bm25", "embedding", "nag", "nag_contrastive")
# Per-target signals ``score_all`` also computes, named as in the warehouse: NeuronLLM's split of the
# contrastive NAG score (``nag_contrastive = nag_good - nag_bad``), and LESS-style gradient influence
# under the proxy LM (needs ``proxy_features``).
EXTRA_METHODS = ("nag_good", "nag_bad", "gradient")
MEDICAL = ("anatomy", "clinical_knowledge", "college_medicine", "medical_genetics", "professional_medicine")
LAW = ("professional_law", "international_law", "jurisprudence")
_T = SHARED / "targets"
DEFAULT_TARGETS = (
    f"gsm8k={_T / 'gsm8k' / 'test.jsonl'}:math",
    f"mmlu_medical={_T / 'mmlu_redux' / 'mmlu_redux_all.jsonl'}:biomedical:subject={','.join(MEDICAL)}",
    f"mmlu_law={_T / 'mmlu_redux' / 'mmlu_redux_all.jsonl'}:legal:subject={','.join(LAW)}",
    f"humaneval={_T / 'humaneval' / 'HumanEval.jsonl.gz'}:code",
)
# Recipe-selection targets: MMLU-redux subjects disjoint from every default target above,
# mapped to the pool domain they should retrieve. ``bench_recipes.py`` chooses the NAG
# recipe on these, so the reported targets never influence it.
DEV_TARGETS = (
    f"dev_math={_T / 'mmlu_redux' / 'mmlu_redux_all.jsonl'}:math:subject=elementary_mathematics,"
    "high_school_mathematics,college_mathematics,high_school_statistics",
    f"dev_biology={_T / 'mmlu_redux' / 'mmlu_redux_all.jsonl'}:biomedical:subject=college_biology,"
    "high_school_biology,virology,nutrition,human_aging",
    f"dev_cs={_T / 'mmlu_redux' / 'mmlu_redux_all.jsonl'}:code:subject=college_computer_science,"
    "high_school_computer_science,machine_learning",
    f"dev_economics={_T / 'mmlu_redux' / 'mmlu_redux_all.jsonl'}:finance:subject=professional_accounting,"
    "high_school_macroeconomics,econometrics,high_school_microeconomics",
    f"dev_government={_T / 'mmlu_redux' / 'mmlu_redux_all.jsonl'}:legal:subject=high_school_government_and_politics,"
    "us_foreign_policy,security_studies",
)
SPLIT_SEED = 0
MAX_LENGTH, TOP_K, NEURON_TYPE, BATCH = 120, 20, "fwd_up", 32
CACHED_TOP_K = 400  # features are extracted once at this K; any smaller K is a prefix (top-K is sorted)


# ---------------------------------------------------------------- machine

def machine() -> dict[str, str]:
    cpu = "unknown"
    try:
        cpu = next(x.split(":", 1)[1].strip() for x in Path("/proc/cpuinfo").read_text().splitlines()
                   if x.startswith("model name"))
    except (OSError, StopIteration):
        pass
    ram = "unknown"
    try:
        kb = int(next(x for x in Path("/proc/meminfo").read_text().splitlines() if x.startswith("MemTotal")).split()[1])
        ram = f"{kb / 2**20:.1f} GiB"
    except (OSError, StopIteration):
        pass
    import torch
    import transformers
    return {"date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "cpu": cpu,
            "cores": str(os.cpu_count()), "ram": ram, "os": platform.platform(), "python": platform.python_version(),
            "torch": torch.__version__, "torch_threads": str(torch.get_num_threads()),
            "transformers": transformers.__version__, "numpy": np.__version__, "polars": pl.__version__,
            "load": " / ".join(f"{x:.1f}" for x in os.getloadavg())}


def machine_line(m: dict[str, str]) -> str:
    return (f"Date: {m['date']}. Machine: {m['cpu']}, {m['cores']} cores (torch threads {m['torch_threads']}), "
            f"{m['ram']} RAM, {m['os']}. Python {m['python']}, torch {m['torch']}, transformers {m['transformers']}, "
            f"numpy {m['numpy']}, polars {m['polars']}. Load average (1/5/15 min) when written: {m['load']} "
            "(the machine is shared; wall times above about 0.5 load include waiting for the cores).")


def pool_parser(doc: str, targets_flag: str = "--targets", default_targets: tuple[str, ...] = DEFAULT_TARGETS,
                smoke_help: str = "8 documents per domain, 8 profile examples (seconds)") -> argparse.ArgumentParser:
    """The options every benchmark that ranks a labelled pool shares; callers add their own."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--pool", default=str(POOL))
    ap.add_argument(targets_flag, nargs="+", default=list(default_targets),
                    help="name=PATH:DOMAIN[:FIELD=V1,V2,...] (field filter e.g. subject=anatomy,virology)")
    ap.add_argument("--label-column", default="domain")
    ap.add_argument("--profile-examples", type=int, default=200)
    ap.add_argument("--out", default=None, help="results folder (default benchmarks/results; smoke: benchmarks/out/smoke)")
    ap.add_argument("--smoke", action="store_true", help=smoke_help)
    return ap


def results_dir(out: str | None, smoke: bool) -> Path:
    """Where a benchmark writes: ``--out``, else the committed results, else (smoke) a scratch folder."""
    path = Path(out) if out else (OUT / "smoke" if smoke else RESULTS)
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_report(out: Path, name: str, md: list[str]) -> int:
    """Write one benchmark's Markdown (lines) to ``out/name``, echo it, and return the exit status 0."""
    text = "\n".join(md)
    tmp = out / f".{name}.tmp"
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out / name)
    print(text)
    print(f"wrote {out / name}")
    return 0


def budget_selection(frame: pl.DataFrame, fraction: float) -> pl.DataFrame:
    """``select_by_budget``, except that a ranking whose first document overflows the budget keeps it alone.

    The pipeline refuses such a budget (a user should raise it); a benchmark compares
    methods at one budget, and a method whose best document is too long still gets a
    selection, as every method did before the pipeline refused.
    """
    try:
        return select_by_budget(frame, fraction)
    except NagInputError:
        return frame.sort(["score", "docid"], descending=[True, False]).head(1).with_row_index("rank", offset=1) \
            .with_columns(pl.col("rank").cast(pl.Int64), pl.col("token_num").alias("cum_tokens"))


# ---------------------------------------------------------------- targets

@dataclass
class Target:
    name: str
    path: Path
    domain: str
    field: str | None
    values: tuple[str, ...]
    profile: list[str]
    held_out: list[str]
    total: int


def render(rec: dict) -> str:
    """One example as the text a user would hand over as a target."""
    if isinstance(rec.get("prompt"), str) and isinstance(rec.get("canonical_solution"), str):  # HumanEval
        return rec["prompt"] + rec["canonical_solution"]
    if isinstance(rec.get("question"), str) and isinstance(rec.get("choices"), list):  # MMLU
        letters = "ABCDEFGHIJ"
        lines = [rec["question"]] + [f"({letters[i]}) {c}" for i, c in enumerate(rec["choices"])]
        ans = rec.get("answer")
        if isinstance(ans, int) and 0 <= ans < len(rec["choices"]):
            lines.append(f"Answer: ({letters[ans]}) {rec['choices'][ans]}")
        return "\n".join(lines)
    if isinstance(rec.get("question"), str) and isinstance(rec.get("answer"), str):  # GSM8K
        return rec["question"] + "\n" + rec["answer"]
    if isinstance(rec.get("text"), str):
        return rec["text"]
    return " ".join(str(v) for v in rec.values() if isinstance(v, str))


def _records(path: Path) -> list[dict]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        if path.name.endswith((".jsonl", ".jsonl.gz")):
            return [json.loads(line) for line in fh if line.strip()]
        data = json.load(fh)
    if isinstance(data, dict):
        data = next(v for v in data.values() if isinstance(v, list))
    return data


def parse_target(spec: str) -> tuple[str, Path, str, str | None, tuple[str, ...]]:
    if "=" not in spec:
        raise SystemExit(f"--targets {spec!r}: expected name=PATH:DOMAIN[:FIELD=V1,V2]")
    name, rest = spec.split("=", 1)
    parts = rest.split(":")
    field, values = None, ()
    if len(parts) >= 3 and "=" in parts[-1]:
        field, vals = parts.pop().split("=", 1)
        values = tuple(v for v in vals.split(",") if v)
    if len(parts) < 2:
        raise SystemExit(f"--targets {spec!r}: missing ':DOMAIN' after the path")
    domain = parts.pop()
    return name, Path(":".join(parts)), domain, field, values


def load_target(spec: str, profile_examples: int, held_out_max: int | None = None) -> Target:
    name, path, domain, field, values = parse_target(spec)
    if not path.exists():
        raise SystemExit(f"target {name}: {path} does not exist")
    recs = _records(path)
    if field is not None:
        recs = [r for r in recs if str(r.get(field)) in values]
        if not recs:
            raise SystemExit(f"target {name}: no record of {path} has {field} in {list(values)}")
    texts = [render(r) for r in recs]
    random.Random(f"{SPLIT_SEED}:{name}").shuffle(texts)
    k = min(profile_examples, len(texts) // 2)
    held = texts[k:] if held_out_max is None else texts[k: k + held_out_max]
    return Target(name, path, domain, field, values, texts[:k], held, len(texts))


# ---------------------------------------------------------------- pool

def load_pool(path: Path, label_column: str, smoke: bool, per_domain: int = 8) -> pl.DataFrame:
    if not path.exists():
        raise SystemExit(f"pool {path} does not exist (the benchmarks read ../shared beside the repository)")
    df = pl.read_parquet(path)
    if label_column not in df.columns:
        raise SystemExit(f"pool {path}: no column {label_column!r}; columns are {df.columns}")
    if "token_num" not in df.columns:
        df = df.with_columns(token_num=pl.col("doc").str.split(" ").list.len().cast(pl.Int64))
    if "docid" not in df.columns:
        df = df.with_row_index("docid").with_columns(pl.col("docid").cast(pl.String))
    if smoke:
        df = (df.with_columns(_r=pl.int_range(pl.len()).shuffle(seed=0).over(label_column))
              .filter(pl.col("_r") < per_domain).drop("_r"))
    return df


# ---------------------------------------------------------------- model + cached features

class Models:
    """The default MiniLM, loaded once, with its NAG extractor (at ``CACHED_TOP_K``)."""

    def __init__(self):
        from nag_core.models import default_model_path, load_model, model_ref
        from nag_core.settings import DEFAULT_MODEL_NAME

        self.ref = model_ref(DEFAULT_MODEL_NAME, default_model_path())
        self.model, self.tokenizer = load_model(self.ref, "cpu")
        self.extractor = nag.extractor(self.model, self.tokenizer, neuron_type=NEURON_TYPE, top_k=CACHED_TOP_K,
                                       max_length=MAX_LENGTH, batch_size=BATCH)
        self.width = self.extractor.width(NEURON_TYPE)

    def nag_indices(self, texts: list[str]) -> np.ndarray:
        """(n, L, CACHED_TOP_K) indices, most impactful first: ``[..., :K]`` is the top-K NAG."""
        return nag.nag_features(texts, self.extractor)

    def embeddings(self, texts: list[str]) -> np.ndarray:
        return embedding.embed(texts, self.model, self.tokenizer, max_length=MAX_LENGTH, batch_size=BATCH)


def cached(kind: str, texts: list[str], models: Models, compute, log=print) -> tuple[np.ndarray, float]:
    """Features of ``texts`` from the cache, or computed and stored; returns (array, seconds to compute)."""
    nag_settings = (CACHED_TOP_K, NEURON_TYPE) if kind.startswith("nag") else ()
    key = digest(kind, models.ref.fingerprint, MAX_LENGTH, *nag_settings, digest(texts, length=32), length=16)
    return cached_array(kind, key, lambda: compute(texts), len(texts), log)


def cached_array(kind: str, key: str, compute, n: int, log=print) -> tuple[np.ndarray, float]:
    """``compute()`` from ``CACHE/{kind}_{key}.npy``, or computed and stored; returns (array, seconds to compute).

    ``key`` must hash everything the array depends on (texts, model, settings)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    arr, meta = CACHE / f"{kind}_{key}.npy", CACHE / f"{kind}_{key}.json"
    if arr.exists() and meta.exists():
        return np.load(arr), float(json.loads(meta.read_text())["seconds"])
    log(f"  computing {kind} for {n} texts (cached afterwards in {arr.relative_to(ROOT)}) ...")
    t = time.perf_counter()
    value = compute()
    seconds = time.perf_counter() - t
    tmp = arr.with_suffix(".tmp.npy")
    np.save(tmp, value)
    tmp.replace(arr)
    meta.write_text(json.dumps({"seconds": seconds, "n": n}))
    return value, seconds


@dataclass
class PoolFeatures:
    nag: np.ndarray
    nag_seconds: float
    emb: np.ndarray
    emb_seconds: float


def pool_features(texts: list[str], models: Models, log=print) -> PoolFeatures:
    idx, s1 = cached("nag_idx", texts, models, models.nag_indices, log)
    emb, s2 = cached("emb", texts, models, models.embeddings, log)
    return PoolFeatures(idx, s1, emb, s2)


def good_and_bad(pool_indices: np.ndarray, target_indices: np.ndarray, width: int,
                 smoothing: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """``nag_good`` and ``nag_bad`` as ``nag_core.selection_steps.influence_scores`` computes them: NAG similarity
    with the positive part of the contrastive profile, and with the magnitude of its negative part."""
    from nag_core.graph import contrastive_profile, neuron_counts
    from nag_core.scoring import similarity

    w = contrastive_profile(neuron_counts(target_indices, width), neuron_counts(pool_indices, width), smoothing)
    return similarity(pool_indices, np.maximum(w, 0.0)), similarity(pool_indices, np.maximum(-w, 0.0))


def score_all(pool_texts: list[str], feats: PoolFeatures, target: Target, models: Models,
              methods=METHODS, seed: int = 0, proxy: ProxyFeatures | None = None
              ) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Scores of every method for one target and the seconds each took (pool features cached).

    ``methods`` may also name ``EXTRA_METHODS``; ``gradient`` needs ``proxy`` (``proxy_features``)."""
    scores, seconds = {}, {}
    target_idx = None  # the profile's NAG indices, extracted once for every NAG method
    for m in methods:
        t = time.perf_counter()
        if m == "random":
            s = random_baseline.score(pool_texts, target.profile, seed=seed)
        elif m == "dsir":
            s = dsir.score(pool_texts, target.profile)
        elif m == "bm25":
            s = bm25.score(pool_texts, target.profile)
        elif m == "embedding":
            s = embedding.cosine_to_centroid(feats.emb, models.embeddings(target.profile))
        elif m in ("nag", "nag_contrastive", "nag_good", "nag_bad"):
            if target_idx is None:
                target_idx = models.nag_indices(target.profile)
            if m in ("nag", "nag_contrastive"):
                k, profile = (TOP_K, "frequency") if m == "nag" else (nag.CONTRASTIVE_TOP_K, "contrastive")
                s = nag.score_from_indices(feats.nag[..., :k], target_idx[..., :k], models.width, profile=profile)
            else:  # at the contrastive recipe's K, so that nag_contrastive = nag_good - nag_bad
                k = nag.CONTRASTIVE_TOP_K
                s = good_and_bad(feats.nag[..., :k], target_idx[..., :k], models.width)[m == "nag_bad"]
        elif m == "gradient":
            if proxy is None:
                raise SystemExit("the gradient signal needs the proxy LM: pass proxy=bench_common.proxy_features(...)")
            from nag_core.signals.gradient import gradient_features, gradient_influence

            s = gradient_influence(proxy.grad, gradient_features(proxy.model, target.profile, dim=proxy.dim,
                                                                 seed=proxy.seed))
        else:
            raise SystemExit(f"unknown method {m!r}")
        scores[m], seconds[m] = s, time.perf_counter() - t
    return scores, seconds


# ---------------------------------------------------------------- the proxy LM and its signals

@dataclass
class ProxyFeatures:
    """The pipeline's proxy LM trained on the benchmark pool, and its target-independent pool features."""

    model: object
    dim: int  # gradient projection width (``signals.gradient_dim``)
    seed: int  # ``signals.proxy_lm.seed``: the LM's training and the projection R
    steps: int
    sample_documents: int
    train_seconds: float
    grad: np.ndarray  # (n, dim) unit-norm projected loss gradients of the pool documents
    grad_seconds: float
    perplexity: np.ndarray  # (n,) bits per byte: the ``quality_perplexity`` signal
    perplexity_seconds: float


def proxy_features(pool: pl.DataFrame, steps: int | None = None, log=print) -> ProxyFeatures:
    """Train (or load from the cache) the proxy LM as ``nag_core.signal_steps.proxy_lm`` does, on the benchmark
    pool with default settings (``steps`` overrides ``signals.proxy_lm.steps``, for smoke runs), and compute its
    pool-side features as ``gradient_scores`` and ``quality_signals`` do: ``gradient_features`` at
    ``signals.gradient_dim`` and ``byte_perplexity``. Everything is cached under ``CACHE``."""
    from nag_core.settings import Settings
    from nag_core.signal_steps import proxy_sample
    from nag_core.signals.causal_lm import load_byte_lm, load_meta, save_byte_lm, train_byte_lm
    from nag_core.signals.gradient import gradient_features
    from nag_core.signals.perplexity import byte_perplexity

    sig = Settings().signals
    lm = sig.proxy_lm if steps is None else dataclasses.replace(sig.proxy_lm, steps=steps)
    settings = Settings(signals=dataclasses.replace(sig, proxy_lm=lm))
    texts = pool["doc"].to_list()
    sample = [texts[i] for i in proxy_sample(pool["docid"].cast(pl.String).to_list(), settings)]
    lm_key = digest("proxy_lm", dataclasses.asdict(lm), digest(sample, length=32), length=16)
    directory = CACHE / f"proxy_lm_{lm_key}"
    if (directory / "model.safetensors").exists():
        model, train_seconds = load_byte_lm(directory), float(load_meta(directory)["seconds"])
    else:
        log(f"  training the proxy LM on {len(sample)} documents, {lm.steps} steps (cached afterwards in "
            f"{directory.relative_to(ROOT)}) ...")
        t = time.perf_counter()
        model = train_byte_lm(sample, seed=lm.seed, steps=lm.steps, threads=1)  # one thread: bit-reproducible
        train_seconds = time.perf_counter() - t
        save_byte_lm(model, directory, {"seconds": train_seconds, "sample_documents": len(sample)})
    texts_key = digest(texts, length=32)
    dim = sig.gradient_dim
    grad, grad_seconds = cached_array(
        "grad", digest(lm_key, dim, texts_key, length=16),
        lambda: gradient_features(model, texts, dim=dim, seed=lm.seed), len(texts), log)
    ppl, ppl_seconds = cached_array("ppl", digest(lm_key, texts_key, length=16),
                                    lambda: byte_perplexity(model, texts), len(texts), log)
    return ProxyFeatures(model, dim, lm.seed, lm.steps, len(sample), train_seconds, grad, grad_seconds, ppl,
                         ppl_seconds)


def rank(scores: np.ndarray) -> np.ndarray:
    """Pool positions by score, highest first; ties keep pool order."""
    return np.lexsort((np.arange(scores.size), -scores))


# ---------------------------------------------------------------- recipes over benchmark scores

# Benchmark method -> the pipeline's signal name (``nag_core.signal_families.SIGNALS``).
SIGNAL_OF_METHOD = {"nag_contrastive": "nag_contrastive", "nag": "nag_frequency", "embedding": "embedding",
                    "dsir": "dsir", "bm25": "bm25"}
METHOD_OF_SIGNAL = {s: m for m, s in SIGNAL_OF_METHOD.items()}
RECOMMENDED_RECIPE = ROOT / "nag_core" / "recipe_library" / "recommended.yaml"


def signals_frame(pool: pl.DataFrame, target: str, scores: dict[str, np.ndarray],
                  quality: dict[str, np.ndarray] | None = None) -> pl.DataFrame:
    """The warehouse ``signals`` table's shape (docid, signal, target, value) from benchmark scores, so that
    ``nag_core.recipe_ops.run_recipe`` ranks the benchmark pool exactly as the pipeline would."""
    docid = pool["docid"].cast(pl.String)
    parts = [pl.DataFrame({"docid": docid, "signal": SIGNAL_OF_METHOD[m], "target": target,
                           "value": np.asarray(v, np.float64)}) for m, v in scores.items() if m in SIGNAL_OF_METHOD]
    parts += [pl.DataFrame({"docid": docid, "signal": s, "target": target, "value": np.asarray(v, np.float64)})
              for s, v in (quality or {}).items()]
    return pl.concat(parts)


def recipe_scores(recipe, pool: pl.DataFrame, target: str, scores: dict[str, np.ndarray],
                  quality: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """The recipe's fused score F_t(d) = sum_s w_s * norm_s,t(d) per pool row (pool order), computed by
    ``run_recipe`` itself; a document a filter removed gets -inf so it ranks last."""
    from nag_core.recipe_ops import run_recipe

    frame = pool.select(pl.col("docid").cast(pl.String), "token_num")
    result = run_recipe(recipe, [target], frame, signals_frame(pool, target, scores, quality))
    fused = (frame.select("docid").join(result.decisions.filter(pl.col("target") == target).select("docid", "score"),
                                        on="docid", how="left", maintain_order="left")["score"])
    return fused.fill_null(-np.inf).to_numpy().astype(np.float64)


def write_json(path: Path, data) -> None:
    """Rewrite ``path`` atomically, so a reader (or an interrupted run) never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
    tmp.replace(path)
