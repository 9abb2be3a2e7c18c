"""Train one configuration: python train.py model=gated dataset=pmnist optimizer=adagrad [key=value ...]

Multirun: python train.py -m model.eps=0.01,0.1,1 model.gamma=0.001,0.01,0.1,1

Exit codes: 0 completed, 2 a setting, data file or run directory to fix (one paragraph on stderr), 3 diverged,
130 interrupted (Ctrl-C or SIGTERM; the line printed says how to resume). Every job of the command is composed and
checked before any starts (antisym/preflight.py): a mistyped key, an unknown group option or a bad value in any job
of a sweep is exit 2 with nothing written. A sweep exits 0 when every job ran (diverged jobs are results: their
summary.json says so and the last line counts them), 2 when a job was refused as it started (the others ran),
130 when interrupted.
"""

import signal
import sys

STOPPED: list[int] = []  # the signals that stopped this command before a run handled them


def note_signal(signum: int, frame: object) -> None:
    """SIGINT and SIGTERM while the imports take their seconds: noted, and honoured once they are done (a
    KeyboardInterrupt inside an import would be a traceback), whatever the shell set them to (a background job's
    SIGINT is ignored)."""
    STOPPED.append(signum)


if __name__ == "__main__":
    for _sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(_sig, note_signal)

import contextlib  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import shlex  # noqa: E402
from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from hydra.types import RunMode  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from antisym.checks import check_name  # noqa: E402
from antisym.errors import UserError  # noqa: E402
from antisym.groups import run_groups  # noqa: E402
from antisym.plan import row_name  # noqa: E402
from antisym.preflight import check_command  # noqa: E402
from antisym.training import run  # noqa: E402
from antisym.training.member import Checked  # noqa: E402
from antisym.training.rundir import RunDir, Status, remove_if_empty  # noqa: E402

CONF = Path(__file__).resolve().parent / "conf"
# hydra.run.dir names the run by model.name: checked before Hydra makes the directory (conf/hydra/default.yaml).
OmegaConf.register_new_resolver("run_name", lambda name: check_name("model.name", name), replace=True)
OmegaConf.register_new_resolver("run_groups", run_groups, replace=True)  # --help's groups (conf/hydra/default.yaml)
OmegaConf.register_new_resolver("plan_row", row_name, replace=True)  # a plan's run directory (make reproduce-table)
OUTCOMES: Counter[str] = Counter()  # the jobs of a sweep trained in this process, by how they ended
NEW_FOLDERS: set[Path] = set()  # paths.log_dir and the folders above it that this command would create
CHECKED: list[Checked] = []  # a single run's model, built by the command's check: the run trains it


def again(extra: list[str]) -> str:
    """This command as it was typed (the interpreter that ran it, -cd, searchpath, presets, sweeps), with `extra`
    replacing any value it gave for the same keys: a printed command runs as printed."""
    keys = {e.split("=", 1)[0] for e in extra}
    kept = [a for a in sys.argv[1:] if a.split("=", 1)[0].lstrip("+~") not in keys]
    return shlex.join([sys.executable, sys.argv[0], *kept, *extra])


def diverged_settings(cfg: DictConfig) -> str:
    """The settings that set the step size, as the run used them."""
    optimizer = str(cfg.optimizer.get("_target_", "?")).rsplit(".", 1)[-1]
    clip = cfg.trainer.get("grad_clip") or 0
    return f"{optimizer} lr {cfg.optimizer.get('lr')}, " + (f"gradient clipping at {clip}" if clip else "no clipping")


def what_to_try(cfg: DictConfig) -> str:
    """What to change after a divergence: the usual remedies, and the presets tuned for this model, if any.

    The global defaults (Adagrad 0.1, no clipping) suit the paper's cells; other models (coRNN, the Lipschitz RNN)
    train with their own published optimizer settings, which only their presets carry."""
    name = cfg.model.get("name", "")
    presets = sorted(
        f"experiment={p.parent.name}/{p.stem}" for p in (CONF / "experiment").glob(f"*/{name}_*.yaml") if name
    )
    tip = "Lower optimizer.lr, clip gradients (trainer.grad_clip=1.0) or reduce the model's step size"
    return f"{tip}, or start from a preset tuned for model={name}: {', '.join(presets)}." if presets else f"{tip}."


