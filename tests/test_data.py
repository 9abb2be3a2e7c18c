"""The four tasks on tiny data sets written in the real on-disk formats, read through the real loaders."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from antisym.data import TASKS, DataError, TaskSpec, build_task, permutation

VAL = 8


def cfg(name, **kw):
    base = {"name": name, "val_size": VAL, "split_seed": 0, "normalize": False}
    extra = {
        "pmnist": {"permutation_seed": 3},
        "noisy_cifar10": {"seq_len": 40, "noise": "independent", "noise_seed": 0, "row_order": "channels"},
    }
    return {**base, **extra.get(name, {}), **kw}


def test_mnist_sequences_are_scanline_pixels(tiny_data):
    root, arrays = tiny_data
    test = build_task(cfg("mnist"), root, "test", download=False, allow_subset=True)
    assert len(test) == len(arrays["mnist_t10k"])
    x, y = test[5]
    assert x.shape == (784, 1) and y == 5
    np.testing.assert_allclose(x[:, 0].numpy(), arrays["mnist_t10k"][5].reshape(-1) / 255.0, rtol=1e-6)
    norm = build_task(cfg("mnist", normalize=True), root, "test", download=False, allow_subset=True)
    np.testing.assert_allclose(norm[5][0].numpy(), (x.numpy() - 0.1307) / 0.3081, rtol=1e-5)


def test_train_val_split_is_disjoint_and_seeded(tiny_data):
    root, arrays = tiny_data
    train = build_task(cfg("mnist"), root, "train", download=False, allow_subset=True)
    val = build_task(cfg("mnist"), root, "val", download=False, allow_subset=True)
    assert len(train) + len(val) == len(arrays["mnist_train"]) and len(val) == VAL
    assert not set(train.index.tolist()) & set(val.index.tolist())
    again = build_task(cfg("mnist"), root, "val", download=False, allow_subset=True)
    assert torch.equal(val.index, again.index)
    other = build_task(cfg("mnist", split_seed=1), root, "val", download=False, allow_subset=True)
    assert not torch.equal(val.index, other.index)
    i = int(val.index[0])
    np.testing.assert_array_equal(val.images[0].numpy(), arrays["mnist_train"][i])


def test_pmnist_permutation_is_fixed_and_shared_across_splits(tiny_data):
    root, arrays = tiny_data
    perms = [
        build_task(cfg("pmnist"), root, s, download=False, allow_subset=True).permutation
        for s in ("train", "val", "test")
    ]
    assert all(torch.equal(perms[0], p) for p in perms)
    assert sorted(perms[0].tolist()) == list(range(784)) and not torch.equal(perms[0], torch.arange(784))
    assert not torch.equal(perms[0], permutation(4))
    test = build_task(cfg("pmnist"), root, "test", download=False, allow_subset=True)
    flat = arrays["mnist_t10k"][2].reshape(-1) / 255.0
    np.testing.assert_allclose(test[2][0][:, 0].numpy(), flat[perms[0].numpy()], rtol=1e-6)


def test_cifar10_sequences_are_rgb_per_pixel_in_raster_order(tiny_data):
    root, arrays = tiny_data
    test = build_task(cfg("cifar10"), root, "test", download=False, allow_subset=True)
    x, y = test[4]
    assert x.shape == (1024, 3) and y == (4 + 3) % 10
    img = arrays["cifar_test"][4] / 255.0  # (32, 32, 3)
    np.testing.assert_allclose(x[32 * 7 + 5].numpy(), img[7, 5], rtol=1e-6)
    train = build_task(cfg("cifar10"), root, "train", download=False, allow_subset=True)
    assert len(train) == len(arrays["cifar_train"]) - VAL


@pytest.mark.parametrize("row_order", ["channels", "rgb"])
def test_noisy_cifar10_rows_then_noise(tiny_data, row_order):
    root, arrays = tiny_data
    test = build_task(cfg("noisy_cifar10", row_order=row_order), root, "test", download=False, allow_subset=True)
    x, _ = test[1]
    assert x.shape == (40, 96)
    img = arrays["cifar_test"][1] / 255.0
    want_row = img[3].T.reshape(-1) if row_order == "channels" else img[3].reshape(-1)
    np.testing.assert_allclose(x[3].numpy(), want_row, rtol=1e-6)
    noise = x[32:]
    assert abs(noise.mean().item()) < 0.15 and abs(noise.std().item() - 1) < 0.15


def test_noise_independent_fresh_in_train_fixed_in_eval(tiny_data):
    root, _ = tiny_data
    train = build_task(cfg("noisy_cifar10"), root, "train", download=False, allow_subset=True)
    idx = torch.tensor([0, 0, 1])
    x1, _ = train.batch(idx, torch.Generator().manual_seed(0))
    x2, _ = train.batch(idx, torch.Generator().manual_seed(1))
    assert not torch.equal(x1[0, 32:], x1[1, 32:])  # same example drawn twice: fresh noise
    assert not torch.equal(x1[:, 32:], x2[:, 32:])
    torch.testing.assert_close(x1[:, :32], x2[:, :32])
    for split in ("val", "test"):
        task = build_task(cfg("noisy_cifar10"), root, split, download=False, allow_subset=True)
        a, _ = task.batch(torch.tensor([0, 1]))
        b, _ = task.batch(torch.tensor([1, 0]))
        assert torch.equal(a[0], b[1]) and torch.equal(a[1], b[0])
        assert not torch.equal(a[0, 32:], a[1, 32:])


def test_noise_shared_is_one_tensor_for_every_example(tiny_data):
    root, _ = tiny_data
    train = build_task(cfg("noisy_cifar10", noise="shared"), root, "train", download=False, allow_subset=True)
    test = build_task(cfg("noisy_cifar10", noise="shared"), root, "test", download=False, allow_subset=True)
    xs, _ = train.batch(torch.tensor([0, 3]), torch.Generator().manual_seed(5))
    xt, _ = test.batch(torch.tensor([2]))
    assert torch.equal(xs[0, 32:], xs[1, 32:]) and torch.equal(xs[0, 32:], xt[0, 32:])


def test_missing_files_give_one_clear_error(tmp_path):
    with pytest.raises(DataError, match=r"not found under .*train-images-idx3-ubyte.*data.root"):
        build_task(cfg("mnist"), tmp_path, "train", download=False, allow_subset=True)
    with pytest.raises(DataError, match="data_batch_1"):
        build_task(cfg("cifar10"), tmp_path, "train", download=False, allow_subset=True)


def _copy(tiny_data, tmp_path):
    root, _ = tiny_data
    dst = tmp_path / "data"
    shutil.copytree(root, dst)
    return dst


def test_truncated_mnist_is_rejected(tiny_data, tmp_path):
    root = _copy(tiny_data, tmp_path)
    path = root / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(DataError, match="truncated or corrupt"):
        build_task(cfg("mnist"), root, "test", download=False, allow_subset=True)


def test_corrupt_cifar_is_rejected_and_relabelled_copy_accepted(tiny_data, tmp_path):
    root = _copy(tiny_data, tmp_path)
    path = root / "cifar-10-batches-py" / "test_batch"
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError, match="test_batch is truncated or corrupt"):
        build_task(cfg("cifar10"), root, "test", download=False, allow_subset=True)
    path.write_bytes(b"\x00" * len(good))
    with pytest.raises(DataError, match="truncated or corrupt"):
        build_task(cfg("cifar10"), root, "test", download=False, allow_subset=True)
    # The tiny files are not the official bytes (no md5 matches) yet load: content is what is checked.
    path.write_bytes(good)
    assert len(build_task(cfg("cifar10"), root, "test", download=False, allow_subset=True)) == 10


def test_bad_dataset_values_are_rejected(tiny_data):
    root, _ = tiny_data
    with pytest.raises(ValueError, match="seq_len"):
        build_task(cfg("noisy_cifar10", seq_len=10), root, "test")
    with pytest.raises(ValueError, match="noise"):
        build_task(cfg("noisy_cifar10", noise="fresh"), root, "test")
    with pytest.raises(ValueError, match="dataset.name"):
        build_task(cfg("svhn"), root, "test")


def test_missing_files_are_all_named(tmp_path):
    with pytest.raises(DataError) as err:
        build_task(cfg("mnist"), tmp_path, "test", download=False)
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1"):
        assert name in str(err.value)


def test_cifar_repickled_with_bytes_keys_loads(tiny_data, tmp_path):
    """The CIFAR site's loader (pickle.load(f, encoding='bytes')) gives bytes keys; a copy saved from it must load."""
    import pickle

    root = _copy(tiny_data, tmp_path)
    path = root / "cifar-10-batches-py" / "test_batch"
    with open(path, "rb") as f:
        entry = pickle.load(f, encoding="latin1")
    path.write_bytes(pickle.dumps({k.encode(): v for k, v in entry.items()}))
    test = build_task(cfg("cifar10"), root, "test", download=False, allow_subset=True)
    assert len(test) == 10 and int(test.labels[4]) == (4 + 3) % 10


