"""Reading MNIST and CIFAR-10 from torchvision's folder layout, checked by content rather than by file hash.

torchvision downloads the files when they are absent. Copies whose bytes differ from the official release but whose
content is the same (a re-pickled CIFAR-10, with placeholder `filenames` or bytes keys) are accepted; truncated,
corrupt or short files are rejected with an error that names the file and says what to do. Short means fewer
examples than the official release (a consistent but partial copy would otherwise train silently on a subset);
`allow_subset=True` (config `data.allow_subset=true`) accepts it with a warning.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from antisym.errors import DataError

MNIST_FILES = {
    True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
CIFAR_FOLDER = "cifar-10-batches-py"
CIFAR_FILES = {True: tuple(f"data_batch_{i}" for i in range(1, 6)), False: ("test_batch",)}
# Examples per file of the official releases.
MNIST_SIZES = {True: 60_000, False: 10_000}
CIFAR_BATCH_SIZE = 10_000
# Every file a task reads (train and test), relative to data.root.
MNIST_PATHS = tuple(f"MNIST/raw/{name}" for split in (True, False) for name in MNIST_FILES[split])
CIFAR_PATHS = tuple(f"{CIFAR_FOLDER}/{name}" for split in (True, False) for name in CIFAR_FILES[split])
# MD5 of the official files: CIFAR-10's python batches as torchvision lists them (datasets/cifar.py); MNIST's
# uncompressed IDX files (torchvision lists the .gz files' MD5s; these are of the files they unpack to).
OFFICIAL_MD5 = {
    "MNIST/raw/train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "MNIST/raw/train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "MNIST/raw/t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "MNIST/raw/t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
    f"{CIFAR_FOLDER}/data_batch_1": "c99cafc152244af753f735de768cd75f",
    f"{CIFAR_FOLDER}/data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    f"{CIFAR_FOLDER}/data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    f"{CIFAR_FOLDER}/data_batch_4": "634d18415352ddfa80567beed471001a",
    f"{CIFAR_FOLDER}/data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    f"{CIFAR_FOLDER}/test_batch": "40351d587109b95175f43aff81a1287e",
}
# MD5 of the official CIFAR-10 batches' content, whatever the pickling: the images as (N, 32, 32, 3) uint8 bytes, then
# the labels as uint8 (`content_md5`). Taken from a re-pickled copy whose labels and pixels begin as the official
# release's (test_batch: labels 3, 8, 8, 0, 6, ...; first pixels 158, 159, 165); MNIST's IDX files are their content.
OFFICIAL_CONTENT_MD5 = {
    f"{CIFAR_FOLDER}/data_batch_1": "13fdb74700531b851fb8fe0036c98ad0",
    f"{CIFAR_FOLDER}/data_batch_2": "8daf9ff7183f2ad9e75b17ce0ff1bc08",
    f"{CIFAR_FOLDER}/data_batch_3": "25de81b3fd4e384dab73f30dc5933c76",
    f"{CIFAR_FOLDER}/data_batch_4": "385cad04fdfe9aecef1ceaa01c1a22db",
    f"{CIFAR_FOLDER}/data_batch_5": "5477acd9ac56f19d6a5fcb91d871c4b7",
    f"{CIFAR_FOLDER}/test_batch": "a2d03300dfff0d937e0bb7840d48d8b7",
}

log = logging.getLogger("antisym")


def _missing(paths: list[Path]) -> list[Path]:
    return [p for p in paths if not p.is_file()]


def _download(dataset: str, root: Path, expected: list[Path], offline_hint: str) -> None:
    """Let torchvision's `dataset` class fetch the files; offline, fail with one paragraph that names the folder and
    files.

    Folders the failed attempt created (and left empty) are removed, so a mistyped root leaves nothing behind.
    """
    created = [p for p in expected[0].parents if not p.exists()]
    import torchvision  # here, not at the top: its import takes seconds, and most commands never read data

    try:
        getattr(torchvision.datasets, dataset)(str(root), train=True, download=True)
    except Exception as err:  # torchvision raises RuntimeError or URLError depending on where it fails
        for folder in sorted(created, key=lambda p: len(p.parts), reverse=True):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        reason = lines[-1] if lines else type(err).__name__  # torchvision ends with the last mirror's error
        names = ", ".join(str(p) for p in expected)
        raise DataError(
            f"The data files are not in {root} and downloading them failed ({reason}). Expected: {names}. "
            f"{offline_hint} Point `data.root=...` (or the "
            "ANTISYM_DATA environment variable) at a folder in torchvision's layout, or connect to the network "
            "and keep `data.download=true`."
        ) from None


def _not_found(root: Path, missing: list[Path]) -> DataError:
    return DataError(
        f"Data files not found under {root}: {', '.join(str(p) for p in missing)}. Point `data.root=...` (or "
        "ANTISYM_DATA) at the folder that holds them (the paper's data in torchvision's layout: MNIST/raw/*-ubyte, "
        "cifar-10-batches-py/*), or set `data.download=true` where the task can fetch them (the paper's can)."
    )


def check_present(root: str | Path, names: Sequence[str]) -> None:
    """Refuse at once, before a run writes anything, where files it would read (`antisym.data.task_files`) are not
    there."""
    root = Path(root).resolve()  # the message names the folder searched, whatever folder the command ran from
    missing = _missing([root / name for name in names])
    if missing:
        raise _not_found(root, missing)


def _check_count(path: Path, found: int, expected: int, allow_subset: bool) -> None:
    if found == expected:
        return
    if found < expected and allow_subset:
        log.warning(
            "%s holds %d examples, not the official %d: training on a subset (data.allow_subset=true).",
            path,
            found,
            expected,
        )
        return
    raise DataError(
        f"{path} holds {found:,} examples; the official file has {expected:,}. A partial or altered copy would "
        "train silently on other data than the paper's: replace it with the full file (delete it and set "
        "`data.download=true`, or point `data.root=...` at a good copy). If you mean to train on a subset, set "
        "`data.allow_subset=true`."
    )


def _corrupt(path: Path, why: str) -> DataError:
    return DataError(
        f"{path} is truncated or corrupt ({why}). Delete it and download it again (`data.download=true`), or "
        "point `data.root=...` at a good copy."
    )


_READ: dict[tuple, tuple[Tensor, Tensor]] = {}  # the last few files read (reused, below)
_READ_LOCK = threading.Lock()  # packs side by side build their tasks in threads
_MD5: dict[tuple, str] = {}  # file state -> MD5 (fingerprint, below)
_CONTENT: dict[tuple, str] = {}  # file state -> content MD5 of a CIFAR-10 batch (content_md5)


def _state(path: Path) -> tuple:
    """What changes when a file is replaced or rewritten: path, inode, size, modification and change times."""
    s = path.stat()
    return str(path), s.st_ino, s.st_size, s.st_mtime_ns, s.st_ctime_ns


def content_md5(path: Path) -> str:
    """The MD5 of a CIFAR-10 batch's content (images, then labels, as uint8 bytes): equal for any pickling of the
    same examples, different for altered pixels or labels."""
    images, labels = _read_cifar_batch(path)
    h = hashlib.md5(usedforsecurity=False)
    h.update(images.numpy().tobytes())
    h.update(labels.to(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def fingerprint(root: str | Path, names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per data file (relative to root): its size, MD5, whether it is the official release's file, and whether its
    content is the official release's (`content`: "official", or "other" for a subset or altered examples; a
    re-pickled CIFAR-10 batch is another file with the official content). Recorded in a run's summary, so that a run
    is never continued on other data and a table never reports one on altered data as the paper's; computed once per
    file state and process."""
    out = {}
    for name in names:
        path = Path(root) / name
        key = _state(path)
        with _READ_LOCK:
            if key not in _MD5:
                h = hashlib.md5(usedforsecurity=False)
                with open(path, "rb") as f:
                    while chunk := f.read(1 << 22):
                        h.update(chunk)
                _MD5[key] = h.hexdigest()
            if name in OFFICIAL_CONTENT_MD5 and key not in _CONTENT:
                _CONTENT[key] = content_md5(path)
        official = _MD5[key] == OFFICIAL_MD5.get(name)
        same = official or (name in OFFICIAL_CONTENT_MD5 and _CONTENT[key] == OFFICIAL_CONTENT_MD5[name])
        out[name] = {
            "size": key[2],
            "md5": _MD5[key],
            "official": official,
            "content": "official" if same else "other",
        }
    return out


