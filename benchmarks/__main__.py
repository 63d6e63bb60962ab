"""`python -m benchmarks --referrers N`: the standard workload, end to end, then the report."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import compare, freshness, report
from .progress import Interrupted
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
    parser.add_argument("--freshness-rates", default=",".join(map(str, freshness.RATES)), metavar="R1,R2,...",
                        help="events/s at which freshness is measured, one after the other (default %(default)s)")
    parser.add_argument("--compare", type=Path, metavar="PATH",
                        help="a previous latest.json: show each figure beside that run's and how it moved")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir with the processes' logs")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="record the hub's workers with py-spy during the single-event phase (the profile extra)")
    parser.add_argument("--out", type=Path, default=report.REPORTS, help="where latest.json / latest.md go")
    parser.add_argument("--env", action="append", default=[], metavar="HUB_X=value",
                        help="extra environment for the hub and workers (repeatable)")
    args = parser.parse_args()
    try:
        rates = freshness.parse_rates(args.freshness_rates)
        other = compare.load(args.compare) if args.compare else None
    except ValueError as exc:
        parser.error(str(exc))
    options = Options(referrers=args.referrers, seed=args.seed, hub_workers=args.hub_workers,
                      hub_threads=args.hub_threads, drain_timeout=args.drain_timeout,
                      single=not args.no_single, freshness=not args.no_freshness, freshness_rates=rates, keep=args.keep,
                      profile=args.profile,
                      env=dict(item.split("=", 1) for item in args.env))
    try:
        result = run(options)
    except Interrupted as stop:
        print(f"\nbenchmark stopped (Ctrl-C); the stack is torn down and no report was written.\n"
              f"Phases:\n{stop.summary}", file=sys.stderr, flush=True)
        raise SystemExit(130) from None
    if other is not None:
        result["compared_with"] = compare.compare(result, other, str(args.compare))
    json_path, md_path = report.write(result, args.out)
    print()
    print(report.table(result))
    print(f"Report: {json_path} and {md_path}")


if __name__ == "__main__":
    main()
