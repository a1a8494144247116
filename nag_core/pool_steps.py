"""Steps over the pool: validated raw shards, the deduplicated pool, activation caches."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl

from nag_core.documents import drop_foreign_docids, read_shard
from nag_core.errors import NagInputError
from nag_core.dedup_store import docid_owners, kept_norm_hashes, prior_lookup
from nag_core.exact_dedup import AUDIT_SCHEMA, exact_dedup, with_norm_hash
from nag_core.extraction import Features
from nag_core.features import import_jsonl, read_cache, write_cache
from nag_core.freshness import State, partition_key, split_key
from nag_core.hashing import digest
from nag_core.minhash import MinHashSettings, s_curve
from nag_core.models import ModelPool, token_counter
from nag_core.near_dedup import band_rows, decontaminate, dedup_incremental
from nag_core.pool_counts import write_shard_counts
from nag_core.step_result import Log, StepResult, code_version, record, require_fingerprint, versions
from nag_core.warehouse import Warehouse



def raw_pool(state: State, shard: str, run_id: str, log: Log = print) -> StepResult:
    fp = require_fingerprint(state, "raw_pool", shard)
    path = state.home.shard_file(shard)
    counter_cache: list = []

    def count(texts):
        if not counter_cache:
            name = state.settings.token_count_model
            if name not in state.models:
                raise NagInputError(f"nag.yaml: token_count_model {name!r} is not a known model ({sorted(state.models)})")
            counter_cache.append(token_counter(state.models[name]))
        return counter_cache[0](texts)

    validated = read_shard(path, shard, count)
    wh = Warehouse(state.home.root)
    # Only shards that still exist: a renamed shard's old rows must not claim its docids.
    validated = drop_foreign_docids(validated, docid_owners(wh, shard, validated.documents["docid"], set(state.shard_files)))
    docs, quarantine = validated.documents, validated.quarantine
    wh.write("documents", shard, docs)
    wh.write("quarantine", shard, quarantine)
    dv = digest(docs["docid"].to_list(), docs["text_hash"].to_list(), docs["token_num"].to_list())
    record(state, "raw_pool", shard, fp, dv, run_id)
    reasons = quarantine.group_by("reason").len().sort("len", descending=True) if quarantine.height else None
    if quarantine.height:
        log(f"{path.name}: quarantined {quarantine.height} rows; see the 'quarantine' table")
    return StepResult(dv, {
        "file": str(path), "rows": docs.height + quarantine.height, "documents": docs.height,
        "quarantined": quarantine.height, "tokens": int(docs["token_num"].sum() or 0),
        "text_column": validated.text_column, "payload_columns": [c for c in docs.columns if c not in
                                                                    ("docid", "shard", "row_index", "text", "token_num", "text_hash")],
    }, preview=reasons)


def dedup_pool(state: State, shard: str, run_id: str, log: Log = print) -> StepResult:
    """Exact pass, then MinHash near-dup pass, then (optionally) decontamination against targets.

    Documents kept by other shards are never re-decided: this shard's documents are
    compared with them and removed in their favour. Memory is bounded by this shard:
    other shards' documents are read only where a hash or an LSH bucket matches
    (:mod:`nag_core.dedup_store`).
    """
    fp = require_fingerprint(state, "dedup_pool", shard)
    wh = Warehouse(state.home.root)
    dedup = state.settings.dedup
    docs = with_norm_hash(wh.read("documents", [shard], columns=["docid", "text", "shard", "token_num", "text_hash"]))
    kept_elsewhere = kept_norm_hashes(wh, shard, docs["norm_hash"])
    settings_hash = state.settings.hash_for("dedup_pool")
    kept, exact_audit = exact_dedup(docs, kept_elsewhere, settings_hash)
    audits = [exact_audit]
    meta: dict = {"input_documents": docs.height, "removed_exact": exact_audit.height,
                  "normalizer": dedup.normalizer, "settings_hash": settings_hash}
    if dedup.near is not None:
        near = dedup.near
        prior = prior_lookup(wh, shard, near, with_text=near.verify)  # texts: cross-shard pairs verified exactly
        result = dedup_incremental(kept.select("docid", "text", "shard", "text_hash"), prior, near,
                                   signal=_keep_signal(wh, shard, dedup.signal_column) if near.keep_rule == "best_signal" else None)
        kept = kept.filter(pl.col("docid").is_in(result.kept_docids))
        audits.append(result.removed.with_columns(pl.lit(settings_hash).alias("settings_hash")))
        wh.write("dedup_signatures", shard, result.kept_signatures)
        wh.write("dedup_bands", shard, band_rows(result.kept_signatures, near))  # after: newer than the signatures
        meta |= {"removed_near": result.removed.height, "near_settings": near.name, "near_threshold": round(near.threshold, 4),
                 "verify_threshold": near.verify_threshold, "keep_rule": near.keep_rule,
                 "hashing_scheme": near.hashing_scheme, "candidate_pairs": result.stats["n_candidate_pairs"],
                 "false_positives_rejected": result.stats["n_rejected_pairs"],
                 "prior_candidates_read": result.stats["n_prior_kept"],
                 "near_parameters": state.settings.as_dict()["dedup"]["near"],
                 "s_curve": {f"{j:.1f}": round(p, 4) for j, p in s_curve(near, 11)}}
    if dedup.decontaminate:
        examples = wh.read("target_examples", columns=["example_id", "target", "text"])
        contaminated = decontaminate(kept.select("docid", "text", "shard"), examples, dedup.near or MinHashSettings())
        kept = kept.filter(~pl.col("docid").is_in(contaminated["removed_docid"].to_list()))
        audits.append(contaminated.with_columns(pl.lit(settings_hash).alias("settings_hash")))
        meta["removed_contamination"] = contaminated.height
    audit = pl.concat([a.cast(AUDIT_SCHEMA) for a in audits]).sort("removed_docid")
    wh.write("dedup_settings", settings_hash, _settings_row(state.settings, settings_hash))
    kept = kept.select("docid", "shard", "token_num", "norm_hash").sort("docid")
    wh.write("pool_kept", shard, kept)
    wh.write("dedup_removed", shard, audit)
    dv = digest(kept["docid"].to_list())
    record(state, "dedup_pool", shard, fp, dv, run_id)
    log(f"{shard}: kept {kept.height} of {docs.height} documents ({audit.height} removed)")
    meta |= {"kept": kept.height, "removed": audit.height, "removal_rate": round(audit.height / max(1, docs.height), 4)}
    return StepResult(dv, meta, preview=audit.select("removed_docid", "kept_docid", "stage", "cluster_size",
                                                     "est_jaccard", "verified_jaccard", "matched_example").head(20))


def _keep_signal(wh: Warehouse, shard: str, column: str) -> pl.DataFrame:
    """Scores for the best_signal keep rule; a shard without the column ranks by docid alone."""
    docs = wh.read("documents", [shard])
    score = pl.col(column).cast(pl.Float64) if column in docs.columns else pl.lit(None, pl.Float64)
    return docs.select("docid", score.alias("score"))


def _settings_row(settings, settings_hash: str) -> pl.DataFrame:
    """Every dedup parameter, keyed by the settings hash that each audit row carries."""
    near = settings.dedup.near
    return pl.DataFrame([{
        "settings_hash": settings_hash, "normalizer": settings.dedup.normalizer,
        "near": json.dumps(settings.as_dict()["dedup"]["near"], sort_keys=True),
        "near_name": near.name if near else None, "hashing_scheme": near.hashing_scheme if near else None,
        "near_threshold": near.threshold if near else None, "decontaminate": settings.dedup.decontaminate,
        "signal_column": settings.dedup.signal_column,
    }], schema={"settings_hash": pl.String, "normalizer": pl.String, "near": pl.String, "near_name": pl.String,
                "hashing_scheme": pl.String, "near_threshold": pl.Float64, "decontaminate": pl.Boolean,
                "signal_column": pl.String})


def extract_to_cache(state: State, models: ModelPool, model_name: str, docids: list[str], texts: list[str],
                     path, extra_meta: dict, log: Log) -> tuple[str, dict]:
    """Run extraction and write one cache file; returns its data version and metadata."""
    ref = state.models[model_name]
    settings = state.settings
    extractor = models.extractor(ref, settings)
    features, stats = extractor.extract(texts, progress=log)
    meta = {
        "model": ref.name, "model_fingerprint": ref.fingerprint, "tokenizer_hash": ref.tokenizer_hash,
        "top_k": settings.top_k, "num_layers": extractor.num_layers, "max_length": settings.max_length,
        "neuron_types": list(settings.neuron_types), "widths": {nt: extractor.width(nt) for nt in settings.neuron_types},
        "settings_hash": settings.hash_for("activations"), "versions": versions(), **extra_meta,
    }
    write_cache(path, docids, features, meta)
    score_idx = features[settings.score_neuron_type].indices
    dv = digest(docids, digest(np.ascontiguousarray(score_idx).tobytes().hex()))
    rate = stats.documents / stats.seconds if stats.seconds else 0.0
    return dv, {"documents": stats.documents, "tokens": stats.tokens, "seconds": round(stats.seconds, 3),
                "docs_per_s": round(rate, 1), "padding_efficiency": round(stats.tokens / max(1, stats.padded_tokens), 3),
                "num_layers": extractor.num_layers, "top_k": settings.top_k, "cache_path": str(path),
                "cache_bytes": path.stat().st_size}


def activation_cache(state: State, models: ModelPool, key: str, run_id: str, log: Log = print) -> StepResult:
    fp = require_fingerprint(state, "activation_cache", key)
    p = split_key("activation_cache", key)
    wh = Warehouse(state.home.root)
    kept = wh.read("pool_kept", [p["shard"]], columns=["docid"])
    docs = wh.read("documents", [p["shard"]], columns=["docid", "text"])
    rows = kept.join(docs, on="docid", how="left").sort("docid")
    path = state.home.activation_cache_path(p["model"], p["shard"])
    log(f"extracting {rows.height} documents of {p['shard']} with {p['model']}")
    dv, meta = extract_to_cache(state, models, p["model"], rows["docid"].to_list(), rows["text"].to_list(), path,
                                {"shard": p["shard"], "code_version": code_version("activation_cache")}, log)
    _store_counts(state, p["model"], p["shard"])
    record(state, "activation_cache", key, fp, dv, run_id)
    return StepResult(dv, meta)



def _store_counts(state: State, model: str, shard: str) -> None:
    """The shard's neuron counts per stored type, for the contrastive profile's pool background."""
    path = state.home.activation_cache_path(model, shard)
    indices, widths = {}, {}
    for nt in state.settings.neuron_types:
        _, idx, _, meta = read_cache(path, nt)
        indices[nt], widths[nt] = idx, meta["widths"][nt]
    write_shard_counts(state.home, model, shard, indices, widths)


def import_activation_cache(state: State, model: str, shard: str, path, neuron_type: str = "fwd_up") -> StepResult:
    """Adopt features computed by the reference NAG tool as this shard's activation cache.

    The JSONL must cover every kept document of the shard, at this model's layer count
    and the configured K. Impact values are unknown in that format, so they are stored
    as NaN; the cache is then recorded as fresh, so ``nag-select run`` does not redo it.
    """
    key = partition_key("activation_cache", model=model, shard=shard)
    fp = require_fingerprint(state, "activation_cache", key)
    settings = state.settings
    if neuron_type != settings.score_neuron_type or tuple(settings.neuron_types) != (neuron_type,):
        raise NagInputError(f"nag.yaml: importing {neuron_type!r} features needs neuron_types: [{neuron_type}] and "
                            f"score_neuron_type: {neuron_type}")
    ref = state.models[model]
    config = json.loads((ref.path / "config.json").read_text())
    num_layers = config.get("num_hidden_layers") or config.get("n_layer")
    width = config.get("intermediate_size") or config.get("n_inner") or 4 * config.get("n_embd", 0)
    docids, idx = import_jsonl(Path(path), neuron_type, num_layers, settings.top_k)
    kept = Warehouse(state.home.root).read("pool_kept", [shard], columns=["docid"])["docid"].to_list()
    missing = sorted(set(kept) - set(docids))
    if missing:
        raise NagInputError(f"{path}: no features for {len(missing)} kept documents of shard {shard!r}, e.g. {missing[:3]}")
    if idx.size and int(idx.max()) >= width:
        raise NagInputError(f"{path}: neuron index {int(idx.max())} is outside {model}'s {width} {neuron_type} neurons")
    order = {d: i for i, d in enumerate(docids)}
    rows = np.asarray([order[d] for d in sorted(kept)], dtype=np.int64)
    features = {neuron_type: Features(idx[rows], np.full(idx[rows].shape, np.nan, np.float32))}
    meta = {"model": ref.name, "model_fingerprint": ref.fingerprint, "tokenizer_hash": ref.tokenizer_hash,
            "top_k": settings.top_k, "num_layers": num_layers, "max_length": settings.max_length,
            "neuron_types": [neuron_type], "widths": {neuron_type: width}, "settings_hash": settings.hash_for("activations"),
            "versions": versions(), "shard": shard, "imported_from": str(path), "code_version": code_version("activation_cache")}
    cache = state.home.activation_cache_path(model, shard)
    write_cache(cache, sorted(kept), features, meta)
    dv = digest(sorted(kept), digest(np.ascontiguousarray(features[neuron_type].indices).tobytes().hex()))
    _store_counts(state, model, shard)
    record(state, "activation_cache", key, fp, dv, "import")
    return StepResult(dv, {"documents": len(kept), "cache_path": str(cache), "imported_from": str(path)})
