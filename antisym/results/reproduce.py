"""Train what the paper tables still miss, then rebuild them: the driver behind `make reproduce-table`.

    python -m antisym.results.reproduce [--table 1|2|all] [--launcher basic|joblib|submitit_local|submitit_slurm]
        [--quick] [--seeds 0,1,2 | --seeds 5] [--data DIR] [--logs DIR] [--results DIR] [--dry-run] [-- overrides]

Every row of the table(s) is a preset (conf/experiment/table<N>/<model>_<dataset>.yaml) and every seed of its `seeds`
one run in the fixed directory <logs>/reproduce/<preset>/seed<k> (QUICK: <logs>/quick/reproduce/...). Before
launching, each of those directories is classified from its summary.json:

    completed   skipped
    diverged    kept (a result: the tables list it; --rerun-diverged trains it again from its last checkpoint)
    failed      rerun, resuming from checkpoints/last.pt when there is one
    interrupted (Ctrl-C, preempted, killed, or no summary yet) run, resuming from checkpoints/last.pt if there is one
    running     another process writes it now (its lock is held): left alone
    stale       trained (completed or not) under other settings than the preset now has: moved to
                <logs>/reproduce.stale/... and rerun from scratch, never resumed

The runs still to do go to Hydra as `train.py -m experiment=<rows> trainer.seed=<seeds>` multiruns (one per set of
rows sharing the same missing seeds), with hydra.sweep.dir/subdir pointing at those fixed directories,
trainer.resume=true and trainer.skip_completed=true, on Hydra's launcher of choice. Running the command again after a
crash or a preemption therefore loses at most the steps since the last checkpoint (trainer.eval_every).
"""

from __future__ import annotations

import argparse
import difflib
import os
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from antisym.results.__main__ import parse_tables
from antisym.results.aggregate import QuickRunsError, write_tables
from antisym.results.paper import preset_name, table_rows
from antisym.training.rundir import Status
from antisym.training.runs import RunState, compose, run_state

REPO = Path(__file__).resolve().parents[2]
QUICK_OVERRIDES = ("debug=quick",)  # the pipeline at a laptop's size, its runs marked (conf/debug/quick.yaml)
QUICK_SEEDS = 2
LAUNCHERS = {  # make's LAUNCHER= value -> Hydra launcher overrides
    "basic": (),
    "joblib": ("hydra/launcher=joblib",),
    "submitit_local": ("hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10080"),
    "submitit_slurm": ("hydra/launcher=slurm",),  # conf/hydra/launcher/slurm.yaml: GPU, time, partition
    "packed": ("hydra/launcher=packed",),  # compatible runs trained as one (hydra.launcher.pack_size=...)
    "packed_slurm": ("hydra/launcher=packed_slurm",),  # one SLURM job per pack (conf/hydra/launcher/packed_slurm.yaml)
}


class OverrideError(ValueError):
    """An override that a row's config cannot take (e.g. model.eps on an LSTM row)."""

    def __init__(self, preset: str, overrides: Sequence[str], err: Exception) -> None:
        reason = " ".join(str(err).split())
        super().__init__(
            f"The overrides {' '.join(overrides) or '(none)'} do not apply to row {preset} ({reason}). An override "
            "reaches every row it is given to: limit the rows with ROWS=<preset>,... (--rows), e.g. only the Euler "
            "models for model.eps, or add a key a row lacks with ++key=value."
        )


@dataclass(frozen=True)
class TableRun:
    """One seed of one table row, in its fixed directory, and the state that directory is in."""

    preset: str
    dataset: str
    seed: int
    run_dir: Path
    state: RunState


def move_stale(job: TableRun, log_root: Path) -> Path:
    dest = log_root.with_name(log_root.name + ".stale") / time.strftime("%Y%m%d-%H%M%S") / job.preset / job.run_dir.name
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(job.run_dir), dest)
    return dest


def plan(
    tables: Sequence[int],
    log_root: Path,
    overrides: Sequence[str],
    seeds: Sequence[int] | None,
    quick: bool,
    rerun_diverged: bool,
    rows: Sequence[str] | None,
) -> list[TableRun]:
    jobs = []
    for table in tables:
        for model, dataset in table_rows(table):
            preset = preset_name(model, dataset)
            if rows and preset not in rows and preset.split("/")[-1] not in rows:
                continue
            try:
                wanted = compose(preset, overrides)
            except Exception as err:  # Hydra's ConfigCompositionException: an override this row has no key for
                raise OverrideError(preset, overrides, err) from None
            row_seeds = list(seeds) if seeds is not None else [int(s) for s in wanted.get("seeds", [0])]
            if quick and seeds is None:
                row_seeds = row_seeds[:QUICK_SEEDS]
            for seed in row_seeds:
                wanted["trainer"]["seed"] = seed
                run_dir = log_root / preset / f"seed{seed}"
                jobs.append(TableRun(preset, dataset, seed, run_dir, run_state(run_dir, wanted, rerun_diverged)))
    return jobs


