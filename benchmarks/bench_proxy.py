"""Proxy pretraining: does a method's selection teach a small LM the target better?

    python benchmarks/bench_proxy.py [--pool P] [--targets ...] [--profile-examples 200]
                                     [--budget domain|FRACTION] [--seeds 3] [--steps N] [--smoke]

For each target and each method (the retrieval benchmark's scorers, same profile
examples), the pool is ranked and cut at the same token budget with
``nag_core.selection.select_by_budget`` (``--budget``: by default the matching domain's
share of pool ``token_num``, so a perfect selector keeps exactly the domain).
A tiny GPT-2 (byte-level vocabulary of 256, so no tokenizer favours any method) is
trained from scratch on each selection with the same seed, steps, batch and schedule,
and evaluated on the target's **held-out** examples (never used to build any profile):
loss in bits per byte, mean +- std over seeds. Lower is better. ``oracle`` trains on the
matching domain's own documents under the same budget: what a perfect *retrieval* selector
gets. It is not a floor on the loss: a domain label is not the target's text (PubMedQA
passages are not MMLU exam questions), and a selection can fit the target better.

Writes ``proxy.md`` (``--name``) and per-seed losses in ``proxy.json`` to ``--out`` (default
benchmarks/results; ``--smoke``: benchmarks/out/smoke). ``--methods ... recipe`` adds the fused score
of ``--recipe`` (default ``nag_core/recipe_library/recommended.yaml``), compared paired by seed with each method.
``--reuse`` takes the per-seed losses an earlier run left in NAME.json whenever everything that fixes
a training matches (see ``REUSE_SETTINGS``), so an interrupted run, or one that adds methods or
seeds, trains only what is missing; the report says how many results were reused.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
import torch  # noqa: E402

import bench_common as C  # noqa: E402
from nag_core.signals.causal_lm import as_bytes, tiny_gpt, train_on_bytes  # noqa: E402

LABELS = {"random": "random", "dsir": "DSIR", "bm25": "BM25", "embedding": "embedding", "nag": "NAG",
          "nag_contrastive": "NAG contrastive", "recipe": "recipe", "oracle": "domain-label oracle"}
NAG_METHODS = ("nag", "nag_contrastive")
# Settings that fix a (target, method, seed) training and its evaluation: --reuse takes a stored loss only if all match.
REUSE_SETTINGS = ("pool", "targets", "label_column", "profile_examples", "budget", "smoke", "steps", "batch", "ctx",
                  "d_model", "layers", "heads", "lr", "eval_bytes")


def _init_worker() -> None:
    torch.set_num_threads(1)  # small models: two 1-thread processes beat one 2-thread process


def train_eval(train: np.ndarray, evals: np.ndarray, seed: int, a: argparse.Namespace) -> float:
    """Bits per byte on ``evals`` after training from scratch on random windows of ``train``."""
    model = train_on_bytes(train, seed=seed, steps=a.steps, d_model=a.d_model, layers=a.layers, heads=a.heads,
                           context=a.ctx, batch_size=a.batch, lr=a.lr)
    ev = torch.from_numpy(evals.astype(np.int64))
    n_win = max(1, (ev.numel() - 1) // a.ctx)
    total, count = 0.0, 0
    with torch.inference_mode():
        for lo in range(0, n_win, 64):
            rows = [ev[i * a.ctx: i * a.ctx + a.ctx + 1] for i in range(lo, min(n_win, lo + 64))]
            rows = [r for r in rows if r.numel() > 1]
            width = min(r.numel() for r in rows)
            x = torch.stack([r[:width] for r in rows])
            logits = model(input_ids=x[:, :-1]).logits
            nll = torch.nn.functional.cross_entropy(logits.reshape(-1, 256), x[:, 1:].reshape(-1), reduction="sum")
            total += float(nll)
            count += x[:, 1:].numel()
    return total / max(1, count) / math.log(2)


def train_job(train: np.ndarray, evals: np.ndarray, seed: int, a: argparse.Namespace) -> tuple[float, float]:
    """(bits per byte, seconds the training and evaluation took in the worker)."""
    t = time.perf_counter()
    return train_eval(train, evals, seed, a), time.perf_counter() - t


def previous_results(path: Path, a: argparse.Namespace, recipe) -> tuple[dict, dict, list[str]]:
    """Losses and seconds of an earlier run in ``path`` usable now, keyed (target, method, seed), and notes."""
    if not path.exists():
        return {}, {}, []
    import json

    old = json.loads(path.read_text(encoding="utf-8"))
    now = {k: str(v) for k, v in vars(a).items()}
    differ = [k for k in REUSE_SETTINGS if old.get("settings", {}).get(k) != now[k]]
    if differ:
        print(f"  --reuse: {path.name} was run with other settings ({', '.join(differ)}); reusing nothing", flush=True)
        return {}, {}, []
    notes, skip = [], set()
    if recipe is not None:
        stored = old.get("recipe_digest")
        if stored is None and old["settings"].get("recipe") == now["recipe"]:
            notes.append(f"the earlier run did not record the recipe's digest; its recipe results were reused on the "
                         f"assumption that `{Path(a.recipe).name}` is unchanged since")
        elif stored != recipe.digest or old["settings"].get("recipe") != now["recipe"]:
            skip.add("recipe")
    losses, seconds = {}, {}
    for key, per_seed in old.get("bits_per_byte", {}).items():
        name, m = key.split("|")
        if m in skip:
            continue
        for seed, v in per_seed.items():
            losses[(name, m, int(seed))] = float(v)
            if key in old.get("seconds", {}) and seed in old["seconds"][key]:
                seconds[(name, m, int(seed))] = float(old["seconds"][key][seed])
    return losses, seconds, notes


def recipe_verdict(results: dict, targets: list, singles: list[str]) -> str:
    """One sentence per the recipe's standing: where it has the lowest mean loss, and where it does not."""
    mean = {k: float(np.mean(v)) for k, v in results.items()}
    parts, wins = [], 0
    for t in targets:
        best = min(singles, key=lambda m: mean[(t.name, m)])
        diff = np.array(results[(t.name, "recipe")]) - np.array(results[(t.name, best)])
        agree = bool(np.all(diff < 0) or np.all(diff > 0))
        if mean[(t.name, "recipe")] < mean[(t.name, best)]:
            wins += 1
            parts.append(f"{t.name}: lowest, {abs(diff.mean()):.3f} bpb below {LABELS[best]}"
                         + ("" if agree else " (the seeds disagree)"))
        else:
            parts.append(f"{t.name}: **does not win**, {diff.mean():.3f} bpb above {LABELS[best]}"
                         + (" on every seed" if agree else " (the seeds disagree)"))
    avg = {m: float(np.mean([mean[(t.name, m)] for t in targets])) for m in ["recipe", *singles]}
    best_avg = min(singles, key=lambda m: avg[m])
    return (f"**The recipe against the single signals trained here:** lowest mean loss on {wins} of {len(targets)} "
            f"targets ({'; '.join(parts)}). Mean over targets: recipe {avg['recipe']:.3f} vs the best single signal's "
            f"mean ({LABELS[best_avg]} {avg[best_avg]:.3f}), "
            + ("lower." if avg["recipe"] < avg[best_avg] else "**not lower**."))


