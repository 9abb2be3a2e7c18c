"""Training: the loop, optimizers and schedules, checkpoints, run directories and metrics sinks."""

from antisym.training.rundir import load_run_config, load_run_model, read_summary
from antisym.training.trainer import run

__all__ = ["load_run_config", "load_run_model", "read_summary", "run"]
