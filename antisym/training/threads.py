"""How torch computes on the CPU: how many cores this process may use, how many threads a run takes of them, and
whether subnormal floats are flushed to zero.

A recurrence over 1,000 steps runs ~10 small ops a step; with more threads than free cores every op waits at a barrier
for a thread another process has pushed off its core, and an iteration runs 10x slower or worse
(results/bench_threads_cpu.md). So the count is set once, before the first op, from what this process may really use.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from antisym.errors import ConfigError

log = logging.getLogger("antisym")


def _cgroup_quota(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """The CPU quota of this process's cgroup in cores (cgroup v2 cpu.max, or v1 cfs quota / period), None if none."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None if quota <= 0 or period <= 0 else quota / period


def available_cores() -> int:
    """The cores this process may run on: its CPU affinity (SLURM's cpus-per-task, taskset), capped by any cgroup
    CPU quota (a container's --cpus)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = _cgroup_quota()
    if quota is not None:
        cores = min(cores, max(1, math.floor(quota)))
    return max(1, cores)


def runnable_elsewhere(samples: int = 5, interval_s: float = 0.01) -> int | None:
    """Processes of others running on the CPUs now (the median over a few samples of /proc/loadavg's runnable
    count, less this one); None where the kernel does not say (not Linux)."""
    counts = []
    for _ in range(samples):
        try:
            running = Path("/proc/loadavg").read_text().split()[3].split("/")[0]
        except (OSError, IndexError):
            return None
        counts.append(int(running) - 1)
        time.sleep(interval_s)
    return max(0, sorted(counts)[len(counts) // 2])


def auto_threads(beside: int = 1) -> int:
    """trainer.threads=0: OMP_NUM_THREADS where a launcher (Hydra's joblib workers) or the user set it; else the
    available cores shared among the `beside` runs launched in this process side by side, and no more than the
    cores idle as the run starts: one thread more than a free core costs 2.3x, one thread fewer than the cores at
    most 1.13x (results/bench_threads_cpu.md)."""
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    share = available_cores() // max(1, beside)
    busy = runnable_elsewhere()
    idle = available_cores() - busy if busy is not None else share
    return max(1, min(share, idle))


def apply_threads(threads: int, beside: int = 1) -> int:
    """Set torch's intra-op threads (0: auto_threads) and return the count. Process-wide, so packs trained side by
    side share it; the inter-op pool is left as it is (a run's ops are a chain, it has nothing to overlap)."""
    if threads < 0:
        raise ConfigError(f"trainer.threads must be >= 0 (0: auto, the available cores), got {threads}.")
    n = threads or auto_threads(beside)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


@contextmanager
def flushed_denormals(on: bool) -> Iterator[None]:
    """While training, compute subnormal floats as 0 on the CPU (x86 FTZ/DAZ; GPUs are not affected), then return to
    torch's default. As the LSTM's gradient vanishes through 1,000 steps its backward computes on subnormals, which
    x86 takes a slow path for: flushing made the noise-padded LSTM iteration 7.6x faster and left the
    AntisymmetricRNN, whose gradient does not vanish, unchanged (results/bench_denormal_lstm_cpu.md,
    results/bench_denormal_cpu.md)."""
    if on:
        done = torch.set_flush_denormal(True)
        log.info("trainer.flush_denormal=true: subnormal floats %s", "read as 0" if done else "kept (this CPU cannot)")
    try:
        yield
    finally:
        if on:
            torch.set_flush_denormal(False)
