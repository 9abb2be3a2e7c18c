"""When training stops: the stop policy the loop asks at every step boundary (completed, signals, the time limit)
and after every forward pass (divergence), each in a named function."""

from __future__ import annotations

import logging
import math
import signal
import time
from contextlib import contextmanager

from antisym.training.member import Member, save_checkpoint
from antisym.training.rundir import Status

log = logging.getLogger("antisym")


class StopRequest:
    """SIGINT / SIGTERM set a flag that the loop reads between steps, so the run stops at a step boundary with a
    consistent checkpoint. A second Ctrl-C stops at once (no checkpoint)."""

    def __init__(self) -> None:
        self.reason: str | None = None

    def _handle(self, signum: int, frame: object) -> None:
        if self.reason is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.reason = signal.Signals(signum).name
        log.warning("%s received: stopping after this step (Ctrl-C again to stop at once)", self.reason)

    @contextmanager
    def installed(self):
        previous = {}
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, self._handle)
        except ValueError:  # not the main thread (a launcher's worker thread): signals stay as they were
            pass
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def still_training(members: list[Member], stop: StopRequest, started: float) -> list[Member]:
    """The members to step next, asked at each step boundary (the first included): a member at its max_steps has
    completed; on a signal, or once trainer.time_limit_s is spent (the smallest of the members'), every member still
    training checkpoints as interrupted and none is stepped again."""
    active = [m for m in members if m.status is None]
    for m in active:
        if m.step >= m.trainer.max_steps:
            m.status = Status.COMPLETED
    limit = min((m.trainer.time_limit_s for m in active if m.trainer.time_limit_s), default=0.0)
    if stop.reason is None and limit and time.monotonic() - started > limit:
        stop.reason = "time_limit"
    active = [m for m in active if m.status is None]
    if stop.reason is None:
        return active
    for m in active:
        m.status = Status.INTERRUPTED
        m.summary["stop_reason"] = stop.reason
        save_checkpoint(m)
    return []


def diverged(m: Member, loss: float, grad_norm: float) -> bool:
    """A non-finite loss or gradient norm stops the member before its optimizer steps: the parameters and the
    checkpoints written so far stay finite, and the record says at which step and why."""
    if math.isfinite(loss) and math.isfinite(grad_norm):
        return False
    m.status = Status.DIVERGED
    what = "loss" if not math.isfinite(loss) else "gradient norm"
    m.summary.update(diverged_at_step=m.step + 1, diverged_reason=f"non-finite {what}")
    kept = f"checkpoints up to step {m.best['step']} are kept" if m.best["step"] >= 0 else "no checkpoint yet"
    log.warning("%s: non-finite %s (loss %s, gradient norm %s) at step %d: stopping; %s.",
                m.run_dir, what, loss, grad_norm, m.step + 1, kept)  # fmt: skip
    return True
