"""Train one configuration: python train.py model=gated dataset=pmnist optimizer=adagrad [key=value ...]

Multirun: python train.py -m model.eps=0.01,0.1,1 model.gamma=0.001,0.01,0.1,1

Exit codes: 0 completed, 2 a setting, data file or run directory to fix (one paragraph on stderr), 3 diverged,
130 interrupted (Ctrl-C or SIGTERM; the line printed says how to resume). Hydra's own errors (an unknown config
group option such as model=foo, a malformed override) exit 1 with Hydra's message.
"""

import shlex
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from antisym.config import check_name
from antisym.errors import UserError
from antisym.training import run
from antisym.training.rundir import read_summary

CONF = Path(__file__).resolve().parent / "conf"
# hydra.run.dir names the run by model.name: checked before Hydra makes the directory (conf/hydra/default.yaml).
OmegaConf.register_new_resolver("run_name", lambda name: check_name("model.name", name), replace=True)


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
    try:
        summary = run(cfg, hydra_cfg.runtime.output_dir, overrides=overrides)
    except KeyboardInterrupt:  # a second Ctrl-C: recorded as interrupted at the last checkpoint's step
        summary = read_summary(hydra_cfg.runtime.output_dir) or {"status": "interrupted", "steps": 0}
    except UserError as err:
        if multirun:
            raise  # Hydra records this job as failed and runs the others
        print(f"error: {err}", file=sys.stderr)  # one paragraph, no traceback: the message says what to change
        sys.exit(2)
    status = summary.get("status")
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


if __name__ == "__main__":
    main()
