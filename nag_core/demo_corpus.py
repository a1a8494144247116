"""A small synthetic data home, so the whole pipeline can be tried without a real corpus.

Six domains are written with their own vocabulary and document shapes, so that a sentence
embedding separates them plainly and every demo target has an obvious right answer: the
math target should pull math documents, the code target code, and so on. A handful of
planted duplicates gives the dedup stage something to remove. Every choice comes from a
seeded ``random.Random``, so one seed always yields the same bytes on disk.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from nag_core.demo_domains import CODE_SPECS, GENERATORS, code_function, math_problem, normalise

DEMO_TARGET_DOMAINS: dict[str, str] = {
    "grade_school_math": "math",
    "python_code": "code",
    "clinical_medicine": "medicine",
}
DOMAINS = ("math", "code", "medicine", "law", "cooking", "sports")
SHARDS = ("shard-000.parquet", "shard-001.parquet", "shard-002.jsonl")
DOCS_PER_DOMAIN = 75
TARGET_EXAMPLES = 40
EXACT_DUPLICATES = 3  # extra rows whose text equals another row's byte for byte
CASE_VARIANTS = 2  # extra rows equal to another row only after lower-casing and collapsing spaces
DUPLICATE_SHARD = "shard-001.parquet"
MIN_WORDS, MAX_WORDS = 40, 250


def _pool_texts(r: random.Random) -> list[tuple[str, str]]:
    """Unique (after normalising) texts within the word range, so the only duplicates are planted ones."""
    seen: set[str] = set()
    out = []
    for domain in DOMAINS:
        made = 0
        while made < DOCS_PER_DOMAIN:
            text = GENERATORS[domain](r)
            key = normalise(text)
            if key in seen or not MIN_WORDS <= len(text.split()) <= MAX_WORDS:
                continue
            seen.add(key)
            out.append((domain, text))
            made += 1
    return out


def _write_parquet(rows: list[dict], path: Path, columns: tuple[str, ...]) -> None:
    table = pa.table({c: pa.array([row[c] for row in rows], pa.string()) for c in columns})
    pq.write_table(table, path, compression="zstd")


def _write_jsonl(rows: list[dict], path: Path) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def _targets(seed: int, pool_keys: set[str]) -> dict[str, list]:
    """Target examples come from their own seeded stream and skip anything the pool already holds."""
    made: dict[str, list] = {}
    for name, domain in DEMO_TARGET_DOMAINS.items():
        r, rows, keys = random.Random(f"{seed}:target:{name}"), [], set(pool_keys)
        while len(rows) < TARGET_EXAMPLES:
            if domain == "math":
                q, a = math_problem(r)
                row, text = {"question": q, "answer": a}, f"{q} {a}"
            elif domain == "code":
                p, c = code_function(r, r.choice(CODE_SPECS))
                row, text = {"prompt": p, "canonical_solution": c, "task_id": f"Demo/{len(rows)}"}, p + c
            else:
                text = GENERATORS[domain](r)
                row = {"text": text}
            if normalise(text) not in keys:
                keys.add(normalise(text))
                rows.append(row)
        made[name] = rows
    return made


# A recipe over three signal families for two targets, balanced BIDS-style (see README, Recipes).
DEMO_RECIPE = """\
model: minilm-l6
targets: [grade_school_math, python_code]
steps:
  - filter: {signal: quality_alnum_share, min: 0.5}
  - fuse: {signals: {nag_contrastive: 1.0, embedding: 1.0, dsir: 0.5}, normalize: rank, missing: error}
  - balance: bids
  - select: {budget_fraction: 0.2}
"""


def write_demo_home(root: Path, seed: int = 0) -> dict:
    """Write pool shards and three targets under ``root``; returns counts for a report."""
    root = Path(root)
    r = random.Random(seed)
    docs = _pool_texts(r)
    r.shuffle(docs)
    per = len(docs) // len(SHARDS)
    shards = {name: docs[i * per:(i + 1) * per] if i < len(SHARDS) - 1 else docs[i * per:] for i, name in enumerate(SHARDS)}
    # Planted duplicates live beside their originals, so even a per-shard dedup can find them.
    dup = shards[DUPLICATE_SHARD]
    originals = r.sample(dup, EXACT_DUPLICATES + CASE_VARIANTS)
    copies = list(originals[:EXACT_DUPLICATES])
    copies += [(d, t.lower()) for d, t in originals[EXACT_DUPLICATES:EXACT_DUPLICATES + 1]]
    copies += [(d, "  " + t.replace(" ", "   ", 3) + " \n") for d, t in originals[EXACT_DUPLICATES + 1:]]
    dup = dup + copies
    r.shuffle(dup)
    shards[DUPLICATE_SHARD] = dup

    pool = root / "pool"
    pool.mkdir(parents=True, exist_ok=True)
    counter, n = Counter(), 0
    for name, items in shards.items():
        rows = []
        for domain, text in items:
            rows.append({"docid": f"demo-{n:06d}", "text": text, "domain": domain, "source": "demo"})
            counter[domain] += 1
            n += 1
        if name.endswith(".parquet"):
            _write_parquet(rows, pool / name, ("docid", "text", "domain", "source"))
        else:
            _write_jsonl(rows, pool / name)

    targets = _targets(seed, {normalise(t) for _, t in docs})
    tdir = root / "targets"
    math_dir, code_dir, med_dir = (tdir / name for name in DEMO_TARGET_DOMAINS)
    for d in (math_dir, code_dir, med_dir):
        d.mkdir(parents=True, exist_ok=True)
    _write_jsonl(targets["grade_school_math"], math_dir / "train.jsonl")
    (math_dir / "target.yaml").write_text('template: "{question} {answer}"\n', encoding="utf-8")
    (code_dir / "examples.json").write_text(json.dumps(targets["python_code"], indent=2, sort_keys=True) + "\n", encoding="utf-8")
    (code_dir / "target.yaml").write_text('template: "{prompt}{canonical_solution}"\n', encoding="utf-8")
    _write_parquet(targets["clinical_medicine"], med_dir / "examples.parquet", ("text",))
    (root / "recipes").mkdir(parents=True, exist_ok=True)
    (root / "recipes" / "math_and_code.yaml").write_text(DEMO_RECIPE, encoding="utf-8")

    return {
        "documents": n,
        "shards": [f"pool/{name}" for name in SHARDS],
        "targets": list(DEMO_TARGET_DOMAINS),
        "domains": dict(sorted(counter.items())),
    }
