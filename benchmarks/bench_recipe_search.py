"""Recipe search (AutoSelection-style): which fusion of the cached signals selects best, chosen on dev targets only.

    python benchmarks/bench_recipe_search.py [--pool P] [--dev-targets ...] [--targets ...] [--seed 0] [--smoke]

Why a search: every single signal loses somewhere on the retrieval benchmark (DSIR on
law, embedding on medicine, NAG frequency on law), and a recipe's ``fuse`` step can
combine them. Choosing the weights by the reported targets would be tuning on the test,
so the search runs on ``bench_common.DEV_TARGETS`` (MMLU-redux subjects disjoint from
every reported target), and the reported targets are only evaluated afterwards.

Search space: the pipeline's own fuse formula, ``F_t(d) = sum_s w_s * norm_s,t(d)``
(``nag_core.recipe_ops.normalize``), with w_s in {0, 0.5, 1, 2} for s in {nag_contrastive,
nag_frequency, embedding, dsir, bm25}, normalisation in {rank, minmax, zscore}, and an
optional quality ``filter`` step (none, or one threshold on a ``nag_core.signals.quality``
signal). Weight vectors that are multiples of one another rank identically and are
searched once (the one whose largest weight is 1 if there is one). The grid is visited
in a seeded random order, so the search curve (best-so-far dev mean vs recipes tried) is
what a seeded random search of that many recipes would have found; the full grid is the
final answer. Ties: fewer signals, then the recipe's text in lexical order.

Objective: share of the matching domain at a document budget equal to the domain's
size (as ``bench_retrieval.py``), mean over dev targets. Ranking ties break by docid as
in ``run_recipe``. The best recipe is written to ``nag_core/recipe_library/recommended.yaml``
(not in ``--smoke``) and evaluated **through ``run_recipe``** on the reported targets
beside every single signal of the warehouse: the five it fuses, and alone each other
family's signals (``nag_good``, ``nag_bad``, ``gradient`` under the proxy LM,
``quality_perplexity`` and the target-independent quality signals), each ranked in the
direction its module documents (``DIRECTION``).

Writes ``recipe_search.md``, ``recipe_search.png`` and ``recipe_search.json`` to ``--out``
(default benchmarks/results; ``--smoke``: benchmarks/out/smoke, in well under a minute).
``--report-only`` skips the dev scoring and the search: it reads the recommended recipe from
``nag_core/recipe_library/recommended.yaml`` (``--smoke``: the smoke run's), evaluates it on
the reported targets and rewrites only the "Reported targets" section of an existing
``recipe_search.md`` and the ``reported`` keys of ``recipe_search.json`` (minutes, not the
search's half hour).
"""

from __future__ import annotations

import itertools
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

import bench_common as C  # noqa: E402
from nag_core.recipe_ops import normalize  # noqa: E402
from nag_core.recipes import NORMALIZERS, load_recipe  # noqa: E402
from nag_core.signals.quality import quality_signals  # noqa: E402

SIGNALS = ("nag_contrastive", "nag_frequency", "embedding", "dsir", "bm25")
WEIGHTS = (0.0, 0.5, 1.0, 2.0)
# (signal, min, max): None is no filter. Thresholds in the spirit of Gopher's rules: drop
# markup/debris (few alphanumeric characters) or heavily repeated documents.
FILTERS = (None, ("quality_alnum_share", 0.5, None), ("quality_repetition_ratio", None, 0.5))
CURVE_AT = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000)
# Every other signal of the warehouse (nag_core.signal_families), reported alone beside the recipe.
OTHER_SIGNALS = ("nag_good", "nag_bad", "gradient", "quality_perplexity", "quality_length", "quality_ngram_entropy",
                 "quality_alnum_share", "quality_repetition_ratio")
TARGET_FREE = ("quality_perplexity", "quality_length", "quality_ngram_entropy", "quality_alnum_share",
               "quality_repetition_ratio")
