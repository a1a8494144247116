"""Why a document is (or is not) in a subset, and what changed between two runs of it.

Both answers are read back from what the pipeline stored, never recomputed: the
``documents``, ``quarantine`` and ``dedup_removed`` tables for the pool's side, the
decision trail ``subset_decisions`` / ``subset_history`` and the recipe trace
``subset_signal_values`` / ``subset_signal_history`` for the selection's side, and the
subset's manifest for the recipe and the provenance of every signal. ``nag-select
explain`` and ``nag-select diff`` print these; the SQL views ``subset_audit``,
``subset_runs`` and the macro ``subset_diff`` answer the same questions in SQL.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import polars as pl

from nag_core.errors import NagInputError
from nag_core.home import Home
from nag_core.warehouse import Warehouse, partition_id


@dataclass
class Explanation:
    docid: str
    subset: str
    lines: list[str] = field(default_factory=list)
    facts: dict = field(default_factory=dict)  # the same, structured, for --json

    def text(self) -> str:
        return "\n".join(self.lines)


def _manifest(home: Home, subset: str) -> dict:
    path = home.manifest_path(subset)
    if not path.exists():
        known = sorted(p.stem for p in home.manifests_dir.glob("*.json")) if home.manifests_dir.is_dir() else []
        raise NagInputError(f"{path}: no subset {subset!r}; known subsets: {', '.join(known) or 'none (run nag-select run)'}")
    return json.loads(path.read_text(encoding="utf-8"))


def _step_text(manifest: dict, step: int | None) -> str:
    steps = manifest.get("recipe", {}).get("steps")
    if not steps or not step:
        return "select (rank by score, keep the prefix that fits the token budget)"
    (op, body), = steps[step - 1].items()
    return f"step {step} {op}: {json.dumps(body, sort_keys=True)}"


def _pool_side(wh: Warehouse, docid: str, out: Explanation) -> bool:
    """Lines on validation and dedup; False when the document never reached the selection."""
    doc = wh.query_params("SELECT shard, row_index, token_num FROM documents WHERE docid = ?", [docid])
    if doc.is_empty():
        q = wh.query_params("SELECT shard, row_index, reason FROM quarantine WHERE docid = ?", [docid])
        if q.is_empty():
            raise NagInputError(f"document {docid!r} is in no pool shard and was never quarantined; check the docid")
        r = q.row(0, named=True)
        out.lines.append(f"quarantined: {r['shard']} row {r['row_index']}: {r['reason']}")
        out.facts["quarantine"] = r
        return False
    d = doc.row(0, named=True)
    out.facts["document"] = d
    out.lines.append(f"document {docid}: shard {d['shard']}, row {d['row_index']}, {d['token_num']} tokens")
    removed = wh.query_params("SELECT r.*, s.near_name FROM dedup_removed r LEFT JOIN dedup_settings s USING (settings_hash) "
                              "WHERE removed_docid = ?", [docid])
    if removed.height:
        r = removed.row(0, named=True)
        out.facts["dedup"] = r
        against = (f"target {r['matched_target']} example {r['matched_example']}" if r["stage"] == "contamination"
                   else f"in favour of {r['kept_docid']} (cluster of {r['cluster_size']})")
        sims = ", ".join(f"{k} {r[k]:.3f}" for k in ("est_jaccard", "verified_jaccard") if r[k] is not None)
        out.lines.append(f"removed by dedup, stage {r['stage']} ({r['rule']}), {against}; {sims}; "
                         f"dedup settings {r['settings_hash']} ({r['near_name'] or 'exact only'})")
        return False
    out.lines.append("dedup: kept (no exact, near or contamination match)")
    return True


def explain(home: Home, docid: str, subset: str) -> Explanation:
    """Operator by operator: how ``docid`` fared in ``subset``'s latest materialisation."""
    wh = Warehouse(home.root)
    manifest = _manifest(home, subset)
    out = Explanation(docid, subset)
    out.lines.append(f"subset {subset} ({manifest['kind']}, model {manifest['model']}, targets {', '.join(manifest['targets'])}), "
                     f"run {manifest['run_id']} at {manifest['created_at']}")
    if not _pool_side(wh, docid, out):
        out.lines.append("=> not a candidate: it never reached the selection")
        out.facts["outcome"] = "not_a_candidate"
        return out
    rows = wh.query_params("SELECT * FROM subset_decisions WHERE subset = ? AND docid = ? ORDER BY target", [subset, docid])
    if rows.is_empty():
        out.lines.append("=> not a candidate of this subset's last run (its shard is newer, or was removed)")
        out.facts["outcome"] = "not_a_candidate"
        return out
    cut = wh.query_params("SELECT target, count(*) AS candidates, max(rank) FILTER (outcome = 'selected') AS last_rank, "
                          "min(score) FILTER (outcome = 'selected') AS lowest_score FROM subset_decisions "
                          "WHERE subset = ? AND rank IS NOT NULL GROUP BY target", [subset])
    cuts = {r["target"]: r for r in cut.iter_rows(named=True)}
    values = wh.query_params("SELECT * FROM subset_signal_values WHERE subset = ? AND docid = ? ORDER BY target, signal",
                             [subset, docid])
    out.facts["decisions"] = rows.drop("subset").to_dicts()
    for r in rows.iter_rows(named=True):
        c = cuts.get(r["target"], {})
        where = f"target {r['target']}" if r["target"] != "*" else "mean over targets"
        score = "no score" if r["score"] is None else f"score {r['score']:.5g}, rank {r['rank']} of {c.get('candidates')}"
        out.lines.append(f"{where}: {score}")
        for v in values.filter(pl.col("target").is_in([r["target"], "*"])).iter_rows(named=True):
            contribution = (f", norm {v['norm']:.4f} x weight {v['weight']:g} = {v['norm'] * v['weight']:+.4f}"
                            if v["norm"] is not None and v["weight"] is not None else "")
            value = "missing" if v["value"] is None else f"{v['value']:.5g} (rank {v['rank']:g})"
            out.lines.append(f"    {v['signal']}: {value}{contribution}")
        if c.get("lowest_score") is not None:
            out.lines.append(f"    cut: last selected rank {c['last_rank']}, lowest selected score {c['lowest_score']:.5g}")
    outcome = rows["outcome"][0]
    step = rows["step"][0]
    credited = rows.filter(pl.col("credited"))["target"].to_list()
    by = f" for target {credited[0]}" if credited and credited[0] != "*" and len(manifest["targets"]) > 1 else ""
    reason = {"selected": f"selected{by}, pick #{rows['pick'].max()} ({_step_text(manifest, step)})",
              "budget": f"below the budget cut of {manifest['budget_tokens']:,} tokens ({_step_text(manifest, step)})",
              "source_quota": f"skipped: its source had reached its quota ({_step_text(manifest, step)})",
              "filtered": f"removed by {_step_text(manifest, step)}",
              "dropped_missing": f"dropped: a fused signal had no value ({_step_text(manifest, step)})"}[outcome]
    out.lines.append(f"=> {reason}")
    out.facts["outcome"] = outcome
    out.facts["signals_used"] = manifest["signals_used"]
    out.lines.append("signals behind it:")
    for s in _signal_sources(wh, manifest, docid):
        out.lines.append(f"    {s}")
    return out


