"""Train what a plan's runs still miss, then rebuild the tables: the driver behind `make reproduce-table`.

    python -m antisym.results.reproduce [--plan tables] [--table 1|2|all | --blocks ...] [--rows ...]
        [--launcher basic|joblib|submitit_local|submitit_slurm|packed|packed_slurm] [--quick]
        [--seeds 0,1,2 | --seeds 5] [--data DIR] [--logs DIR] [--results DIR] [--dry-run] [-- overrides]

The runs are a plan's (conf/campaign/<plan>.yaml, antisym.plan): `tables`, the default, is every row of Tables 1 and
2 at its preset (conf/experiment/table<N>/<model>_<dataset>.yaml) x the plan's seeds; --quick is the plan's `quick`
section (the same runs at a laptop's size, marked). Each run has the fixed directory <logs>/<root>/<block>/<run>
(<root>: reproduce for the tables plan, else the plan's name; QUICK: <logs>/quick/<root>/...), the layout of the
committed records in results/runs. Before launching, each is classified from its summary.json:

    completed   skipped
    diverged    kept (a result: the tables list it; --rerun-diverged trains it again from its last checkpoint)
    failed      rerun, resuming from checkpoints/last.pt when there is one
    interrupted (Ctrl-C, preempted, killed, or no summary yet) run, resuming from checkpoints/last.pt if there is one
    running     another process writes it now (its lock is held): left alone
    stale       trained (completed or not) under other settings than the plan now gives: moved to
                <logs>/<root>.stale/... and rerun from scratch, never resumed
    waiting     its grid point is chosen by a screen block not finished yet: left for a later command

The runs still to do go to Hydra as `train.py -m experiment=<presets> trainer.seed=<seeds> <overrides>` multiruns (one
per block, grid point and set of missing seeds), with hydra.sweep.dir/subdir pointing at those fixed directories,
trainer.resume=true and trainer.skip_completed=true, on Hydra's launcher of choice. Running the command again after a
crash or a preemption therefore loses at most the steps since the last checkpoint (trainer.eval_every).
"""

from __future__ import annotations

import argparse
import difflib
import math
import os
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from antisym.errors import ConfigError
from antisym.plan import Plan, PlannedRun, load_plan, planned_state, resolve, row_name
from antisym.results.__main__ import parse_tables
from antisym.results.aggregate import QuickRunsError, write_tables
from antisym.training.rundir import Status
from antisym.training.runs import RunState, compose_where_present, run_state

REPO = Path(__file__).resolve().parents[2]
TABLES_PLAN = "tables"  # make reproduce-table's plan: its blocks are named table1 and table2
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
class Job:
    """One planned run, in its fixed directory, and the state that directory is in."""

    run: PlannedRun
    run_dir: Path
    state: RunState
    overrides: tuple[str, ...] = ()  # what composes it but the seed and the command's own: the plan's, where present


def move_stale(job: Job, log_root: Path) -> Path:
    dest = log_root.with_name(log_root.name + ".stale") / time.strftime("%Y%m%d-%H%M%S") / job.run.rel_dir
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(job.run_dir), dest)
    return dest


def chosen_runs(spec: Plan, blocks: Sequence[str], rows: Sequence[str] | None) -> list[PlannedRun]:
    """The plan's runs of `blocks` (all where empty), limited to the presets `rows` names (by name or its last part)."""
    return [
        r
        for r in spec.runs
        if (not blocks or r.block in blocks) and (not rows or r.preset in rows or r.preset.rsplit("/", 1)[-1] in rows)
    ]