# Ranking direction of a signal alone: +1 highest first (the default: "higher means more target-like",
# nag_core.signals), -1 lowest first, with where the code documents it.
DIRECTION = {"nag_bad": -1, "quality_perplexity": -1, "quality_repetition_ratio": -1}
WHY_DIRECTION = {
    "nag_bad": "lowest first: it is the weight of neurons the target activates less than the pool, and "
               "`nag_contrastive = nag_good - nag_bad` counts it against a document (`nag_core/graph.py`, "
               "`selection_steps.influence_scores`)",
    "quality_perplexity": "lowest first: low perplexity under the LM marks documents like its training text "
                          "(`nag_core/signals/perplexity.py`)",
    "quality_repetition_ratio": "lowest first: Gopher's repetition rule drops highly repeated documents "
                                "(`nag_core/signals/quality.py`)",
    "quality_length": "highest first: `quality.py` cites Gopher's bounds of 50 to 100,000 words",
    "quality_ngram_entropy": "highest first: boilerplate and spam score low (`quality.py`)",
    "quality_alnum_share": "highest first: markup and debris score low (`quality.py`)",
}


def grid(weights=WEIGHTS, filters=FILTERS) -> list[tuple]:
    """Every distinct (filter, normalisation, weight vector); scalar multiples searched once."""
    vectors, seen = [], set()
    for w in sorted(itertools.product(weights, repeat=len(SIGNALS)), key=lambda w: (max(w) != 1.0, w)):
        if max(w) == 0:
            continue
        canon = tuple(x / max(w) for x in w)
        if canon not in seen:
            seen.add(canon)
            vectors.append(w)
    return [(f, n, w) for f in filters for n in NORMALIZERS for w in vectors]


def recipe_dict(cand: tuple, budget_fraction: float = 0.2) -> dict:
    f, norm, w = cand
    steps = [{"filter": {"signal": f[0], "min": f[1], "max": f[2]}}] if f else []
    steps += [{"fuse": {"signals": {s: x for s, x in zip(SIGNALS, w) if x}, "normalize": norm}},
              {"select": {"budget_fraction": budget_fraction}}]
    return {"model": "minilm-l6", "targets": "all", "steps": steps}


def describe(cand: tuple) -> str:
    f, norm, w = cand
    fuse = " + ".join(f"{x:g}*{s}" for s, x in zip(SIGNALS, w) if x)
    filt = "" if f is None else f"{f[0]} {'>= ' + format(f[1], 'g') if f[1] is not None else '<= ' + format(f[2], 'g')}; "
    return f"{filt}{norm}: {fuse}"


def n_signals(cand: tuple) -> int:
    return sum(1 for x in cand[2] if x) + (cand[0] is not None)


def share_at_k(relevant: np.ndarray, fused: np.ndarray, tiebreak: np.ndarray) -> float:
    """Domain share of the top k = |domain| by fused score desc, ties by docid (``run_recipe``'s order)."""
    order = np.lexsort((tiebreak, -fused))
    return float(relevant[order[: int(relevant.sum())]].mean())


class Evaluator:
    """Dev shares of any candidate; normalised signals are computed once per (target, filter, normalisation)."""

    def __init__(self, scores: dict[str, dict[str, np.ndarray]], relevant: dict[str, np.ndarray],
                 quality: dict[str, np.ndarray], tiebreak: np.ndarray):
        self.scores, self.relevant, self.quality, self.tiebreak = scores, relevant, quality, tiebreak
        self.cache: dict[tuple, np.ndarray] = {}

    def alive(self, f) -> np.ndarray:
        if f is None:
            return np.ones(self.tiebreak.size, bool)
        v = self.quality[f[0]]
        return (v >= f[1] if f[1] is not None else True) & (v <= f[2] if f[2] is not None else True)

    def norms(self, t: str, f, norm: str) -> np.ndarray:
        key = (t, f, norm)
        if key not in self.cache:
            alive = self.alive(f)
            self.cache[key] = np.stack([np.nan_to_num(normalize(np.where(alive, self.scores[t][s], np.nan), norm))
                                        for s in SIGNALS])
        return self.cache[key]

    def shares(self, cand: tuple) -> dict[str, float]:
        f, norm, w = cand
        alive = self.alive(f)
        out = {}
        for t in self.scores:
            fused = np.where(alive, np.asarray(w) @ self.norms(t, f, norm), -np.inf)
            out[t] = share_at_k(self.relevant[t], fused, self.tiebreak)
        return out


def method_scores(texts, feats, target, models) -> dict[str, np.ndarray]:
    scores, _ = C.score_all(texts, feats, target, models, tuple(C.SIGNAL_OF_METHOD))
    return {C.SIGNAL_OF_METHOD[m]: v for m, v in scores.items()}


