"""Parity of the fused kernels, checked once per kernel version before a lease trains with model.impl=auto.

The key is the sha256 of antisym/kernels/euler.py with the torch and triton versions: a new kernel or a new compiler
is checked again. A pass is stored as a record (<records>/parity/<key>.json) and travels with the repository, so
later leases skip the check; a failure is never stored, it stops the lease before any training.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from antisym import kernels
from antisym.kernels import DEFAULT_PRECISION, fused_unsupported_reason
from antisym.provenance import device_description
from antisym.training.rundir import write_json
from campaign.gpu_check.parity import TASK_CASES, check_parity

EULER = Path(kernels.__file__).resolve().parent / "euler.py"
PARITY_DIR = "parity"


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def kernel_key() -> str:
    h = hashlib.sha256(EULER.read_bytes())
    h.update(f"torch {torch.__version__} triton {_version('triton')}".encode())
    return h.hexdigest()[:16]


def not_applicable(device: torch.device) -> str | None:
    """Why the fused kernels cannot run on this device (and model.impl=auto falls back to eager), or None."""
    return fused_unsupported_reason(device, 128, torch.float32)


def ensure_parity(
    records: Path,
    device: torch.device,
    precisions: Sequence[str] = (DEFAULT_PRECISION,),
) -> dict[str, Any]:
    """{"status": "not applicable" | "cached" | "passed" | "failed", ...}; writes the record of a new pass."""
    reason = not_applicable(device)
    if reason is not None:
        return {"status": "not applicable", "reason": reason}
    key = kernel_key()
    path = records / PARITY_DIR / f"{key}.json"
    if path.is_file():
        stored = json.loads(path.read_text())
        if stored.get("passed") and set(precisions) <= set(stored.get("precisions", [])):
            return {"status": "cached", "key": key, "path": str(path)}
    started = time.time()
    variants = [("eager", DEFAULT_PRECISION), *(("fused", p) for p in precisions)]
    result = check_parity(TASK_CASES, device, variants=variants)
    record = {
        "key": key,
        "kernel": str(EULER.relative_to(EULER.parents[2])),
        "torch": torch.__version__,
        "triton": _version("triton"),
        "device": device_description(str(device)),
        "precisions": sorted(precisions),
        "checked_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "wall_time_s": round(time.time() - started, 1),
        **result.to_dict(),
    }
    if not result.passed:
        return {"status": "failed", "key": key, "why": result.failures(), "record": record}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(record, path)
    return {"status": "passed", "key": key, "path": str(path)}
