"""Speed and memory of NAG extraction and scoring.

    python benchmarks/bench_speed.py [--out DIR] [--smoke]

1. Extraction throughput at max_length 120 with the bundled MiniLM-L6 on pool documents:
   ``Extractor`` (fwd_up, K = 20, length-sorted batches) against
   * a bare forward pass of the same model on the same batches (no hooks): the hook overhead;
   * a reference-style extractor: hooks on all six neuron types, a second up_proj call to
     recompute the FFN activations, documents batched in file order (no length bucketing);
   * the FLOP limit: 2 x non-embedding parameters x real tokens at a measured fp32 matmul rate.
2. Scoring throughput of ``nag_core.scoring.similarity`` on 1M synthetic documents
   (L = 28, K = 20, N = 8192) against a per-layer Python-dict implementation of the formula,
   timed on a subsample and extrapolated; scores compared on that subsample.
3. Peak RSS (``resource.getrusage``, each measurement in its own subprocess) of extraction
   and of scoring + selection at 1x, 4x and 16x a base size.

Writes ``speed.md`` to ``--out`` (default benchmarks/results; ``--smoke``: benchmarks/out/smoke).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
import torch  # noqa: E402

import bench_common as C  # noqa: E402
from nag_core import extraction  # noqa: E402
from nag_core.extraction import Extractor, right_pad  # noqa: E402
from nag_core.graph import build_profile  # noqa: E402
from nag_core.hooks import find_sites  # noqa: E402
from nag_core.scoring import similarity  # noqa: E402
from nag_core.selection import select_by_budget  # noqa: E402
from nag_core.settings import NEURON_TYPES  # noqa: E402


def rss_mib() -> float:
    """Peak RSS of this process image in MiB.

    ``VmHWM`` from /proc/self/status, which starts afresh at ``exec``. ``getrusage``'s
    ``ru_maxrss`` is reported beside it but cannot be used alone: Linux folds the parent's
    peak into a child's ``ru_maxrss`` across fork + exec, so every worker would report at
    least this benchmark's own peak.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def rusage_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# ---------------------------------------------------------------- 1. extraction

def _batches(ids: list[list[int]], batch: int, pad_id: int, sort: bool):
    order = sorted(range(len(ids)), key=lambda i: (-len(ids[i]), i)) if sort else list(range(len(ids)))
    for lo in range(0, len(ids), batch):
        members = order[lo: lo + batch]
        x, m = right_pad([ids[i] for i in members], pad_id)
        yield members, x, m


def bare_forward(model, ex: Extractor, texts: list[str]) -> dict:
    """The same tokenisation, order and padding as ``Extractor.extract``, no hooks."""
    t = time.perf_counter()
    ids = ex.tokenize(texts)
    tokens = padded = 0
    with torch.inference_mode():
        for _, x, m in _batches(ids, ex.batch_size, ex.pad_id, sort=True):
            tokens += int(m.sum())
            padded += m.numel()
            model(input_ids=x, attention_mask=m)
    return {"seconds": time.perf_counter() - t, "tokens": tokens, "padded": padded}


