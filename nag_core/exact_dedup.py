"""Exact deduplication on a normalised-text hash.

This is the first pass of the deduplicated pool. ``near_dedup`` (MinHash) runs after
it on what it keeps; both produce audit rows of the same shape, so the asset simply
concatenates them.

Decisions across shards follow arrival order: a document whose normalised text is
already kept in another shard is removed in favour of that document, and documents
already kept are never re-decided by a later shard.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

import polars as pl

_WS = re.compile(r"\s+")

AUDIT_SCHEMA = {
    "removed_docid": pl.String,
    "kept_docid": pl.String,
    "cluster_id": pl.String,
    "cluster_size": pl.Int64,
    "est_jaccard": pl.Float64,
    "verified_jaccard": pl.Float64,
    "stage": pl.String,
    "rule": pl.String,
    "settings_hash": pl.String,
    "shard": pl.String,
    "matched_target": pl.String,
    "matched_example": pl.String,
}


def normalize(text: str) -> str:
    """NFKC, casefold, collapse whitespace: copies that differ only in layout or case match."""
    return _WS.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def norm_hash(text: str) -> str:
    return hashlib.sha256(normalize(text).encode("utf-8")).hexdigest()[:24]


def with_norm_hash(docs: pl.DataFrame) -> pl.DataFrame:
    """``docs`` plus its ``norm_hash`` column (computed once, if missing)."""
    if "norm_hash" in docs.columns:
        return docs
    return docs.with_columns(pl.col("text").map_elements(norm_hash, return_dtype=pl.String).alias("norm_hash"))


def exact_dedup(docs: pl.DataFrame, kept_elsewhere: pl.DataFrame, settings_hash: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split ``docs`` (docid, text, shard[, norm_hash]) into kept documents and audit rows.

    ``kept_elsewhere`` holds ``norm_hash, docid`` of documents kept by other shards (all of
    them, or only those whose hash occurs in ``docs``: the result is the same); where a
    hash has several, the first row wins. Within the shard the lowest docid of each hash
    group is kept.
    """
    hashed = with_norm_hash(docs)
    owner_here = (
        hashed.sort("docid").group_by("norm_hash", maintain_order=True)
        .agg(pl.col("docid").first().alias("local_keep"), pl.len().alias("local_size"))
    )
    prior = kept_elsewhere.select("norm_hash", pl.col("docid").alias("prior_keep")).unique("norm_hash", keep="first")
    decided = (
        hashed.join(owner_here, on="norm_hash", how="left")
        .join(prior, on="norm_hash", how="left")
        .with_columns(pl.coalesce("prior_keep", "local_keep").alias("keeper"))
        .with_columns((pl.col("local_size") + pl.col("prior_keep").is_not_null().cast(pl.Int64)).alias("cluster_size"))
    )
    kept = decided.filter(pl.col("docid") == pl.col("keeper")).drop("local_keep", "local_size", "prior_keep", "keeper", "cluster_size")
    removed = decided.filter(pl.col("docid") != pl.col("keeper"))
    audit = removed.select(
        pl.col("docid").alias("removed_docid"),
        pl.col("keeper").alias("kept_docid"),
        ("exact:" + pl.col("norm_hash")).alias("cluster_id"),
        pl.col("cluster_size").cast(pl.Int64),
        pl.lit(1.0).alias("est_jaccard"),
        pl.lit(1.0).alias("verified_jaccard"),
        pl.lit("exact").alias("stage"),
        pl.lit("lowest_docid").alias("rule"),
        pl.lit(settings_hash).alias("settings_hash"),
        pl.col("shard"),
        pl.lit(None, dtype=pl.String).alias("matched_target"),
        pl.lit(None, dtype=pl.String).alias("matched_example"),
    ).cast(AUDIT_SCHEMA)
    return kept, audit
