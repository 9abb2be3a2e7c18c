"""Figure 2: eigenvalue moduli of the end-to-end Jacobian dh_T/dh_0 against sequence length T.

Two sources of models:
- `init_points`: models from `build_model` at initialisation, one per gamma plus an LSTM (runs on a CPU).
- `sweep_points`: trained checkpoints found under a sweep directory (run folders with `config.yaml` and
  `checkpoints/best.pt`), loaded with `antisym.training.rundir.load_run_model`.

Inputs are noise-padded CIFAR-10 test images: the 32 image rows (96 features each), then T - 32 steps of N(0, 1)
noise. Without CIFAR-10 on disk, synthetic inputs of the same shape are used and the figure says so.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import Tensor

from antisym.analysis.style import figure_style
from antisym.data import build_task
from antisym.models import build_model
from antisym.models.jacobian import eigen_moduli, end_to_end_jacobian
from antisym.provenance import REPO_ROOT
from antisym.training.rundir import BEST_CHECKPOINT, SUPERSEDED, RunDir

PAPER_GAMMAS = (0.001, 0.01, 0.1, 1.0, 5.0, 10.0)
PAPER_LENGTHS = (100, 200, 400, 800)
IMAGE_ROWS, ROW_FEATURES, NUM_CLASSES = 32, 96, 10
MODEL_ORDER = {"asym": 0, "gated": 1, "ablation": 2, "lstm": 3}
MODEL_LABEL = {"asym": "AntisymmetricRNN", "gated": "gated AntisymmetricRNN", "ablation": "ablation model"}


@dataclass
class Point:
    """One marker of Figure 2: eigenvalue-modulus statistics of one series at one length T."""

    series: str
    order: tuple
    seq_len: int
    mean: float
    std: float
    min: float
    max: float
    count: int
    runs: list[str] = field(default_factory=list)


def series_of(model_cfg: Mapping[str, Any]) -> tuple[str, tuple]:
    """Legend label and sort key of a model config: one series per (model, gamma); the LSTM is one series."""
    name = str(model_cfg["name"])
    if name == "lstm":
        return "LSTM", (MODEL_ORDER["lstm"], 0.0)
    gamma = float(model_cfg["gamma"])
    return f"{MODEL_LABEL.get(name, name)}, γ = {gamma:g}", (MODEL_ORDER.get(name, 9), gamma)


def point_from_moduli(series: str, order: tuple, seq_len: int, moduli: Tensor, runs: Sequence[str] = ()) -> Point:
    m = moduli.reshape(-1).double()
    return Point(series, order, int(seq_len), float(m.mean()), float(m.std(correction=0)), float(m.min()),
                 float(m.max()), int(m.numel()), list(runs))  # fmt: skip


# ----------------------------------------------------------------------------------------------------------- inputs
def cifar_test_file(root: str | Path | None) -> Path | None:
    if not root:
        return None
    f = Path(root) / "cifar-10-batches-py" / "test_batch"
    return f if f.is_file() else None


def _pad_with_noise(rows: Tensor, seq_len: int, seed: int) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(rows.shape[0], max(seq_len - IMAGE_ROWS, 0), ROW_FEATURES, generator=gen)
    return torch.cat([rows, noise], dim=1)[:, :seq_len]


def repo_dataset_cfg(name: str = "noisy_cifar10") -> dict[str, Any]:
    """The training defaults of conf/dataset/<name>.yaml, composed by Hydra as train.py would."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"dataset={name}"])
    return OmegaConf.to_container(cfg.dataset, resolve=True)


def noisy_cifar_inputs(
    seq_len: int,
    batch: int,
    data_root: str | Path | None,
    *,
    seed: int = 0,
    dataset_cfg: Mapping[str, Any] | None = None,
) -> tuple[Tensor, str]:
    """(batch, seq_len, 96) noise-padded CIFAR-10 test inputs and a sentence saying where they came from.

    Built by `antisym.data.build_task` (so the features match training); without CIFAR-10, synthetic rows
    (uniform [0, 1]) plus N(0, 1) noise, labelled as such.
    """
    if cifar_test_file(data_root) is None:
        gen = torch.Generator().manual_seed(seed + 1)
        rows = torch.rand(batch, IMAGE_ROWS, ROW_FEATURES, generator=gen)
        return _pad_with_noise(rows, seq_len, seed), "SYNTHETIC inputs (CIFAR-10 not found): U(0,1) rows + N(0,1) noise"
    cfg = {**(dict(dataset_cfg) if dataset_cfg is not None else repo_dataset_cfg()), "seq_len": int(seq_len)}
    # Only the first `batch` test images are used, so a partial copy of the test file is as good as the whole.
    test = build_task(cfg, str(data_root), "test", download=False, allow_subset=True)
    x = test.batch(torch.arange(batch))[0].float()
    return x, f"CIFAR-10 test images (first {batch}) via antisym.data.build_task, noise-padded to T"


