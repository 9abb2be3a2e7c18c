"""Metrics sinks: metrics.jsonl always, Weights & Biases (offline by default) when configured."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from antisym.training.rundir import atomic_write_text, read_metrics

WANDB_ID_FILE = "antisym_run_id"  # inside <run dir>/wandb/: a resume continues the same W&B run


class MetricsLogger:
    """Appends one JSON object per row.

    On resume, rows past the checkpoint's step and the end-of-run test rows are dropped first (and a torn last line),
    so the file reads as if the run had never stopped. Use as a context manager: the file and the W&B run are
    closed however the run ends.
    """

    def __init__(
        self,
        path: Path,
        wandb_cfg: Any | None,
        config: dict,
        run_dir: Path,
        resume_step: int | None = None,
    ) -> None:
        self.path = path
        if resume_step is not None and path.is_file():
            kept = [r for r in read_metrics(path) if r["step"] <= resume_step and r["split"] != "test"]
            atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in kept))
        self.file = open(path, "a")  # noqa: SIM115 - held open for the whole run
        self.wandb_run = None
        if wandb_cfg is not None and wandb_cfg.mode != "disabled":
            import wandb

            id_file = run_dir / "wandb" / WANDB_ID_FILE
            id_file.parent.mkdir(parents=True, exist_ok=True)
            run_id = id_file.read_text().strip() if id_file.is_file() else uuid.uuid4().hex[:8]
            id_file.write_text(run_id + "\n")
            self.wandb_run = wandb.init(
                id=run_id,
                resume="allow",
                project=wandb_cfg.project,
                entity=wandb_cfg.entity,
                mode=wandb_cfg.mode,
                group=wandb_cfg.group,
                tags=list(wandb_cfg.tags),
                config=config,
                dir=str(run_dir),
                name=run_dir.name,
            )

    def __enter__(self) -> MetricsLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def log(self, row: dict[str, Any]) -> None:
        self.file.write(json.dumps(row) + "\n")
        self.file.flush()
        if self.wandb_run is not None:
            split = row.get("split", "train")
            self.wandb_run.log(
                {f"{split}/{k}": v for k, v in row.items() if k not in ("step", "split")}, step=row["step"]
            )

    def close(self, summary: Mapping[str, Any] | None = None) -> None:
        if not self.file.closed:
            self.file.close()
        if self.wandb_run is not None:
            if summary:
                self.wandb_run.summary.update({k: v for k, v in summary.items() if isinstance(v, int | float | str)})
            self.wandb_run.finish()
            self.wandb_run = None
