"""Steps that compute the non-NAG signal families into the warehouse ``signals`` table.

Every family writes rows of one shape (docid, shard, signal, target, model, value and
the lineage columns asset, run_id, config_hash, code_version) to its own partition file
``tables/signals/<asset>@<partition>.parquet``, so the DuckDB view ``signals`` holds every
signal side by side and a recipe can read any mix of them. See
``nag_core.signal_families`` for which asset computes what.

Pool-side work that does not depend on the target is done once and cached: the
embedding cache per (model, shard), and per-shard gradient features per proxy-LM
version, so adding a target costs only the target's own examples.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

import numpy as np
import polars as pl
import pyarrow as pa

from nag_core.atomic import atomic_path, write_parquet
from nag_core.errors import NagInputError
from nag_core.freshness import State, split_key
from nag_core.hashing import digest, file_digest, text_digest
from nag_core.models import ModelPool
from nag_core.signal_sink import no_documents_error, write_signals
from nag_core.signals import bm25, dsir, embedding
from nag_core.signals.ngrams import Hasher
from nag_core.storage import Location, read_arrow
from nag_core.step_result import Log, StepResult, record, require_fingerprint, versions
from nag_core.warehouse import Warehouse, partition_id

EMBEDDING_META = b"nag_embedding"


def kept_documents(state: State, shards: list[str] | None = None) -> pl.DataFrame:
    """docid, shard, text of the kept pool (every current shard unless named), sorted by shard then docid."""
    wh = Warehouse(state.home.root)
    frames = []
    for shard in sorted(state.shards) if shards is None else shards:
        kept = wh.read("pool_kept", [shard], columns=["docid"])
        docs = wh.read("documents", [shard], columns=["docid", "text"])
        frames.append(kept.join(docs, on="docid", how="left").with_columns(pl.lit(shard).alias("shard")).sort("docid"))
    if not frames:
        return pl.DataFrame(schema={"docid": pl.String, "text": pl.String, "shard": pl.String})
    return pl.concat(frames).select("docid", "shard", "text")


def require_pool(state: State, docs: pl.DataFrame) -> pl.DataFrame:
    """A clear error, not a crash, when no document survived validation and dedup."""
    if docs.is_empty():
        raise no_documents_error(state)
    return docs


def target_texts(state: State, target: str) -> list[str]:
    texts = Warehouse(state.home.root).read("target_examples", [target], columns=["text"])["text"].to_list()
    if not texts:
        raise NagInputError(f"{state.home.target_dir(target)}: target {target!r} has no examples; add example files")
    return texts


def _finish(state: State, asset: str, key: str, fp: str, chunks: Iterable[pl.DataFrame], run_id: str, log: Log,
            what: str, required: bool = False) -> StepResult:
    """Write the signal chunks (one shard each, see ``nag_core.signal_sink``), record the partition, summarise it."""
    written = write_signals(state, asset, key, chunks, run_id, required)
    record(state, asset, key, fp, written.data_version, run_id)
    log(f"{asset}[{key}]: {what}, {written.rows} values")
    return StepResult(written.data_version, {"documents": written.documents, "signals": written.summary["signal"].to_list(),
                                             "config_hash": written.config_hash if written.rows else None},
                      preview=written.summary.with_columns(pl.col("min", "mean", "max").round(5)))


def _single(docs: pl.DataFrame, signal: str, values: np.ndarray) -> pl.DataFrame:
    return pl.DataFrame({"docid": docs["docid"], "shard": docs["shard"], "signal": signal,
                         "value": np.asarray(values, np.float64)})


def lexical_scores(state: State, asset: str, key: str, run_id: str, log: Log = print) -> StepResult:
    """DSIR or BM25 of every kept document against one target (model-free, so partitioned by target only).

    Two passes over the kept pool, one shard in memory at a time: the pool's n-gram counts
    (DSIR) or term statistics (BM25) first, then each shard's scores.
    """
    fp = require_fingerprint(state, asset, key)
    target = split_key(asset, key)["target"]
    examples = target_texts(state, target)
    shards = sorted(state.shards)
    if asset == "dsir_scores":
        signal, hasher = "dsir", Hasher(dsir.DEFAULT_BUCKETS)
        raw = sum((dsir.counts(kept_documents(state, [s])["text"], hasher) for s in shards), np.zeros(hasher.buckets))
        log_ratio = dsir.fit(examples, hasher) - dsir.log_probs(raw)

        def score(texts: list[str]) -> np.ndarray:
            return dsir.score_with(texts, log_ratio, hasher)
    else:
        signal, stats = "bm25", bm25.PoolStats()
        for s in shards:
            stats.add(kept_documents(state, [s])["text"])

        def score(texts: list[str]) -> np.ndarray:
            return bm25.score_with(texts, stats, examples)

    def chunks() -> Iterator[pl.DataFrame]:
        for s in shards:
            docs = kept_documents(state, [s])
            yield _single(docs, signal, score(docs["text"].to_list()))

    return _finish(state, asset, key, fp, chunks(), run_id, log, f"{signal} against {target}", required=True)


def embedding_cache(state: State, models: ModelPool, key: str, run_id: str, log: Log = print) -> StepResult:
    """Mean-pooled embeddings of one shard's kept documents, so every target reuses them."""
    fp = require_fingerprint(state, "embedding_cache", key)
    p = split_key("embedding_cache", key)
    docs = kept_documents(state, [p["shard"]])
    model, tokenizer = models.load(state.models[p["model"]])
    vectors = embedding.embed(docs["text"].to_list(), model, tokenizer, max_length=state.settings.max_length,
                              batch_size=state.settings.batch_size)
    path = state.home.embedding_cache_path(p["model"], p["shard"])
    flat = pa.array(np.ascontiguousarray(vectors.reshape(-1)), pa.float32())
    dim = vectors.shape[1]
    table = pa.table({"docid": pa.array(docs["docid"].to_list(), pa.string()),
                      "embedding": pa.FixedSizeListArray.from_arrays(flat, dim)})
    meta = {"model": p["model"], "model_fingerprint": state.models[p["model"]].fingerprint, "dim": dim,
            "max_length": state.settings.max_length, "shard": p["shard"], "versions": versions()}
    write_parquet(table.replace_schema_metadata({EMBEDDING_META: json.dumps(meta, sort_keys=True).encode()}), path)
    dv = digest(docs["docid"].to_list(), digest(np.round(vectors, 5).tobytes().hex()))
    record(state, "embedding_cache", key, fp, dv, run_id)
    log(f"embedded {docs.height} documents of {p['shard']} with {p['model']}")
    return StepResult(dv, {"documents": docs.height, "dim": dim, "cache_path": str(path), "cache_bytes": path.stat().st_size})


