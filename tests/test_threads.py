"""trainer.threads: the cores a process may use (affinity, cgroup quota), the auto rule, and what is refused; and
trainer.flush_denormal's scope."""

from __future__ import annotations

import os

import pytest
import torch

from antisym.errors import ConfigError
from antisym.training import threads as threads_mod
from antisym.training.threads import _cgroup_quota, apply_threads, auto_threads, available_cores, flushed_denormals


def test_cgroup_quota_v2_and_v1(tmp_path):
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert _cgroup_quota(tmp_path) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert _cgroup_quota(tmp_path) is None
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("300000\n")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert _cgroup_quota(v1) == 3.0
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")  # v1's "no quota"
    assert _cgroup_quota(v1) is None
    assert _cgroup_quota(tmp_path / "absent") is None


def test_available_cores_is_the_affinity_capped_by_the_quota(monkeypatch):
    affinity = len(os.sched_getaffinity(0))
    monkeypatch.setattr(threads_mod, "_cgroup_quota", lambda: None)
    assert available_cores() == affinity
    monkeypatch.setattr(threads_mod, "_cgroup_quota", lambda: 0.5)  # half a core: still one thread
    assert available_cores() == 1
    monkeypatch.setattr(threads_mod, "_cgroup_quota", lambda: affinity + 7.0)
    assert available_cores() == affinity


def test_auto_threads_shares_the_idle_cores_and_honours_omp_num_threads(monkeypatch):
    monkeypatch.setattr(threads_mod, "available_cores", lambda: 8)
    monkeypatch.setattr(threads_mod, "runnable_elsewhere", lambda: 0)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert auto_threads() == 8 and auto_threads(beside=3) == 2 and auto_threads(beside=16) == 1
    monkeypatch.setattr(threads_mod, "runnable_elsewhere", lambda: 5)  # others run on 5 of the 8 cores
    assert auto_threads() == 3 and auto_threads(beside=4) == 2
    monkeypatch.setattr(threads_mod, "runnable_elsewhere", lambda: 12)
    assert auto_threads() == 1
    monkeypatch.setattr(threads_mod, "runnable_elsewhere", lambda: None)  # no /proc: the share alone
    assert auto_threads(beside=2) == 4
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # a launcher's share for its worker (Hydra's joblib), or the user's
    assert auto_threads(beside=2) == 3


def test_apply_threads_sets_torch_and_refuses_negative_counts():
    before = torch.get_num_threads()
    try:
        assert apply_threads(1) == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ConfigError, match="trainer.threads must be >= 0"):
        apply_threads(-1)


def test_runnable_elsewhere_reads_the_kernels_count():
    busy = threads_mod.runnable_elsewhere(samples=3, interval_s=0)
    assert busy is None or busy >= 0


def test_subnormals_are_flushed_only_while_asked():
    subnormal = torch.tensor([1e-39])  # below float32's smallest normal, 1.18e-38
    if not torch.set_flush_denormal(False):
        pytest.skip("this CPU cannot flush subnormal floats")
    with flushed_denormals(True):
        assert (subnormal * 1.0).item() == 0.0
    assert (subnormal * 1.0).item() == pytest.approx(1e-39, rel=1e-3)  # torch's default again
    with flushed_denormals(False):
        assert (subnormal * 1.0).item() == pytest.approx(1e-39, rel=1e-3)
