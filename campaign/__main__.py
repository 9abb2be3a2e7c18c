"""python -m campaign {status,next,run,lane,collect,command,rehearse}: the campaign's command line.

status   [--plan paper] [--records results/runs] [--lanes N] [--lane cpu]
                                                        per block: runs completed / total, iterations done / planned,
                                                        rate here, time left with N lanes (default: those training);
                                                        the lane's items in order and when each would finish
next     [-n 10] [--lane cpu]                           the runs the next lease (or lane) trains, in order
run      --budget-s 540 --data-root DIR --out DIR [--device auto] [--commit SHA] [--gpu-check JSON]
                                                        one lease (on the device)
collect  FILES... [--tables results/campaign] [--leases results/leases]
                                                        unpack + check a lease's archives, rebuild the tables,
                                                        keep its report; prints the commit message
command  [--budget-s 540] [--check-s 0]                 the device command and carry list (make gpu-campaign)
rehearse [--budget-s 180] [--scratch DIR]               that command run here on a scratch copy of what travels,
                                                        its archives collected there (make gpu-campaign-rehearse)
lane     --budget-s S --data-root DIR [--lane cpu] [--threads 1]
                                                        a lane trained here, records in place (make cpu-campaign):
                                                        tables rebuilt, a commit message printed
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from antisym.errors import UserError
from antisym.plan import load_plan, planned_state, planned_steps, resolve
from antisym.training.rundir import RunDir, Status
from antisym.training.runs import run_state
from campaign.limits import CALL_S, CARRY_BYTES, MIB

PLAN_HELP = "a plan in conf/campaign/ or a .yaml file (default paper)"
COMMIT_HELP = "default: HEAD, -dirty when tracked files differ"


def cmd_status(args: argparse.Namespace) -> int:
    from antisym.provenance import cpu_name
    from campaign.progress import (
        block_lines,
        blocks,
        lane_schedule,
        rate_lines,
        rates_here,
        schedule_lines,
        training_lines,
    )

    plan = load_plan(args.plan)
    planned = planned_steps(plan)
    rows = blocks(plan, args.records, planned)
    print(f"campaign {plan.name}: {len(plan.runs)} runs in {len(plan.blocks)} blocks, records in {args.records}")
    print("\n".join(block_lines(rows)))
    machine = f"cpu: {cpu_name()}"
    lanes = args.lanes or max(1, sum(row["states"].get(Status.RUNNING, 0) for row in rows))  # the runs training now
    rates = rates_here(plan, args.records, machine)
    print("\n" + "\n".join(rate_lines(rows, rates, machine, lanes)))
    lane = args.lane or ("cpu" if "cpu" in plan.lanes else None)  # the lane this machine trains (make cpu-campaign)
    if lane is not None:
        items = lane_schedule(plan, args.records, planned, rates, lane, lanes)
        print("\n" + "\n".join(schedule_lines(items, lane, lanes)))
    if training := training_lines(plan, args.records, planned):
        print("\n" + "\n".join(training))
    return 0


def cmd_next(args: argparse.Namespace) -> int:
    plan = resolve(load_plan(args.plan), args.records)
    states = {r: planned_state(args.records, r) for r in plan.lane_runs(args.lane)}
    todo = [(r, s) for r, s in states.items() if s.todo(args.retry_failed)]
    print(f"campaign {plan.name}: {len(todo)} of {len(plan.runs)} runs to do; the next {min(args.n, len(todo))}:")
    for run, state in todo[: args.n]:
        chosen = f"  at the point of {run.chosen}" if run.chosen else ""
        print(f"  {run.rel_dir:60s} {state.status:11s} step {state.steps:>6,}  experiment={run.preset}{chosen}")
    running = [f"{r.rel_dir} ({s.steps:,} steps recorded)" for r, s in states.items() if s.status == Status.RUNNING]
    if running:  # a lane or a launcher holds their locks: no other lane takes them
        print(f"in training now: {', '.join(running)}")
    waiting = sorted({f"{r.select} ({r.preset})" for r in plan.runs if r.waiting})
    if waiting:
        print(f"waiting for a screen to finish: {', '.join(waiting)}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from campaign.lease import Lease, launcher_from_check, run_lease

    plan, why = load_plan(args.plan), None
    if args.gpu_check is not None:
        plan, why = launcher_from_check(plan, args.gpu_check)
        logging.getLogger("antisym").info("campaign: launcher %s", why)
    lease = Lease(
        plan=plan,
        records=args.records,
        data_root=args.data_root,
        out=args.out,
        budget_s=args.budget_s,
        device=args.device,
        commit=args.commit,
        margin_s=args.margin_s,
        retry_failed=args.retry_failed,
        launcher_why=why,
        lane=args.lane,
    )
    code, report = run_lease(lease)
    print((args.out / "progress.md").read_text())
    if code == 3:
        print("campaign: the fused kernels failed parity; nothing was trained:", file=sys.stderr)
        for why in report["parity"]["why"]:
            print(f"  {why}", file=sys.stderr)
    return code


def cmd_collect(args: argparse.Namespace) -> int:
    from antisym.results.aggregate import write_tables
    from campaign.progress import block_lines, blocks, moved_line
    from campaign.records import collect

    plan = load_plan(args.plan)
    planned = planned_steps(plan)
    before = blocks(plan, args.records, planned)
    moves = collect(args.files, args.records, allow_older=args.allow_older)
    for m in moves:
        print(f"  {m.unit:60s} {m.before.status} -> {m.after.status}, steps {m.before.steps:,} -> {m.after.steps:,}")
    write_tables([args.records], args.tables)
    print(f"collected {len(moves)} records into {args.records}; tables rebuilt in {args.tables}")
    after = blocks(plan, args.records, planned)
    print("\n".join(block_lines(after, before)))
    kept = keep_lease_report(args.files[0].parent, args.leases) if args.leases else []
    if kept:
        print(f"the lease's report and log kept as {', '.join(map(str, kept))}")
    print(f"commit message: Lease: {moved_line(after, before)}")
    return 0


def keep_lease_report(folder: Path, leases: Path) -> list[Path]:
    """progress.md and campaign.log of the lease beside its archives, as <leases>/<UTC time>.md and .log."""
    import shutil
    import time

    stem = time.strftime("%Y-%m-%d-%H%M", time.gmtime())
    kept = []
    for name, suffix in (("progress.md", ".md"), ("campaign.log", ".log")):
        if (folder / name).is_file():
            leases.mkdir(parents=True, exist_ok=True)
            kept.append(Path(shutil.copyfile(folder / name, leases / f"{stem}{suffix}")))
    return kept


def cmd_command(args: argparse.Namespace) -> int:
    from antisym.provenance import git_commit
    from campaign.device import prepare

    commit = args.commit or git_commit()
    command, carry, total = prepare(args.plan, args.budget_s, commit, check_s=args.check_s)
    if commit.endswith("-dirty"):
        print(f"NOTE: the working tree differs from {commit[:-6]}; the device runs it as it is, recorded as {commit}.")
    print(f"Device call (carries {total / MIB:.1f} MiB of the {CARRY_BYTES // MIB} MiB allowed; timeout_s {CALL_S}):")
    print(f"  carry: {carry}")
    print(f"  command: {command}")
    print(f'Then: make gpu-campaign-collect FILES="<files_at>/records-*.tar.gz" (records into {args.records})')
    return 0


def cmd_rehearse(args: argparse.Namespace) -> int:
    import time

    from antisym.provenance import git_commit
    from campaign.rehearse import rehearse

    started = time.monotonic()
    scratch = args.scratch.resolve()
    done = rehearse(args.plan, args.budget_s, scratch, args.commit or git_commit())
    (scratch / "command.sh").write_text(done.command + "\n")
    took = f"{time.monotonic() - started:.0f} s"
    stopped = next((line[2:] for line in done.progress.splitlines() if line.startswith("- stopped:")), "no report")
    if done.code != 0:
        print(f"rehearsal FAILED after {took} (exit {done.code}); the command as run: {scratch}/command.sh",
              done.collected, sep="\n", file=sys.stderr)  # fmt: skip
        return done.code
    if not done.archives:
        print(f"rehearsal incomplete ({took}): the lease trained nothing ({stopped}), so nothing was archived or "
              "collected; give it a larger --budget-s (its start, its 60 s margin and a shortest run of 30 s)",
              file=sys.stderr)  # fmt: skip
        return 1
    moved = next((line for line in done.collected.splitlines() if line.startswith("commit message:")), "")
    print(f"rehearsal passed in {took}: wheels installed, data assembled, the lease trained ({stopped}), "
          f"{len(done.archives)} archive(s) collected into {scratch}/tree/results/runs; {moved}")  # fmt: skip
    return 0


def cmd_lane(args: argparse.Namespace) -> int:
    """One stretch of a lane on this machine: the lease machinery with the records trained in place (no archives),
    one run at a time on a CPU (packs gain nothing there: results/bench_packed_cpu.md), then the tables rebuilt."""
    from dataclasses import replace

    import torch

    from antisym.results.aggregate import write_tables
    from antisym.training.threads import apply_threads
    from campaign.lease import Lease, run_lease
    from campaign.progress import block_lines, blocks, moved_line

    plan = load_plan(args.plan)
    plan.lane_runs(args.lane)  # an unknown lane stops here
    if args.device == "cpu":
        plan = replace(plan, launcher="solo", pack_size=1, concurrent=1)
    threads = apply_threads(args.threads)
    logging.getLogger("antisym").info("campaign lane %s: %d torch threads, budget %g s", args.lane, threads,
                                      args.budget_s)  # fmt: skip
    planned = planned_steps(plan)
    before = blocks(plan, args.records, planned)
    lease = Lease(plan=plan, records=args.records, data_root=args.data_root, out=args.out, budget_s=args.budget_s,
                  device=args.device, commit=args.commit, margin_s=args.margin_s, lane=args.lane, threads=threads,
                  archive=False)  # fmt: skip
    code, _ = run_lease(lease)
    for run_dir in map(RunDir, args.records.glob("*/*")):  # a finished record keeps what a collected one keeps
        last = run_dir.last_checkpoint
        if last.is_file() and run_state(run_dir.path).finished and run_dir.path.parent.name not in plan.keep_last:
            last.unlink()
    write_tables([args.records], args.tables)
    after = blocks(plan, args.records, planned)
    print(f"campaign lane {args.lane} ({torch.get_num_threads()} threads): report in {args.out}/progress.md, "
          f"tables rebuilt in {args.tables}")  # fmt: skip
    print("\n".join(block_lines(after, before)))
    print(f"commit message: Campaign lane {args.lane}: {moved_line(after, before)}")
    return code


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m campaign", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    sub = ap.add_subparsers(dest="cmd", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--plan", default="paper", help=PLAN_HELP)
    common.add_argument("--records", type=Path, default=Path("results/runs"), help="records folder")
    status = sub.add_parser("status", parents=[common])
    status.add_argument("--lanes", type=int, default=None, help="time left with N lanes (default: runs training now)")
    status.add_argument("--lane", default=None, help="the plan's lane to schedule (default: cpu, where it has one)")
    status.set_defaults(func=cmd_status)
    nxt = sub.add_parser("next", parents=[common])
    nxt.add_argument("-n", type=int, default=10)
    nxt.add_argument("--retry-failed", action="store_true", help="count failed runs as to do")
    nxt.add_argument("--lane", default=None, help="the runs of one lane of the plan, in its order (cpu, gpu)")
    nxt.set_defaults(func=cmd_next)
    run = sub.add_parser("run", parents=[common])
    run.add_argument("--budget-s", type=float, required=True, help="wall-clock seconds for the whole lease")
    run.add_argument("--data-root", type=Path, required=True, help="MNIST/raw/*, cifar-10-batches-py/*")
    run.add_argument("--out", type=Path, required=True, help="where the archives and progress report go")
    run.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    run.add_argument("--commit", default=None, help="git commit the records name where the copy has no .git")
    run.add_argument("--margin-s", type=float, default=60.0, help="kept back for the last evaluation and packing")
    run.add_argument("--retry-failed", action="store_true", help="train failed runs again (resuming)")
    run.add_argument("--lane", default=None, help="train one lane of the plan, in its order (the device command: gpu)")
    run.add_argument(
        "--gpu-check",
        type=Path,
        default=None,
        help="gpu_check.json of this device: packed or solo as its packed rows measured best",
    )
    run.set_defaults(func=cmd_run)
    col = sub.add_parser("collect", parents=[common])
    col.add_argument("files", nargs="+", type=Path, help="records-*.tar.gz from a lease")
    col.add_argument("--tables", type=Path, default=Path("results/campaign"), help="where the tables go")
    col.add_argument("--leases", type=Path, default=None,
                     help="keep the lease's progress.md and campaign.log (beside the archives) here "
                          "(make gpu-campaign-collect: results/leases)")  # fmt: skip
    older = "replace records even where the archive's are older (fewer steps, or unfinished)"
    col.add_argument("--allow-older", action="store_true", help=older)
    col.set_defaults(func=cmd_collect)
    cmd = sub.add_parser("command", parents=[common])
    cmd.add_argument("--budget-s", type=float, default=540.0, help="the lease's seconds (with --check-s: the call's)")
    cmd.add_argument("--check-s", type=float, default=0.0, help="run campaign/gpu_check first for this long")
    cmd.add_argument("--commit", default=None, help=COMMIT_HELP)
    cmd.set_defaults(func=cmd_command)
    reh = sub.add_parser("rehearse")  # no --records: the lease resumes the scratch copy's, as the device's copy
    reh.add_argument("--plan", default="paper", help=PLAN_HELP)
    reh.add_argument("--budget-s", type=float, default=180.0, help="the rehearsed lease's seconds (its margin: 60)")
    reh.add_argument("--scratch", type=Path, default=Path("/tmp/antisym-rehearsal"), help="emptied, then filled")
    reh.add_argument("--commit", default=None, help=COMMIT_HELP)
    reh.set_defaults(func=cmd_rehearse)
    lane = sub.add_parser("lane", parents=[common])
    lane.add_argument("--lane", default="cpu", help="the plan's lane to train (default cpu)")
    lane.add_argument("--budget-s", type=float, required=True, help="wall-clock seconds; stops cleanly before")
    lane.add_argument("--data-root", type=Path, required=True, help="MNIST/raw/*, cifar-10-batches-py/*")
    lane.add_argument("--threads", type=int, default=0, help="torch threads (0: auto, trainer.threads' rule)")
    lane.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    lane.add_argument("--out", type=Path, default=Path("logs/campaign-lane"), help="the lane's progress report")
    lane.add_argument("--tables", type=Path, default=Path("results/campaign"), help="where the tables go")
    lane.add_argument("--margin-s", type=float, default=180.0, help="kept back for the last run's final evaluation")
    lane.add_argument("--commit", default=None, help="git commit the records name where the copy has no .git")
    lane.set_defaults(func=cmd_lane)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        return args.func(args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