def read_embeddings(path: Location) -> tuple[list[str], np.ndarray]:
    table = read_arrow(path)
    meta = json.loads((table.schema.metadata or {})[EMBEDDING_META])
    n = table.num_rows
    flat = table.column("embedding").combine_chunks().values.to_numpy(zero_copy_only=False) if n else np.zeros(0, np.float32)
    return table.column("docid").to_pylist(), flat.reshape(n, meta["dim"])


def embedding_scores(state: State, models: ModelPool, key: str, run_id: str, log: Log = print) -> StepResult:
    fp = require_fingerprint(state, "embedding_scores", key)
    p = split_key("embedding_scores", key)
    model, tokenizer = models.load(state.models[p["model"]])
    targets = embedding.embed(target_texts(state, p["target"]), model, tokenizer, max_length=state.settings.max_length,
                              batch_size=state.settings.batch_size)

    def chunks() -> Iterator[pl.DataFrame]:
        for shard in sorted(state.shards):
            docids, vectors = read_embeddings(state.home.embedding_cache_path(p["model"], shard))
            yield pl.DataFrame({"docid": docids, "shard": shard, "signal": "embedding",
                                "value": embedding.cosine_to_centroid(vectors, targets)})

    return _finish(state, "embedding_scores", key, fp, chunks(), run_id, log, f"embedding cosine to {p['target']}")


def seeded_sample(docids: list[str], salt: str, fraction: float, min_documents: int, max_documents: int) -> list[int]:
    """Indices of the documents whose hash of ``salt:docid`` is lowest: about ``fraction`` of them, clamped.

    Hashing docids (not drawing from an RNG) keeps a document's membership fixed as shards arrive.
    """
    keys = np.array([int(text_digest(f"{salt}:{d}", 12), 16) / 16 ** 12 for d in docids])
    order = np.lexsort((np.arange(len(docids)), keys))
    wanted = int(np.clip(int((keys < fraction).sum()), min(min_documents, len(docids)), max_documents))
    return sorted(order[:wanted].tolist())


def proxy_sample(docids: list[str], settings) -> list[int]:
    """Indices of the proxy LM's training sample: the lowest docid hashes, about ``sample_fraction`` of the pool."""
    lm = settings.signals.proxy_lm
    return seeded_sample(docids, str(lm.seed), lm.sample_fraction, lm.min_documents, lm.max_documents)


