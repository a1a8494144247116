"""The summary ``nag-select run`` prints: per subset, its size, token share and top documents."""

from __future__ import annotations

import polars as pl

from nag_core.warehouse import Warehouse


def subset_summary(wh: Warehouse, top: int = 3) -> str:
    subsets = wh.read("subsets").sort(["kind", "subset"], descending=[True, False])
    if subsets.is_empty():
        return "No subsets yet: add pool shards under pool/ and a target under targets/<name>/."
    members = wh.read("subset_members")
    docs = wh.read("documents").drop("row_index", "text_hash", "token_num")
    label = next((c for c in ("domain", "dataset", "source", "label") if c in docs.columns), None)
    lines = []
    for row in subsets.iter_rows(named=True):
        share = row["selected_tokens"] / row["pool_tokens"] if row["pool_tokens"] else 0.0
        lines.append(f"\n{row['subset']}  ({row['kind']}, model {row['model']}, targets {row['targets']})")
        lines.append(f"  {row['documents']} documents, {row['selected_tokens']:,} of {row['pool_tokens']:,} pool tokens "
                     f"({share:.1%}; budget {row['budget_fraction']:.0%} = {row['budget_tokens']:,})")
        chosen = members.filter(pl.col("subset") == row["subset"]).join(docs, on="docid", how="left")
        if label:
            counts = chosen.group_by(label).len().sort(["len", label], descending=[True, False])
            lines.append("  by " + label + ": " + ", ".join(f"{k}={n}" for k, n in counts.iter_rows()))
        for m in chosen.sort(["target", "rank"]).group_by("target", maintain_order=True).head(top).iter_rows(named=True):
            snippet = " ".join(m["text"].split())[:70]
            via = f"[{m['target']}] " if row["kind"] == "mixture" else ""
            lines.append(f"  #{m['rank']:<3} {m['score']:.4f}  {m['docid']:<14} {via}{snippet}")
    return "\n".join(lines)
