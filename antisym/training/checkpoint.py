"""Checkpoints: one save/load pair for the whole training state, atomic writes, damaged files named.

A checkpoint is written to a temporary file and renamed into place, so a crash never leaves a half-written
`last.pt`; a file damaged some other way (a torn copy, a full disk) is reported with its path and what to do.
"""

from __future__ import annotations

import io
import logging
import pickle
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from antisym.errors import CheckpointError
from antisym.training.rundir import atomic_write_bytes

log = logging.getLogger("antisym")


def atomic_save(obj: Any, path: Path) -> None:
    """torch.save whole or not at all: the old file stays, and no temporary file is left, if writing fails.
    Serialised in memory first: torch.save to a full disk raises a RuntimeError ("unexpected pos") where a plain
    write raises the OSError (ENOSPC) that names the folder to fix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_data(path: Path | str, what_to_do: str, raw: bytes | None = None) -> Any:
    """torch.load on the CPU of tensors and plain containers only, or one CheckpointError naming the file and
    `what_to_do`. weights_only: a record's .pt files are data, and records travel between machines, so a pickle that
    would import or call anything is refused before any of it runs. `raw`: the file's bytes, read elsewhere (a
    committed file), `path` naming it."""
    try:
        return torch.load(path if raw is None else io.BytesIO(raw), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path} does not exist. {what_to_do}") from None
    except pickle.UnpicklingError as err:
        refused = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        if refused is None:  # not a forbidden object: damaged bytes, named below like any other damage
            raise CheckpointError(
                f"{path} cannot be read (UnpicklingError); it is truncated or damaged. {what_to_do}"
            ) from None
        raise CheckpointError(
            f"{path} holds more than tensors and plain containers: loading it would call {refused.group(1)}. This "
            "suite never writes such a file, so it was not loaded. If you did not make it, delete it; otherwise "
            f"re-save its tensors with torch.save. {what_to_do}"
        ) from None
    except Exception as err:  # torch.load raises many types on damaged bytes (zip, pickle, EOF, overflow, ...)
        raise CheckpointError(
            f"{path} cannot be read ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else 'empty'}); "
            f"it is truncated or damaged. {what_to_do}"
        ) from None


def load_checkpoint(path: Path | str, what_to_do: str, raw: bytes | None = None) -> dict[str, Any]:
    """A checkpoint (`load_data`), or one CheckpointError naming the file and `what_to_do`.

    CPU first: generator states must stay CPU tensors; load_state_dict moves the rest to the model's device.
    """
    state = load_data(path, what_to_do, raw)
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"{path} is not a checkpoint of this suite (no model state). {what_to_do}")
    return state


def load_permutation(path: Path, what_to_do: str) -> torch.Tensor:
    """A run's permutation.pt (`load_data`): one 1-D integer tensor that orders its pixels, or CheckpointError."""
    perm = load_data(path, what_to_do)
    if not isinstance(perm, torch.Tensor) or perm.dim() != 1 or perm.dtype != torch.long:
        what = f"a {perm.dtype} tensor of shape {tuple(perm.shape)}" if isinstance(perm, torch.Tensor) else (
            f"a {type(perm).__name__}")  # fmt: skip
        raise CheckpointError(
            f"{path} holds {what}, not the 1-D integer tensor of pixel positions the trainer writes. {what_to_do}"
        )
    return perm


def saved_device_kinds(path: Path) -> set[str]:
    """The kinds of device (cpu, cuda) a checkpoint's tensors were saved from, as torch.save records each storage's
    location: the trainer saves its tensors where it trains, so this says which kind of device trained the weights
    whatever an (editable) summary says. The file is read as `load_data` reads it."""
    kinds: set[str] = set()

    def keep(storage: Any, location: str) -> Any:
        kinds.add(location.split(":")[0])
        return storage

    torch.load(path, map_location=keep, weights_only=True)
    return kinds


def restore_noise(noise_gen: torch.Generator, saved: torch.Tensor, step: int) -> None:
    """The noise generator's state, where it was saved on this kind of device. A CUDA generator's state cannot seed
    a CPU one (nor the reverse): a run resumed on the other kind draws its noise (the padding of noise-padded
    CIFAR-10) from a new stream, seeded from the run's noise seed and the step, and says so."""
    if saved.numel() == noise_gen.get_state().numel():
        noise_gen.set_state(saved)
        return
    noise_gen.manual_seed(noise_gen.initial_seed() + step)
    log.warning(
        "the checkpoint's noise generator state comes from another kind of device than %s: from step %d the "
        "noise is a new stream (seed %d); everything else resumes exactly",
        noise_gen.device,
        step,
        noise_gen.initial_seed(),
    )


def restore_train_state(
    state: dict[str, Any], path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, sampler, noise_gen
) -> dict[str, Any]:
    """Restore the objects from a last.pt checkpoint (written by member.save_checkpoint, read from `path` by
    `load_checkpoint`); returns the rest (step, best, wall time, dates)."""
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        sampler.load_state_dict(state["sampler"])
        restore_noise(noise_gen, state["noise_gen"], state.get("step", 0))
    except (KeyError, RuntimeError, ValueError) as err:
        raise CheckpointError(
            f"{path} does not fit this run's model or optimizer ({type(err).__name__}: {str(err).splitlines()[0]}). "
            "It was written under other settings: start the run in a new directory."
        ) from None
    return {k: v for k, v in state.items() if k not in ("model", "optimizer", "sampler", "noise_gen")}
