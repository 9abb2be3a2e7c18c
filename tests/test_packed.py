"""Packed sweeps: runs of one shape trained as one, each member equal to its solo run (float64, CPU) and isolated."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from antisym.config import as_container
from antisym.errors import ConfigError
from antisym.models import AblationRNN, AntisymmetricRNN, GatedAntisymmetricRNN, pack_forward
from antisym.models.cornn import CoRNNClassifier
from antisym.models.ensemble import vmap_forward
from antisym.models.lipschitz import LipschitzRNNClassifier
from antisym.training.rundir import RunLock, read_metrics
from antisym.training.runs import group_packs
from antisym.training.trainer import Job, run, run_pack
from tests.test_train import TINY, cli, compose_cfg

# float64, and (below) settings under which these tiny models train smoothly: a packed member runs vmap's batched
# matmuls, whose sums round in another order than the solo run's mm (~1e-16), and an unstable run (the 8-unit
# AntisymmetricRNN at eps=0.1 and the default lr on 784 steps) grows that ~100x per step, as any rounding change.
EXACT = ["trainer.dtype=float64", "trainer.max_steps=6", "trainer.eval_every=3", "trainer.log_every=1"]


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / "last.pt", weights_only=False)["model"]


def assert_same_run(solo: Path, packed: Path) -> None:
    """Loss curve, validation and test rows, and the weights after the last step: equal to 1e-10."""
    a, b = read_metrics(solo / "metrics.jsonl"), read_metrics(packed / "metrics.jsonl")
    assert [(r["step"], r["split"]) for r in a] == [(r["step"], r["split"]) for r in b]
    for ra, rb in zip(a, b, strict=True):
        for key in ("loss", "acc", "grad_norm", "lr", "final_acc"):
            if key in ra and ra[key] is not None:
                assert rb[key] == pytest.approx(ra[key], rel=1e-10, abs=1e-12), (ra, rb)
    wa, wb = weights(solo), weights(packed)
    assert all(torch.allclose(wa[k], wb[k], rtol=1e-10, atol=1e-12) for k in wa)
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (solo, packed))
    assert sa["test_acc"] == sb["test_acc"] and sa["params"] == sb["params"]
    assert "pack" not in sa and sb["pack"]["size"] >= 1


MEMBERS = {  # two members of one pack, differing in every key a member may vary
    "gated": (
        ["model=gated", "model.eps=0.1", "model.gamma=0.01", "model.init_std=1.0", "trainer.seed=0"],
        [
            "model=gated",
            "model.eps=0.05",
            "model.gamma=0.1",
            "model.init_std=0.5",
            "trainer.seed=3",
            "optimizer.lr=0.3",
            "trainer.grad_clip=0.05",
        ],
    ),  # fmt: skip
    "asym": (
        [
            "model=asym",
            "model.eps=0.01",
            "dataset=mnist",
            "optimizer=sgd",
            "optimizer.momentum=0.9",
            "optimizer.lr=0.02",
        ],
        [
            "model=asym",
            "model.eps=0.01",
            "dataset=pmnist",
            "dataset.permutation_seed=5",
            "optimizer=sgd",
            "optimizer.momentum=0.5",
            "optimizer.lr=0.01",
        ],
    ),  # fmt: skip
    "ablation": (
        ["model=ablation", "dataset=noisy_cifar10", "dataset.seq_len=40", "dataset.noise_seed=0"],
        ["model=ablation", "dataset=noisy_cifar10", "dataset.seq_len=40", "dataset.noise_seed=7", "trainer.seed=1"],
    ),
    "lstm": (["model=lstm", "trainer.seed=0"], ["model=lstm", "trainer.seed=1", "optimizer.lr=0.2"]),
    "cornn": (
        ["model=cornn", "model.hidden_size=8"],
        ["model=cornn", "model.hidden_size=8", "model.dt=0.05", "model.gamma=1.3", "model.eps=8.0", "trainer.seed=2"],
    ),
    "lipschitz": (
        ["model=lipschitz", "model.scheme=rk2"],
        [
            "model=lipschitz",
            "model.scheme=rk2",
            "model.eps=0.05",
            "model.beta=0.5",
            "model.gamma_a=0.01",
            "model.gamma_w=0.02",
            "model.init_std=0.2",
            "trainer.seed=1",
        ],
    ),
}


@pytest.mark.parametrize("kind", list(MEMBERS))
def test_packed_members_equal_their_solo_runs(tiny_data, tmp_path, kind):
    root, _ = tiny_data
    cfgs = [compose_cfg(root, *EXACT, *o) for o in MEMBERS[kind]]
    for i, cfg in enumerate(cfgs):
        run(cfg, tmp_path / f"solo{i}")
    results = run_pack([Job(as_container(c), tmp_path / f"pack{i}") for i, c in enumerate(cfgs)], pack_id="t")
    assert [r["status"] for r in results] == ["completed", "completed"]
    for i in range(2):
        assert_same_run(tmp_path / f"solo{i}", tmp_path / f"pack{i}")


def test_packed_launcher_through_the_cli_equals_solo_runs(tiny_data, tmp_path):
    root, _ = tiny_data
    sweep = ["-m", *TINY, *EXACT, "model.eps=0.01", f"data.root={root}", "dataset=mnist,pmnist",
             "hydra.sweep.subdir=${dataset.name}"]  # fmt: skip
    packed = cli(
        *sweep, f"hydra.sweep.dir={tmp_path / 'packed'}", "hydra/launcher=packed", "hydra.launcher.pack_size=4"
    )
    assert packed.returncode == 0, packed.stderr[-3000:]
    assert "2 runs in 1 packs (pack_size 4)" in packed.stdout + packed.stderr  # the grouping, said before training
    solo = cli(*sweep, f"hydra.sweep.dir={tmp_path / 'solo'}")
    assert solo.returncode == 0, solo.stderr[-3000:]
    for name in ("mnist", "pmnist"):
        assert_same_run(tmp_path / "solo" / name, tmp_path / "packed" / name)
        assert (tmp_path / "packed" / name / "overrides.yaml").read_text() == (
            tmp_path / "solo" / name / "overrides.yaml"
        ).read_text()
    assert (tmp_path / "packed" / "pmnist" / "permutation.pt").is_file()


def test_a_diverging_or_invalid_member_stops_alone(tiny_data, tmp_path):
    root, _ = tiny_data
    good = compose_cfg(root, *EXACT, "model=ablation")
    bad = compose_cfg(root, *EXACT, "model=ablation", "model.eps=1e300")  # overflows at step 1
    invalid = compose_cfg(root, *EXACT, "model=ablation", "optimizer.lr=-1")
    run(good, tmp_path / "solo")
    jobs = [Job(as_container(c), tmp_path / f"m{i}") for i, c in enumerate((bad, good, invalid))]
    diverged, completed, failed = run_pack(jobs, pack_id="t")
    assert diverged["status"] == "diverged" and diverged["diverged_at_step"] == 1
    assert completed["status"] == "completed"
    assert isinstance(failed, ValueError) and "optimizer.lr" in str(failed)
    assert not (tmp_path / "m2").exists()  # refused: nothing written
    assert_same_run(tmp_path / "solo", tmp_path / "m1")


def test_a_locked_member_is_refused_alone(tiny_data, tmp_path):
    root, _ = tiny_data
    cfgs = [compose_cfg(root, *EXACT, f"trainer.seed={s}") for s in (0, 1)]
    with RunLock(tmp_path / "m0"):
        first, second = run_pack([Job(as_container(c), tmp_path / f"m{i}") for i, c in enumerate(cfgs)])
    assert "being written by another process" in str(first) and second["status"] == "completed"


def test_stopped_pack_resumes_every_member_and_skips_the_completed(tiny_data, tmp_path):
    root, _ = tiny_data
    common = [*EXACT, "model.eps=0.01", "trainer.resume=true", "trainer.skip_completed=true"]

    def job(run_dir: Path, *o: str) -> Job:
        return Job(as_container(compose_cfg(root, *common, *o)), run_dir)

    for s in (0, 1):
        run(compose_cfg(root, *common, "trainer.max_steps=12", f"trainer.seed={s}"), tmp_path / f"solo{s}")
    run_pack([job(tmp_path / "done", "trainer.seed=2")])  # a member that completed before
    done_before = (tmp_path / "done" / "summary.json").read_text()
    members = [(tmp_path / f"m{s}", f"trainer.seed={s}") for s in (0, 1)]
    run_pack([job(d, o, "trainer.max_steps=5") for d, o in members])  # each member's last.pt at step 5
    stopped = run_pack([job(d, o, "trainer.max_steps=12", "trainer.time_limit_s=1e-9") for d, o in members])
    assert [(r["status"], r["steps"]) for r in stopped] == [("interrupted", 5), ("interrupted", 5)]
    results = run_pack(
        [*(job(d, o, "trainer.max_steps=12") for d, o in members), job(tmp_path / "done", "trainer.seed=2")]
    )
    assert [r["status"] for r in results] == ["completed"] * 3 and results[0]["segments"][-1]["from_step"] == 5
    assert (tmp_path / "done" / "summary.json").read_text() == done_before  # completed: not retrained
    for s in (0, 1):
        wa, wb = weights(tmp_path / f"solo{s}"), weights(tmp_path / f"m{s}")
        assert all(torch.allclose(wa[k], wb[k], rtol=1e-10, atol=1e-12) for k in wa)


def test_grouping_separates_what_cannot_share_a_pack(tiny_data):
    root, _ = tiny_data

    def cfg(*o: str) -> dict:
        return as_container(compose_cfg(root, *o))

    cfgs = [
        cfg("dataset=mnist"),
        cfg("dataset=pmnist", "model.eps=0.3", "optimizer.lr=0.2", "trainer.seed=4"),  # same pack
        cfg("dataset=mnist", "model.hidden_size=9"),  # another width
        cfg("dataset=mnist", "trainer.batch_size=4"),  # another batch
        cfg("model=lstm"),  # no packed_forward: alone
        cfg("model=lstm", "trainer.seed=1"),
        cfg("model=gated"),  # another class
        cfg("dataset=mnist", "trainer.seed=9"),  # third of the first kind: over pack_size 2
        cfg("dataset=mnist", "model.impl=fused"),  # impl is not a member setting
        cfg("model=cornn", "model.scheme=explicit"),
        cfg("model=cornn", "model.scheme=explicit", "model.dt=0.05", "model.eps=3.0"),  # member settings: same pack
        cfg("model=cornn"),  # another scheme
    ]
    assert group_packs(cfgs, pack_size=2) == [[0, 1], [7], [2], [3], [4], [5], [6], [8], [9, 10], [11]]
    assert group_packs(cfgs, pack_size=1) == [[i] for i in (0, 1, 7, 2, 3, 4, 5, 6, 8, 9, 10, 11)]


PACKABLE = {  # two members per class, differing in every setting the class lists in member_settings
    AntisymmetricRNN: ({"eps": 0.1, "gamma": 0.01, "init_std": 1.0}, {"eps": 0.03, "gamma": 0.2, "init_std": 2.0}),
    GatedAntisymmetricRNN: ({"eps": 0.1, "gamma": 0.01, "init_std": 1.0}, {"eps": 0.3, "gamma": 0.1, "init_std": 0.5}),
    AblationRNN: ({"eps": 0.1, "gamma": 0.01, "init_std": 1.0}, {"eps": 0.05, "gamma": 0.3, "init_std": 3.0}),
    CoRNNClassifier: ({}, {"dt": 0.07, "gamma": 0.4, "eps": 8.0}),
    LipschitzRNNClassifier: ({}, {"eps": 0.05, "beta": 0.5, "gamma_a": 0.01, "gamma_w": 0.1, "init_std": 0.3}),
}


@pytest.mark.parametrize("cls", list(PACKABLE), ids=lambda c: c.__name__)
def test_a_packed_forward_and_backward_equal_the_solo_ones(cls):
    """pack_forward (torch.func vmap, each member's settings its own) against each member's own forward and
    backward, float64, 200 steps: logits and every parameter's gradient to rounding."""
    settings = PACKABLE[cls]
    assert set(settings[1]) == set(cls.member_settings)
    torch.manual_seed(0)
    models = [cls(input_size=3, hidden_size=7, num_classes=4, **s).double() for s in settings]
    xs = [torch.randn(5, 200, 3, dtype=torch.float64) for _ in models]
    ys = [torch.randint(0, 4, (5,)) for _ in models]
    solo = []
    for model, x, y in zip(models, xs, ys, strict=True):
        out = model(x)
        torch.nn.functional.cross_entropy(out, y).backward()
        solo.append((out.detach(), [p.grad.clone() for p in model.parameters()]))
        model.zero_grad()
    packed = pack_forward(models, xs)
    sum(torch.nn.functional.cross_entropy(o, y) for o, y in zip(packed, ys, strict=True)).backward()
    for model, out, (out_solo, grads) in zip(models, packed, solo, strict=True):
        assert torch.allclose(out, out_solo, rtol=1e-12, atol=1e-14)
        for p, g in zip(model.parameters(), grads, strict=True):
            assert torch.allclose(p.grad, g, rtol=1e-11, atol=1e-13 * g.abs().max())
    assert not torch.allclose(packed[0], packed[1])


def test_reproduction_pipeline_with_the_packed_launcher(tiny_data, tmp_path):
    """make reproduce-table LAUNCHER=packed: the row's seeds train as one pack into the pipeline's run directories."""
    from antisym.results import reproduce
    from tests.test_results import quick_driver_args

    root, _ = tiny_data
    args = quick_driver_args(root, tmp_path, "--launcher", "packed", overrides=["hydra.launcher.pack_size=2"])
    assert reproduce.main(args) == 0
    runs = tmp_path / "logs" / "quick" / "reproduce" / "table1"
    summaries = [json.loads((runs / f"asym_mnist_seed{s}" / "summary.json").read_text()) for s in (0, 1)]
    assert [s["status"] for s in summaries] == ["completed", "completed"]
    assert summaries[0]["pack"]["id"] == summaries[1]["pack"]["id"] and summaries[1]["pack"]["size"] == 2


def test_one_submitit_job_per_pack(tiny_data, tmp_path):
    """backend=submitit_local takes the path of backend=submitit_slurm (one job per pack) without a cluster."""
    pytest.importorskip("submitit")
    root, _ = tiny_data
    proc = cli(
        "-m", *TINY, f"data.root={root}", "trainer.seed=0,1", f"hydra.sweep.dir={tmp_path}",
        "hydra.sweep.subdir=seed${trainer.seed}", "hydra/launcher=packed", "hydra.launcher.backend=submitit_local",
        "hydra.launcher.pack_size=2", "+hydra.launcher.submitit.timeout_min=5",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    packs = [json.loads((tmp_path / f"seed{s}" / "summary.json").read_text())["pack"] for s in (0, 1)]
    assert packs[0]["id"] == packs[1]["id"] and [p["member"] for p in packs] == [0, 1]
    assert len(list((tmp_path / ".submitit").glob("*/*_log.out"))) == 1  # one job for the pack of two
    slurm = cli("hydra/launcher=packed_slurm", "hydra.launcher.submitit.slurm_partition=gpu", "--cfg", "hydra",
                "-p", "hydra.launcher")  # fmt: skip
    assert (
        slurm.returncode == 0 and "backend: submitit_slurm" in slurm.stdout and "slurm_partition: gpu" in slurm.stdout
    )
    assert (
        "pack_size: auto" in slurm.stdout and "gpus_per_node: 1" in slurm.stdout
    )  # so: packs of AUTO_PACK_SIZE["gpu"]


class FloatSetting(torch.nn.Module):
    """A cell that lists a setting as member-variable but keeps it as a Python float: vmap cannot vary it."""

    member_settings = ("scale",)
    packed_forward = staticmethod(vmap_forward)

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = scale
        self.readout = torch.nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * self.readout(x[:, -1])


def test_a_member_setting_vmap_cannot_vary_is_refused():
    x = torch.randn(2, 4, 3)
    assert len(pack_forward([FloatSetting(1.0), FloatSetting(1.0)], [x, x])) == 2  # equal: nothing to vary
    with pytest.raises(ConfigError, match="'scale'.*register_settings"):
        pack_forward([FloatSetting(1.0), FloatSetting(2.0)], [x, x])


def test_auto_pack_size_is_the_measured_best_for_the_device_the_runs_train_on():
    """pack_size=auto: 1 for CPU runs (packing does not pay there), the GPU size where every run trains on a GPU."""
    from hydra_plugins.antisym_packed_launcher.packed_launcher import AUTO_PACK_SIZE, resolve_pack_size

    def cfgs(*devices: str) -> list[dict]:
        return [{"trainer": {"device": d}} for d in devices]

    gpu, cpu = AUTO_PACK_SIZE["gpu"], AUTO_PACK_SIZE["cpu"]
    assert resolve_pack_size(4, cfgs("cpu"), "local", {}) == (4, "")  # given: as given, whatever the device
    assert resolve_pack_size("auto", cfgs("cuda", "cuda:1"), "local", {})[0] == gpu
    assert resolve_pack_size("auto", cfgs("cuda", "cpu"), "local", {})[0] == cpu  # one CPU run: packs of the CPU
    here = gpu if torch.cuda.is_available() else cpu
    assert resolve_pack_size("auto", cfgs("auto"), "local", {}) == (
        here,
        f": auto, runs on the {'GPU' if here == gpu else 'CPU'}",
    )
    # A cluster's login node has no GPU; the jobs' request decides.
    assert resolve_pack_size("auto", cfgs("auto"), "submitit_slurm", {"gpus_per_node": 1})[0] == gpu
    assert resolve_pack_size("auto", cfgs("auto"), "submitit_slurm", {})[0] == cpu