def plan_jobs(
    spec: Plan,
    blocks: Sequence[str],
    log_root: Path,
    overrides: Sequence[str],
    rerun_diverged: bool,
    rows: Sequence[str] | None,
) -> list[Job]:
    """Every chosen run of the plan and its directory's state under the settings it would train with now."""
    jobs = []
    composed: dict[tuple[str, tuple[str, ...]], tuple[dict, tuple[str, ...]]] = {}  # once per run without its seed
    for run in chosen_runs(resolve(spec, log_root), blocks, rows):
        run_dir = log_root / run.rel_dir
        if run.waiting:
            jobs.append(Job(run, run_dir, planned_state(log_root, run)))
            continue
        if run.entry_key not in composed:
            try:
                cfg, used = compose_where_present(run.preset, run.overrides[:-1], run.where_present, overrides)
            except Exception as err:  # Hydra's ConfigCompositionException: an override this row has no key for
                raise OverrideError(run.preset, overrides, err) from None
            composed[run.entry_key] = cfg, tuple(used[: len(used) - len(overrides)])
        cfg, used = composed[run.entry_key]
        wanted = {**cfg, "trainer": {**cfg["trainer"], "seed": run.seed}}
        jobs.append(Job(run, run_dir, run_state(run_dir, wanted, rerun_diverged), used))
    return jobs


def older_layout(jobs: Sequence[Job], log_root: Path) -> str:
    """Why runs of the layout before plans (<root>/<preset>/seed<k>) must move first, or "": left there they would be
    trained again from scratch beside themselves."""
    moves = [
        (old, job.run_dir)
        for job in jobs
        if (old := log_root / job.run.preset / f"seed{job.run.seed}").is_dir() and not job.run_dir.exists()
    ]
    if not moves:
        return ""
    commands = "; ".join(f"mv {old} {new}" for old, new in moves[:3]) + ("; ..." if len(moves) > 3 else "")
    return (
        f"{len(moves)} run(s) under {log_root} are in the layout of older code (<preset>/seed<k>), which this command "
        f"would not find and would train again from scratch. Move each to <block>/<row>_seed<k>, the layout of "
        f"results/runs, and run the command again: {commands}. Nothing was trained and no table was rewritten."
    )


def unknown_rows(rows: Sequence[str], spec: Plan, blocks: Sequence[str]) -> str:
    """Why some of `rows` name no preset of the chosen blocks (a mistyped name, or a row of another table), or "": a
    limit that matches nothing would train nothing and rewrite the tables as if it had."""
    block_of = {}
    for run in spec.runs:
        for key in (run.preset, run.preset.rsplit("/", 1)[-1]):
            block_of.setdefault(key, run.block)
    names = sorted({r.preset.rsplit("/", 1)[-1] for r in chosen_runs(spec, blocks, None)})
    bad = [r for r in rows if not chosen_runs(spec, blocks, [r])]
    if not bad:
        return ""
    other = [r for r in bad if r in block_of]
    why = f"{', '.join(other)} belong{'s' * (len(other) == 1)} to {block_of[other[0]]}, not to " \
          f"{', '.join(blocks)}; " if other else ""  # fmt: skip
    near = difflib.get_close_matches(bad[0].split("/")[-1], names, 1)
    hint = f" (did you mean {near[0]}?)" if near and bad[0] not in block_of else ""
    return (
        f"ROWS/--rows names {', '.join(bad)}, no row of {', '.join(blocks) or spec.name}{hint}: {why}nothing was "
        f"trained and no table was rewritten. Rows there: {', '.join(names)} (or <block>/<row>)."
    )


@dataclass(frozen=True)
class Launch:
    """One multirun: `presets` x the product of `grid` x `seeds`, composed with `overrides`, into `block`'s folder."""

    block: str
    overrides: tuple[str, ...]  # the plan's and the entry's, without the grid point
    grid: tuple[tuple[str, tuple[str, ...]], ...]  # (key, its values) of the swept grid keys
    presets: tuple[str, ...]
    seeds: tuple[int, ...]


def _product_closed(points: Sequence[tuple[str, ...]]) -> tuple[tuple[str, tuple[str, ...]], ...] | None:
    """The grid whose product is exactly `points` (each `key=value` overrides of the same keys), or None."""
    keys = [o.split("=", 1)[0] for o in points[0]]
    values = [tuple(dict.fromkeys(p[i].split("=", 1)[1] for p in points)) for i in range(len(keys))]
    if any([o.split("=", 1)[0] for o in p] != keys for p in points) or len(points) != math.prod(map(len, values)):
        return None
    return tuple(zip(keys, values, strict=True))