def proxy_lm(state: State, key: str, run_id: str, log: Log = print) -> StepResult:
    """Train the byte-level causal LM behind perplexity and gradient influence, on a seeded pool sample."""
    from nag_core.signals.causal_lm import save_byte_lm, train_byte_lm

    fp = require_fingerprint(state, "proxy_lm", key)
    docs = kept_documents(state)
    if docs.is_empty():
        raise NagInputError(f"{state.home.pool_dir}: the kept pool is empty, so there is nothing to train the proxy LM on")
    rows = proxy_sample(docs["docid"].to_list(), state.settings)
    sample = docs[rows]
    lm = state.settings.signals.proxy_lm
    model = train_byte_lm(sample["text"].to_list(), seed=lm.seed, steps=lm.steps, log=log)
    meta = {"sample_documents": sample.height, "sample_docids": digest(sample["docid"].to_list()),
            "settings": state.settings.as_dict()["signals"]["proxy_lm"],
            "run_id": run_id}
    save_byte_lm(model, state.home.proxy_lm_dir, meta)
    weights = sorted(state.home.proxy_lm_dir.glob("*.safetensors"))
    dv = digest([file_digest(w) for w in weights])
    record(state, "proxy_lm", key, fp, dv, run_id)
    log(f"proxy LM trained on {sample.height} documents for {lm.steps} steps")
    return StepResult(dv, {"sample_documents": sample.height, "steps": lm.steps, "seed": lm.seed,
                           "parameters": int(sum(p.numel() for p in model.parameters())),
                           "path": str(state.home.proxy_lm_dir)})


def _proxy_model(state: State):
    from nag_core.signals.causal_lm import load_byte_lm

    if not state.home.proxy_lm_dir.is_dir():
        raise NagInputError(f"{state.home.proxy_lm_dir}: no proxy LM; materialise proxy_lm first (nag-select run does)")
    return load_byte_lm(state.home.proxy_lm_dir)


def quality_signals(state: State, key: str, run_id: str, log: Log = print) -> StepResult:
    """Target-free quality signals of one shard (and bits per byte under the proxy LM when enabled)."""
    from nag_core.signals.quality import quality_signals as text_quality

    fp = require_fingerprint(state, "quality_signals", key)
    shard = split_key("quality_signals", key)["shard"]
    docs = kept_documents(state, [shard])
    texts = docs["text"].to_list()
    values = text_quality(texts)
    if "perplexity" in state.settings.signals.families:
        from nag_core.signals.perplexity import byte_perplexity

        values["quality_perplexity"] = byte_perplexity(_proxy_model(state), texts)
    rows = pl.concat([_single(docs, name, v) for name, v in values.items()]).with_columns(
        pl.lit(None, pl.String).alias("target"), pl.lit(None, pl.String).alias("model"))
    return _finish(state, "quality_signals", key, fp, [rows], run_id, log, f"quality of {shard}")


def _pool_gradients(state: State, model, shard: str, docs: pl.DataFrame) -> np.ndarray:
    """One shard's gradient features, cached per proxy-LM version (they do not depend on the target)."""
    from nag_core.signals.gradient import gradient_features

    dim = state.settings.signals.gradient_dim
    version = state.data_version("proxy_lm", "")
    path = state.home.outputs / "cache" / "gradients" / f"{version}-{dim}" / f"{shard}.npz"
    ids = docs["docid"].to_list()
    if path.exists():
        with path.open("rb") as fh, np.load(fh, allow_pickle=False) as stored:
            if stored["docids"].tolist() == ids:
                return stored["features"]
    features = gradient_features(model, docs["text"].to_list(), dim=dim, seed=state.settings.signals.proxy_lm.seed)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, docids=np.array(ids, dtype=str), features=features)
    return features


def gradient_scores(state: State, key: str, run_id: str, log: Log = print) -> StepResult:
    """LESS-style gradient influence of every kept document on one target, under the proxy LM."""
    from nag_core.signals.gradient import gradient_features, gradient_influence

    fp = require_fingerprint(state, "gradient_scores", key)
    target = split_key("gradient_scores", key)["target"]
    model = _proxy_model(state)
    dim, seed = state.settings.signals.gradient_dim, state.settings.signals.proxy_lm.seed
    target_features = gradient_features(model, target_texts(state, target), dim=dim, seed=seed)

    def chunks() -> Iterator[pl.DataFrame]:
        for shard in sorted(state.shards):
            docs = kept_documents(state, [shard])
            yield _single(docs, "gradient", gradient_influence(_pool_gradients(state, model, shard, docs), target_features))

    return _finish(state, "gradient_scores", key, fp, chunks(), run_id, log, f"gradient influence on {target}")


