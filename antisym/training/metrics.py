"""Metrics sinks: metrics.jsonl always, Weights & Biases (offline by default) when configured."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any


class MetricsLogger:
    """Appends one JSON object per row.

    On resume, rows past the checkpoint's step and the end-of-run test rows are dropped first, so the file reads as
    if the run had never stopped.
    """

    def __init__(
        self,
        path: Path,
        wandb_cfg: Mapping[str, Any] | None,
        config: dict,
        run_dir: Path,
        resume_step: int | None = None,
    ) -> None:
        self.path = path
        if resume_step is not None and path.is_file():
            rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            kept = [r for r in rows if r["step"] <= resume_step and r["split"] != "test"]
            path.write_text("".join(json.dumps(r) + "\n" for r in kept))
        self.file = open(path, "a")  # noqa: SIM115 - held open for the whole run
        self.wandb_run = None
        if wandb_cfg:
            import wandb

            self.wandb_run = wandb.init(
                project=wandb_cfg.get("project"),
                entity=wandb_cfg.get("entity"),
                mode=wandb_cfg.get("mode", "offline"),
                group=wandb_cfg.get("group"),
                tags=list(wandb_cfg.get("tags") or []),
                config=config,
                dir=str(run_dir),
                name=run_dir.name,
                resume="allow",
            )

    def log(self, row: dict[str, Any]) -> None:
        self.file.write(json.dumps(row) + "\n")
        self.file.flush()
        if self.wandb_run is not None:
            split = row.get("split", "train")
            self.wandb_run.log(
                {f"{split}/{k}": v for k, v in row.items() if k not in ("step", "split")}, step=row["step"]
            )

    def close(self, summary: Mapping[str, Any] | None = None) -> None:
        self.file.close()
        if self.wandb_run is not None:
            if summary:
                self.wandb_run.summary.update({k: v for k, v in summary.items() if isinstance(v, int | float | str)})
            self.wandb_run.finish()