def reused(paths: list[Path], allow_subset: bool, read: Callable[[], tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
    """read(), or what it returned for the same files in this process: same path, inode, size, and modification and
    change times in ns (a file replaced or rewritten in place changes one of them).

    Every member of a pack, and a run's train and val splits, read the same files: once is enough (pixel CIFAR-10's
    five pickles take about a second). Callers index the tensors, which copies; nothing writes them.
    """
    try:
        key = (allow_subset, *(_state(p) for p in paths))
    except OSError:  # missing: read() downloads or says what to do
        return read()
    with _READ_LOCK:
        if key not in _READ:
            while len(_READ) >= 4:
                _READ.pop(next(iter(_READ)))
            _READ[key] = read()
        return _READ[key]


def load_mnist(
    root: str | Path, train: bool, download: bool = True, allow_subset: bool = False
) -> tuple[Tensor, Tensor]:
    """MNIST images (N, 28, 28) uint8 and labels (N,) int64 from `root/MNIST/raw`."""
    root = Path(root)
    return reused(_mnist_files(root, train), allow_subset, lambda: _read_mnist(root, train, download, allow_subset))


def _mnist_files(root: Path, train: bool) -> list[Path]:
    return [root / "MNIST" / "raw" / name for name in MNIST_FILES[train]]


def _read_mnist(root: Path, train: bool, download: bool, allow_subset: bool) -> tuple[Tensor, Tensor]:
    expected, every = _mnist_files(root, train), _mnist_files(root, True) + _mnist_files(root, False)
    if _missing(expected):
        if not download:
            raise _not_found(root, _missing(every))
        _download("MNIST", root, every, "MNIST is four IDX files of about 55 MB in all.")
    from torchvision.datasets.mnist import read_image_file, read_label_file  # as in _download

    images_path, labels_path = expected
    try:
        images = read_image_file(str(images_path))
    except (AssertionError, RuntimeError, TypeError, ValueError) as err:
        raise _corrupt(images_path, str(err) or "bad IDX header") from None
    try:
        labels = read_label_file(str(labels_path))
    except (AssertionError, RuntimeError, TypeError, ValueError) as err:
        raise _corrupt(labels_path, str(err) or "bad IDX header") from None
    if tuple(images.shape[1:]) != (28, 28):
        raise _corrupt(images_path, f"images are {tuple(images.shape[1:])}, not 28x28")
    if len(images) != len(labels):
        raise _corrupt(labels_path, f"{len(labels)} labels for {len(images)} images")
    _check_labels(labels, labels_path)
    _check_count(images_path, len(images), MNIST_SIZES[train], allow_subset)
    return images, labels


def _check_labels(labels: Tensor, path: Path) -> None:
    if len(labels) == 0 or int(labels.min()) < 0 or int(labels.max()) > 9:
        raise _corrupt(path, "labels must be digits 0-9")


def _read_cifar_batch(path: Path) -> tuple[Tensor, Tensor]:
    try:
        with open(path, "rb") as f:
            entry = pickle.load(f, encoding="latin1")
        # Python 2 pickles (the official files) load with str keys; re-pickled copies may have bytes keys.
        entry = {k.decode() if isinstance(k, bytes) else k: v for k, v in entry.items()}
        data, labels = entry["data"], entry["labels"]
        images = torch.as_tensor(data, dtype=torch.uint8)
        labels = torch.as_tensor(labels, dtype=torch.int64)
    except Exception as err:  # pickle raises many types on bad bytes (EOFError, UnpicklingError, KeyError, ...)
        raise _corrupt(path, f"{type(err).__name__}: {err}") from None
    if images.ndim != 2 or images.shape[1] != 3072:
        raise _corrupt(path, f"data has shape {tuple(images.shape)}, expected (N, 3072)")
    if len(images) != len(labels):
        raise _corrupt(path, f"{len(labels)} labels for {len(images)} images")
    _check_labels(labels, path)
    # Rows hold the R, G and B planes of a 32x32 image; return (N, 32, 32, 3), channels last.
    return images.view(-1, 3, 32, 32).permute(0, 2, 3, 1).contiguous(), labels


def load_cifar10(
    root: str | Path, train: bool, download: bool = True, allow_subset: bool = False
) -> tuple[Tensor, Tensor]:
    """CIFAR-10 images (N, 32, 32, 3) uint8 and labels (N,) int64 from `root/cifar-10-batches-py`."""
    root = Path(root)
    return reused(_cifar_files(root, train), allow_subset, lambda: _read_cifar10(root, train, download, allow_subset))


def _cifar_files(root: Path, train: bool) -> list[Path]:
    return [root / CIFAR_FOLDER / name for name in CIFAR_FILES[train]]


def _read_cifar10(root: Path, train: bool, download: bool, allow_subset: bool) -> tuple[Tensor, Tensor]:
    expected, every = _cifar_files(root, train), _cifar_files(root, True) + _cifar_files(root, False)
    if _missing(expected):
        if not download:
            raise _not_found(root, _missing(every))
        _download("CIFAR10", root, every, "CIFAR-10 is a 163 MB archive.")
    parts = [_read_cifar_batch(p) for p in expected]
    for path, (images, _) in zip(expected, parts, strict=True):
        _check_count(path, len(images), CIFAR_BATCH_SIZE, allow_subset)
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
