"""``nag-select explain`` and ``nag-select diff``: the audit trail of a subset, printed."""

from __future__ import annotations

import json

from nag_core.home import Home, resolve_home


def cmd_explain(args) -> int:
    from nag_core.audit import explain

    result = explain(Home(resolve_home(args.home)), args.docid, args.subset)
    print(json.dumps(result.facts, indent=2, default=str) if args.json else result.text())
    return 0


def cmd_diff(args) -> int:
    import polars as pl

    from nag_core.audit import diff

    frame, lines = diff(Home(resolve_home(args.home)), args.subset, args.run_from, args.run_to)
    if args.json:
        print(json.dumps(frame.to_dicts(), indent=2, default=str))
    else:
        with pl.Config(tbl_rows=-1):
            print("\n".join(lines))
    return 0


def add_audit_commands(sub, with_home) -> None:
    explain = with_home(sub.add_parser("explain", help="why a document is or is not in a subset, operator by operator"))
    explain.add_argument("docid")
    explain.add_argument("--subset", required=True, help="a subset name, e.g. <target>__<model> or <recipe>__recipe")
    explain.add_argument("--json", action="store_true", help="the same facts as JSON")
    explain.set_defaults(fn=cmd_explain)
    diff = with_home(sub.add_parser("diff", help="documents added and removed between two runs of a subset, and why"))
    diff.add_argument("subset")
    diff.add_argument("--from", dest="run_from", help="run id (default: the second-latest run)")
    diff.add_argument("--to", dest="run_to", help="run id (default: the latest run)")
    diff.add_argument("--json", action="store_true")
    diff.set_defaults(fn=cmd_diff)
