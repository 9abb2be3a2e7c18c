"""Training: the loop, optimizers and schedules, checkpoints and metrics sinks."""

from antisym.training.checkpoint import load_run_config, load_run_model, read_summary
from antisym.training.trainer import run

__all__ = ["load_run_config", "load_run_model", "read_summary", "run"]
