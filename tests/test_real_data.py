"""On the real data sets (ANTISYM_DATA): the shared copies load, and a small model learns pixel MNIST."""

from __future__ import annotations

import pytest
import torch

from antisym.data import build_task, load_cifar10
from antisym.data.files import CIFAR_PATHS, MNIST_PATHS, fingerprint
from antisym.training import run
from tests.test_train import compose_cfg


def test_real_files_load_with_known_content(real_data_root):
    """Counts and first labels from ../shared/data/README.md; the CIFAR copy fails torchvision's md5 yet loads."""
    mnist = build_task({"name": "mnist", "val_size": 5000}, real_data_root, "test", download=False)
    assert len(mnist) == 10000 and mnist.labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    if not (real_data_root / "cifar-10-batches-py" / "test_batch").is_file():
        pytest.skip("real CIFAR-10 not available")
    _, labels = load_cifar10(real_data_root, train=True, download=False)  # the official counts: no allow_subset
    assert len(labels) == 50000 and labels[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
    assert torch.bincount(labels).tolist() == [5000] * 10
    train = build_task({"name": "cifar10", "val_size": 5000}, real_data_root, "train", download=False)
    assert len(train) == 45000  # 5,000 held out for validation


def test_the_shared_mnist_is_the_official_release_and_the_cifar_copy_is_not(real_data_root):
    """The uncompressed MNIST files have the official MD5s; the shared CIFAR-10 is a re-pickled copy (its batches'
    bytes differ from torchvision's MD5s while their content loads with the official counts), and says so."""
    mnist = fingerprint(real_data_root, MNIST_PATHS)
    assert all(f["official"] for f in mnist.values()) and len(mnist) == 4
    if (real_data_root / "cifar-10-batches-py" / "test_batch").is_file():
        assert not any(f["official"] for f in fingerprint(real_data_root, CIFAR_PATHS).values())


def test_a_re_pickled_copy_has_the_official_content_and_altered_examples_do_not(real_data_root, tmp_path):
    """Content, not bytes: every shared file's content is the official release's (the CIFAR-10 batches were
    re-pickled); the test batch pickled again in another protocol is still official content, and with its first
    image zeroed, or two labels swapped, it is other data, which the tables never report as a paper's row."""
    import pickle

    if not (real_data_root / "cifar-10-batches-py" / "test_batch").is_file():
        pytest.skip("real CIFAR-10 not available")
    shared = fingerprint(real_data_root, (*MNIST_PATHS, *CIFAR_PATHS))
    assert {f["content"] for f in shared.values()} == {"official"}
    with open(real_data_root / "cifar-10-batches-py" / "test_batch", "rb") as f:
        batch = pickle.load(f, encoding="bytes")
    for name, change in (("same", None), ("zeroed", "data"), ("swapped", "labels")):
        copy = dict(batch)
        if change == "data":
            copy[b"data"] = batch[b"data"].copy()
            copy[b"data"][0] = 0
        elif change == "labels":
            copy[b"labels"] = [batch[b"labels"][1], batch[b"labels"][0], *batch[b"labels"][2:]]
        folder = tmp_path / name / "cifar-10-batches-py"
        folder.mkdir(parents=True)
        (folder / "test_batch").write_bytes(pickle.dumps(copy, protocol=4))
        (entry,) = fingerprint(tmp_path / name, ["cifar-10-batches-py/test_batch"]).values()
        assert entry["content"] == ("official" if change is None else "other"), name
        assert not entry["official"]


@pytest.mark.slow
def test_small_model_learns_real_mnist(real_data_root, tmp_path):
    cfg = compose_cfg(
        real_data_root,
        "model=asym",
        "model.hidden_size=32",
        "model.eps=0.1",
        "optimizer=adam",
        "optimizer.lr=0.01",
        "trainer.max_steps=300",
        "trainer.batch_size=64",
        "trainer.eval_every=300",
        "trainer.eval_batch_size=1000",
        "dataset.val_size=1000",
    )
    summary = run(cfg, tmp_path)
    assert summary["status"] == "completed"
    assert summary["best_val_acc"] > 0.3 and summary["test_acc"] > 0.3, summary  # chance is 0.1
