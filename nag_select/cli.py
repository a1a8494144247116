"""``nag-select``: run the selection pipeline on a data root without a daemon.

    nag-select demo            write a demo data root and select from it
    nag-select run             materialise whatever is stale, print a summary
    nag-select status          show stale partitions per asset, run nothing
    nag-select export-features write the activation cache as reference NAG JSONL
    nag-select import-features adopt reference NAG JSONL as shards' activation caches
    nag-select query SQL       query the warehouse (read-only)
    nag-select ui              serve the Dagster UI for this data root
    nag-select gc              remove outputs of deleted or renamed shards, targets and models
    nag-select explain DOCID   why a document is or is not in a subset, operator by operator
    nag-select diff SUBSET     documents added and removed between two runs of a subset, and why
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import logging
import os
import sys
import warnings
from pathlib import Path

from nag_core.errors import NagInputError
from nag_core.home import Home, resolve_home
from nag_select.audit_commands import add_audit_commands


def _prepare(home: Path) -> None:
    """Runs go to the Dagster instance at DAGSTER_HOME (default: <home>/dagster_home)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    dagster_home = Path(os.environ.setdefault("DAGSTER_HOME", str(home / "dagster_home")))
    dagster_home.mkdir(parents=True, exist_ok=True)
    if not (dagster_home / "dagster.yaml").exists():  # else Dagster prints its telemetry banner on first use
        from nag_core.atomic import write_text

        write_text("# Written by nag-select; edit freely.\ntelemetry:\n  enabled: false\n", dagster_home / "dagster.yaml")
    os.environ["NAG_HOME"] = str(home)
    warnings.filterwarnings("ignore", module="dagster")
    warnings.filterwarnings("ignore", message=".*is currently in beta.*")
    warnings.filterwarnings("ignore", message=".*is currently in preview.*")
    logging.getLogger("dagster").setLevel(logging.WARNING)


@contextlib.contextmanager
def _instance_lock():
    """One ``nag-select run`` per Dagster instance at a time.

    Two runs on a fresh DAGSTER_HOME race to create its SQLite schema, and the run storage
    is not meant for concurrent writers; the second run waits here, then finds only what
    the first left stale (usually nothing).
    """
    path = Path(os.environ["DAGSTER_HOME"]) / ".nag-select-run.lock"
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def cmd_run(args) -> int:
    home = resolve_home(args.home)
    if not home.is_dir():
        raise NagInputError(f"{home}: no such data root. Create it with pool/ and targets/ folders, or run `nag-select demo`.")
    _prepare(home)  # before importing the assets: their definitions warn at import time
    import dagster as dg

    from nag_core.warehouse import Warehouse
    from nag_select.runner import check_stages, run_stale
    from nag_select.summary import subset_summary

    only = check_stages([n.strip() for n in args.only.split(",") if n.strip()]) if args.only is not None else None
    with _instance_lock(), dg.DagsterInstance.get() as instance:
        report = run_stale(home, instance, device=args.device, log=lambda m: print(f"  {m}", flush=True), only=only,
                           parallel=args.parallel, model_slots=args.model_slots)
    print(f"\n{len(report.materialized)} partitions materialised in {report.seconds:.1f}s "
          f"({'nothing was stale' if not report.materialized and not report.failures else 'only stale work ran'}).")
    if only is None or "selected_subset" in only or "mixture_subset" in only:
        print(subset_summary(Warehouse(home)))
    if report.failures:
        print(f"\n{len(report.failures)} partition(s) failed:", file=sys.stderr)
        for asset, key, message in report.failures:
            print(f"  {asset}[{key}]: {message}", file=sys.stderr)
        return 1
    print(f"\nWarehouse: {home / 'warehouse.duckdb'}   Subsets: {home / 'subsets'}   UI: nag-select ui --home {home}")
    return 0


def cmd_demo(args) -> int:
    from nag_core.demo_corpus import write_demo_home

    home = resolve_home(args.home)
    if (home / "pool").exists():
        print(f"{home} already has a pool; running on it as it is.")
    else:
        summary = write_demo_home(home, seed=args.seed)
        print(f"Wrote a demo data root at {home}: {summary['documents']} documents in {len(summary['domains'])} domains, "
              f"{len(summary['shards'])} shards, targets {', '.join(summary['targets'])}.")
    args.home = str(home)
    return cmd_run(args)