def leave_nothing(cfg: DictConfig, run_dir: Path, job_log: Path, logged_before: int) -> None:
    """Undo what Hydra made for a job that wrote nothing: its lines in the run's log, the run directory and the
    folders above it that this command created."""
    with contextlib.suppress(OSError):
        if job_log.is_file():
            os.truncate(job_log, logged_before)
    remove_if_empty(run_dir, but=(job_log.name,))
    log_dir = Path(str(cfg.paths.log_dir)).resolve()
    for folder in run_dir.resolve().parents:
        if (folder == log_dir or log_dir not in folder.parents) and folder not in NEW_FOLDERS:
            break
        remove_if_empty(folder)


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    overrides = list(hydra_cfg.overrides.task)
    job_log = Path(hydra_cfg.runtime.output_dir) / f"{hydra_cfg.job.name}.log"  # Hydra's, opened before this call
    logged_before = job_log.stat().st_size if job_log.is_file() else 0
    run_dir = Path(hydra_cfg.runtime.output_dir)
    try:
        summary = run(cfg, run_dir, overrides=overrides, checked=CHECKED.pop() if CHECKED else None)
    except KeyboardInterrupt:  # a second Ctrl-C, or a signal while starting: recorded at the last checkpoint's step
        summary = RunDir(run_dir).summary()
        if (summary or {}).get("status") not in (
            Status.INTERRUPTED,
            Status.RUNNING,
        ):  # stopped before it wrote anything
            leave_nothing(cfg, run_dir, job_log, logged_before)
            raise  # said below: no job recorded an outcome
    except UserError as err:  # one paragraph, no traceback: the message says what to change
        if not err.recorded:  # a refusal writes nothing
            leave_nothing(cfg, run_dir, job_log, logged_before)
        if multirun:  # the other jobs still run; the sweep exits 2 at the end
            print(f"error in job {hydra_cfg.job.num} ({hydra_cfg.runtime.output_dir}): {err}", file=sys.stderr)
            OUTCOMES["refused"] += 1
            return None
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    status = (
        Status.INTERRUPTED if summary.get("status") == Status.RUNNING else summary.get("status")
    )  # killed while starting
    OUTCOMES[status or "unknown"] += 1
    if status == Status.INTERRUPTED:
        where = f"hydra.run.dir={hydra_cfg.runtime.output_dir}"
        searchpath = [o for o in hydra_cfg.overrides.hydra if o.startswith("hydra.searchpath")]  # a user's conf/
        job = [sys.executable, sys.argv[0], *overrides, *searchpath, "trainer.resume=true", where]  # this job alone
        command = shlex.join(job) if multirun else again(["trainer.resume=true", where])
        why = summary.get("stop_reason") or "stopped while starting"
        of = f" of {summary['max_steps']}" if summary.get("max_steps") else ""
        print(f"interrupted ({why}) at step {summary.get('steps', 0)}{of}; resume with: {command}", file=sys.stderr)
        if multirun:
            sweep = again(
                ["trainer.resume=true", "trainer.skip_completed=true", f"hydra.sweep.dir={hydra_cfg.sweep.dir}"]
            )
            print(f"resume the whole sweep (completed jobs are skipped) with: {sweep}", file=sys.stderr)
        if not multirun:
            sys.exit(130)
        if summary.get("stop_reason") != "time_limit":
            raise KeyboardInterrupt  # a signal stops the whole sweep, as Ctrl-C asks
    if status == Status.DIVERGED and not multirun:
        print(
            f"diverged: {summary.get('diverged_reason')} at step {summary.get('diverged_at_step')} "
            f"({diverged_settings(cfg)}); summary in {hydra_cfg.runtime.output_dir}/summary.json. "
            f"{what_to_try(cfg)}",
            file=sys.stderr,
        )
        sys.exit(3)
    return summary.get("best_val_acc")  # the objective for Hydra sweepers


def sweep_end(jobs: int) -> int:
    """The sweep's last line and exit code: 2 where a job was refused, else 0 (diverged runs are results)."""
    if OUTCOMES:  # jobs trained in this process (a cluster launcher's jobs report in their own logs)
        counts = ", ".join(f"{n} {status}" for status, n in sorted(OUTCOMES.items()))
        print(f"sweep: {jobs} jobs: {counts}", file=sys.stderr)
    return 2 if OUTCOMES["refused"] else 0


def stop_at_startup(signum: int, frame: object) -> None:
    """SIGINT and SIGTERM once the imports are done, until a run installs its own handler (and after): stop now,
    as Ctrl-C does."""
    STOPPED.append(signum)
    raise KeyboardInterrupt


def stopped_before_any_run() -> None:
    print("interrupted before any run started: nothing was written", file=sys.stderr)
    sys.exit(130)


if __name__ == "__main__":
    logging.raiseExceptions = False  # a log line a full disk cannot take is dropped: the run's paragraph says why
    if STOPPED:
        stopped_before_any_run()
    for _sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(_sig, stop_at_startup)
    try:
        command = check_command(sys.argv[1:], __file__, config_path="conf", config_name="config")
    except KeyboardInterrupt:
        stopped_before_any_run()
    except UserError as err:
        if STOPPED:  # Hydra's composition took the KeyboardInterrupt for an error of its own
            stopped_before_any_run()
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    if STOPPED:
        stopped_before_any_run()
    if command is not None and command.log_dir:
        NEW_FOLDERS.update(f for f in (command.log_dir, *command.log_dir.parents) if not f.exists())
    if command is not None and command.checked is not None:
        CHECKED.append(command.checked)
    try:
        main()
    except KeyboardInterrupt:  # an interrupted job has printed how to resume it and the sweep
        if not OUTCOMES:
            stopped_before_any_run()
        sys.exit(130)
    if command is not None and command.multirun:
        sys.exit(sweep_end(command.jobs))
