"""Tasks: pixel MNIST, permuted MNIST, pixel CIFAR-10 and noise-padded CIFAR-10 as (T, m) sequences, and any task
a config names by `_target_` (antisym.data.tasks)."""

from antisym.data.files import DataError, load_cifar10, load_mnist
from antisym.data.tasks import (
    TASKS,
    SequenceTask,
    Task,
    TaskConfig,
    TaskSpec,
    build_task,
    make_task,
    permutation,
    task_class,
    task_config,
    task_family,
    task_files,
    task_spec,
)

__all__ = [
    "TASKS",
    "DataError",
    "SequenceTask",
    "Task",
    "TaskConfig",
    "TaskSpec",
    "build_task",
    "load_cifar10",
    "load_mnist",
    "make_task",
    "permutation",
    "task_class",
    "task_config",
    "task_family",
    "task_files",
    "task_spec",
]