def cmd_status(args) -> int:
    from nag_core.freshness import STAGES, State

    home = resolve_home(args.home)
    state = State(Home(home))
    print(f"outputs: {state.home.outputs}")  # the data root, or storage.url
    for asset in STAGES:
        parts = state.partitions(asset)
        stale = state.stale(asset)
        waiting = [k for k in parts if state.fingerprint(asset, k) is None]
        print(f"{asset:<20} {len(parts):>4} partitions  {len(stale):>4} stale  {len(waiting):>4} waiting for inputs"
              + (f"   stale: {', '.join(stale[:6])}{' ...' if len(stale) > 6 else ''}" if stale else ""))
    return 0


def cmd_export(args) -> int:
    from nag_core.features import export_jsonl

    home = Home(resolve_home(args.home))
    cache_dir = home.outputs / "cache" / "activations" / args.model
    paths = sorted(cache_dir.glob("*.parquet"))
    if not paths:
        raise NagInputError(f"{cache_dir}: no activation cache for model {args.model!r}; run `nag-select run` first.")
    n = export_jsonl(paths, Path(args.out), args.neuron_type)
    print(f"wrote {n} records from {len(paths)} shard(s) to {args.out}")
    return 0


def import_pairs(args) -> list[tuple[str, Path]]:
    """(shard, JSONL) pairs from repeated ``--shard S --in F`` flags or a ``--dir`` of ``<shard>.jsonl`` files."""
    shards, inputs = args.shard or [], args.input or []
    if args.dir is not None:
        if shards or inputs:
            raise NagInputError("import-features: give either --dir or --shard/--in pairs, not both")
        folder = Path(args.dir)
        if not folder.is_dir():
            raise NagInputError(f"{folder}: no such folder (--dir expects <shard>.jsonl files)")
        pairs = [(p.name[: -len(".jsonl")], p) for p in sorted(folder.glob("*.jsonl")) if not p.name.startswith(".")]
        if not pairs:
            raise NagInputError(f"{folder}: no <shard>.jsonl files to import")
        return pairs
    if not shards or len(shards) != len(inputs):
        raise NagInputError(f"import-features: got {len(shards)} --shard and {len(inputs)} --in; give one --in after "
                            "each --shard (or --dir DIR)")
    return list(zip(shards, (Path(p) for p in inputs), strict=True))


def cmd_import(args) -> int:
    from nag_core.freshness import State
    from nag_core.pool_steps import import_activation_cache

    pairs = import_pairs(args)
    state = State(Home(resolve_home(args.home)))  # one State: inputs are hashed once for every shard
    unknown = sorted(shard for shard, _ in pairs if shard not in state.shards)
    if unknown:
        raise NagInputError(f"import-features: no pool shard named {', '.join(unknown[:5])}"
                            f"{' ...' if len(unknown) > 5 else ''} (shards are the file names in {state.home.pool_dir})")
    total = 0
    for shard, path in pairs:
        result = import_activation_cache(state, args.model, shard, path, args.neuron_type)
        total += result.metadata["documents"]
        print(f"imported {result.metadata['documents']} documents of {shard} into {result.metadata['cache_path']}")
    print(f"{total} documents in {len(pairs)} shard(s); `nag-select run` will use them instead of extracting")
    return 0


def cmd_query(args) -> int:
    from nag_core.warehouse import Warehouse

    import polars as pl

    with pl.Config(tbl_rows=args.limit, tbl_cols=-1, fmt_str_lengths=60):
        print(Warehouse(resolve_home(args.home)).query(args.sql))
    return 0


def ui_argv(repo_root: Path, host: str, port: int) -> list[str]:
    """The ``dagster dev`` command line; it binds ``host``, 127.0.0.1 unless the user chose otherwise,
    because the UI can launch runs and read every document and has no login."""
    return ["dagster", "dev", "-w", str(repo_root / "workspace.yaml"), "-h", host, "-p", str(port)]