def reference_style(model, tokenizer, texts: list[str], top_k: int, max_length: int, batch: int) -> dict:
    """All six neuron types, up_proj applied a second time, batches in file order."""
    modules = dict(model.named_modules())
    sites = [s for nt in NEURON_TYPES for s in find_sites(model, nt)]
    pad_id = tokenizer.pad_token_id or 0
    state: dict = {}
    out: dict[tuple[str, int], list] = {(s.neuron_type, s.layer): [] for s in sites}

    def hook(site):
        def fn(module, inputs, output):
            if site.neuron_type == "fwd_up":  # recompute the activations from the projection's input
                act = torch.nn.functional.linear(inputs[0], module.weight, module.bias)
            else:
                act = output[0] if isinstance(output, tuple) else output
            impact = (act.abs() * state["mask"][..., None]).sum(1) / state["denom"]
            vals, idx = torch.topk(impact, top_k, dim=-1)
            out[(site.neuron_type, site.layer)].append((state["members"], idx.numpy(), vals.numpy()))
        return fn

    t = time.perf_counter()
    ids = tokenizer(texts, add_special_tokens=False, truncation=True, max_length=max_length)["input_ids"]
    handles = [modules[s.module_name].register_forward_hook(hook(s)) for s in sites]
    tokens = padded = 0
    try:
        with torch.inference_mode():
            for members, x, m in _batches(ids, batch, pad_id, sort=False):
                tokens += int(m.sum())
                padded += m.numel()
                state.update(mask=m.float(), denom=m.float().sum(1, keepdim=True).clamp_min(1.0), members=members)
                model(input_ids=x, attention_mask=m)
    finally:
        for h in handles:
            h.remove()
    seconds = time.perf_counter() - t
    n, L = len(texts), len(find_sites(model, "fwd_up"))
    up = np.zeros((n, L, top_k), np.int64)
    for (nt, layer), parts in out.items():
        if nt == "fwd_up":
            for members, idx, _ in parts:
                up[members, layer] = idx
    return {"seconds": seconds, "tokens": tokens, "padded": padded, "fwd_up": up}


def matmul_rate(seconds: float = 2.0) -> dict[str, tuple[float, float]]:
    """(median, best) fp32 GFLOP/s of torch.mm on an FFN-shaped product and a square one."""
    rates = {}
    for name, (m, k, n) in {"ffn-shaped 4096x384 @ 384x1536": (4096, 384, 1536),
                            "square 2048": (2048, 2048, 2048)}.items():
        a, b = torch.randn(m, k), torch.randn(k, n)
        for _ in range(3):
            a @ b
        got, t_end = [], time.perf_counter() + seconds
        while time.perf_counter() < t_end:
            t = time.perf_counter()
            a @ b
            got.append(2 * m * k * n / (time.perf_counter() - t) / 1e9)
        rates[name] = (float(np.median(got)), float(max(got)))
    return rates


def non_embedding_params(model) -> int:
    emb = sum(p.numel() for n, p in model.named_parameters() if n.startswith("embeddings."))
    pool = sum(p.numel() for n, p in model.named_parameters() if n.startswith("pooler."))
    return sum(p.numel() for p in model.parameters()) - emb - pool


def extraction_speed(n_docs: int, repeats: int) -> dict:
    """Per-batch paired timing, robust to other processes on the machine.

    The documents are cut into the batches each variant would form (NAG and bare: the
    length-sorted order ``Extractor`` uses; reference-style: file order). Every batch is
    run by every variant back to back, ``repeats`` rounds, variant order rotating; the
    fastest time of each (variant, batch) is kept and summed. A noisy neighbour slows
    some runs but never speeds one up, so the minimum is the cleanest estimate.
    """
    models = C.Models()
    model, tok, ex = models.model, models.tokenizer, models.extractor
    texts = pl.read_parquet(C.POOL, columns=["doc"]).sample(n=n_docs, seed=1)["doc"].to_list()
    ids = ex.tokenize(texts)
    order = sorted(range(n_docs), key=lambda i: (-len(ids[i]), i))
    sorted_groups = [[texts[i] for i in order[lo: lo + ex.batch_size]] for lo in range(0, n_docs, ex.batch_size)]
    file_groups = [texts[lo: lo + ex.batch_size] for lo in range(0, n_docs, ex.batch_size)]
    ex.extract(sorted_groups[0])  # warm-up
    bare_forward(model, ex, sorted_groups[0])
    best = {v: [float("inf")] * len(sorted_groups) for v in ("bare", "nag", "reference")}
    stats = {v: [None] * len(sorted_groups) for v in best}
    nag_rows, ref_rows = {}, {}
    variants = ["bare", "nag", "reference"]
    for r in range(repeats):
        for g in range(len(sorted_groups)):
            for v in variants[r % 3:] + variants[: r % 3]:
                if v == "bare":
                    res = bare_forward(model, ex, sorted_groups[g])
                elif v == "nag":
                    feats, st = ex.extract(sorted_groups[g])
                    res = {"seconds": st.seconds, "tokens": st.tokens, "padded": st.padded_tokens}
                    nag_rows.update(zip(sorted_groups[g], feats["fwd_up"].indices.astype(np.int64)))
                else:
                    res = reference_style(model, tok, file_groups[g], C.TOP_K, C.MAX_LENGTH, ex.batch_size)
                    ref_rows.update(zip(file_groups[g], res.pop("fwd_up")))
                if res["seconds"] < best[v][g]:
                    best[v][g], stats[v][g] = res["seconds"], res
    total = {v: {"seconds": float(sum(best[v])), "tokens": sum(s["tokens"] for s in stats[v]),
                 "padded": sum(s["padded"] for s in stats[v])} for v in best}
    same_rows = float(np.mean([np.array_equal(nag_rows[t], ref_rows[t]) for t in texts]))
    same_sets = float(np.mean([set(nag_rows[t].ravel()) == set(ref_rows[t].ravel()) for t in texts]))
    p_ne = non_embedding_params(model)
    rates = matmul_rate(0.3 if n_docs < 100 else 3.0)
    return {"n": n_docs, "repeats": repeats, "res": total, "same_rows": same_rows, "same_sets": same_sets,
            "p_ne": p_ne, "p_all": sum(p.numel() for p in model.parameters()), "rates": rates,
            "layers": models.extractor.num_layers, "batches": len(sorted_groups)}


