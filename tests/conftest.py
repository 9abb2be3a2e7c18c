"""Shared fixtures: tiny data sets written in the real on-disk formats (MNIST IDX, CIFAR-10 pickled batches)."""

from __future__ import annotations

import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

# Runs the tests start train on one torch thread each (where the caller set no count): two runs compared value for
# value take the same reduction order, which trainer.threads=0 would not promise (it reads the load as it starts).
os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
TINY_SIZES = {"mnist_train": 48, "mnist_test": 16, "cifar_batch": 12, "cifar_test": 10}


def write_idx(path: Path, array: np.ndarray) -> None:
    """IDX (big-endian) as LeCun's MNIST files: magic 0x0000 08 <ndim>, then the dims, then uint8 data."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def write_cifar_batch(path: Path, images_hwc: np.ndarray, labels: np.ndarray) -> None:
    """A CIFAR-10 python batch: dict with uint8 `data` (N, 3072) as R, G, B planes, and `labels`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = images_hwc.transpose(0, 3, 1, 2).reshape(len(images_hwc), 3072).astype(np.uint8)
    entry = {
        "batch_label": path.name,
        "labels": labels.tolist(),
        "data": data,
        "filenames": [f"img_{i}.png" for i in range(len(labels))],
    }
    with open(path, "wb") as f:
        pickle.dump(entry, f)


def make_tiny_data(root: Path, seed: int = 0) -> dict[str, np.ndarray]:
    """Write tiny MNIST and CIFAR-10 under root; return the arrays for content checks."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in (("train", TINY_SIZES["mnist_train"]), ("t10k", TINY_SIZES["mnist_test"])):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = np.arange(n, dtype=np.uint8) % 10
        write_idx(root / "MNIST" / "raw" / f"{split}-images-idx3-ubyte", images)
        write_idx(root / "MNIST" / "raw" / f"{split}-labels-idx1-ubyte", labels)
        arrays[f"mnist_{split}"] = images
    cifar = root / "cifar-10-batches-py"
    train_images = []
    for i in range(1, 6):
        images = rng.integers(0, 256, size=(TINY_SIZES["cifar_batch"], 32, 32, 3), dtype=np.uint8)
        write_cifar_batch(cifar / f"data_batch_{i}", images, np.arange(len(images)) % 10)
        train_images.append(images)
    test_images = rng.integers(0, 256, size=(TINY_SIZES["cifar_test"], 32, 32, 3), dtype=np.uint8)
    write_cifar_batch(cifar / "test_batch", test_images, (np.arange(len(test_images)) + 3) % 10)
    arrays["cifar_train"] = np.concatenate(train_images)
    arrays["cifar_test"] = test_images
    return arrays


@pytest.fixture
def float64():
    """Compare in float64 so that rounding cannot hide a wrong equation; restore the default afterwards."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> tuple[Path, dict[str, np.ndarray]]:
    root = tmp_path_factory.mktemp("data")
    return root, make_tiny_data(root)


@pytest.fixture(scope="session")
def real_data_root() -> Path:
    """The real data sets, when ANTISYM_DATA points at them; tests that need them skip otherwise."""
    root = os.environ.get("ANTISYM_DATA")
    if not root or not (Path(root) / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file():
        pytest.skip("real MNIST not available (set ANTISYM_DATA to a folder with MNIST/raw/*)")
    return Path(root)


@pytest.fixture
def shipped_class(tmp_path, monkeypatch) -> tuple[str, Path]:
    """A class a record could ship beside itself: an importable module whose import leaves a marker file (the code
    that would run), exporting the AntisymmetricRNN as `Cell`. Returns its dotted path and the marker."""
    import sys
    import uuid

    module = f"shipped_{uuid.uuid4().hex[:8]}"
    folder, marker = tmp_path / "shipped", tmp_path / "shipped_ran"
    folder.mkdir()
    (folder / f"{module}.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n"
        "from antisym.models import AntisymmetricRNN as Cell\n"
    )
    monkeypatch.syspath_prepend(str(folder))
    yield f"{module}.Cell", marker
    sys.modules.pop(module, None)


# A class with the constructor and forward but no final_state: the suite must refuse it before any data is read.
NO_STATE = """
from torch import nn


class NoState(nn.Module):
    def __init__(self, input_size: int, hidden_size: int, num_classes: int, nonlinearity: str = "tanh",
                 init_std: float = 1.0) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.readout = nn.Linear(input_size, num_classes)

    def forward(self, x):
        return self.readout(x[:, -1])
"""


@pytest.fixture
def on_path(monkeypatch, tmp_path) -> Path:
    """PYTHONPATH with examples/mycell's package (and tmp_path, for broken cells) for the CLI; tmp_path is its cwd."""
    (tmp_path / "nostate.py").write_text(NO_STATE)
    paths = [str(REPO / "examples" / "mycell"), str(tmp_path), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in paths if p))
    return tmp_path