def cmd_ui(args) -> int:
    home = resolve_home(args.home)
    _prepare(home)
    repo_root = Path(__file__).resolve().parent.parent
    os.chdir(repo_root)
    print(f"Serving the Dagster UI for {home} (DAGSTER_HOME={os.environ['DAGSTER_HOME']}) on http://{args.host}:{args.port}")
    os.execvp("dagster", ui_argv(repo_root, args.host, args.port))
    return 0


def cmd_gc(args) -> int:
    from nag_core.gc import collect

    home = Home(resolve_home(args.home))
    garbage = collect(home, dry_run=args.dry_run, allow_empty_pool=args.allow_empty_pool)
    verb = "would remove" if args.dry_run else "removed"
    for path in garbage.all:
        print(f"{verb} {path.relative_to(home.root)}")
    print(f"{verb} {len(garbage.files)} stale output file(s) and {len(garbage.temp_files)} leftover temporary file(s)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nag-select", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    def with_home(p):
        p.add_argument("--home", help="data root (default: $NAG_HOME, else ./nag_home)")
        return p

    demo = with_home(sub.add_parser("demo", help="write a demo data root and run the pipeline on it"))
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None)
    demo.set_defaults(fn=cmd_demo, only=None, parallel=1, model_slots=None)  # cmd_run reads them
    run = with_home(sub.add_parser("run", help="materialise everything stale and print a summary"))
    run.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None, help="override nag.yaml's device")
    run.add_argument("--only", metavar="STAGES", help="comma-separated stages to run, e.g. raw_pool,dedup_pool "
                                                      "(before import-features); others are left as they are")
    run.add_argument("--parallel", type=int, default=1, metavar="N",
                     help="up to N Dagster runs at once, each in a worker process with Dagster's multiprocess executor "
                          "(default 1: one run at a time, in this process)")
    run.add_argument("--model-slots", type=int, metavar="K",
                     help="with --parallel: steps that load a model at once, the limit of the Dagster concurrency "
                          "pool 'model' (default: the instance's limit, else 1)")
    run.set_defaults(fn=cmd_run)
    with_home(sub.add_parser("status", help="show which partitions are stale")).set_defaults(fn=cmd_status)
    export = with_home(sub.add_parser("export-features", help="write activation caches as reference NAG JSONL"))
    export.add_argument("--model", required=True)
    export.add_argument("--out", required=True)
    export.add_argument("--neuron-type", default="fwd_up")
    export.set_defaults(fn=cmd_export)
    imp = with_home(sub.add_parser("import-features", help="adopt reference NAG JSONL features as shards' activation caches",
                                   description="Import order: `nag-select run --only raw_pool,dedup_pool`, then "
                                               "import-features, then `nag-select run`."))
    imp.add_argument("--model", required=True)
    imp.add_argument("--shard", action="append", help="shard name; repeat, each followed by its --in")
    imp.add_argument("--in", dest="input", action="append", help="that shard's JSONL features")
    imp.add_argument("--dir", help="folder of <shard>.jsonl files, one per shard (instead of --shard/--in)")
    imp.add_argument("--neuron-type", default="fwd_up")
    imp.set_defaults(fn=cmd_import)
    query = with_home(sub.add_parser("query", help="run read-only SQL on warehouse.duckdb"))
    query.add_argument("sql")
    query.add_argument("--limit", type=int, default=30)
    query.set_defaults(fn=cmd_query)
    ui = with_home(sub.add_parser("ui", help="serve the Dagster UI (dagster dev) for this data root"))
    ui.add_argument("--port", type=int, default=3000)
    ui.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    ui.set_defaults(fn=cmd_ui)
    gc = with_home(sub.add_parser("gc", help="remove outputs of deleted or renamed shards, targets and models"))
    gc.add_argument("--dry-run", action="store_true", help="list what would be removed, remove nothing")
    gc.add_argument("--allow-empty-pool", action="store_true", help="proceed even though pool/ has no shards")
    gc.set_defaults(fn=cmd_gc)
    add_audit_commands(sub, with_home)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except NagInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