def _signal_sources(wh: Warehouse, manifest: dict, docid: str) -> list[str]:
    """Model, data version and settings hash behind each signal this document was scored with."""
    model = manifest.get("inputs", {}).get("model", {})
    lines = []
    for s in manifest["signals_used"]:
        if s.get("asset") and s.get("partition") and "shard" in s and s["partition"] != manifest_shard(wh, docid):
            continue  # a per-shard signal of another shard
        where = f"{s.get('asset', 'signals')}[{s.get('partition', s.get('target'))}]"
        lines.append(f"{s['signal']} <- {where}: data version {s.get('data_version')}, settings {s.get('config_hash')}, "
                     f"run {s.get('run_id')}, code {s.get('code_version')}")
    if model:
        lines.append(f"model {model.get('name')} fingerprint {model.get('fingerprint')}")
    return lines


def manifest_shard(wh: Warehouse, docid: str) -> str | None:
    rows = wh.query_params("SELECT shard FROM documents WHERE docid = ?", [docid])
    return rows["shard"][0] if rows.height else None


def subset_runs(home: Home, subset: str) -> pl.DataFrame:
    """The runs of a subset that left a history, oldest first."""
    wh = Warehouse(home.root)
    runs = wh.query_params("SELECT run_id, min(created_at) AS created_at, count(DISTINCT docid) FILTER (outcome = 'selected') AS selected "
                           "FROM subset_history WHERE subset = ? GROUP BY run_id ORDER BY created_at, run_id", [subset])
    if runs.is_empty():
        _manifest(home, subset)
        raise NagInputError(f"subset {subset!r} has no run history yet; materialise it (nag-select run)")
    return runs


def _per_document(frame: pl.DataFrame) -> pl.DataFrame:
    """One row per document: its credited row if selected, else its best-ranked row."""
    return (frame.sort(["docid", "credited", "rank"], descending=[False, True, False], nulls_last=True)
            .group_by("docid", maintain_order=True).first())


