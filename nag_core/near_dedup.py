"""MinHash near-duplicate removal and decontamination, with one audit row per removed doc.

Pipeline (all columnar except the per-pair exact check):

1. normalise, shingle and hash every text; MinHash signatures (:mod:`nag_core.minhash`);
2. band keys per (doc, band) in a Polars frame; a join on (band, key) yields candidate
   pairs. Documents with identical signatures are first collapsed to one representative
   (linked to it by a star of edges), so a thousand exact copies cost a thousand edges,
   not half a million pairs;
3. every candidate pair gets the signature estimate of its Jaccard and, with
   ``verify``, the exact Jaccard of the two shingle-hash sets; pairs below
   ``verify_threshold`` are rejected (counted as band false positives);
4. connected components of the accepted edges are clusters; each keeps one document.

Incremental use (:func:`dedup_incremental`): documents kept by earlier calls come back
as their stored signature rows and are never re-decided. A cluster that contains one
of them keeps it, and every new document in that cluster is removed in its favour
(rule ``already_kept``); pairs between two earlier-kept documents are ignored.

Keep rules: ``lowest_docid`` (docids compare as strings) or ``best_signal`` (highest
score, then lowest docid; a document without a score ranks below any scored one).

Audit columns (:data:`AUDIT_SCHEMA`): ``est_jaccard`` and ``verified_jaccard`` compare
the removed document with the kept one, which in a chain A~B~C may be lower than the
edge that pulled it into the cluster. ``verified_jaccard`` is null when ``verify`` is
off, or when the kept document came from ``kept_signatures`` without a ``text``
column; such pairs are then accepted on ``est_jaccard >= verify_threshold``. ``stage``
is ``exact`` when the raw texts are identical (same ``text_hash``), else ``near``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from nag_core.errors import NagInputError
from nag_core.hashing import digest, text_digest
from nag_core.minhash import (MinHashSettings, band_keys, hash_shingles, jaccard_sorted, shingles,
                              signatures)

AUDIT_SCHEMA = {
    "removed_docid": pl.String, "kept_docid": pl.String, "cluster_id": pl.String,
    "cluster_size": pl.Int64, "est_jaccard": pl.Float64, "verified_jaccard": pl.Float64,
    "stage": pl.String, "rule": pl.String, "settings_hash": pl.String, "shard": pl.String,
    "matched_target": pl.String, "matched_example": pl.String,
}


def signature_schema(settings: MinHashSettings) -> dict[str, pl.DataType]:
    """Rows stored for kept documents; ``text`` may be added to enable exact checks later."""
    return {"docid": pl.String, "shard": pl.String, "text_hash": pl.String,
            "settings_hash": pl.String, "signature": pl.Array(pl.UInt32, settings.num_perm)}


@dataclass
class DedupResult:
    kept_docids: list[str]  # new documents kept, in input order
    removed: pl.DataFrame  # AUDIT_SCHEMA, one row per removed new document
    kept_signatures: pl.DataFrame  # signature_schema rows of the newly kept documents
    stats: dict = field(default_factory=dict)

    @property
    def removal_rate(self) -> float:
        n = self.stats.get("n_input", 0)
        return len(self.removed) / n if n else 0.0

    def check_removal_rate(self, settings: MinHashSettings) -> tuple[bool, str]:
        """(passed, message) for a 'removal rate below max_removal_rate' check."""
        ok = self.removal_rate <= settings.max_removal_rate
        return ok, (f"near-dedup removed {len(self.removed)} of {self.stats.get('n_input', 0)} documents "
                    f"({self.removal_rate:.1%}); ceiling max_removal_rate={settings.max_removal_rate:.0%}")


def band_rows(signature_rows: pl.DataFrame, settings: MinHashSettings) -> pl.DataFrame:
    """Stored LSH rows (docid, band, bucket, settings_hash) for signature rows, one per band.

    ``bucket`` holds the 64 bits of :func:`~nag_core.minhash.band_keys` as a signed int64 (a
    warehouse BIGINT; only equality matters). Documents without shingles are left out:
    they are never near-duplicates, and their all-``2**32-1`` bands would form one bucket.
    """
    sigs = _sig_matrix(signature_rows, settings)
    return _band_rows(signature_rows["docid"].cast(pl.String).to_numpy(), sigs, settings)


def _band_rows(docids: np.ndarray, sigs: np.ndarray, settings: MinHashSettings) -> pl.DataFrame:
    live = ~np.all(sigs == np.uint32(0xFFFFFFFF), axis=1)
    keys = band_keys(sigs[live], settings)
    return pl.DataFrame({"docid": np.repeat(np.asarray(docids, dtype=object)[live], settings.bands),
                         "band": np.tile(np.arange(settings.bands, dtype=np.int32), len(keys)),
                         "bucket": keys.ravel().view(np.int64), "settings_hash": settings.settings_hash},
                        schema={"docid": pl.String, "band": pl.Int32, "bucket": pl.Int64, "settings_hash": pl.String})


# ---------------------------------------------------------------- helpers

def _text_column(frame: pl.DataFrame, what: str) -> str:
    for name in ("text", "doc"):
        if name in frame.columns:
            return name
    raise NagInputError(f"{what}: no text column; expected 'text' (or 'doc'), found {frame.columns}")


def _sig_matrix(rows: pl.DataFrame, settings: MinHashSettings) -> np.ndarray:
    if rows.is_empty():
        return np.empty((0, settings.num_perm), dtype=np.uint32)
    return np.ascontiguousarray(rows["signature"].cast(pl.Array(pl.UInt32, settings.num_perm)).to_numpy())


def _band_frame(keys: np.ndarray, ids: np.ndarray) -> pl.DataFrame:
    n, b = keys.shape
    return pl.DataFrame({"i": np.repeat(ids.astype(np.int64), b), "band": np.tile(np.arange(b, dtype=np.int16), n),
                         "key": keys.ravel()})


def _self_pairs(keys: np.ndarray, ids: np.ndarray) -> pl.DataFrame:
    """Candidate pairs (i < j) among ``ids``; identical signatures collapse to a star."""
    if len(ids) < 2:
        return pl.DataFrame(schema={"i": pl.Int64, "j": pl.Int64})
    full = keys[:, 0].copy()
    for c in range(1, keys.shape[1]):
        full = (full ^ keys[:, c]) * np.uint64(0x9E3779B97F4A7C15)
    grp = pl.DataFrame({"i": ids.astype(np.int64), "full": full, "row": np.arange(len(ids))})
    grp = grp.with_columns(rep=pl.col("i").min().over("full"))
    star = grp.filter(pl.col("i") != pl.col("rep")).select(i=pl.col("rep"), j=pl.col("i"))
    reps = grp.filter(pl.col("i") == pl.col("rep"))
    bands = _band_frame(keys[reps["row"].to_numpy()], reps["i"].to_numpy())
    bands = bands.filter(pl.len().over("band", "key") > 1)
    pairs = (bands.join(bands, on=["band", "key"], suffix="_r").filter(pl.col("i") < pl.col("i_r"))
             .select("i", j=pl.col("i_r")).unique())
    return pl.concat([star, pairs])


def _cross_pairs(keys_a: np.ndarray, ids_a: np.ndarray, keys_b: np.ndarray, ids_b: np.ndarray) -> pl.DataFrame:
    """Candidate pairs (i from a, j from b)."""
    if len(ids_a) == 0 or len(ids_b) == 0:
        return pl.DataFrame(schema={"i": pl.Int64, "j": pl.Int64})
    a, b = _band_frame(keys_a, ids_a), _band_frame(keys_b, ids_b)
    return a.join(b, on=["band", "key"], suffix="_r").select("i", j=pl.col("i_r")).unique()


def _est_jaccard(sigs: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    out = np.empty(len(i), dtype=np.float64)
    for lo in range(0, len(i), 1 << 14):
        hi = lo + (1 << 14)
        out[lo:hi] = (sigs[i[lo:hi]] == sigs[j[lo:hi]]).mean(axis=1)
    return out


def _exact_jaccard(hashes: list[np.ndarray | None], i: np.ndarray, j: np.ndarray) -> np.ndarray:
    return np.array([np.nan if hashes[a] is None or hashes[b] is None else jaccard_sorted(hashes[a], hashes[b])
                     for a, b in zip(i.tolist(), j.tolist())], dtype=np.float64)


def _components(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Connected-component label (smallest member index) per node, by min-label propagation."""
    labels = np.arange(n, dtype=np.int64)
    while len(i):
        m = np.minimum(labels[i], labels[j])
        new = labels.copy()
        np.minimum.at(new, i, m)
        np.minimum.at(new, j, m)
        new = new[new]  # pointer jumping
        while not np.array_equal(new, new[new]):
            new = new[new]
        if np.array_equal(new, labels):
            break
        labels = new
    return labels


