"""`python -m benchmarks --referrers N`: the standard workload, end to end, then the report."""
from __future__ import annotations

import argparse
from pathlib import Path

from . import report
from .runner import Options, run


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--referrers", type=int, default=10_000, help="R; 9R story events (default 10000)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--hub-workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--hub-threads", type=int, default=4,
                        help="threads per gunicorn worker (gthread when > 1; `hub serve`'s default)")
    parser.add_argument("--drain-timeout", type=float, default=0.0, help="seconds; 0 derives it from the floor")
    parser.add_argument("--no-single", action="store_true", help="skip the single-mode ingest phase")
    parser.add_argument("--no-freshness", action="store_true", help="skip the freshness phase")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir with the processes' logs")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="record the hub's workers with py-spy during the single-event phase (the profile extra)")
    parser.add_argument("--out", type=Path, default=report.REPORTS, help="where latest.json / latest.md go")
    parser.add_argument("--env", action="append", default=[], metavar="HUB_X=value",
                        help="extra environment for the hub and workers (repeatable)")
    args = parser.parse_args()
    options = Options(referrers=args.referrers, seed=args.seed, hub_workers=args.hub_workers,
                      hub_threads=args.hub_threads, drain_timeout=args.drain_timeout,
                      single=not args.no_single, freshness=not args.no_freshness, keep=args.keep, profile=args.profile,
                      env=dict(item.split("=", 1) for item in args.env))
    result = run(options)
    json_path, md_path = report.write(result, args.out)
    print()
    print(report.table(result))
    print(f"Report: {json_path} and {md_path}")


if __name__ == "__main__":
    main()
