"""Short-text section of ``bench_dedup.py``: the old rule (word 5-grams at every length) vs the
short-text rule (words + word bigrams below ``short_text_words`` words), same run, same pairs.

Two pair sets, each a source and a seeded small edit of it:

* **code**: up to two non-overlapping snippets (a single line, or 2-8 lines) of each of
  HumanEval's canonical solutions and of the pool's ``code`` documents, each with one
  seeded bug-like edit: an operator swapped, one identifier occurrence renamed,
  or one integer literal changed;
* **prose**: pool documents cut to 5-400 words with 1-3 word edits (substitute, delete, insert).

Every pair is binned by its **word-set Jaccard**: ``|A & B| / |A | B|`` of the sets of words
of the two texts after the near-dedup normaliser (NFKC, casefold, punctuation -> space),
the "word-level Jaccard" of the goal; and by the word count of the source after that
normaliser. A pair is caught when the two texts end in the same cluster of one ``dedup``
call over all sources and copies of the set.

False merges: a removal whose (removed, kept) pair is not a seeded pair and whose
normalised word sequences are less than 0.8 alike by an order-aware measure
(``difflib.SequenceMatcher.ratio``), which neither rule uses, so a merge of word-set
look-alikes with different order counts against the rule. Rates are given over removals and over documents; the same
count runs on the pools' own documents (no seeded pairs) to show merges the rule adds.
"""

from __future__ import annotations

import difflib
import gzip
import json
import random
import re
import tempfile
from pathlib import Path

import polars as pl

from nag_core.demo_corpus import write_demo_home
from nag_core.minhash import MinHashSettings
from nag_core.near_dedup import dedup

J_BINS = [(0.0, 0.8), (0.8, 0.9), (0.9, 0.95), (0.95, 1.0), (1.0, 1.01)]
LEN_BINS = [(0, 10), (10, 30), (30, 100), (100, 10**9)]
_OPS = ["+", "-", "*", "<", ">", "<=", ">=", "==", "!="]
_OP = re.compile(r"(<=|>=|==|!=|[+\-*<>])")
_IDENT = re.compile(r"\b[A-Za-z_][A-Za-z0-9_]*\b")
_INT = re.compile(r"\b\d+\b")
_KEYWORDS = {"for", "in", "if", "else", "elif", "return", "def", "while", "and", "or", "not", "is", "None",
             "True", "False", "import", "from", "lambda", "with", "as", "try", "except", "pass", "break",
             "continue", "len", "range", "print"}


def _words(text: str, settings: MinHashSettings) -> list[str]:
    return settings.normalize(text).split()


def word_jaccard(a: str, b: str, settings: MinHashSettings) -> float:
    sa, sb = set(_words(a, settings)), set(_words(b, settings))
    return 1.0 if not sa and not sb else len(sa & sb) / len(sa | sb)


def _code_edit(rng: random.Random, text: str) -> str | None:
    kinds = ["op", "ident", "int"]
    rng.shuffle(kinds)
    for kind in kinds:
        if kind == "op":
            spots = list(_OP.finditer(text))
            repl = lambda m: rng.choice([o for o in _OPS if o != m.group()])  # noqa: E731
        elif kind == "ident":
            spots = [m for m in _IDENT.finditer(text) if m.group() not in _KEYWORDS]
            repl = lambda m: m.group() + rng.choice(["2", "_new", "x", "_"])  # noqa: E731
        else:
            spots = list(_INT.finditer(text))
            repl = lambda m: str(int(m.group()) + rng.choice([1, -1, 2]))  # noqa: E731
        if spots:
            m = rng.choice(spots)
            return text[:m.start()] + repl(m) + text[m.end():]
    return None


def humaneval_solutions(path: Path) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(x)["canonical_solution"] for x in fh if x.strip()]


def code_pairs(sources: list[str], seed: int = 0) -> list[tuple[str, str]]:
    """(snippet, edited snippet): up to two non-overlapping 1-8 line snippets per source file."""
    rng = random.Random(seed)
    solutions = sources
    snippets: list[str] = []
    for sol in solutions:  # up to two non-overlapping snippets of 1-8 lines per solution
        lines = [x for x in sol.splitlines() if x.strip()]
        chunks, start = [], 0
        while start < len(lines):
            k = rng.choice([1, 1, 1, rng.randint(2, 8)])
            chunks.append(lines[start:start + k])
            start += k
        for chunk in rng.sample(chunks, min(2, len(chunks))):
            snippets.append(chunk[0].strip() if len(chunk) == 1 else "\n".join(chunk))
    snippets = list(dict.fromkeys(s for s in snippets if len(s.split()) >= 2))
    rng.shuffle(snippets)
    return [(s, e) for s in snippets if (e := _code_edit(rng, s)) is not None and e != s]