def _signal_scores(signal, docids: list[str]) -> np.ndarray:
    if signal is None:
        raise NagInputError("near-dedup keep_rule 'best_signal' needs a signal: a dict or frame docid -> score")
    if isinstance(signal, pl.DataFrame):
        cols = [c for c in signal.columns if c != "docid"]
        if "docid" not in signal.columns or not cols:
            raise NagInputError(f"near-dedup signal frame needs 'docid' and a score column, found {signal.columns}")
        col = "score" if "score" in cols else cols[0]
        signal = dict(zip(signal["docid"].cast(pl.String).to_list(), signal[col].to_list()))
    if not isinstance(signal, Mapping):
        raise NagInputError(f"near-dedup signal must be a dict or a polars frame, got {type(signal).__name__}")
    return np.array([np.nan if signal.get(d) is None else float(signal[d]) for d in docids], dtype=np.float64)


def _prepare(texts: list[str], settings: MinHashSettings) -> tuple[list[np.ndarray], np.ndarray]:
    hashes = [hash_shingles(shingles(t, settings)) for t in texts]
    return hashes, signatures(hashes, settings)


# ---------------------------------------------------------------- public API

def dedup(docs: pl.DataFrame, settings: MinHashSettings | None = None, signal=None) -> DedupResult:
    """Near-dedup one batch of documents with nothing kept before."""
    return dedup_incremental(docs, None, settings or MinHashSettings(), signal)