def test_a_file_read_once_serves_every_member_until_it_changes(tiny_data, tmp_path):
    """Every member of a pack, and a run's train and val splits, read the same files: the second read is the first
    one's tensors; a file changed on disk (size, times or inode) is read again."""
    from antisym.data import load_cifar10, load_mnist
    from tests.conftest import write_idx

    root = _copy(tiny_data, tmp_path)
    for load in (load_mnist, load_cifar10):
        first, again = load(root, train=True, allow_subset=True), load(root, train=True, allow_subset=True)
        assert first[0] is again[0] and first[1] is again[1]
    fewer = np.zeros((20, 28, 28), dtype=np.uint8)
    write_idx(root / "MNIST" / "raw" / "train-images-idx3-ubyte", fewer)
    write_idx(root / "MNIST" / "raw" / "train-labels-idx1-ubyte", np.arange(20) % 10)
    images, labels = load_mnist(root, train=True, allow_subset=True)
    assert images.shape == (20, 28, 28) and not images.any() and labels.tolist() == [i % 10 for i in range(20)]
    # The same size again, other pixels: rewritten in place, then replaced by a rename (a new inode).
    write_idx(root / "MNIST" / "raw" / "train-images-idx3-ubyte", np.full((20, 28, 28), 7, dtype=np.uint8))
    assert load_mnist(root, train=True, allow_subset=True)[0].unique().tolist() == [7]
    write_idx(tmp_path / "replacement", np.full((20, 28, 28), 9, dtype=np.uint8))
    (tmp_path / "replacement").replace(root / "MNIST" / "raw" / "train-images-idx3-ubyte")
    assert load_mnist(root, train=True, allow_subset=True)[0].unique().tolist() == [9]


def test_each_task_declares_its_family_files_and_spec():
    """What packing, the presence check and the models read from a task, for the paper's four; permuted MNIST packs
    with pixel MNIST (the identity permutation is a permutation), the CIFAR-10 tasks each alone."""
    from antisym.data import task_family, task_files, task_spec
    from antisym.data.files import CIFAR_PATHS, MNIST_PATHS

    declared = {name: (task_family(cfg(name)), task_files(cfg(name)), task_spec(cfg(name))) for name in TASKS}
    assert declared == {
        "mnist": ("mnist", MNIST_PATHS, TaskSpec(784, 1)),
        "pmnist": ("mnist", MNIST_PATHS, TaskSpec(784, 1)),
        "cifar10": ("cifar10", CIFAR_PATHS, TaskSpec(1024, 3)),
        "noisy_cifar10": ("noisy_cifar10", CIFAR_PATHS, TaskSpec(40, 96)),
    }
    # A paper's task named by its class is the same task.
    by_class = {**cfg("pmnist"), "_target_": "antisym.data.tasks.PermutedMNIST"}
    assert task_family(by_class) == "mnist" and task_spec(by_class) == TaskSpec(784, 1)