# ------------------------------------------------------------------------------------------------- at initialisation
def init_points(
    gammas: Iterable[float] = PAPER_GAMMAS,
    lengths: Iterable[int] = PAPER_LENGTHS,
    *,
    model: str = "asym",
    hidden: int = 256,
    lstm_hidden: int | None = 128,
    eps: float = 0.01,
    init_std: float = 1.0,
    batch: int = 8,
    seed: int = 0,
    data_root: str | Path | None = None,
    device: str = "cpu",
    dtype: torch.dtype = torch.float64,
    log: Callable[[str], None] = print,
) -> tuple[list[Point], list[str]]:
    """Figure 2 for untrained models (same seed for every gamma, so only gamma differs); lstm_hidden=None drops the
    LSTM. Returns the points and the input-source sentences."""
    cfgs = [{"name": model, "hidden_size": hidden, "eps": eps, "gamma": float(g), "init_std": init_std} for g in gammas]
    if lstm_hidden:
        cfgs.append({"name": "lstm", "hidden_size": lstm_hidden, "init_std": init_std})
    points, sources = [], []
    for seq_len in lengths:
        x, source = noisy_cifar_inputs(seq_len, batch, data_root, seed=seed)
        sources.append(source)
        for cfg in cfgs:
            torch.manual_seed(seed)
            net = build_model(cfg, ROW_FEATURES, NUM_CLASSES).to(device)
            mod = eigen_moduli(end_to_end_jacobian(net, x.to(device), dtype=dtype))
            label, order = series_of(cfg)
            points.append(point_from_moduli(label, order, seq_len, mod))
            log(f"T={seq_len:4d}  {label:40s} mean {points[-1].mean:.3e}  std {points[-1].std:.3e}")
    return points, sorted(set(sources))


# ------------------------------------------------------------------------------------------------ from checkpoints
def find_runs(sweep_dir: str | Path) -> list[Path]:
    """Run folders under `sweep_dir` (itself included) that hold their config (`config.yaml`, or an older run's
    `.hydra/config.yaml`) and `checkpoints/best.pt`; superseded runs are not among them."""
    root = Path(sweep_dir)
    best = sorted(p.parent.parent for p in root.glob(f"**/{BEST_CHECKPOINT}") if SUPERSEDED not in p.parts)
    return [r for r in best if RunDir(r).has_config()]


def sweep_points(
    sweep_dir: str | Path,
    *,
    batch: int = 8,
    seed: int = 0,
    data_root: str | Path | None = None,
    device: str = "cpu",
    dtype: torch.dtype = torch.float64,
    log: Callable[[str], None] = print,
    allow: Iterable[str] = (),
) -> tuple[list[Point], list[str]]:
    """Figure 2 from trained runs: each run at its own dataset.seq_len, runs of one (series, T) pooled. A run's
    class from outside the suite is built only where `allow` names it (antisym.trust)."""
    runs = find_runs(sweep_dir)
    if not runs:
        raise FileNotFoundError(f"no run folders with config.yaml and checkpoints/best.pt under {sweep_dir}")
    pooled: dict[tuple[str, tuple, int], list[Tensor]] = defaultdict(list)
    names: dict[tuple[str, tuple, int], list[str]] = defaultdict(list)
    sources = set()
    for run in runs:
        model, cfg = RunDir(run).model(allow=allow)
        dataset_cfg = cfg["dataset"]
        seq_len = int(dataset_cfg["seq_len"])
        x, source = noisy_cifar_inputs(seq_len, batch, data_root, seed=seed, dataset_cfg=dataset_cfg)
        sources.add(source)
        model = model.to(device).eval()
        mod = eigen_moduli(end_to_end_jacobian(model, x.to(device), dtype=dtype))
        label, order = series_of(cfg["model"])
        pooled[(label, order, seq_len)].append(mod)
        names[(label, order, seq_len)].append(str(run))
        log(f"{run}: T={seq_len} {label}: mean {float(mod.mean()):.3e}")
    points = [point_from_moduli(label, order, t, torch.cat(mods), names[(label, order, t)])
              for (label, order, t), mods in pooled.items()]  # fmt: skip
    return points, sorted(sources)