def dedup_incremental(new_docs: pl.DataFrame,
                      kept_signatures: pl.DataFrame | Callable[[pl.DataFrame], pl.DataFrame | None] | None,
                      settings: MinHashSettings, signal=None) -> DedupResult:
    """Near-dedup ``new_docs`` (docid, text|doc, shard[, text_hash]) against earlier kept rows.

    ``kept_signatures`` holds :func:`signature_schema` rows returned by earlier calls (all
    of them concatenated), or None; or, to keep memory bounded by the new batch, a function
    that receives the new documents' :func:`band_rows` and returns only the earlier rows
    that share a bucket with one of them. Both give the same result: an earlier document
    with no bucket in common with a new one is never in a candidate pair, and pairs of two
    earlier documents are ignored. Returns kept docids, audit rows and the rows to add to
    the stored signatures.
    """
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    text_col = _text_column(new_docs, "near-dedup input")
    docids = new_docs["docid"].cast(pl.String).to_list()
    if len(set(docids)) != len(docids):
        raise NagInputError("near-dedup input: docids are not unique; run exact dedup / validation first")
    shards = (new_docs["shard"].cast(pl.String).to_list() if "shard" in new_docs.columns else [None] * len(docids))
    texts = new_docs[text_col].to_list()
    th = (new_docs["text_hash"].to_list() if "text_hash" in new_docs.columns else [text_digest(t) for t in texts])

    hashes, new_sigs = _prepare(texts, settings)
    timings["signatures_s"] = time.perf_counter() - t0
    old = kept_signatures(_band_rows(np.array(docids, dtype=object), new_sigs, settings)) \
        if callable(kept_signatures) else kept_signatures
    old = old if old is not None else pl.DataFrame(schema=signature_schema(settings))
    if not old.is_empty():
        bad = old.filter(pl.col("settings_hash") != settings.settings_hash)
        if not bad.is_empty():
            raise NagInputError(f"kept_signatures: {len(bad)} rows were computed with settings_hash "
                                f"{bad['settings_hash'][0]!r}, current settings ({settings.name}) hash to "
                                f"{settings.settings_hash!r}; recompute the stored signatures")
        clash = set(docids) & set(old["docid"].to_list())
        if clash:
            raise NagInputError(f"near-dedup input: {len(clash)} docids were already kept earlier, e.g. {sorted(clash)[:3]}")
    n_old, n_new = len(old), len(docids)
    sigs = np.vstack([_sig_matrix(old, settings), new_sigs])
    all_ids = old["docid"].to_list() + docids
    all_th = old["text_hash"].to_list() + th
    keys = band_keys(sigs, settings)
    nonempty = ~np.all(sigs == np.uint32(0xFFFFFFFF), axis=1)  # no shingles: never a near-duplicate
    idx = np.arange(n_old + n_new)
    old_ids, new_ids = idx[:n_old][nonempty[:n_old]], idx[n_old:][nonempty[n_old:]]

    t1 = time.perf_counter()
    pairs = pl.concat([_self_pairs(keys[new_ids], new_ids), _cross_pairs(keys[new_ids], new_ids, keys[old_ids], old_ids)])
    pi, pj = pairs["i"].to_numpy(), pairs["j"].to_numpy()
    timings["banding_s"] = time.perf_counter() - t1

    t2 = time.perf_counter()
    all_hashes: list[np.ndarray | None] = [None] * n_old + hashes
    if settings.verify and "text" in old.columns and n_old:
        old_texts = old["text"].to_list()
        for k in set(pj[pj < n_old].tolist()):
            all_hashes[k] = hash_shingles(shingles(old_texts[k], settings))
    est = _est_jaccard(sigs, pi, pj)
    exact = _exact_jaccard(all_hashes, pi, pj) if settings.verify else np.full(len(pi), np.nan)
    score = np.where(np.isnan(exact), est, exact)
    accept = score >= settings.verify_threshold if settings.verify else np.ones(len(pi), dtype=bool)
    timings["verify_s"] = time.perf_counter() - t2

    labels = _components(n_old + n_new, pi[accept], pj[accept])
    nodes = pl.DataFrame({"k": idx, "comp": labels, "docid": all_ids, "old": idx < n_old})
    nodes = nodes.with_columns(size=pl.len().over("comp"), has_old=pl.col("old").any().over("comp"))
    new_nodes = nodes.filter(~pl.col("old"))
    # keepers of clusters without an earlier-kept document
    fresh = new_nodes.filter(~pl.col("has_old"))
    if settings.keep_rule == "best_signal":
        sc = _signal_scores(signal, docids)[fresh["k"].to_numpy() - n_old]
        fresh = fresh.with_columns(score=pl.Series(sc).fill_nan(None)).sort(
            ["comp", "score", "docid"], descending=[False, True, False], nulls_last=True)
    else:
        fresh = fresh.sort(["comp", "docid"])
    keeper = fresh.group_by("comp", maintain_order=True).first().select("comp", kept=pl.col("k"))
    removed = fresh.join(keeper, on="comp").filter(pl.col("k") != pl.col("kept")).with_columns(
        rule=pl.lit(settings.keep_rule))
    # new documents in clusters holding an earlier-kept one: removed in favour of the most similar
    joined = new_nodes.filter(pl.col("has_old")).join(
        nodes.filter(pl.col("old")).select("comp", kept="k", kept_docid="docid"), on="comp")
    ej = _est_jaccard(sigs, joined["k"].to_numpy(), joined["kept"].to_numpy())
    joined = (joined.with_columns(e=pl.Series(ej, dtype=pl.Float64)).sort(["k", "e", "kept_docid"], descending=[False, True, False])
              .group_by("k", maintain_order=True).first().with_columns(rule=pl.lit("already_kept")))
    removed = pl.concat([removed.select("k", "kept", "size", "rule"), joined.select("k", "kept", "size", "rule")])

    rk, kk = removed["k"].to_numpy(), removed["kept"].to_numpy()
    r_est = _est_jaccard(sigs, rk, kk)
    r_exact = _exact_jaccard(all_hashes, rk, kk) if settings.verify else np.full(len(rk), np.nan)
    kept_ids = [all_ids[k] for k in kk.tolist()]
    audit = pl.DataFrame({
        "removed_docid": [all_ids[k] for k in rk.tolist()], "kept_docid": kept_ids,
        "cluster_id": [digest("near", settings.settings_hash, d, length=12) for d in kept_ids],
        "cluster_size": removed["size"], "est_jaccard": r_est,
        "verified_jaccard": pl.Series(r_exact).fill_nan(None),
        "stage": ["exact" if all_th[r] == all_th[k] else "near" for r, k in zip(rk.tolist(), kk.tolist())],
        "rule": removed["rule"], "settings_hash": settings.settings_hash,
        "shard": [shards[k - n_old] for k in rk.tolist()], "matched_target": None, "matched_example": None,
    }, schema=AUDIT_SCHEMA).sort("removed_docid")

    gone = set(rk.tolist())
    keep_rows = [k for k in range(n_new) if (k + n_old) not in gone]
    kept_rows = pl.DataFrame({
        "docid": [docids[k] for k in keep_rows], "shard": [shards[k] for k in keep_rows],
        "text_hash": [th[k] for k in keep_rows], "settings_hash": settings.settings_hash,
        "signature": pl.Series(new_sigs[keep_rows], dtype=pl.Array(pl.UInt32, settings.num_perm)),
    }, schema=signature_schema(settings))
    n_ver = int(np.sum(~np.isnan(exact)))
    stats = {
        "n_input": n_new, "n_prior_kept": n_old, "n_kept": len(keep_rows), "n_removed": len(audit),
        "n_removed_exact": int((audit["stage"] == "exact").sum()), "n_no_shingles": int(n_new - len(new_ids)),
        "n_candidate_pairs": len(pi), "n_verified_pairs": n_ver,
        "n_rejected_pairs": int(np.sum(~accept)), "n_accepted_pairs": int(np.sum(accept)),
        "settings_name": settings.name, "settings_hash": settings.settings_hash,
        **timings, "total_s": time.perf_counter() - t0,
    }
    return DedupResult([docids[k] for k in keep_rows], audit, kept_rows, stats)