def unknown_rows(rows: Sequence[str], tables: Sequence[int]) -> str:
    """Why some of `rows` name no row of `tables` (a mistyped name, or a row of the other table), or "": a limit that
    matches nothing would train nothing and rewrite the tables as if it had."""
    valid = {t: [preset_name(m, d) for m, d in table_rows(t)] for t in (1, 2)}
    known = {p: t for t, presets in valid.items() for p in presets} | {
        p.split("/")[-1]: t for t, presets in valid.items() for p in presets
    }
    bad = [r for r in rows if known.get(r) not in tables]
    if not bad:
        return ""
    other = [r for r in bad if r in known]
    why = f"{', '.join(other)} belong{'s' * (len(other) == 1)} to Table {known[other[0]]}, not to --table " \
          f"{','.join(map(str, tables))}; " if other else ""  # fmt: skip
    names = ", ".join(p.split("/")[-1] for t in tables for p in valid[t])
    near = difflib.get_close_matches(bad[0].split("/")[-1], [p.split("/")[-1] for t in tables for p in valid[t]], 1)
    hint = f" (did you mean {near[0]}?)" if near and bad[0] not in known else ""
    return (
        f"ROWS/--rows names {', '.join(bad)}, no row of the table(s) asked for{hint}: {why}nothing was trained and no "
        f"table was rewritten. Rows of table(s) {','.join(map(str, tables))}: {names} (or table<N>/<row>)."
    )


def launch_groups(jobs: Sequence[TableRun]) -> list[tuple[list[str], list[int]]]:
    """Rows that miss the same seeds share one Hydra multirun."""
    missing: dict[str, list[int]] = defaultdict(list)
    for job in jobs:
        if job.state.todo(retry_failed=True):
            missing[job.preset].append(job.seed)
    groups: dict[tuple[int, ...], list[str]] = defaultdict(list)
    for preset, seeds in missing.items():
        groups[tuple(sorted(seeds))].append(preset)
    return [(presets, list(seeds)) for seeds, presets in groups.items()]


def hydra_command(
    presets: Sequence[str],
    seeds: Sequence[int],
    log_root: Path,
    launcher: str,
    jobs: int | None,
    overrides: Sequence[str],
) -> list[str]:
    launch = list(LAUNCHERS.get(launcher, (f"hydra/launcher={launcher}",)))
    if launcher == "joblib" and jobs:
        launch.append(f"hydra.launcher.n_jobs={jobs}")
    return [
        sys.executable,
        str(REPO / "train.py"),
        "-m",
        f"experiment={','.join(presets)}",
        f"trainer.seed={','.join(str(s) for s in seeds)}",
        f"hydra.sweep.dir={log_root}",
        "hydra.sweep.subdir=${preset.name}/seed${trainer.seed}",
        "trainer.resume=true",
        "trainer.skip_completed=true",
        "trainer.progress=false",
        *launch,
        *overrides,
    ]


def child_env(launcher: str, jobs: int | None) -> dict[str, str]:
    env = dict(os.environ)
    # The jobs import antisym from this checkout even where it is not pip-installed (joblib/submitit workers too).
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    if launcher == "joblib" and "OMP_NUM_THREADS" not in env:
        # n parallel processes each with every core's worth of torch threads oversubscribe the CPU.
        workers = jobs if jobs and jobs > 0 else (os.cpu_count() or 1)
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // workers))
    return env