def launch_groups(jobs: Sequence[Job]) -> list[Launch]:
    """The multiruns that train what is to do: a block's runs of one entry (the same overrides) that miss the same
    seeds share one, sweeping their grid where the points missing are a whole product (else one per point); presets
    with the same such grid share it too. So a focus grid is one multirun, and a packed launcher packs its points."""
    seeds_of: dict[tuple[str, tuple[str, ...], str], dict[tuple[str, ...], list[int]]] = defaultdict(dict)
    for job in jobs:
        if job.state.todo(retry_failed=True):
            base = tuple(o for o in job.overrides if o not in job.run.point)
            seeds_of[(job.run.block, base, job.run.preset)].setdefault(job.run.point, []).append(job.run.seed)
    merged: dict[tuple, list[str]] = defaultdict(list)
    for (block, base, preset), points in seeds_of.items():
        by_seeds: dict[tuple[int, ...], list[tuple[str, ...]]] = defaultdict(list)
        for point, seeds in points.items():
            by_seeds[tuple(sorted(seeds))].append(point)
        for seeds, group in by_seeds.items():
            grid = _product_closed(group)
            for sweep in [grid] if grid is not None else [_product_closed([p]) for p in group]:
                merged[(block, base, sweep, seeds)].append(preset)
    return [Launch(block, base, grid, tuple(presets), seeds) for (block, base, grid, seeds), presets in merged.items()]