def decontaminate(pool_docs: pl.DataFrame, target_examples: pl.DataFrame,
                  settings: MinHashSettings | None = None) -> pl.DataFrame:
    """Audit rows (stage ``contamination``) for pool documents that near-duplicate a target example.

    ``pool_docs``: docid, text|doc[, shard]; ``target_examples``: example_id, target, text.
    A pool document matching several examples is recorded once, against the most similar
    (exact Jaccard with ``verify``, else the estimate); ``cluster_size`` counts that
    example and every pool document matched to it.
    """
    settings = settings or MinHashSettings()
    for col in ("example_id", "target"):
        if col not in target_examples.columns:
            raise NagInputError(f"decontamination targets: missing column {col!r}, found {target_examples.columns}")
    p_texts = pool_docs[_text_column(pool_docs, "decontamination pool")].to_list()
    t_texts = target_examples[_text_column(target_examples, "decontamination targets")].to_list()
    p_hash, p_sig = _prepare(p_texts, settings)
    t_hash, t_sig = _prepare(t_texts, settings)
    n_p = len(p_texts)
    sigs = np.vstack([p_sig, t_sig])
    keys = band_keys(sigs, settings)
    live = ~np.all(sigs == np.uint32(0xFFFFFFFF), axis=1)
    idx = np.arange(len(sigs))
    p_ids, t_ids = idx[:n_p][live[:n_p]], idx[n_p:][live[n_p:]]
    pairs = _cross_pairs(keys[p_ids], p_ids, keys[t_ids], t_ids)
    pi, pj = pairs["i"].to_numpy(), pairs["j"].to_numpy()
    est = _est_jaccard(sigs, pi, pj)
    exact = _exact_jaccard(p_hash + t_hash, pi, pj) if settings.verify else np.full(len(pi), np.nan)
    score = exact if settings.verify else est
    accept = score >= settings.verify_threshold if settings.verify else np.ones(len(pi), dtype=bool)
    ex_ids = target_examples["example_id"].cast(pl.String).to_list()
    targets = target_examples["target"].cast(pl.String).to_list()
    m = pl.DataFrame({"i": pi, "j": pj - n_p, "est": est, "exact": exact, "score": score}).filter(pl.Series(accept))
    m = m.with_columns(target=pl.Series([targets[j] for j in m["j"].to_list()], dtype=pl.String),
                       example=pl.Series([ex_ids[j] for j in m["j"].to_list()], dtype=pl.String))
    best = (m.sort(["i", "score", "target", "example"], descending=[False, True, False, False])
            .group_by("i", maintain_order=True).first())
    best = best.with_columns(size=pl.len().over("target", "example") + 1)
    docids = pool_docs["docid"].cast(pl.String).to_list()
    shards = pool_docs["shard"].cast(pl.String).to_list() if "shard" in pool_docs.columns else [None] * n_p
    rows = best["i"].to_list()
    return pl.DataFrame({
        "removed_docid": [docids[i] for i in rows], "kept_docid": None,
        "cluster_id": [f"{t}/{e}" for t, e in zip(best["target"].to_list(), best["example"].to_list())],
        "cluster_size": best["size"], "est_jaccard": best["est"], "verified_jaccard": best["exact"].fill_nan(None),
        "stage": "contamination", "rule": "target_match", "settings_hash": settings.settings_hash,
        "shard": [shards[i] for i in rows], "matched_target": best["target"], "matched_example": best["example"],
    }, schema=AUDIT_SCHEMA).sort("removed_docid")
