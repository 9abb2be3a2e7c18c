"""Tasks: pixel MNIST, permuted MNIST, pixel CIFAR-10 and noise-padded CIFAR-10 as (T, m) sequences."""

from antisym.data.files import DataError, load_cifar10, load_mnist
from antisym.data.tasks import TASKS, SequenceTask, TaskSpec, build_task, permutation, task_spec, validate_dataset_cfg

__all__ = [
    "TASKS",
    "DataError",
    "SequenceTask",
    "TaskSpec",
    "build_task",
    "load_cifar10",
    "load_mnist",
    "permutation",
    "task_spec",
    "validate_dataset_cfg",
]