def parse_seeds(value: str | None) -> list[int] | None:
    """'3' = seeds 0, 1, 2 (so '1' is seed 0 alone); '0,4,7' = those seeds; empty = each preset's `seeds`."""
    if not value:
        return None
    try:
        seeds = [int(s) for s in value.split(",") if s.strip()] if "," in value else list(range(int(value)))
    except ValueError:
        seeds = []
    if not seeds or any(s < 0 for s in seeds):
        raise argparse.ArgumentTypeError(
            f"SEEDS={value!r}: give a count N (seeds 0..N-1; SEEDS=1 is seed 0 alone) or a comma list of seeds "
            "(SEEDS=0,3)."
        )
    return seeds


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    overrides: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, overrides = argv[:cut], [o for o in argv[cut + 1 :] if o]
    parser = argparse.ArgumentParser(
        prog="python -m antisym.results.reproduce",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--table", type=parse_tables, default=(1, 2), help="1, 2 or all (default)")
    parser.add_argument(
        "--launcher",
        default="basic",
        help="basic (default), joblib, submitit_local, submitit_slurm, packed, or any hydra/launcher option",
    )
    parser.add_argument("--jobs", type=int, help="joblib: parallel processes (default: every core)")
    parser.add_argument("--quick", action="store_true", help="tiny QUICK smoke run, written apart and marked")
    parser.add_argument(
        "--seeds", type=parse_seeds, help="N (seeds 0..N-1; 1 = seed 0 alone) or a comma list; default each preset's"
    )
    parser.add_argument("--rows", help="comma list of presets to limit to, e.g. asym_mnist,table1/gated_pmnist")
    parser.add_argument("--data", help="data.root (default: the config's, i.e. $ANTISYM_DATA or ./data)")
    parser.add_argument("--logs", default=os.environ.get("ANTISYM_LOGS", "logs"), help="log_dir (default logs)")
    parser.add_argument("--results", default="results/local", help="tables (git-ignored; QUICK: <results>/quick)")
    parser.add_argument("--rerun-diverged", action="store_true", help="train diverged runs again too")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and the commands, run nothing")
    args = parser.parse_args(argv)

    if args.data:
        overrides.insert(0, f"data.root={Path(args.data).resolve()}")
    if args.quick:
        overrides[:0] = QUICK_OVERRIDES
    logs = Path(args.logs).resolve()
    log_root = logs / "quick" / "reproduce" if args.quick else logs / "reproduce"
    out_dir = Path(args.results) / "quick" if args.quick else Path(args.results)
    rows = [r.strip() for r in args.rows.split(",") if r.strip()] if args.rows else None
    unknown = unknown_rows(rows or [], args.table)
    if unknown:
        print(f"error: {unknown}", file=sys.stderr)
        return 2
    tag = "QUICK " if args.quick else ""
    started = time.time()

    try:
        jobs = plan(args.table, log_root, overrides, args.seeds, args.quick, args.rerun_diverged, rows)
    except OverrideError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{tag}reproduce: tables {', '.join(map(str, args.table))}, {len(jobs)} runs under {log_root}")
    for job in jobs:
        actions = {
            Status.COMPLETED: "skip",
            Status.DIVERGED: "keep",
            Status.STALE: "move aside, rerun",
            Status.MISSING: "run",
        }
        status, detail = job.state.status, job.state.detail
        action = actions.get(status, "leave (being written)" if status == Status.RUNNING else "rerun (resume)")
        print(f"  {job.preset:32s} seed{job.seed:<3d} {status:10s} -> {action}" + (f"  [{detail}]" if detail else ""))
    groups = launch_groups(jobs)
    if not groups:
        print(f"{tag}reproduce: nothing to run.")
    for presets, seeds in groups:
        cmd = hydra_command(presets, seeds, log_root, args.launcher, args.jobs, overrides)
        print("$ " + " ".join(cmd), flush=True)
        if args.dry_run:
            continue
        for job in jobs:
            if job.state.status == Status.STALE and job.preset in presets and job.seed in seeds:
                print(f"  moved stale {job.run_dir} -> {move_stale(job, log_root)}")
        proc = subprocess.run(cmd, cwd=REPO, env=child_env(args.launcher, args.jobs))
        if proc.returncode != 0:
            print(
                f"{tag}reproduce: the multirun exited with {proc.returncode} (failed runs are listed in the tables)",
                file=sys.stderr,
            )
    if args.dry_run:
        return 0

    try:
        write_tables([log_root], out_dir, args.table, quick=args.quick)
    except QuickRunsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    after = plan(args.table, log_root, overrides, args.seeds, args.quick, False, rows)
    states = defaultdict(int)
    for job in after:
        states[job.state.status] += 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
    tables = ", ".join(str(out_dir / f"table{t}.md") for t in args.table)
    print(f"{tag}reproduce: {summary}; wrote {tables}, {out_dir / 'runs.csv'} in {time.time() - started:.0f} s")
    return 0 if all(j.state.finished for j in after) else 1


if __name__ == "__main__":
    sys.exit(main())
