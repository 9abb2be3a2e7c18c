"""The four sequence tasks of the paper, as datasets of ((T, m) float sequence, label).

Images stay uint8 in memory; sequences are built per batch by `SequenceTask.batch`, which the trainer calls with its
own generator so that sampling and the fresh noise of noise-padded CIFAR-10 are reproducible and resumable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from antisym.data.files import load_cifar10, load_mnist
from antisym.errors import ConfigError

TASKS = ("mnist", "pmnist", "cifar10", "noisy_cifar10")
SPLITS = ("train", "val", "test")
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
IMAGE_ROWS = 32  # noise-padded CIFAR-10 feeds one image row per step before the noise


@dataclass(frozen=True)
class TaskSpec:
    """What a model needs to know about a task."""

    seq_len: int
    input_size: int
    num_classes: int = 10


def task_spec(cfg: Mapping[str, Any]) -> TaskSpec:
    name = cfg["name"]
    if name in ("mnist", "pmnist"):
        return TaskSpec(784, 1)
    if name == "cifar10":
        return TaskSpec(1024, 3)
    if name == "noisy_cifar10":
        return TaskSpec(int(cfg.get("seq_len", 1000)), 96)
    raise ConfigError(f"dataset.name={name!r} is not a task of this suite; choose one of {', '.join(TASKS)}.")


def validate_dataset_cfg(cfg: Mapping[str, Any]) -> None:
    """Reject settings that cannot work, before any file is read."""
    spec = task_spec(cfg)
    if int(cfg.get("val_size", 0)) < 0:
        raise ConfigError(f"dataset.val_size must be >= 0, got {cfg['val_size']}.")
    if cfg["name"] == "noisy_cifar10":
        if spec.seq_len < IMAGE_ROWS:
            raise ConfigError(
                f"dataset.seq_len must be >= {IMAGE_ROWS} (the image rows come first), got {spec.seq_len}."
            )
        if cfg.get("noise", "independent") not in ("independent", "shared"):
            raise ConfigError(f"dataset.noise must be 'independent' or 'shared', got {cfg.get('noise')!r}.")
        if cfg.get("row_order", "channels") not in ("channels", "rgb"):
            raise ConfigError(f"dataset.row_order must be 'channels' or 'rgb', got {cfg.get('row_order')!r}.")


def permutation(seed: int, length: int = 784) -> Tensor:
    """The fixed pixel permutation of permuted MNIST, a pure function of its seed."""
    return torch.randperm(length, generator=torch.Generator().manual_seed(int(seed)))


def split_indices(n_train: int, val_size: int, seed: int) -> dict[str, Tensor]:
    """Hold `val_size` examples out of the training set, chosen by a seeded shuffle."""
    if val_size >= n_train:
        raise ConfigError(f"dataset.val_size={val_size} leaves no training examples out of {n_train}.")
    order = torch.randperm(n_train, generator=torch.Generator().manual_seed(int(seed)))
    return {"train": order[: n_train - val_size].sort().values, "val": order[n_train - val_size :].sort().values}


class SequenceTask(Dataset):
    """One split of a task: uint8 images, labels, and the image -> sequence transform of the task."""

    def __init__(self, cfg: Mapping[str, Any], split: str, images: Tensor, labels: Tensor, index: Tensor) -> None:
        self.cfg = dict(cfg)
        self.name = cfg["name"]
        self.split = split
        self.spec = task_spec(cfg)
        self.images = images
        self.labels = labels
        # Original position in the file, which seeds the fixed per-example noise of the evaluation splits.
        self.index = index
        self.normalize = bool(cfg.get("normalize", False))
        self.permutation = permutation(cfg.get("permutation_seed", 0)) if self.name == "pmnist" else None
        self.noise_seed = int(cfg.get("noise_seed", 0))
        self.shared_noise = None
        if self.name == "noisy_cifar10" and cfg.get("noise", "independent") == "shared":
            gen = torch.Generator().manual_seed(self.noise_seed)
            self.shared_noise = torch.randn(self.spec.seq_len - IMAGE_ROWS, 96, generator=gen)

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device: torch.device | str) -> SequenceTask:
        """Keep images, labels and noise on `device`, so a GPU run builds its batches there."""
        self.images, self.labels = self.images.to(device), self.labels.to(device)
        if self.permutation is not None:
            self.permutation = self.permutation.to(device)
        if self.shared_noise is not None:
            self.shared_noise = self.shared_noise.to(device)
        return self

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        x, y = self.batch(torch.tensor([i]))
        return x[0], int(y[0])

    def batch(self, idx: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Sequences (B, T, m) and labels (B,) of the examples at positions idx.

        `generator` draws the fresh noise of noise-padded CIFAR-10 on the training split; evaluation splits use
        noise fixed per example (seeded by its index), so every evaluation sees the same inputs.
        """
        images = self.images[idx]
        if self.name in ("mnist", "pmnist"):
            x = images.reshape(len(idx), 784, 1).float() / 255.0
            if self.normalize:
                x = (x - MNIST_MEAN) / MNIST_STD
            if self.permutation is not None:
                x = x[:, self.permutation]
        else:
            x = images.float() / 255.0  # (B, 32, 32, 3)
            if self.normalize:
                x = (x - x.new_tensor(CIFAR_MEAN)) / x.new_tensor(CIFAR_STD)
            if self.name == "cifar10":
                x = x.reshape(len(idx), 1024, 3)  # raster order, the R, G, B of one pixel per step
            else:
                x = torch.cat([self._rows(x), self._noise(idx, generator)], dim=1)
        return x, self.labels[idx]

    def _rows(self, x: Tensor) -> Tensor:
        if self.cfg.get("row_order", "channels") == "channels":
            return x.permute(0, 1, 3, 2).reshape(len(x), IMAGE_ROWS, 96)  # [R row | G row | B row], as coRNN
        return x.reshape(len(x), IMAGE_ROWS, 96)  # R, G, B of each pixel in turn

    def _noise(self, idx: Tensor, generator: torch.Generator | None) -> Tensor:
        steps = self.spec.seq_len - IMAGE_ROWS
        if self.shared_noise is not None:
            return self.shared_noise.expand(len(idx), steps, 96)
        device = self.images.device
        if self.split == "train":
            return torch.randn(len(idx), steps, 96, generator=generator, device=device)
        offset = {"val": 0, "test": 1}[self.split] << 32
        return torch.stack(
            [
                torch.randn(steps, 96, generator=torch.Generator().manual_seed(self.noise_seed + offset + int(j)))
                for j in self.index[idx.cpu()]
            ]
        ).to(device)


def build_task(dataset_cfg: Mapping[str, Any], root: str, split: str, download: bool = True) -> SequenceTask:
    """The `split` ('train', 'val' or 'test') of the task named by `dataset_cfg.name`, read from `root`."""
    validate_dataset_cfg(dataset_cfg)
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {SPLITS}, got {split!r}.")
    load = load_mnist if dataset_cfg["name"] in ("mnist", "pmnist") else load_cifar10
    images, labels = load(root, train=split != "test", download=download)
    if split == "test":
        index = torch.arange(len(labels))
    else:
        index = split_indices(len(labels), int(dataset_cfg.get("val_size", 0)), dataset_cfg.get("split_seed", 0))[split]
    return SequenceTask(dataset_cfg, split, images[index], labels[index], index)