def plot_curve(curve: list[float], single_best: float, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    ax.plot(np.arange(1, len(curve) + 1), curve, label="best recipe so far")
    ax.axhline(single_best, color="grey", ls="--", label="best single signal")
    ax.set_xscale("log")
    ax.set_xlabel("recipes tried (seeded random order of the grid)")
    ax.set_ylabel("dev mean share at domain size")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def evaluate_reported(recipe, pool, texts, labels, targets, feats, models, tiebreak, proxy,
                      quality) -> dict[str, dict[str, float]]:
    """Share at domain size on the reported targets: every single signal alone (in its ``DIRECTION``), a seeded
    random ranking for reference, and the recipe through run_recipe (which may read any of the signals)."""
    table: dict[str, dict[str, float]] = {}
    methods = tuple(C.SIGNAL_OF_METHOD) + C.EXTRA_METHODS + ("random",)
    for t in targets:
        scores, _ = C.score_all(texts, feats, t, models, methods, proxy=proxy)
        relevant = labels == t.domain
        named = {C.SIGNAL_OF_METHOD.get(m, m): v for m, v in scores.items()} | quality
        gap = float(np.max(np.abs(named["nag_good"] - named["nag_bad"] - named["nag_contrastive"])))
        if gap > 1e-9:  # the split must add up to the contrastive score, as in the pipeline
            raise SystemExit(f"{t.name}: nag_good - nag_bad differs from nag_contrastive by {gap:g}")
        for s, v in named.items():
            table.setdefault(s, {})[t.name] = share_at_k(relevant, DIRECTION.get(s, 1) * v, tiebreak)
        for s in TARGET_FREE:  # the other direction, reported in the text
            table.setdefault(f"{s} (reversed)", {})[t.name] = share_at_k(relevant, -DIRECTION.get(s, 1) * quality[s],
                                                                         tiebreak)
        extra = quality | {s: named[s] for s in C.EXTRA_METHODS}
        fused = C.recipe_scores(recipe, pool, t.name, scores, extra)
        table.setdefault("recipe", {})[t.name] = share_at_k(relevant, fused, tiebreak)
        print(f"  reported {t.name}: recipe {table['recipe'][t.name]:.3f}", flush=True)
    return table


def reported_section(table: dict[str, dict[str, float]], names: list[str], proxy, quality) -> list[str]:
    """The "Reported targets" section of the report (Markdown lines)."""
    singles = SIGNALS + OTHER_SIGNALS
    means = {m: float(np.mean([table[m][n] for n in names])) for m in table}
    best_single = max(singles, key=lambda s: means[s])
    best_of = {n: max(singles, key=lambda s: table[s][n]) for n in names}
    losses = [n for n in names if table["recipe"][n] < table[best_of[n]][n] - 1e-12]
    top = {n: max(table[m][n] for m in ("recipe",) + singles) for n in names}

    def row(cols: list[str], n: str) -> str:
        return f"| {n} | " + " | ".join(
            f"**{table[m][n]:.3f}**" if m != "random" and table[m][n] >= top[n] - 1e-12 else f"{table[m][n]:.3f}"
            for m in cols) + " |"

    def tab(cols: list[str], heads: list[str]) -> list[str]:
        return [f"| target | {' | '.join(heads)} |", "|---|" + "---:|" * len(cols), *[row(cols, n) for n in names],
                "| **mean** | " + " | ".join(f"{means[m]:.3f}" for m in cols) + " |"]

    arrow = {s: " ↓" if DIRECTION.get(s, 1) < 0 else " ↑" for s in OTHER_SIGNALS}
    cols2 = ["recipe", *OTHER_SIGNALS, "random"]
    rev = ", ".join(f"{s} {means[s + ' (reversed)']:.3f}" for s in TARGET_FREE)
    lost_rows = [n for n in names if any(table[s][n] > table["recipe"][n] + 1e-12 for s in OTHER_SIGNALS)]
    length = quality["quality_length"]
    why = WHY_DIRECTION | {"quality_length": WHY_DIRECTION["quality_length"] + (
        f" (in this pool {np.mean(length < 50):.1%} of the documents are under 50 words and the longest has "
        f"{length.max():,.0f}{', so only the lower bound bites' if length.max() <= 100_000 else ''})")}
    return [
        "## Reported targets (evaluated once, never searched on)", "",
        "Share of the matching domain at a document budget equal to the domain's size; the recipe's ranking is "
        "`run_recipe`'s fused score on the same signal values. Bold: best per row over the recipe and every single "
        "signal of both tables (the random reference excluded).", "",
        "The signals the search fuses, alone:", "",
        *tab(["recipe", *SIGNALS], ["recipe", *SIGNALS]), "",
        "Every other signal family of the warehouse, alone (↑ ranked highest first, ↓ lowest first), beside the "
        "recipe and a seeded random ranking:", "",
        *tab(cols2, ["recipe", *(s + arrow[s] for s in OTHER_SIGNALS), "random"]), "",
        "- `nag_good` / `nag_bad`: the contrastive NAG score split as `influence_scores` stores it, at the "
        f"contrastive recipe's K = {C.nag.CONTRASTIVE_TOP_K} (checked: `nag_good - nag_bad` equals `nag_contrastive` "
        "on every target to 1e-9).",
        f"- `gradient`: LESS-style influence (`nag_core/signals/gradient.py`, dim {proxy.dim}) under the pipeline's "
        f"proxy LM (`nag_core/signals/causal_lm.py`), trained as `proxy_lm` does with default settings on its "
        f"docid-hash sample of this pool ({proxy.sample_documents} documents, {proxy.steps} steps, "
        f"{proxy.train_seconds:.0f} s); pool gradient features took {proxy.grad_seconds:.0f} s, bits per byte "
        f"{proxy.perplexity_seconds:.0f} s (cached in `benchmarks/out/cache/`).",
        "- Directions: every signal ranks highest first (higher means more target-like, `nag_core/signals`) except "
        "as marked; the marked and the target-independent ones, as their code documents them: "
        + "; ".join(f"`{s}` {why[s]}" for s in why) + ".",
        "- **The `quality_*` signals are target-independent** (`quality_perplexity` too: the proxy LM is trained on "
        "the pool, not the target): each ranks the pool the same way for every target, so its share says how the "
        "target's domain differs from the rest of the pool in that statistic, not how well it finds the target. They "
        f"are reported anyway; ranked the other way round, their means are {rev}.", "",
        f"Recipe mean {means['recipe']:.3f} vs the best single signal's mean ({best_single} "
        f"{means[best_single]:.3f}): "
        + ("**reaches it**" if means["recipe"] >= means[best_single] - 1e-12 else "**does not reach it**")
        + ". The recipe " + ("matches or beats every single signal on every target." if not losses else
                             "is below the best single signal on "
                             + ("every reported target: " if len(losses) == len(names) else "") + ", ".join(
                                 f"{n} (best {best_of[n]} {table[best_of[n]][n]:.3f} vs {table['recipe'][n]:.3f})"
                                 for n in losses) + ".")
        + (" None of the other families' signals beats it on any target." if not lost_rows else
           " Among the other families' signals, " + "; ".join(
               f"on {n} " + ", ".join(f"{s} ({table[s][n]:.3f})" for s in OTHER_SIGNALS
                                      if table[s][n] > table["recipe"][n] + 1e-12) for n in lost_rows)
           + " beat the recipe."), ""]


def main() -> int:
    ap = C.pool_parser(__doc__, "--dev-targets", C.DEV_TARGETS,
                       "8 documents per domain, 8 profile examples, weights {0, 1}, no filter (seconds)")
    ap.add_argument("--targets", nargs="+", default=list(C.DEFAULT_TARGETS), help="reported targets (evaluated only)")
    ap.add_argument("--seed", type=int, default=0, help="order in which the grid is visited (the search curve)")
    ap.add_argument("--report-only", action="store_true",
                    help="no dev scoring, no search: evaluate the recommended recipe (nag_core/recipe_library/"
                         "recommended.yaml; --smoke: the smoke run's) on the reported targets and rewrite only the "
                         "'Reported targets' section of the existing recipe_search.md and the 'reported' keys of "
                         "recipe_search.json")
    a = ap.parse_args()
    started = time.perf_counter()
    out = C.results_dir(a.out, a.smoke)
    n_prof = 8 if a.smoke else a.profile_examples
    rec_path = C.RECOMMENDED_RECIPE if not a.smoke else out / "recommended.yaml"
    if a.report_only:
        missing = [p for p in (rec_path, out / "recipe_search.md", out / "recipe_search.json") if not p.exists()]
        if missing:
            raise SystemExit(f"--report-only needs a finished search: {', '.join(map(str, missing))} missing; "
                             "run without --report-only first")

    pool = C.load_pool(Path(a.pool), a.label_column, a.smoke)
    texts, labels = pool["doc"].to_list(), pool[a.label_column].to_numpy()
    docids = pool["docid"].cast(pl.String).to_numpy()
    tiebreak = np.argsort(np.argsort(docids, kind="stable"), kind="stable")  # position in docid order
    models = C.Models()
    feats = C.pool_features(texts, models)
    proxy = C.proxy_features(pool, steps=6 if a.smoke else None)
    quality = quality_signals(texts) | {"quality_perplexity": proxy.perplexity}
    reported = [C.load_target(s, n_prof) for s in a.targets]
    names_r = [t.name for t in reported]
    if a.report_only:
        return report_only(a, out, rec_path, pool, texts, labels, reported, feats, models, tiebreak, proxy, quality,
                           started)
    dev = [C.load_target(s, n_prof) for s in a.dev_targets]
    t0 = time.perf_counter()
    dev_scores = {t.name: method_scores(texts, feats, t, models) for t in dev}
    score_seconds = time.perf_counter() - t0
    ev = Evaluator(dev_scores, {t.name: labels == t.domain for t in dev}, quality, tiebreak)

    cands = grid((0.0, 1.0), (None,)) if a.smoke else grid()
    order = np.random.default_rng(a.seed).permutation(len(cands))
    t0 = time.perf_counter()
    results = []  # (candidate, shares, mean) in visiting order
    for i in order:
        sh = ev.shares(cands[i])
        results.append((cands[i], sh, float(np.mean(list(sh.values())))))
    search_seconds = time.perf_counter() - t0
    curve = list(np.maximum.accumulate([r[2] for r in results]))
    key = lambda r: (-round(r[2], 12), n_signals(r[0]), describe(r[0]))  # noqa: E731
    ranked = sorted(results, key=key)
    best = ranked[0]
    singles = {s: next(r for r in results if r[0] == (None, "rank", tuple(float(x == s) for x in SIGNALS)))
               for s in SIGNALS}
    best_single = max(singles, key=lambda s: (singles[s][2], s))
    reach = next(i + 1 for i, v in enumerate(curve) if v >= best[2])

    rec_dict = recipe_dict(best[0])
    cmd = "python benchmarks/bench_recipe_search.py" + (" --smoke" if a.smoke else "")
    import yaml
    rec_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = rec_path.with_name(f".{rec_path.name}.tmp")
    tmp.write_text(f"# Chosen by `{cmd}` (seed {a.seed}): the best of {len(cands)} fusion recipes on the dev targets\n"
                   f"# (bench_common.DEV_TARGETS, mean share at domain size {best[2]:.3f}); see "
                   "benchmarks/results/recipe_search.md.\n" + yaml.safe_dump(rec_dict, sort_keys=False),
                   encoding="utf-8")
    tmp.replace(rec_path)
    recipe = load_recipe(rec_path)  # parsed strictly, as the pipeline would
    table = evaluate_reported(recipe, pool, texts, labels, reported, feats, models, tiebreak, proxy, quality)
    means_r = {m: float(np.mean([table[m][n] for n in names_r])) for m in table}

    dev_names = [t.name for t in dev]
    top = ranked[:15]
    md = [f"# Recipe search on dev targets{' (smoke)' if a.smoke else ''}", "", C.machine_line(C.machine()), "",
          f"Pool `{Path(a.pool).name}`: {len(pool)} documents. Dev targets: {', '.join(dev_names)} (MMLU-redux subjects "
          "disjoint from every reported target, `bench_common.DEV_TARGETS`). Objective: share of the matching domain "
          "at a document budget equal to the domain's size, mean over dev targets.", "",
          f"Grid: fuse `F = sum_s w_s * norm_s` with w_s in {{{', '.join(format(x, 'g') for x in (0, 1) if a.smoke) if a.smoke else ', '.join(format(x, 'g') for x in WEIGHTS)}}} "
          f"over {', '.join(SIGNALS)}; normalisation {', '.join(NORMALIZERS)}; quality filter "
          f"{'none' if a.smoke else 'none, ' + ', '.join(describe((f, 'rank', (1.0,) + (0.0,) * 4)).split('; ')[0] for f in FILTERS if f)}. "
          f"{len(cands)} distinct recipes (scalar multiples of a weight vector rank identically and are searched "
          f"once), visited in the order of seed {a.seed}. Signal scoring took {score_seconds:.0f} s, the search "
          f"{search_seconds:.1f} s.", "",
          "## Search curve", "",
          f"Best dev mean after n recipes tried (seeded random order of the grid); best single signal on dev: "
          f"{best_single} {singles[best_single][2]:.3f}. The grid's best was first reached after {reach} recipes.", "",
          "| recipes tried | best dev mean so far |", "|---:|---:|",
          *[f"| {n} | {curve[n - 1]:.3f} |" for n in CURVE_AT if n <= len(curve)],
          f"| {len(curve)} (all) | {curve[-1]:.3f} |", "",
          "![search curve](recipe_search.png)", "",
          "## Top recipes on dev", "",
          f"| # | recipe | signals | {' | '.join(dev_names)} | **dev mean** |", "|---:|---|---:|" + "---:|" * (len(dev) + 1),
          *[f"| {i} | {describe(r[0])} | {n_signals(r[0])} | " + " | ".join(f"{r[1][n]:.3f}" for n in dev_names)
            + f" | {r[2]:.3f} |" for i, r in enumerate(top, 1)], "",
          "Single signals on dev (rank normalisation; any normalisation ranks one signal the same):", "",
          f"| signal | {' | '.join(dev_names)} | **dev mean** |", "|---|" + "---:|" * (len(dev) + 1),
          *[f"| {s} | " + " | ".join(f"{singles[s][1][n]:.3f}" for n in dev_names) + f" | {singles[s][2]:.3f} |"
            for s in SIGNALS], "",
          "## The recommended recipe", "",
          f"The best on dev (ties: fewer signals, then lexical order): **{describe(best[0])}**, written to "
          f"`{rec_path.relative_to(C.ROOT) if rec_path.is_relative_to(C.ROOT) else rec_path}`:", "", "```yaml",
          rec_path.read_text(encoding="utf-8").rstrip(), "```", "",
          *reported_section(table, names_r, proxy, quality),
          f"Benchmark wall time: {time.perf_counter() - started:.0f} s.", ""]
    plot_curve(curve, singles[best_single][2], out / "recipe_search.png")
    dump = {"seed": a.seed, "grid_size": len(cands), "best": {"recipe": describe(best[0]), "dev": best[1],
                                                                "dev_mean": best[2]},
            "curve": curve, "top": [{"recipe": describe(r[0]), "dev": r[1], "dev_mean": r[2]} for r in top],
            "reported": table, "reported_mean": means_r, "directions": direction_notes()}
    tmp = out / ".recipe_search.json.tmp"
    tmp.write_text(json.dumps(dump, indent=1))
    tmp.replace(out / "recipe_search.json")
    return C.write_report(out, "recipe_search.md", md)


def direction_notes() -> dict[str, str]:
    return {s: WHY_DIRECTION.get(s, "highest first") for s in SIGNALS + OTHER_SIGNALS}


def report_only(a, out: Path, rec_path: Path, pool, texts, labels, reported, feats, models, tiebreak, proxy,
                quality, started: float) -> int:
    """Re-evaluate the committed recipe on the reported targets; keep the search's sections as they are."""
    recipe = load_recipe(rec_path)
    table = evaluate_reported(recipe, pool, texts, labels, reported, feats, models, tiebreak, proxy, quality)
    names = [t.name for t in reported]
    old = (out / "recipe_search.md").read_text(encoding="utf-8")
    head = old.split("\n## Reported targets")[0].rstrip()
    search_wall = next((x for x in old.splitlines() if x.startswith(("Benchmark wall time:", "The search run's"))), None)
    cmd = "python benchmarks/bench_recipe_search.py --report-only" + (" --smoke" if a.smoke else "")
    md = [head, "", *reported_section(table, names, proxy, quality),
          f"This section was regenerated by `{cmd}` from `{rec_path.name}` without repeating the dev scoring or the "
          f"search (the sections above are from the search run dated at the top). "
          + C.machine_line(C.machine()), "",
          *([search_wall.replace("Benchmark wall time:", "The search run's benchmark wall time:"), ""]
            if search_wall else []),
          f"Report-only wall time: {time.perf_counter() - started:.0f} s.", ""]
    data = json.loads((out / "recipe_search.json").read_text())
    data |= {"reported": table, "reported_mean": {m: float(np.mean([table[m][n] for n in names])) for m in table},
             "directions": direction_notes(), "reported_by": cmd}
    C.write_json(out / "recipe_search.json", data)
    return C.write_report(out, "recipe_search.md", md)


if __name__ == "__main__":
    sys.exit(main())