# ---------------------------------------------------------------- 2. scoring

def synthetic_indices(n: int, L: int, K: int, N: int, seed: int, chunk: int = 65536) -> np.ndarray:
    """Skewed neuron draws (a few neurons per layer are hit often, like real NAGs), uint16."""
    rng = np.random.default_rng(seed)
    perms = np.stack([np.random.default_rng(1000 + l).permutation(N) for l in range(L)]).astype(np.uint16)
    out = np.empty((n, L, K), np.uint16)
    for lo in range(0, n, chunk):
        m = min(chunk, n - lo)
        raw = (N * rng.random((m, L, K), dtype=np.float32) ** 3).astype(np.int64).clip(0, N - 1)
        out[lo: lo + m] = perms[np.arange(L)[None, :, None], raw]
    return out


def dict_similarity(indices: np.ndarray, profile_dicts: list[dict[int, float]]) -> np.ndarray:
    """The formula written plainly: per layer, sum the profile weights of the doc's neurons."""
    L = len(profile_dicts)
    out = np.empty(len(indices), np.float64)
    for i, doc in enumerate(indices.tolist()):
        total = 0.0
        for layer, neurons in enumerate(doc):
            weights = profile_dicts[layer]
            total += sum(weights.get(k, 0.0) for k in neurons)
        out[i] = total / L
    return out


