"""The paper's four sequence tasks, and any other a config names by class, as datasets of ((T, m) float sequence,
label).

A task is one `Task` subclass that declares everything the rest of the suite needs: its typed `Config` (the dataset
config group's keys, checked before any data is read), its `spec` (what a model needs to know), the `files` it reads
(the presence check and the run's data fingerprint), its pack `family`, and how its examples become sequences. The
config names its task's class by `dataset._target_`, a dotted path, as a model's does, so a new task is its class,
its YAML file and its test (conf/dataset/README.md). `TASKS` names the paper's four: records of older code name
them by `dataset.name` alone (`antisym.config.as_current` reads those as the classes the configs name now).

Images stay uint8 in memory; sequences are built per batch by `SequenceTask.batch`, which the trainer calls with its
own generator so that sampling and the fresh noise of noise-padded CIFAR-10 are reproducible and resumable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor
from torch.utils.data import Dataset

from antisym.checks import Section, check_name, import_class
from antisym.data.files import CIFAR_PATHS, MNIST_PATHS, load_cifar10, load_mnist
from antisym.errors import ConfigError

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


@dataclass(frozen=True)
class TaskConfig(Section):
    """Keys every task has (conf/dataset/*.yaml); a task's own `Config` subclasses it with its keys."""

    name: str
    _target_: str | None = None  # the task's class, where it is not one of TASKS
    # Held out of the training file for checkpoint selection. 0 is refused: the best-validation checkpoint, the
    # reported test accuracy and the tables' choice of configuration all need a validation split.
    val_size: int = 5000
    split_seed: int = 0
    normalize: bool = False

    def __post_init__(self) -> None:
        if self.val_size <= 0:
            raise ConfigError(
                f"dataset.val_size must be > 0, got {self.val_size}: the reported test accuracy is taken at the "
                "best-validation checkpoint, which needs a validation split. Use the default 5000, or any positive "
                "number smaller than the training set."
            )


@dataclass(frozen=True)
class PermutedConfig(TaskConfig):
    permutation_seed: int = 0


@dataclass(frozen=True)
class NoisyConfig(TaskConfig):
    seq_len: int = 1000
    noise: Literal["independent", "shared"] = "independent"
    noise_seed: int = 0
    row_order: Literal["channels", "rgb"] = "channels"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.seq_len < IMAGE_ROWS:
            raise ConfigError(
                f"dataset.seq_len must be >= {IMAGE_ROWS} (the image rows come first), got {self.seq_len}."
            )


class Task:
    """How one data set becomes sequences. A subclass sets `Config` (when it has keys of its own), `files`, `load`,
    `spec` and `sequences`; `family` and `to` where the defaults do not fit."""

    Config: ClassVar[type[TaskConfig]] = TaskConfig
    # Every file `load` reads, relative to data.root: checked before a run starts where nothing can be downloaded,
    # and recorded as the run's data fingerprint. () for a task that generates its examples.
    files: ClassVar[tuple[str, ...]]

    def __init__(self, cfg: TaskConfig) -> None:
        self.cfg = cfg

    def load(self, root: str, train: bool, download: bool = True, allow_subset: bool = False) -> tuple[Tensor, Tensor]:
        """(examples, labels) of the training file (train=True; the validation split is held out of it) or the test
        file: examples are whatever `sequences` turns into floats (images, positions, seeds), labels int64 in
        [0, spec.num_classes)."""
        raise NotImplementedError

    @property
    def spec(self) -> TaskSpec:
        raise NotImplementedError

    @property
    def family(self) -> str:
        """Runs whose tasks share a family and a spec may train as one pack: their examples come from the same data,
        so their splits have the same sizes and their batches the same shapes; only the values differ."""
        return self.cfg.name

    def to(self, device: torch.device | str) -> Task:
        """Move fixed tensors (a permutation, shared noise) to where batches are built."""
        return self

    def sequences(self, examples: Tensor, index: Tensor, split: str, generator: torch.Generator | None) -> Tensor:
        """(B, T, m) float sequences of `load`'s examples; `index` is each example's position in its file;
        `generator` is the trainer's (the source of any fresh randomness of the training split)."""
        raise NotImplementedError


class PixelMNIST(Task):
    """784 steps of one pixel in scanline order, scaled to [0, 1]."""

    load = staticmethod(load_mnist)
    files = MNIST_PATHS

    @property
    def spec(self) -> TaskSpec:
        return TaskSpec(784, 1)

    def sequences(self, images: Tensor, index: Tensor, split: str, generator: torch.Generator | None) -> Tensor:
        x = images.reshape(len(images), 784, 1).float() / 255.0
        return (x - MNIST_MEAN) / MNIST_STD if self.cfg.normalize else x


class PermutedMNIST(PixelMNIST):
    """Pixel MNIST under one fixed permutation, the same for train, val and test."""

    Config = PermutedConfig

    def __init__(self, cfg: PermutedConfig) -> None:
        super().__init__(cfg)
        self.permutation = permutation(cfg.permutation_seed)

    @property
    def family(self) -> str:
        return "mnist"  # packs with pixel MNIST: the identity permutation is a permutation

    def to(self, device: torch.device | str) -> Task:
        self.permutation = self.permutation.to(device)
        return self

    def sequences(self, images: Tensor, index: Tensor, split: str, generator: torch.Generator | None) -> Tensor:
        return super().sequences(images, index, split, generator)[:, self.permutation]


class PixelCIFAR10(Task):
    """1024 steps, each the R, G, B values of one pixel in raster order."""

    load = staticmethod(load_cifar10)
    files = CIFAR_PATHS

    @property
    def spec(self) -> TaskSpec:
        return TaskSpec(1024, 3)

    def scaled(self, images: Tensor) -> Tensor:
        x = images.float() / 255.0  # (B, 32, 32, 3)
        return (x - x.new_tensor(CIFAR_MEAN)) / x.new_tensor(CIFAR_STD) if self.cfg.normalize else x

    def sequences(self, images: Tensor, index: Tensor, split: str, generator: torch.Generator | None) -> Tensor:
        return self.scaled(images).reshape(len(images), 1024, 3)


class NoisyCIFAR10(PixelCIFAR10):
    """32 steps of one image row (96 features), then standard Gaussian noise up to seq_len.

    noise=independent: fresh noise per training draw from the trainer's generator, fixed per example (seeded by its
    position in the file) in val and test; noise=shared: one fixed tensor for every example, as coRNN's code.
    """

    Config = NoisyConfig

    def __init__(self, cfg: NoisyConfig) -> None:
        super().__init__(cfg)
        self.shared_noise = None
        if cfg.noise == "shared":
            gen = torch.Generator().manual_seed(cfg.noise_seed)
            self.shared_noise = torch.randn(cfg.seq_len - IMAGE_ROWS, 96, generator=gen)

    @property
    def spec(self) -> TaskSpec:
        return TaskSpec(self.cfg.seq_len, 96)

    def to(self, device: torch.device | str) -> Task:
        if self.shared_noise is not None:
            self.shared_noise = self.shared_noise.to(device)
        return self

    def sequences(self, images: Tensor, index: Tensor, split: str, generator: torch.Generator | None) -> Tensor:
        x = self.scaled(images)
        if self.cfg.row_order == "channels":
            rows = x.permute(0, 1, 3, 2).reshape(len(x), IMAGE_ROWS, 96)  # [R row | G row | B row], as coRNN
        else:
            rows = x.reshape(len(x), IMAGE_ROWS, 96)  # R, G, B of each pixel in turn
        return torch.cat([rows, self.noise(index, split, generator, images.device)], dim=1)

    def noise(self, index: Tensor, split: str, generator: torch.Generator | None, device: torch.device) -> Tensor:
        steps = self.cfg.seq_len - IMAGE_ROWS
        if self.shared_noise is not None:
            return self.shared_noise.expand(len(index), steps, 96)
        if split == "train":
            return torch.randn(len(index), steps, 96, generator=generator, device=device)
        offset = {"val": 0, "test": 1}[split] << 32
        seeds = (self.cfg.noise_seed + offset + int(j) for j in index.cpu())
        return torch.stack([torch.randn(steps, 96, generator=torch.Generator().manual_seed(s)) for s in seeds]).to(
            device
        )


TASKS: dict[str, type[Task]] = {
    "mnist": PixelMNIST,
    "pmnist": PermutedMNIST,
    "cifar10": PixelCIFAR10,
    "noisy_cifar10": NoisyCIFAR10,
}


def task_class(cfg: Mapping[str, Any] | TaskConfig) -> type[Task]:
    """The class of the task a dataset section names: its `_target_` (or, in a record of older code, one of TASKS by
    `name`)."""
    if isinstance(cfg, TaskConfig):
        target, name = cfg._target_, cfg.name
    else:
        target, name = cfg.get("_target_"), cfg.get("name")
    if target is None:
        if name not in TASKS:
            raise ConfigError(
                f"dataset.name={name!r} is not a task of this suite ({', '.join(TASKS)}) and the dataset config "
                "names no `_target_` class; set dataset=<one of them>, or give your task's class as "
                "dataset._target_=package.module.Class (conf/dataset/README.md)."
            )
        return TASKS[name]
    try:
        cls = import_class(str(target))
    except Exception as err:  # ImportError, AttributeError, or TypeError where the path names no class
        raise ConfigError(
            f"dataset._target_={target!r} cannot be imported ({type(err).__name__}: {err}). Give the full dotted "
            "path of a Task subclass (package.module.Class) and make sure its package is installed or on PYTHONPATH "
            "(a module of this repository imports when train.py runs from its root); the paper's tasks: "
            "dataset=<" + "|".join(TASKS) + ">."
        ) from None
    if not issubclass(cls, Task):
        why = "it is not a subclass of antisym.data.tasks.Task"
    elif not (isinstance(cls.Config, type) and issubclass(cls.Config, TaskConfig)):
        why = "its Config is not a subclass of antisym.data.tasks.TaskConfig"
    else:
        lacking = ["files"] * (not hasattr(cls, "files"))
        lacking += [a for a in ("load", "spec", "sequences") if getattr(cls, a) is getattr(Task, a)]
        why = f"it does not define {', '.join(lacking)}" if lacking else ""
    if why:
        raise ConfigError(
            f"dataset._target_={target} is not a task this suite can train: {why}. A task subclasses "
            "antisym.data.tasks.Task and defines files, load, spec and sequences (and Config, a TaskConfig subclass, "
            "for keys of its own); see conf/dataset/README.md."
        )
    return cls


def task_config(cfg: Mapping[str, Any] | TaskConfig) -> TaskConfig:
    """The dataset section checked against its task's Config (types, ranges, unknown keys)."""
    if isinstance(cfg, TaskConfig):
        return cfg
    cls = task_class(cfg)
    parsed = cls.Config.from_mapping("dataset", cfg)
    if parsed._target_ is not None:
        check_name("dataset.name", parsed.name)  # it names the run directory (conf/hydra/default.yaml)
        if TASKS.get(parsed.name, cls) is not cls:
            raise ConfigError(
                f"dataset.name={parsed.name} is the name of one of the paper's tasks, but dataset._target_ names "
                f"another class ({parsed._target_}). Give the task a name of its own (dataset.name=<name>): run "
                "directories and the tables tell tasks apart by it."
            )
    return parsed


def make_task(cfg: Mapping[str, Any] | TaskConfig) -> Task:
    parsed = task_config(cfg)
    return task_class(parsed)(parsed)


def task_spec(cfg: Mapping[str, Any] | TaskConfig) -> TaskSpec:
    return make_task(cfg).spec


def task_family(cfg: Mapping[str, Any] | TaskConfig) -> str:
    """The pack family of a dataset section's task (`Task.family`)."""
    return make_task(cfg).family


def task_files(cfg: Mapping[str, Any] | TaskConfig) -> tuple[str, ...]:
    """Every file a dataset section's task reads, relative to data.root (`Task.files`)."""
    return tuple(make_task(cfg).files)


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
    """One split of a task: its examples (uint8 images for the paper's), labels, and the task that turns them into
    sequences."""

    def __init__(self, task: Task, split: str, images: Tensor, labels: Tensor, index: Tensor) -> None:
        self.task = task
        self.name = task.cfg.name
        self.split = split
        self.spec = task.spec
        self.images = images
        self.labels = labels
        self.index = index  # original position in the file: seeds the fixed per-example noise of eval splits

    @property
    def permutation(self) -> Tensor | None:
        return getattr(self.task, "permutation", None)

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device: torch.device | str) -> SequenceTask:
        """Keep images, labels and the task's tensors on `device`, so a GPU run builds its batches there."""
        self.images, self.labels = self.images.to(device), self.labels.to(device)
        self.task.to(device)
        return self

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        x, y = self.batch(torch.tensor([i]))
        return x[0], int(y[0])

    def batch(self, idx: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Sequences (B, T, m) and labels (B,) of the examples at positions idx (on the CPU or the data's device).

        A CPU idx goes to a GPU without a stream sync (pinned, non-blocking): a trainer that samples on the CPU
        keeps the GPU busy while it prepares the next batches."""
        on_cpu = idx.cpu()
        here = idx if idx.device == self.labels.device else to_device_async(on_cpu, self.labels.device)
        x = self.task.sequences(self.images[here], self.index[on_cpu], self.split, generator)
        return x, self.labels[here]


def to_device_async(t: Tensor, device: torch.device) -> Tensor:
    """t copied to device; to a GPU from pinned memory without blocking (a plain copy waits for the stream)."""
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def build_task(
    dataset_cfg: Mapping[str, Any] | TaskConfig,
    root: str,
    split: str,
    download: bool = True,
    allow_subset: bool = False,
) -> SequenceTask:
    """The `split` ('train', 'val' or 'test') of the task `dataset_cfg` names, read from `root`."""
    task = make_task(dataset_cfg)
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {SPLITS}, got {split!r}.")
    images, labels = task.load(root, train=split != "test", download=download, allow_subset=allow_subset)
    if split == "test":
        index = torch.arange(len(labels))
    else:
        index = split_indices(len(labels), task.cfg.val_size, task.cfg.split_seed)[split]
    return SequenceTask(task, split, images[index], labels[index], index)