def hydra_command(
    launch: Launch, log_root: Path, launcher: str, jobs: int | None, overrides: Sequence[str]
) -> list[str]:
    """The multirun training one Launch into the plan's directories: the subdir is each run's plan name,
    <row>_<point>_seed<k> (antisym.plan.row_name; the row by train.py's `plan_row` resolver, each grid value by its
    key, a config group's by Hydra's choice)."""
    launch_args = list(LAUNCHERS.get(launcher, (f"hydra/launcher={launcher}",)))
    if launcher == "joblib" and jobs:
        launch_args.append(f"hydra.launcher.n_jobs={jobs}")
    values = "".join(
        row_name("", [f"{key}=${{{key if '.' in key else 'hydra:runtime.choices.' + key}}}"]) for key, _ in launch.grid
    )
    return [
        sys.executable,
        str(REPO / "train.py"),
        "-m",
        f"experiment={','.join(launch.presets)}",
        f"trainer.seed={','.join(str(s) for s in launch.seeds)}",
        f"hydra.sweep.dir={log_root / launch.block}",
        f"hydra.sweep.subdir='${{plan_row:${{preset.name}}}}{values}_seed${{trainer.seed}}'",
        "trainer.resume=true",
        "trainer.skip_completed=true",
        "trainer.progress=false",
        *launch.overrides,
        *(f"{key}={','.join(vals)}" for key, vals in launch.grid),
        *launch_args,
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


def table_blocks(spec: Plan, tables: Sequence[int]) -> list[str]:
    """The blocks --table picks in a plan of tables (every block named table<N>: tables, focus); every block of any
    other plan (the campaign's `paper`, whose table1 block is one of many)."""
    if all(block in ("table1", "table2") for block in spec.blocks):
        return [f"table{t}" for t in tables if f"table{t}" in spec.blocks]
    return list(spec.blocks)


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
    parser.add_argument("--plan", default=TABLES_PLAN, help="a plan of conf/campaign/ or a plan file (default tables)")
    parser.add_argument("--table", type=parse_tables, default=(1, 2), help="1, 2 or all (default)")
    parser.add_argument(
        "--launcher",
        default="basic",
        help="basic (default), joblib, submitit_local, submitit_slurm, packed, or any hydra/launcher option",
    )
    parser.add_argument("--jobs", type=int, help="joblib: parallel processes (default: every core)")
    parser.add_argument("--quick", action="store_true", help="the plan's quick section: tiny, written apart, marked")
    parser.add_argument(
        "--seeds", type=parse_seeds, help="N (seeds 0..N-1; 1 = seed 0 alone) or a comma list; default the plan's"
    )
    parser.add_argument("--blocks", help="comma list of the plan's blocks to run (default: --table's, or all)")
    parser.add_argument("--rows", help="comma list of presets to limit to, e.g. asym_mnist,table1/gated_pmnist")
    parser.add_argument("--data", help="data.root (default: the config's, i.e. $ANTISYM_DATA or ./data)")
    parser.add_argument("--logs", default=os.environ.get("ANTISYM_LOGS", "logs"), help="log_dir (default logs)")
    parser.add_argument("--results", default="results/local", help="tables (git-ignored; QUICK: <results>/quick)")
    parser.add_argument("--rerun-diverged", action="store_true", help="train diverged runs again too")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and the commands, run nothing")
    args = parser.parse_args(argv)

    if args.data:
        overrides.insert(0, f"data.root={Path(args.data).resolve()}")
    try:
        spec = load_plan(args.plan, args.seeds, args.quick)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    root = "reproduce" if spec.name == TABLES_PLAN else spec.name
    log_root = Path(args.logs).resolve() / ("quick" if args.quick else "") / root
    out_dir = Path(args.results) / "quick" if args.quick else Path(args.results)
    blocks = [b.strip() for b in args.blocks.split(",") if b.strip()] if args.blocks else table_blocks(spec, args.table)
    unknown = [b for b in blocks if b not in spec.blocks]
    if unknown:
        print(
            f"error: BLOCKS/--blocks names {', '.join(unknown)}, no block of plan {spec.name} (its blocks: "
            f"{', '.join(spec.blocks)}); nothing was trained.",
            file=sys.stderr,
        )
        return 2
    rows = [r.strip() for r in args.rows.split(",") if r.strip()] if args.rows else None
    problem = unknown_rows(rows or [], spec, blocks)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    tag = "QUICK " if args.quick else ""
    started = time.time()

    try:
        jobs = plan_jobs(spec, blocks, log_root, overrides, args.rerun_diverged, rows)
    except OverrideError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    problem = older_layout(jobs, log_root)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    print(f"{tag}reproduce: plan {spec.name}, {', '.join(blocks)}: {len(jobs)} runs under {log_root}")
    actions = {Status.COMPLETED: "skip", Status.DIVERGED: "keep", Status.STALE: "move aside, rerun",
               Status.MISSING: "run", Status.RUNNING: "leave (being written)", Status.WAITING: "wait"}  # fmt: skip
    for job in jobs:
        status, detail = job.state.status, job.state.detail
        action = actions.get(status, "rerun (resume)")
        print(f"  {job.run.rel_dir:44s} {status:11s} -> {action}" + (f"  [{detail}]" if detail else ""))
    groups = launch_groups(jobs)
    if not groups:
        print(f"{tag}reproduce: nothing to run.")
    if not args.dry_run:  # moved aside before any multirun starts: never resumed under the new settings
        for job in (j for j in jobs if j.state.status == Status.STALE):
            print(f"  moved stale {job.run_dir} -> {move_stale(job, log_root)}")
    for launch in groups:
        cmd = hydra_command(launch, log_root, args.launcher, args.jobs, overrides)
        print("$ " + " ".join(cmd), flush=True)
        if args.dry_run:
            continue
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
    after = plan_jobs(spec, blocks, log_root, overrides, False, rows)
    states: dict[str, int] = defaultdict(int)
    for job in after:
        states[job.state.status] += 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
    tables = ", ".join(str(out_dir / f"table{t}.md") for t in args.table)
    print(f"{tag}reproduce: {summary}; wrote {tables}, {out_dir / 'runs.csv'} in {time.time() - started:.0f} s")
    return 0 if all(j.state.finished for j in after) else 1


if __name__ == "__main__":
    sys.exit(main())