def scoring_speed(n: int, n_dict: int, L: int = 28, K: int = 20, N: int = 8192) -> dict:
    t = time.perf_counter()
    idx = synthetic_indices(n, L, K, N, seed=0)
    gen_s = time.perf_counter() - t
    _, profile = build_profile(synthetic_indices(2000, L, K, N, seed=1), N)
    times = []
    for _ in range(3):
        t = time.perf_counter()
        fast = similarity(idx, profile)
        times.append(time.perf_counter() - t)
    dicts = [{int(k): float(profile[l, k]) for k in np.nonzero(profile[l])[0]} for l in range(L)]
    sub = idx[:n_dict]
    t = time.perf_counter()
    slow = dict_similarity(sub, dicts)
    dict_s = time.perf_counter() - t
    diff = np.abs(fast[:n_dict] - slow)
    k = max(1, n_dict // 10)
    top_same = bool(np.array_equal(np.sort(np.argsort(-fast[:n_dict], kind="stable")[:k]),
                                   np.sort(np.argsort(-slow, kind="stable")[:k])))
    return {"n": n, "L": L, "K": K, "N": N, "gen_s": gen_s, "times": times, "n_dict": n_dict, "dict_s": dict_s,
            "max_diff": float(diff.max()), "exact": bool(np.array_equal(fast[:n_dict], slow)), "top_same": top_same,
            "bytes": idx.nbytes, "nonzero": int((profile > 0).sum())}


# ---------------------------------------------------------------- 3. memory (worker subprocesses)

def worker(kind: str, n: int) -> dict:
    """Runs one measurement in this process and returns its peak RSS; called via --worker."""
    if kind in ("extract", "tokenize"):
        models = C.Models()
        texts_all = pl.read_parquet(C.POOL, columns=["doc"])["doc"].to_list()
        texts = [texts_all[i % len(texts_all)] for i in range(n)]
        before = rss_mib()
        t = time.perf_counter()
        ex = models.extractor
        if kind == "extract":
            ex.extract(texts)
        else:  # what extract holds for n documents besides the model and one batch: one block of ids, the outputs
            ids = ex.tokenize(texts[:extraction.TOKENIZE_BLOCK])
            arrays = (np.zeros((n, ex.num_layers, ex.top_k), np.uint16), np.zeros((n, ex.num_layers, ex.top_k), np.float32))
            arrays[0][:] = 1
            arrays[1][:] = 1
            del ids
    else:  # score: MiniLM-shaped (n, 6, 20) of 1536, or the 1M-scale shape (n, 28, 20) of 8192
        L, N = (6, 1536) if kind == "score" else (28, 8192)
        idx = synthetic_indices(n, L, C.TOP_K, N, seed=0)
        before = rss_mib()
        t = time.perf_counter()
        _, profile = build_profile(synthetic_indices(200, L, C.TOP_K, N, seed=1), N)
        s = similarity(idx, profile)
        if kind == "score":
            frame = pl.DataFrame({"docid": [f"d{i:08d}" for i in range(n)], "score": s,
                                  "token_num": np.full(n, 100, np.int64)})
            select_by_budget(frame, 0.2)
    return {"kind": kind, "n": n, "seconds": time.perf_counter() - t, "before_mib": before, "peak_mib": rss_mib(),
            "rusage_mib": rusage_mib()}


def run_worker(kind: str, n: int) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--worker", kind, str(n)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"worker {kind} {n} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- report

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]))))
        return 0
    if not C.POOL.exists():
        print(f"bench_speed: skipped, {C.POOL} not found (needs ../shared next to the repo)")
        return 0
    started = time.perf_counter()
    out = Path(args.out) if args.out else (C.OUT / "smoke" if args.smoke else C.RESULTS)
    out.mkdir(parents=True, exist_ok=True)
    smoke = args.smoke
    pool_n = pl.scan_parquet(C.POOL).select(pl.len()).collect().item()

    print("1/3 extraction throughput ...", flush=True)
    load_start = os.getloadavg()
    ext = extraction_speed(32 if smoke else 256, 1 if smoke else 3)
    print("2/3 scoring throughput ...", flush=True)
    sc = scoring_speed(20_000 if smoke else 1_000_000, 2_000 if smoke else 20_000)
    print("3/3 peak RSS (subprocesses) ...", flush=True)
    ext_base = 8 if smoke else 128
    pool_base = 200 if smoke else pool_n
    mem = []
    mults = (1,) if smoke else (1, 4, 16)  # smoke: one worker per step, to keep it to seconds
    for kind, base in (("extract", ext_base), ("tokenize", pool_base), ("score", pool_base)):
        for mult in mults:
            r = run_worker(kind, base * mult)
            mem.append(r | {"mult": mult})
            print(f"  {kind} x{mult}: {r['n']} docs, peak {r['peak_mib']:.0f} MiB", flush=True)
    big_n = 2_000 if smoke else 1_000_000
    big = run_worker("score_big", big_n)
    print(f"  score_big: {big_n} docs, peak {big['peak_mib']:.0f} MiB", flush=True)

    res = ext["res"]
    bare, nagr, ref = res["bare"], res["nag"], res["reference"]
    overhead = nagr["seconds"] / bare["seconds"] - 1
    best_rate = max(med for med, _ in ext["rates"].values())  # sustained (median) rate of the faster shape
    flop_s = 2 * ext["p_ne"] * nagr["tokens"] / best_rate / 1e9
    achieved = 2 * ext["p_ne"] * nagr["tokens"] / nagr["seconds"] / 1e9

    def row(name, r, note=""):
        return (f"| {name} | {r['seconds']:.2f} | {ext['n'] / r['seconds']:.1f} | {r['tokens'] / r['seconds']:.0f} | "
                f"{r['padded'] / max(1, r['tokens']):.2f} | {r['seconds'] / nagr['seconds']:.2f}x | {note} |")

    sc_best = min(sc["times"])
    sc_rate = sc["n"] / sc_best
    dict_rate = sc["n_dict"] / sc["dict_s"]
    m = C.machine()
    md = [f"# Speed and memory benchmark{' (smoke)' if smoke else ''}", "",
          C.machine_line(m), "",
          f"Load average (1 min) at start / end: {load_start[0]:.1f} / {os.getloadavg()[0]:.1f} on {os.cpu_count()} "
          "cores. The machine is shared; anything above about 0.5 means other processes competed for the cores and "
          "absolute times are pessimistic (ratios taken from paired per-batch minima are more reliable).", "",
          "## 1. Extraction throughput (MiniLM-L6, max_length 120, batch 32, CPU fp32)", "",
          f"{ext['n']} pool documents (seeded sample) in {ext['batches']} batches of 32. Every batch is run by every "
          f"variant back to back, {ext['repeats']} rounds with rotating order; the fastest time per (variant, batch) is "
          "kept and summed (robust to other load on the machine, see the load average above). Times include "
          "tokenisation. Padded/real = token slots computed per real token.", "",
          "| variant | seconds | docs/s | real tokens/s | padded/real | time vs NAG |  |", "|---|---:|---:|---:|---:|---:|---|",
          row("bare forward, same batches, no hooks", bare, "lower bound for any hook-based extractor"),
          row("**NAG `Extractor`** (fwd_up, K=20, length-sorted)", nagr, ""),
          row("reference-style (6 neuron types, 2nd up_proj call, file order)", ref,
              f"fwd_up top-K identical (same order) for {ext['same_rows']:.1%} of docs, same sets {ext['same_sets']:.1%}"),
          "",
          f"- Hook overhead of `Extractor` over the bare forward: **{overhead:+.1%}** (goal < 15%: "
          f"{'met' if overhead < 0.15 else 'NOT met'}).",
          f"- Reference-style extraction takes **{ref['seconds'] / nagr['seconds']:.2f}x** as long as `Extractor`.",
          f"- FLOP limit: {ext['p_ne'] / 1e6:.2f}M non-embedding parameters (of {ext['p_all'] / 1e6:.2f}M; "
          f"embeddings and pooler excluded), {ext['layers']} layers; 2 x params x {nagr['tokens']} real tokens = "
          f"{2 * ext['p_ne'] * nagr['tokens'] / 1e9:.1f} GFLOP (attention score FLOPs not counted). Measured fp32 "
          "matmul rate (median / best single call): " + ", ".join(f"{k} {v[0]:.1f} / {v[1]:.1f} GFLOP/s" for k, v in ext["rates"].items())
          + ". "
          f"At the higher median rate the work needs {flop_s:.2f} s = {ext['n'] / flop_s:.0f} docs/s; `Extractor` achieves "
          f"{achieved:.1f} GFLOP/s, **{achieved / best_rate:.0%} of the matmul rate**.", "",
          f"## 2. Scoring throughput (synthetic, {sc['n']:,} docs, L={sc['L']}, K={sc['K']}, N={sc['N']})", "",
          f"Indices {sc['bytes'] / 2**30:.2f} GiB uint16 (skewed neuron draws, {sc['gen_s']:.1f} s to generate); "
          f"profile from 2,000 synthetic target docs ({sc['nonzero']:,} non-zero weights of {sc['L'] * sc['N']:,}).", "",
          "| implementation | docs scored | seconds | docs/s |", "|---|---:|---:|---:|",
          f"| `nag_core.scoring.similarity` (best of 3: {', '.join(f'{t:.2f}' for t in sc['times'])} s) | {sc['n']:,} | "
          f"{sc_best:.2f} | **{sc_rate:,.0f}** |",
          f"| per-layer Python dict, timed on the first {sc['n_dict']:,} docs | {sc['n_dict']:,} | {sc['dict_s']:.2f} | "
          f"{dict_rate:,.0f} |",
          f"| per-layer Python dict, extrapolated linearly to {sc['n']:,} docs | {sc['n']:,} | "
          f"{sc['dict_s'] * sc['n'] / sc['n_dict']:.0f} (extrapolated) | {dict_rate:,.0f} |", "",
          f"- Speed-up over the dict version: **{sc_rate / dict_rate:.0f}x**. Goal >= 1,000,000 docs/s: "
          f"**{'met' if sc_rate >= 1e6 else 'NOT met'}** ({sc_rate / 1e6:.2f}M docs/s, per-layer numpy gather over chunks on {os.cpu_count()} threads).",
          f"- Same scores on the {sc['n_dict']:,}-doc subsample: max |difference| = {sc['max_diff']:.1e} "
          f"(bit-identical: {'yes' if sc['exact'] else 'no, float64 summation order differs'}); same top 10%: "
          f"{'yes' if sc['top_same'] else 'no'}.", "",
          "## 3. Peak memory (each row its own subprocess)", "",
          "Peak RSS = `VmHWM` of the worker process (its own peak since exec). 'before' = the peak after imports, model "
          "load and input texts/indices; growth = peak - before, i.e. what the measured step itself adds. "
          "`resource.getrusage(RUSAGE_SELF).ru_maxrss` in the same workers reads "
          f"{min(r['rusage_mib'] for r in mem + [big]):.0f}-{max(r['rusage_mib'] for r in mem + [big]):.0f} MiB: Linux "
          "carries the parent's peak into a child's ru_maxrss across fork + exec, so it is not used.", "",
          "| step | size | documents | seconds | RSS before (MiB) | peak RSS (MiB) | growth (MiB) |",
          "|---|---:|---:|---:|---:|---:|---:|",
          *[f"| {dict(extract='extraction (model forward, fwd_up K=20)', tokenize='extraction inputs only: one tokenised block + output arrays, no forward', score='scoring + selection (MiniLM shape 6x20 of 1536)')[r['kind']]} | "
            f"{r['mult']}x | {r['n']:,} | {r['seconds']:.1f} | {r['before_mib']:.0f} | {r['peak_mib']:.0f} | "
            f"{r['peak_mib'] - r['before_mib']:.0f} |" for r in mem],
          f"| scoring only, 1M shape (28x20 of 8192) | - | {big['n']:,} | {big['seconds']:.1f} | {big['before_mib']:.0f} | "
          f"{big['peak_mib']:.0f} | {big['peak_mib'] - big['before_mib']:.0f} |", "",
          f"Extraction with the model runs at about {ext['n'] / nagr['seconds']:.0f} docs/s here, so its rows use a base "
          f"of {ext_base} documents (1x/4x/16x = {ext_base}/{4 * ext_base}/{16 * ext_base}); the 'inputs only' rows show "
          f"the part of extraction memory that grows with the pool at 1x/4x/16x the real pool ({pool_base:,} docs, "
          f"repeated); extraction tokenises {extraction.TOKENIZE_BLOCK:,} documents at a time, so only the output arrays "
          "grow with the pool. Scoring rows use synthetic MiniLM-shaped indices at 1x/4x/16x the pool.", "",
          f"Benchmark wall time: {time.perf_counter() - started:.0f} s.", ""]
    return C.write_report(out, "speed.md", md)


if __name__ == "__main__":
    sys.exit(main())
