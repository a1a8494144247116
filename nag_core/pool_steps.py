"""Steps over the pool: validated raw shards, the deduplicated pool, activation caches."""

from __future__ import annotations

import numpy as np
import polars as pl

from nag_core.documents import drop_foreign_docids, read_shard
from nag_core.errors import NagInputError
from nag_core.exact_dedup import AUDIT_SCHEMA, exact_dedup
from nag_core.features import write_cache
from nag_core.freshness import State, split_key
from nag_core.hashing import digest
from nag_core.minhash import MinHashSettings, s_curve
from nag_core.models import ModelPool, token_counter
from nag_core.near_dedup import decontaminate, dedup_incremental
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
    others = wh.read("documents", columns=["docid", "shard"], exclude=shard)
    foreign = dict(zip(others["docid"].to_list(), others["shard"].to_list()))
    validated = drop_foreign_docids(validated, foreign)
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
    compared with them and removed in their favour.
    """
    fp = require_fingerprint(state, "dedup_pool", shard)
    wh = Warehouse(state.home.root)
    dedup = state.settings.dedup
    docs = wh.read("documents", [shard], columns=["docid", "text", "shard", "token_num", "text_hash"])
    kept_elsewhere = wh.read("pool_kept", columns=["norm_hash", "docid"], exclude=shard)
    settings_hash = state.settings.hash_for("dedup_pool")
    kept, exact_audit = exact_dedup(docs, kept_elsewhere, settings_hash)
    audits = [exact_audit]
    meta: dict = {"input_documents": docs.height, "removed_exact": exact_audit.height,
                  "normalizer": dedup.normalizer, "settings_hash": settings_hash}
    if dedup.near is not None:
        near = dedup.near
        prior = wh.read("dedup_signatures", exclude=shard)
        prior = prior.filter(pl.col("settings_hash") == near.settings_hash) if prior.height else None
        if prior is not None and near.verify:  # texts let cross-shard candidates be verified exactly
            texts = wh.read("documents", columns=["docid", "text"], exclude=shard)
            prior = prior.join(texts, on="docid", how="left")
        result = dedup_incremental(kept.select("docid", "text", "shard", "text_hash"), prior, near)
        kept = kept.filter(pl.col("docid").is_in(result.kept_docids))
        audits.append(result.removed.with_columns(pl.lit(settings_hash).alias("settings_hash")))
        wh.write("dedup_signatures", shard, result.kept_signatures)
        meta |= {"removed_near": result.removed.height, "near_settings": near.name, "near_threshold": round(near.threshold, 4),
                 "verify_threshold": near.verify_threshold, "keep_rule": near.keep_rule,
                 "hashing_scheme": near.hashing_scheme, "candidate_pairs": result.stats["n_candidate_pairs"],
                 "false_positives_rejected": result.stats["n_rejected_pairs"],
                 "s_curve": {f"{j:.1f}": round(p, 4) for j, p in s_curve(near, 11)}}
    if dedup.decontaminate:
        examples = wh.read("target_examples", columns=["example_id", "target", "text"])
        contaminated = decontaminate(kept.select("docid", "text", "shard"), examples, dedup.near or MinHashSettings())
        kept = kept.filter(~pl.col("docid").is_in(contaminated["removed_docid"].to_list()))
        audits.append(contaminated.with_columns(pl.lit(settings_hash).alias("settings_hash")))
        meta["removed_contamination"] = contaminated.height
    audit = pl.concat([a.cast(AUDIT_SCHEMA) for a in audits]).sort("removed_docid")
    kept = kept.select("docid", "shard", "token_num", "norm_hash").sort("docid")
    wh.write("pool_kept", shard, kept)
    wh.write("dedup_removed", shard, audit)
    dv = digest(kept["docid"].to_list())
    record(state, "dedup_pool", shard, fp, dv, run_id)
    log(f"{shard}: kept {kept.height} of {docs.height} documents ({audit.height} removed)")
    meta |= {"kept": kept.height, "removed": audit.height, "removal_rate": round(audit.height / max(1, docs.height), 4)}
    return StepResult(dv, meta, preview=audit.select("removed_docid", "kept_docid", "stage", "cluster_size",
                                                     "est_jaccard", "verified_jaccard", "matched_example").head(20))


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
    record(state, "activation_cache", key, fp, dv, run_id)
    return StepResult(dv, meta)