def prose_pairs(pool: pl.DataFrame, n: int, seed: int = 0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    texts = [t for t in pool["doc"].to_list() if len(t.split()) >= 5]
    vocab = [w for t in rng.sample(texts, min(100, len(texts))) for w in t.split()]
    out = []
    for t in rng.sample(texts, min(n, len(texts))):
        words = t.split()
        length = min(len(words), rng.choice([rng.randint(5, 30), rng.randint(30, 100), rng.randint(100, 400)]))
        start = rng.randrange(len(words) - length + 1)
        src = words[start:start + length]
        new = list(src)
        for _ in range(rng.randint(1, 3)):
            op, pos = rng.random(), rng.randrange(len(new))
            if op < 0.6:
                new[pos] = rng.choice(vocab)
            elif op < 0.8 and len(new) > 2:
                del new[pos]
            else:
                new.insert(pos, rng.choice(vocab))
        out.append((" ".join(src), " ".join(new)))
    return out


def _false_merges(removed: pl.DataFrame, texts: dict[str, str], settings: MinHashSettings) -> int:
    """Removals, other than of a seeded copy by its source, whose word sequences are < 0.8 alike."""
    false = 0
    for r, k in zip(removed["removed_docid"].to_list(), removed["kept_docid"].to_list()):
        if r[:6] == k[:6]:
            continue  # a seeded pair (ids p00042a / p00042b)
        ratio = difflib.SequenceMatcher(None, _words(texts[r], settings), _words(texts[k], settings),
                                        autojunk=False).ratio()
        false += ratio < 0.8
    return false


def evaluate(pairs: list[tuple[str, str]], settings: MinHashSettings) -> dict:
    """Recall per pair and false merges for one rule on one pair set."""
    src_ids = [f"p{i:05d}a" for i in range(len(pairs))]
    cpy_ids = [f"p{i:05d}b" for i in range(len(pairs))]
    texts = dict(zip(src_ids + cpy_ids, [a for a, _ in pairs] + [b for _, b in pairs]))
    docs = pl.DataFrame({"docid": list(texts), "text": list(texts.values()), "shard": "short"})
    res = dedup(docs, settings)
    keep = dict(zip(res.removed["removed_docid"].to_list(), res.removed["kept_docid"].to_list()))
    caught = [keep.get(a, a) == keep.get(b, b) for a, b in zip(src_ids, cpy_ids)]
    return {"caught": caught, "removals": len(res.removed), "docs": docs.height,
            "false_merges": _false_merges(res.removed, texts, settings)}


def pair_frame(pairs: list[tuple[str, str]], settings: MinHashSettings) -> pl.DataFrame:
    return pl.DataFrame({"wj": [word_jaccard(a, b, settings) for a, b in pairs],
                         "words": [len(_words(a, settings)) for a, _ in pairs]})


def _bin(frame: pl.DataFrame, col: str, lo: float, hi: float) -> pl.DataFrame:
    return frame.filter((pl.col(col) >= lo) & (pl.col(col) < hi))


def section(name: str, pairs: list[tuple[str, str]], rules: list[MinHashSettings]) -> list[str]:
    """Markdown tables for one pair set, every rule on the same pairs."""
    f = pair_frame(pairs, rules[0])
    runs = [evaluate(pairs, r) for r in rules]
    f = f.with_columns([pl.Series(f"r{i}", run["caught"]) for i, run in enumerate(runs)])
    names = " | ".join(f"`{r.name}`" for r in rules)
    lines = [f"**{name}**: {len(pairs)} pairs; recall = share of pairs whose two texts end in one cluster.", "",
             f"| word-set Jaccard | pairs | {names} |", "|---|---:|" + "---:|" * len(rules)]
    for lo, hi in J_BINS + [(0.9, 1.01)]:
        b = _bin(f, "wj", lo, hi)
        label = "J = 1.0" if lo == 1.0 else ("**J >= 0.9 (goal)**" if hi > 1.0 and lo == 0.9 else f"[{lo:.2f}, {hi:.2f})")
        if not b.is_empty():
            lines.append(f"| {label} | {b.height} | " + " | ".join(f"{b[f'r{i}'].mean():.3f}" for i in range(len(rules))) + " |")
    lines += ["", "Recall at word-set J >= 0.9, by the length of the source in words after normalising:", "",
              "| words | pairs | pairs at J >= 0.9 | " + names + " |", "|---|---:|---:|" + "---:|" * len(rules)]
    for lo, hi in LEN_BINS:
        b = _bin(f, "words", lo, hi)
        hi9 = b.filter(pl.col("wj") >= 0.9)
        if b.is_empty():
            continue
        cells = " | ".join(f"{hi9[f'r{i}'].mean():.3f}" if hi9.height else "-" for i in range(len(rules)))
        label = f"< {hi}" if lo == 0 else (f">= {lo}" if hi > 10**8 else f"{lo}-{hi - 1}")
        lines.append(f"| {label} | {b.height} | {hi9.height} | {cells} |")
    lines += ["", "| rule | documents | removals | false merges | of removals | of documents |",
              "|---|---:|---:|---:|---:|---:|"]
    for r, run in zip(rules, runs):
        lines.append(_false_row(r, run))
    return lines + [""]


def _false_row(rule: MinHashSettings, run: dict) -> str:
    per_removal = run["false_merges"] / run["removals"] if run["removals"] else 0.0
    return (f"| `{rule.name}` | {run['docs']} | {run['removals']} | {run['false_merges']} | {per_removal:.2%} | "
            f"{run['false_merges'] / run['docs']:.2%} |")


def natural_false_merges(name: str, texts: list[str], rules: list[MinHashSettings]) -> list[str]:
    """Removals among a pool's own documents with an order-aware similarity below 0.8, per rule."""
    lines = [f"**{name}** ({len(texts)} documents, no seeded pairs):", "",
             "| rule | documents | removals | false merges | of removals | of documents |", "|---|---:|---:|---:|---:|---:|"]
    ids = {f"n{i:06d}": t for i, t in enumerate(texts)}
    docs = pl.DataFrame({"docid": list(ids), "text": list(ids.values()), "shard": "natural"})
    for r in rules:
        res = dedup(docs, r)
        lines.append(_false_row(r, {"docs": len(ids), "removals": len(res.removed),
                                    "false_merges": _false_merges(res.removed, ids, r)}))
    return lines + [""]


def report(pool: pl.DataFrame, humaneval: Path) -> list[str]:
    """Old rule vs the default short-text rule (and a looser boundary) on the same pairs."""
    rules = [MinHashSettings(short_text_words=0), MinHashSettings(), MinHashSettings(short_text_words=100)]
    sources = humaneval_solutions(humaneval) + pool.filter(pl.col("domain") == "code")["doc"].to_list()
    with tempfile.TemporaryDirectory(prefix="nag-demo-") as tmp:
        write_demo_home(Path(tmp), seed=0)
        demo = pl.concat([pl.read_parquet(f) for f in sorted((Path(tmp) / "pool").glob("*.parquet"))],
                         how="diagonal_relaxed")["text"].to_list()
    return ["## Short texts", "",
            f"Rules, same run, same pairs: `{rules[0].name}` is the old rule (word 5-grams at every length), "
            f"`{rules[1].name}` the default short-text rule (words + word bigrams for 6-49 words), "
            f"`{rules[2].name}` a looser boundary (the same up to 99 words), shown for the trade-off. Bins use the **word-set Jaccard** of the "
            "normalised texts (NFKC, casefold, punctuation removed): `|A & B| / |A | B|` over the sets of words. "
            "See `benchmarks/dedup_short_texts.py` for how pairs and false merges are defined.", "",
            *section("Code pairs (HumanEval canonical solutions + pool `code` documents, one seeded operator, "
                    "identifier or literal change)", code_pairs(sources), rules),
            *section("Prose pairs (pool documents cut to 5-400 words, 1-3 word edits)",
                    prose_pairs(pool, 1500), rules),
            *natural_false_merges("Mixed pool's own documents", pool["doc"].to_list(), rules),
            *natural_false_merges("Demo pool (`nag_core.demo_corpus`, seed 0)", demo, rules)]
