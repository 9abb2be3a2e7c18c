"""python -m antisym.results [--runs DIR ...] [--out DIR] [--table 1|2|all] [--quick]

Reads every run directory under --runs (default <log_dir>/reproduce, or <log_dir>/quick/reproduce with --quick) and
writes table1.md, table2.md, runs.csv and rows.csv into --out (default results/local/, git-ignored, or
results/local/quick/ with --quick, where `make reproduce-table QUICK=1` writes them); the committed tables are
results/campaign/, from results/runs/ (make reproduce-tables-only UPDATE=1).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from antisym.results.aggregate import QuickRunsError, write_tables


def parse_tables(value: str) -> tuple[int, ...]:
    if value in ("all", "both", "", "1,2"):
        return (1, 2)
    if value in ("1", "2"):
        return (int(value),)
    raise argparse.ArgumentTypeError(f"--table takes 1, 2 or all, got {value!r}")


def default_roots(logs: str, quick: bool) -> list[Path]:
    return [Path(logs) / "quick" / "reproduce"] if quick else [Path(logs) / "reproduce"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m antisym.results", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", nargs="+", help="folders to scan for run directories (several allowed)")
    parser.add_argument("--logs", default=os.environ.get("ANTISYM_LOGS", "logs"), help="log_dir (default: logs)")
    parser.add_argument("--out", help="output folder (default results/local; --quick: results/local/quick)")
    parser.add_argument("--table", type=parse_tables, default=(1, 2), help="1, 2 or all (default)")
    parser.add_argument("--quick", action="store_true", help="QUICK smoke runs: marked as such, written apart")
    parser.add_argument("--note", default="", help="a banner at the top of the tables, e.g. what the runs are")
    args = parser.parse_args(argv)
    roots = [Path(r) for r in args.runs] if args.runs else default_roots(args.logs, args.quick)
    missing = [str(r) for r in roots if not r.exists()]
    if missing:
        print(f"error: no folder {', '.join(missing)}: nothing to build tables from. Give --runs the folders that "
              "hold the run directories (e.g. --runs results/runs, or logs/reproduce after make reproduce-table).",
              file=sys.stderr)  # fmt: skip
        return 2
    out = Path(args.out) if args.out else Path("results") / "local" / ("quick" if args.quick else "")
    try:
        result = write_tables(roots, out, args.table, quick=args.quick, note=args.note)
    except QuickRunsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for table in args.table:
        rows = result[table]
        done = sum(r.chosen is not None for r in rows)
        print(f"{out / f'table{table}.md'}: {done}/{len(rows)} rows with results")
    print(f"{out / 'runs.csv'}, {out / 'rows.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