def main() -> int:
    ap = C.pool_parser(__doc__, smoke_help="2 seeds, 6 steps of a tiny model on the smoke pool (seconds)")
    ap.add_argument("--methods", nargs="+", default=list(C.METHODS), choices=C.METHODS + ("recipe",),
                    help="'recipe': the fused score of --recipe, computed by nag_core.recipe_ops.run_recipe")
    ap.add_argument("--recipe", type=Path, default=C.RECOMMENDED_RECIPE, help="recipe YAML for the 'recipe' method")
    ap.add_argument("--no-oracle", action="store_true", help="skip the domain-label oracle (saves its trainings)")
    ap.add_argument("--name", default="proxy", help="report name: writes NAME.md, and NAME.json with per-seed losses "
                    "(rewritten as trainings finish, so an interrupted run keeps what it finished)")
    ap.add_argument("--budget", default="domain",
                    help="fraction of pool tokens each selection keeps, or 'domain' (default): the matching domain's "
                         "token share of the pool, so a perfect selector keeps exactly the domain")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--ctx", type=int, default=64)
    ap.add_argument("--d-model", type=int, default=224)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--eval-bytes", type=int, default=16_384, help="held-out bytes evaluated per target")
    ap.add_argument("--workers", type=int, default=2, help="training processes (one thread each)")
    ap.add_argument("--max-minutes", type=float, default=None,
                    help="stop starting trainings after this long and report the seeds every method finished")
    ap.add_argument("--reuse", action="store_true",
                    help="take the per-seed losses already in NAME.json (in --out) whose training settings match "
                         "(REUSE_SETTINGS; for 'recipe' also the recipe's digest) and train only the rest")
    a = ap.parse_args()
    if a.smoke:
        a.seeds, a.steps, a.d_model, a.layers, a.heads, a.ctx, a.batch, a.eval_bytes = 2, 6, 32, 1, 2, 32, 4, 2048
    started = time.perf_counter()
    out = C.results_dir(a.out, a.smoke)

    pool = C.load_pool(Path(a.pool), a.label_column, a.smoke)
    texts = pool["doc"].to_list()
    labels = pool[a.label_column].to_numpy()
    targets = [C.load_target(s, 8 if a.smoke else a.profile_examples) for s in a.targets]
    models = C.Models()
    feats = C.pool_features(texts, models)
    n_params = sum(p.numel() for p in tiny_gpt(a.d_model, a.layers, a.heads, a.ctx).parameters())
    methods = list(a.methods) + ([] if a.no_oracle else ["oracle"])
    recipe = None
    if "recipe" in a.methods:
        from nag_core.recipes import load_recipe
        recipe = load_recipe(a.recipe)
        if recipe.filters:
            raise SystemExit(f"{a.recipe}: filter steps need quality signals, which this benchmark does not compute")
    signal_methods = [m for m in a.methods if m != "recipe"]
    if recipe is not None:  # the recipe's signals are scored whether or not they are trained on themselves
        signal_methods += [C.METHOD_OF_SIGNAL.get(s, s) for s in recipe.signals
                           if C.METHOD_OF_SIGNAL.get(s, s) not in signal_methods]
    shares, sizes, budgets, jobs = {}, {}, {}, []
    for t in targets:
        scores, _ = C.score_all(texts, feats, t, models, signal_methods)
        if recipe is not None:
            scores["recipe"] = C.recipe_scores(recipe, pool, t.name, scores)
        rel = labels == t.domain
        # oracle: the domain's documents first (pool order), then the rest; same budget rule
        scores["oracle"] = rel.astype(np.float64)
        evals = as_bytes(t.held_out)[: a.eval_bytes]
        tok = pool["token_num"].to_numpy()
        fraction = float(tok[rel].sum() / tok.sum()) if a.budget == "domain" else float(a.budget)
        budgets[t.name] = fraction
        for m in methods:
            frame = pl.DataFrame({"docid": pool["docid"], "score": scores[m], "token_num": pool["token_num"],
                                  "pos": np.arange(len(pool))})
            kept = C.budget_selection(frame, fraction)
            pos = kept["pos"].to_numpy()
            train = as_bytes([texts[i] for i in pos])
            shares[(t.name, m)] = float(tok[pos][rel[pos]].sum() / max(1, kept["token_num"].sum()))
            sizes[(t.name, m)] = (len(pos), train.size)
            jobs += [((t.name, m, seed), train, evals) for seed in range(a.seeds)]
    jobs.sort(key=lambda j: j[0][2])  # seed-major: an interrupted run has every (target, method) at the first seeds
    results = {key[:2]: [] for key, _, _ in jobs}
    job_seconds: dict[tuple, float] = {}
    prev, prev_seconds, reuse_notes = (previous_results(out / f"{a.name}.json", a, recipe) if a.reuse
                                       else ({}, {}, []))
    reused = [key for key, _, _ in jobs if key in prev]
    for key in reused:
        results[key[:2]].append((key[2], prev[key]))
        if key in prev_seconds:
            job_seconds[key] = prev_seconds[key]
    jobs = [j for j in jobs if j[0] not in prev]
    total = len(jobs) + len(reused)
    print(f"training {len(jobs)} models ({a.workers} single-threaded worker processes)"
          + (f"; {len(reused)} per-seed results reused from {a.name}.json" if a.reuse else "") + " ...", flush=True)

    def dump() -> None:
        C.write_json(out / f"{a.name}.json", {
            "settings": {k: str(v) for k, v in vars(a).items()},
            **({"recipe_digest": recipe.digest} if recipe is not None else {}),
            "bits_per_byte": {f"{n}|{m}": dict(sorted(r)) for (n, m), r in results.items() if r},
            "seconds": {f"{n}|{m}": {s: job_seconds[(n, m, s)] for s, _ in sorted(r) if (n, m, s) in job_seconds}
                        for (n, m), r in results.items() if r}})

    t0 = time.perf_counter()
    stopped = 0
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(a.workers, mp_context=ctx, initializer=_init_worker) as pool_ex:
        futures = {pool_ex.submit(train_job, train, evals, key[2], a): key for key, train, evals in jobs}
        done = 0
        for fut in as_completed(futures):
            if fut.cancelled():
                continue
            key = futures[fut]
            bpb, job_seconds[key] = fut.result()
            results[key[:2]].append((key[2], bpb))
            done += 1
            dump()
            if done % max(1, len(jobs) // 12) == 0 or done == len(jobs):
                print(f"  {done}/{len(jobs)} trained ({time.perf_counter() - t0:.0f} s)", flush=True)
            if a.max_minutes and time.perf_counter() - t0 > 60 * a.max_minutes:
                stopped = sum(f.cancel() for f in futures)  # running trainings finish; queued ones never start
    if stopped:  # keep the seeds every (target, method) finished, so comparisons stay paired
        seeds = [s for s in range(a.seeds) if all(s in dict(r) for r in results.values())]
        if not seeds:
            raise SystemExit(f"--max-minutes {a.max_minutes}: not even seed 0 finished for every target and method")
        print(f"  stopped at --max-minutes {a.max_minutes}: {stopped} trainings cancelled; reporting seeds {seeds}")
        results = {k: [(s, v) for s, v in r if s in seeds] for k, r in results.items()}
        a.seeds = len(seeds)
    if not jobs:
        dump()  # records the recipe's digest and the settings of this run beside the reused losses
    results = {k: [v for _, v in sorted(r)] for k, r in results.items()}
    train_seconds = time.perf_counter() - t0
    for (name, m), r in results.items():
        print(f"  {name} {m}: {np.mean(r):.3f} +- {np.std(r, ddof=1) if len(r) > 1 else 0.0:.3f} bpb "
              f"(share {shares[(name, m)]:.2f}, {sizes[(name, m)][1]} bytes)")

    def cell(t, m):
        r = results[(t.name, m)]
        return f"{np.mean(r):.3f} ± {np.std(r, ddof=1) if len(r) > 1 else 0.0:.3f}"

    lines = []
    for nm in (m for m in NAG_METHODS if m in a.methods):
        base = [m for m in a.methods if m not in NAG_METHODS + ("recipe",)]
        for t in targets if base else []:
            nag_r = np.array(results[(t.name, nm)])
            best = min(base, key=lambda m: np.mean(results[(t.name, m)]))
            diff = nag_r - np.array(results[(t.name, best)])  # paired: same seed, same init and windows
            sd = float(diff.std(ddof=1)) if len(diff) > 1 else 0.0
            verdict = "lower (better)" if diff.mean() < 0 else "higher (worse)"
            lines.append(f"- {t.name}: {LABELS[nm]} {nag_r.mean():.3f} vs best baseline {LABELS[best]} "
                         f"{np.mean(results[(t.name, best)]):.3f} bpb: {verdict} by {abs(diff.mean()):.3f} bpb; paired "
                         f"difference over seeds {diff.mean():+.3f} ± {sd:.3f} "
                         f"({'all seeds agree' if (np.all(diff < 0) or np.all(diff > 0)) else 'seeds disagree'}).")
    for other in (m for m in a.methods if "recipe" in a.methods and m != "recipe"):
        for t in targets:
            diff = np.array(results[(t.name, "recipe")]) - np.array(results[(t.name, other)])
            sd = float(diff.std(ddof=1)) if len(diff) > 1 else 0.0
            lines.append(f"- {t.name}: recipe {np.mean(results[(t.name, 'recipe')]):.3f} vs {LABELS[other]} "
                         f"{np.mean(results[(t.name, other)]):.3f} bpb: paired difference {diff.mean():+.3f} ± {sd:.3f} "
                         f"({'all seeds agree' if (np.all(diff < 0) or np.all(diff > 0)) else 'seeds disagree'}).")
    if recipe is not None:
        lines += ["", recipe_verdict(results, targets, [m for m in a.methods if m != "recipe"])]
    heads = " | ".join(LABELS[m] for m in methods)
    m_ = C.machine()
    title = "Proxy pretraining benchmark" + (": the recommended recipe beside single signals" if recipe else "")
    md = [f"# {title}{' (smoke)' if a.smoke else ''}", "", C.machine_line(m_), "",
          f"Per target and method: rank the pool ({len(pool)} docs) from the profile examples, keep "
          f"`select_by_budget(fraction)` of pool `token_num` with " + (
              "fraction = the matching domain's token share (" + ", ".join(f"{k} {v:.3f}" for k, v in budgets.items())
              + "), so the oracle keeps exactly the domain" if a.budget == "domain" else f"fraction = {a.budget}")
          + f", train a GPT-2 of {n_params / 1e6:.2f}M parameters "
          f"(byte vocabulary 256, d={a.d_model}, {a.layers} layers, {a.heads} heads, context {a.ctx}) from scratch for "
          f"{a.steps} steps of {a.batch} random windows (AdamW lr {a.lr}, warm-up + cosine, grad clip 1), seeds "
          f"0..{a.seeds - 1} (seed fixes init and window sampling; identical across methods). Evaluate held-out target "
          f"examples (not in any profile; first {a.eval_bytes:,} bytes, windows of {a.ctx}): **bits per byte, mean ± "
          f"std over {a.seeds} seeds, lower is better**. A uniform byte model scores 8.0.", "",
          f"| target | {heads} |", "|---|" + "---:|" * len(methods),
          *[f"| {t.name} -> {t.domain} | " + " | ".join(
              (f"**{cell(t, m)}**" if m != "oracle" and np.mean(results[(t.name, m)]) ==
               min(np.mean(results[(t.name, x)]) for x in a.methods) else cell(t, m)) for m in methods) + " |"
            for t in targets],
          "| **mean** | " + " | ".join(f"{np.mean([np.mean(results[(t.name, m)]) for t in targets]):.3f}"
                                        for m in methods) + " |", "",
          "Bold: best selection method per row (oracle excluded). The domain-label oracle trains on exactly the matching "
          "domain (a perfect score in the retrieval benchmark); it is not a floor on the loss, since a domain label is "
          "not the target's text: e.g. PubMedQA passages are not MMLU exam questions, and a selection with other "
          "documents in the target's style can fit the held-out examples better.", "",
          "## Each NAG recipe against the best baseline" + (", and the recipe against each method" if recipe else ""), "",
          "Paired by seed (the seed fixes the initial weights and the training windows' positions for every method), "
          "so the paired difference's spread is the noise that matters for a comparison.", "", *lines, "",
          "## What each selection holds", "",
          "Share of the matching domain in the selection (in `token_num` tokens) / documents selected / training bytes:", "",
          f"| target | {heads} |", "|---|" + "---:|" * len(methods),
          *[f"| {t.name} | " + " | ".join(f"{shares[(t.name, m)]:.2f} / {sizes[(t.name, m)][0]} / "
                                          f"{sizes[(t.name, m)][1] / 1e3:.0f} kB" for m in methods) + " |"
            for t in targets], "",
          "## Notes", "",
          "- Same token budget for every method; byte counts differ a little because documents differ in bytes per "
          "token. Training sees the same number of windows whatever the selection's size (repeated data for small "
          "selections).",
          f"- Training: {len(jobs)} models in {train_seconds:.0f} s on {a.workers} single-threaded worker processes "
          f"({a.steps} steps x {a.batch} x {a.ctx} = {a.steps * a.batch * a.ctx:,} bytes seen per model). The run "
          "is deterministic per seed (one thread per model)."
          + (f" {len(reused)} of the {total} per-seed results were reused (`--reuse`) from `{a.name}.json`, trained by "
             "earlier runs with the same settings" + (f" ({'; '.join(reuse_notes)})" if reuse_notes else "")
             + (f"; worker time recorded for {len(job_seconds)} of the {total} trainings: "
                f"{sum(job_seconds.values()):.0f} s in all" if job_seconds else "") + "." if reused else ""),
          f"- Model size: {n_params / 1e6:.2f}M parameters for {a.steps} steps. Small models trained this briefly "
          "differ from seed to seed by as much as the gaps between good selections, which is why the comparison "
          "above is paired by seed.",
          "- humaneval: the pool's code domain contains HumanEval prompts + solutions, including the held-out ones, so "
          "a selection that contains them has seen the evaluation text (contamination, as in real pools).",
          "- Held-out examples per target: " + ", ".join(f"{t.name} {len(t.held_out)}" for t in targets) + ".",
          *([f"- Stopped by `--max-minutes {a.max_minutes:g}`: {stopped} queued trainings never ran; the tables hold "
             f"the {a.seeds} seed(s) every target and method finished."] if stopped else []), "",
          f"Benchmark wall time: {time.perf_counter() - started:.0f} s.", ""]
    return C.write_report(out, f"{a.name}.md", md)


if __name__ == "__main__":
    sys.exit(main())
