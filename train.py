"""Train one configuration: python train.py model=gated dataset=pmnist optimizer=adagrad [key=value ...]

Multirun: python train.py -m model.eps=0.01,0.1,1 model.gamma=0.001,0.01,0.1,1

Exit codes: 0 completed, 2 a setting, data file or run directory to fix (one paragraph on stderr), 3 diverged,
130 interrupted (Ctrl-C or SIGTERM; the line printed says how to resume). Every job of the command is composed and
checked before any starts (antisym/preflight.py): a mistyped key, an unknown group option or a bad value in any job
of a sweep is exit 2 with nothing written. A sweep exits 0 when every job ran (diverged jobs are results: their
summary.json says so and the last line counts them), 2 when a job was refused as it started (the others ran),
130 when interrupted.
"""

import os
import shlex
import sys
from collections import Counter
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from antisym.checks import check_name
from antisym.errors import UserError
from antisym.preflight import check_command
from antisym.training import run
from antisym.training.rundir import read_summary, remove_if_empty

CONF = Path(__file__).resolve().parent / "conf"
# hydra.run.dir names the run by model.name: checked before Hydra makes the directory (conf/hydra/default.yaml).
OmegaConf.register_new_resolver("run_name", lambda name: check_name("model.name", name), replace=True)
OUTCOMES: Counter[str] = Counter()  # the jobs of a sweep trained in this process, by how they ended
NEW_FOLDERS: set[Path] = set()  # paths.log_dir and the folders above it that this command would create


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
        f"+experiment={p.parent.name}/{p.stem}" for p in (CONF / "experiment").glob(f"*/{name}_*.yaml") if name
    )
    tip = "Lower optimizer.lr, clip gradients (trainer.grad_clip=1.0) or reduce the model's step size"
    return f"{tip}, or start from a preset tuned for model={name}: {', '.join(presets)}." if presets else f"{tip}."


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    overrides = list(hydra_cfg.overrides.task)
    job_log = Path(hydra_cfg.runtime.output_dir) / f"{hydra_cfg.job.name}.log"  # Hydra's, opened before this call
    logged_before = job_log.stat().st_size if job_log.is_file() else 0
    try:
        summary = run(cfg, hydra_cfg.runtime.output_dir, overrides=overrides)
    except KeyboardInterrupt:  # a second Ctrl-C: recorded as interrupted at the last checkpoint's step
        summary = read_summary(hydra_cfg.runtime.output_dir) or {"status": "interrupted", "steps": 0}
    except UserError as err:  # one paragraph, no traceback: the message says what to change
        run_dir = Path(hydra_cfg.runtime.output_dir)
        if job_log.is_file():  # a refusal writes nothing: not even its lines in an earlier run's log
            os.truncate(job_log, logged_before)
        remove_if_empty(run_dir, but=(job_log.name,))  # Hydra made it, and the folders above it
        log_dir = Path(str(cfg.paths.log_dir)).resolve()
        for folder in run_dir.resolve().parents:
            if (folder == log_dir or log_dir not in folder.parents) and folder not in NEW_FOLDERS:
                break
            remove_if_empty(folder)
        if multirun:  # the other jobs still run; the sweep exits 2 at the end
            print(f"error in job {hydra_cfg.job.num} ({hydra_cfg.runtime.output_dir}): {err}", file=sys.stderr)
            OUTCOMES["refused"] += 1
            return None
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    status = summary.get("status")
    OUTCOMES[status or "unknown"] += 1
    if status == "interrupted":
        where = f"hydra.run.dir={hydra_cfg.runtime.output_dir}"
        searchpath = [o for o in hydra_cfg.overrides.hydra if o.startswith("hydra.searchpath")]  # a user's conf/
        job = [sys.executable, sys.argv[0], *overrides, *searchpath, "trainer.resume=true", where]  # this job alone
        command = shlex.join(job) if multirun else again(["trainer.resume=true", where])
        print(
            f"interrupted ({summary.get('stop_reason')}) at step {summary['steps']} of {summary.get('max_steps')}; "
            f"resume with: {command}",
            file=sys.stderr,
        )
        if multirun:
            sweep = again(
                ["trainer.resume=true", "trainer.skip_completed=true", f"hydra.sweep.dir={hydra_cfg.sweep.dir}"]
            )
            print(f"resume the whole sweep (completed jobs are skipped) with: {sweep}", file=sys.stderr)
        if not multirun:
            sys.exit(130)
        if summary.get("stop_reason") != "time_limit":
            raise KeyboardInterrupt  # a signal stops the whole sweep, as Ctrl-C asks
    if status == "diverged" and not multirun:
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


if __name__ == "__main__":
    try:
        command = check_command(sys.argv[1:], __file__, config_path="conf", config_name="config")
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    if command is not None and command.log_dir:
        NEW_FOLDERS.update(f for f in (command.log_dir, *command.log_dir.parents) if not f.exists())
    try:
        main()
    except KeyboardInterrupt:  # the interrupted job has printed how to resume it and the sweep
        sys.exit(130)
    if command is not None and command.multirun:
        sys.exit(sweep_end(command.jobs))
