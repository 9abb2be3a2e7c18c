"""Packing as a layer around the loop: the members of a pack (one shape, one device) take their forward passes as
one batched recurrence and one backward; each member's optimizer then steps on its own gradient. A solo run is a
pack of one. A member whose step diverges leaves the pack before its optimizer steps; the others go on."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from antisym.models import pack_forward
from antisym.training.devices import DTYPES
from antisym.training.member import Member
from antisym.training.optim import lr_factor
from antisym.training.stopping import diverged


@dataclass
class StepOut:
    """One member's forward and backward: its logits and labels (the training row's accuracy), loss, gradient norm."""

    logits: Tensor
    y: Tensor
    loss: float
    grad_norm: float


def step(active: list[Member]) -> list[tuple[Member, StepOut]]:
    """Every member's batch at its own learning rate, the forward passes as one pack, one backward (members'
    parameters are disjoint: each gets its own gradient), each gradient's norm measured (and clipped where
    trainer.grad_clip says). Returns the members whose loss and norm are finite, with their outputs; the losses and
    norms come to the host in one transfer (one sync per member would idle a GPU between)."""
    xs, ys = [], []
    for m in active:
        for group, base in zip(m.optimizer.param_groups, m.base_lrs, strict=True):
            group["lr"] = base * lr_factor(m.trainer, m.step)
        x, y = m.tasks["train"].batch(m.sampler.next(), m.noise_gen)
        xs.append(x.to(m.device, DTYPES[m.trainer.dtype]))
        ys.append(y.to(m.device))
    logits = pack_forward([m.model for m in active], xs)
    losses = torch.stack([F.cross_entropy(out, y) for out, y in zip(logits, ys, strict=True)])
    for m in active:
        m.optimizer.zero_grad(set_to_none=True)
    losses.sum().backward()
    # clip_grad_norm_ with an infinite bound only measures; the norm is logged and checked either way.
    norms = [nn.utils.clip_grad_norm_(m.model.parameters(), m.trainer.grad_clip or math.inf) for m in active]
    host = torch.stack([losses.detach(), torch.stack(norms).to(losses.dtype)]).tolist()
    outs = [StepOut(*row) for row in zip(logits, ys, *host, strict=True)]
    return [(m, out) for m, out in zip(active, outs, strict=True) if not diverged(m, out.loss, out.grad_norm)]
