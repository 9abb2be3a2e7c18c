"""Tasks: pixel MNIST, permuted MNIST, pixel CIFAR-10 and noise-padded CIFAR-10 as (T, m) sequences."""

from antisym.data.files import DataError, load_cifar10, load_mnist
from antisym.data.tasks import TASKS, SequenceTask, Task, TaskSpec, build_task, permutation, task_config, task_spec

__all__ = [
    "TASKS",
    "DataError",
    "SequenceTask",
    "Task",
    "TaskSpec",
    "build_task",
    "load_cifar10",
    "load_mnist",
    "permutation",
    "task_config",
    "task_spec",
]