def signal_provenance(state: State, parts: list[tuple[str, str, str]]) -> list[dict]:
    """Per signal partition: which asset run, settings and data version produced the values read."""
    wh = Warehouse(state.home.root)
    out = []
    for signal, asset, key in parts:
        row = wh.read("signals", [partition_id(asset, *key.split("|"))], columns=["run_id", "config_hash", "code_version"],
                      where=[("signal", "=", signal)]).head(1)
        stamp = row.row(0, named=True) if row.height else {}
        out.append({"signal": signal, "asset": asset, "partition": key, **split_key(asset, key),
                    "data_version": state.data_version(asset, key), "run_id": stamp.get("run_id"),
                    "config_hash": stamp.get("config_hash"), "code_version": stamp.get("code_version")})
    return out


def distilled_sample(docids: list[str], settings) -> list[int]:
    """Indices of the distilled scorer's training sample (its own salt, so it is not the proxy LM's sample)."""
    d = settings.signals.distilled
    return seeded_sample(docids, f"distilled:{d.seed}", d.sample_fraction, d.min_documents, d.max_documents)


def distilled_scores(state: State, key: str, run_id: str, log: Log = print) -> StepResult:
    """Fit the distilled scorer on a seeded sample's NAG scores, store it, and score every kept document with it.

    The labels are one NAG signal (``signals.distilled.signal``) of the sampled documents,
    read from this (model, target)'s ``influence_scores`` partition. Texts are read one
    shard at a time (the sample's texts, then each shard again to score), so memory holds
    the sample and one shard, not the pool. In this pipeline every kept document also has
    its NAG score, so the metadata reports how well the scorer imitates NAG where it saw
    no label (Spearman on the documents outside the sample); on a pool too big to extract
    the stored scorer (``cache/distilled/<model>/<target>.npz``) is what scores the rest.
    """
    from scipy.stats import spearmanr

    from nag_core.signals.distilled import DistilledScorer, fit_distilled

    fp = require_fingerprint(state, "distilled_scores", key)
    p = split_key("distilled_scores", key)
    cfg = state.settings.signals.distilled
    wh = Warehouse(state.home.root)
    teacher = wh.read("signals", [partition_id("influence_scores", p["model"], p["target"])],
                      columns=["docid", "value"], where=[("signal", "=", cfg.signal)])
    labels = dict(zip(teacher["docid"].to_list(), teacher["value"].to_list(), strict=True))
    shards = sorted(state.shards)
    docids = sorted(wh.read("pool_kept", shards, columns=["docid"])["docid"].to_list()) if shards else []
    require_pool(state, pl.DataFrame({"docid": docids}, schema={"docid": pl.String}))
    missing = [d for d in docids if d not in labels]
    if missing:
        raise NagInputError(f"distilled_scores[{key}]: {len(missing)} kept document(s) (e.g. {missing[0]!r}) have no "
                            f"{cfg.signal} value in influence_scores[{key}]; materialise influence_scores first")
    sampled = {docids[i] for i in distilled_sample(docids, state.settings)}
    texts: dict[str, str] = {}
    for shard in shards:
        docs = kept_documents(state, [shard]).filter(pl.col("docid").is_in(list(sampled)))
        texts.update(zip(docs["docid"].to_list(), docs["text"].to_list(), strict=True))
    order = sorted(sampled)
    scorer = fit_distilled([texts[d] for d in order], np.array([labels[d] for d in order]), seed=cfg.seed,
                           n_features=cfg.n_features, alpha=cfg.alpha)
    data = scorer.to_bytes()
    path = state.home.distilled_scorer_path(p["model"], p["target"])
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    scorer = DistilledScorer.from_bytes(path.read_bytes())  # score with what was stored, as a later reader would
    student, teacher_rest = [], []  # on the documents outside the sample, for the held-out agreement

    def chunks() -> Iterator[pl.DataFrame]:
        for shard in shards:
            docs = kept_documents(state, [shard])
            rows = _single(docs, "distilled_nag", scorer.score(docs["text"].to_list()))
            rest = rows.filter(~pl.col("docid").is_in(order))
            student.append(rest["value"].to_numpy())
            teacher_rest.append(np.array([labels[d] for d in rest["docid"].to_list()], np.float64))
            yield rows

    result = _finish(state, "distilled_scores", key, fp, chunks(), run_id, log,
                     f"{cfg.signal} distilled from {len(order)} sampled documents, for {p['target']}")
    held_out = None
    if sum(a.size for a in student) >= 3:
        rho = spearmanr(np.concatenate(student), np.concatenate(teacher_rest)).statistic
        held_out = None if not np.isfinite(rho) else round(float(rho), 4)
    result.metadata.update({"imitates": cfg.signal, "sample_documents": len(order),
                            "held_out_spearman": held_out, "nonzero_weights": int(scorer.indices.size),
                            "scorer_path": str(path), "scorer_bytes": len(data)})
    return result
