"""Checkpoints and run directories: atomic writes, so a crash never leaves a half-written file behind."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

CONFIG_FILE = "config.yaml"  # the resolved config, beside Hydra's own .hydra/config.yaml
SUMMARY_FILE = "summary.json"
METRICS_FILE = "metrics.jsonl"


def atomic_save(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def write_json(obj: dict, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def read_summary(run_dir: str | Path) -> dict | None:
    path = Path(run_dir) / SUMMARY_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def load_run_config(run_dir: str | Path) -> DictConfig:
    run_dir = Path(run_dir)
    for candidate in (run_dir / CONFIG_FILE, run_dir / ".hydra" / "config.yaml"):
        if candidate.is_file():
            return OmegaConf.load(candidate)
    raise FileNotFoundError(f"{run_dir} holds no {CONFIG_FILE} or .hydra/config.yaml; is it a run directory?")


def load_run_model(run_dir: str | Path, which: str = "best", map_location: str = "cpu") -> tuple[nn.Module, DictConfig]:
    """Rebuild a trained model from its run directory (`which` = best or last checkpoint)."""
    from antisym.data import task_spec
    from antisym.models import build_model

    cfg = load_run_config(run_dir)
    spec = task_spec(cfg.dataset)
    model = build_model(OmegaConf.to_container(cfg.model), spec.input_size, spec.num_classes)
    state = torch.load(Path(run_dir) / "checkpoints" / f"{which}.pt", map_location=map_location, weights_only=False)
    model.load_state_dict(state["model"])
    return model, cfg