# ------------------------------------------------------------------------------------------------------- plotting
def plot_fig2(points: Sequence[Point], *, headline: str, notes: Sequence[str] = ()) -> plt.Figure:
    """Mean +- std of |lambda| on a log axis against categorical T, one series per model/gamma."""
    lengths = sorted({p.seq_len for p in points})
    series = sorted({(p.order, p.series) for p in points})
    positives = [v for p in points for v in (p.mean, p.mean - p.std) if v > 0]
    top = max([p.mean + p.std for p in points] + [1.0])
    bottom = 10.0 ** (math.floor(math.log10(min(positives + [1.0]))) - 1)
    bottom = max(bottom, 1e-300)
    asym = [s for s in series if s[0][0] != MODEL_ORDER["lstm"]]
    colors = dict(zip(asym, plt.get_cmap("viridis")(np.linspace(0.0, 0.88, max(len(asym), 1))), strict=False))
    width = 0.62
    offsets = np.linspace(-width / 2, width / 2, len(series)) if len(series) > 1 else np.zeros(1)
    clipped = False
    with figure_style():
        fig, ax = plt.subplots(figsize=(10.5, 6.2))
        jac = "$\\partial h_T / \\partial h_0$"
        ax.axhline(1.0, color="#555555", lw=1.0, ls="--", zorder=1)
        ax.text(len(lengths) - 0.55, 1.0, " |λ| = 1", va="bottom", ha="right", fontsize=8, color="#555555")
        for (key, label), off in zip(series, offsets, strict=True):
            pts = sorted((p for p in points if p.series == label), key=lambda p: p.seq_len)
            xs = np.array([lengths.index(p.seq_len) + off for p in pts])
            mean = np.array([p.mean for p in pts])
            std = np.array([p.std for p in pts])
            low_end = mean - std
            clipped |= bool((low_end <= 0).any())
            low_end = np.where(low_end > 0, low_end, bottom)
            yerr = np.vstack([mean - low_end, std])
            is_lstm = key[0] == MODEL_ORDER["lstm"]
            color = "#c0392b" if is_lstm else colors[(key, label)]
            ax.errorbar(
                xs, np.maximum(mean, bottom), yerr=yerr, label=label, color=color,
                marker="s" if is_lstm else "o", ms=6, lw=0.9, capsize=3, elinewidth=1.1, zorder=3,
            )  # fmt: skip
        ax.set_yscale("log")
        ax.set_ylim(bottom, top * 10)
        ax.set_xticks(range(len(lengths)), [str(t) for t in lengths])
        ax.set_xlim(-0.6, len(lengths) - 0.4)
        ax.set_xlabel("sequence length T  (32 CIFAR-10 image rows, then T − 32 steps of Gaussian noise)")
        ax.set_ylabel(f"eigenvalue modulus $|\\lambda|$ of {jac}\n(mean ± std over eigenvalues and examples)")
        ax.set_title(f"Eigenvalues of the end-to-end Jacobian {jac} on noise-padded CIFAR-10\n{headline}", loc="left")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), title="model", title_fontsize=9)
        lines = list(notes)
        if clipped:
            lines.append("Error bars that reach the bottom edge have mean − std ≤ 0 (not drawable on a log axis).")
        if lines:
            fig.text(0.01, 0.0, "\n".join(lines), ha="left", va="top", fontsize=7.8, color="#333333", wrap=True)
        fig.tight_layout()
    return fig


def points_table(points: Sequence[Point]) -> list[dict[str, Any]]:
    return [asdict(p) | {"order": list(p.order)} for p in sorted(points, key=lambda p: (p.order, p.seq_len))]


__all__ = [
    "PAPER_GAMMAS",
    "PAPER_LENGTHS",
    "Point",
    "find_runs",
    "init_points",
    "noisy_cifar_inputs",
    "plot_fig2",
    "points_table",
    "series_of",
    "sweep_points",
]