def diff(home: Home, subset: str, run_from: str | None = None, run_to: str | None = None) -> tuple[pl.DataFrame, list[str]]:
    """Documents added and removed between two runs, each with the reason it moved."""
    runs = subset_runs(home, subset)["run_id"].to_list()
    if run_from is None or run_to is None:
        if len(runs) < 2:
            raise NagInputError(f"subset {subset!r} has one run ({runs[0]}); a diff needs two. Give --from and --to, "
                                "or rematerialise after a change.")
        run_from, run_to = run_from or runs[-2], run_to or runs[-1]
    for run in (run_from, run_to):
        if run not in runs:
            raise NagInputError(f"subset {subset!r} has no run {run!r}; its runs: {', '.join(runs)}")
    wh = Warehouse(home.root)
    hist = wh.read("subset_history", [partition_id(subset, run_from), partition_id(subset, run_to)])
    a = _per_document(hist.filter(pl.col("run_id") == run_from))
    b = _per_document(hist.filter(pl.col("run_id") == run_to))
    cols = ["docid", "outcome", "rank", "score", "step"]
    joined = a.select(cols).join(b.select(cols), on="docid", how="full", suffix="_to", coalesce=True).rename(
        {"outcome": "outcome_from", "rank": "rank_from", "score": "score_from", "step": "step_from"})
    was = pl.col("outcome_from") == "selected"
    now_ = pl.col("outcome_to") == "selected"
    moved = joined.filter(was.fill_null(False) != now_.fill_null(False)).with_columns(
        pl.when(now_.fill_null(False)).then(pl.lit("added")).otherwise(pl.lit("removed")).alias("change"))
    values = wh.read("subset_signal_history", [partition_id(subset, run_from), partition_id(subset, run_to)])
    reasons = [_why(r, values, run_from, run_to) for r in moved.iter_rows(named=True)]
    moved = moved.with_columns(pl.Series("why", reasons, dtype=pl.String)).sort(["change", "docid"])
    lines = [f"{subset}: run {run_from} -> {run_to}: {moved.filter(pl.col('change') == 'added').height} added, "
             f"{moved.filter(pl.col('change') == 'removed').height} removed"]
    lines += [f"  {r['change']:<7} {r['docid']}: {r['why']}" for r in moved.iter_rows(named=True)]
    return moved.select("docid", "change", "outcome_from", "outcome_to", "rank_from", "rank_to", "score_from", "score_to",
                        "why"), lines


def _why(r: dict, values: pl.DataFrame, run_from: str, run_to: str) -> str:
    if r["outcome_from"] is None:
        return "new candidate (its shard arrived or it was no longer removed by dedup)"
    if r["outcome_to"] is None:
        return "no longer a candidate (removed by dedup, or its shard was deleted or changed)"
    if r["outcome_from"] != "selected" and r["outcome_to"] == "selected" and r["outcome_from"] in ("filtered", "dropped_missing"):
        return f"now passes the step that {r['outcome_from'].replace('_', ' ')} it before"
    if r["outcome_to"] in ("filtered", "dropped_missing", "source_quota"):
        return f"{r['outcome_to'].replace('_', ' ')} at step {r['step_to']}"
    parts = []
    if r["score_from"] is not None and r["score_to"] is not None and r["score_from"] != r["score_to"]:
        parts.append(f"score {r['score_from']:.5g} -> {r['score_to']:.5g}")
    if r["rank_from"] != r["rank_to"]:
        parts.append(f"rank {r['rank_from']} -> {r['rank_to']}")
    if not values.is_empty():
        mine = values.filter(pl.col("docid") == r["docid"], pl.col("norm").is_not_null())
        deltas = (mine.group_by("signal", "target").agg(
            pl.col("norm").filter(pl.col("run_id") == run_from).first().alias("a"),
            pl.col("norm").filter(pl.col("run_id") == run_to).first().alias("b"), pl.col("weight").last())
            .with_columns(((pl.col("b") - pl.col("a")) * pl.col("weight")).alias("d")).drop_nulls("d")
            .sort(pl.col("d").abs(), descending=True))
        if deltas.height and deltas["d"][0] != 0:
            top = deltas.row(0, named=True)
            parts.append(f"largest change: {top['signal']} (norm {top['a']:.3f} -> {top['b']:.3f})")
    moved = f"{r['outcome_from'].replace('_', ' ')} -> {r['outcome_to'].replace('_', ' ')}"
    if not parts:
        return f"{moved} with the same score and rank: the budget or quota cut moved, or documents above it changed"
    return f"{moved}: " + ", ".join(parts)
