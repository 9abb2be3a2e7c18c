"""campaign/devdata.py: split tiny data into >= 3 parts, receive them as the device would, assemble, load, compare."""

from __future__ import annotations

import inspect
import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from antisym.data import files
from campaign import devdata

from .conftest import REPO, TINY_SIZES, make_tiny_data

PART_BYTES = 100_000  # tiny data is ~270 kB and random (gzip cannot shrink it): 3 parts


def _loader(fn):
    """The project's loader on tiny data: a subset of the official sizes, accepted where the loader checks sizes."""
    subset = {"allow_subset": True} if "allow_subset" in inspect.signature(fn).parameters else {}
    return lambda root, train: fn(root, train=train, download=False, **subset)


load_mnist, load_cifar10 = _loader(files.load_mnist), _loader(files.load_cifar10)


def split(src: Path, out: Path, *extra: str) -> dict:
    args = ["split", "--src", str(src), "--out", str(out), "--sets", "mnist,cifar10", *extra]
    if "--part-mib" not in extra:
        args += ["--part-bytes", str(PART_BYTES)]
    assert devdata.main(args) == 0
    return json.loads((out / "manifest.json").read_text())


def receive(part: Path, dest: Path) -> int:
    return devdata.main(["receive", "--part", str(part), "--dest", str(dest)])


def assemble(dest: Path, root: Path) -> int:
    return devdata.main(["assemble", "--dest", str(dest), "--root", str(root)])


@pytest.fixture()
def split_parts(tiny_data, tmp_path, capsys):
    src, arrays = tiny_data
    out = tmp_path / "tree" / ".devdata"
    manifest = split(src, out)
    manifest["split_stderr"] = capsys.readouterr().err
    return out, manifest, arrays


def test_roundtrip_through_parts_gives_the_same_arrays(split_parts, tmp_path, capsys):
    out, manifest, arrays = split_parts
    assert len(manifest["parts"]) >= 3
    assert all(p["size"] <= PART_BYTES for p in manifest["parts"])
    assert sum(p["size"] for p in manifest["parts"]) == manifest["archive"]["size"]
    for p in manifest["parts"]:  # one folder per part, each with the manifest: each call carries only its own
        assert sorted(f.name for f in (out / p["folder"]).iterdir()) == ["manifest.json", p["name"]]
    mnist = manifest["datasets"]["mnist"]
    assert mnist["splits"]["train"]["images"] == TINY_SIZES["mnist_train"]
    assert mnist["splits"]["test"]["class_counts"] == np.bincount(np.arange(16) % 10, minlength=10).tolist()
    assert not mnist["full_size"] and not manifest["datasets"]["cifar10"]["full_size"]
    assert "mnist under" in manifest["split_stderr"] and "not the full data set" in manifest["split_stderr"]

    dest, root = tmp_path / "device" / "antisym-data", tmp_path / "device" / "antisym-data" / "root"
    for p in manifest["parts"]:
        assert receive(out / p["folder"], dest) == 0
        assert not (out / p["folder"] / p["name"]).exists()  # moved out of the tree, as on the device
    assert assemble(dest, root) == 0
    assert f"DATA READY {root}" in capsys.readouterr().out

    for train, key in ((True, "mnist_train"), (False, "mnist_t10k")):
        images, labels = load_mnist(root, train=train)
        np.testing.assert_array_equal(images.numpy(), arrays[key])
        np.testing.assert_array_equal(labels.numpy(), np.arange(len(arrays[key])) % 10)
    for train, key in ((True, "cifar_train"), (False, "cifar_test")):
        images, _ = load_cifar10(root, train=train)
        np.testing.assert_array_equal(images.numpy(), arrays[key])


def test_corrupt_part_is_rejected_naming_it(split_parts, tmp_path, capsys):
    out, manifest, _ = split_parts
    part = out / "p1" / manifest["parts"][1]["name"]
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0xFF
    part.write_bytes(bytes(data))
    dest = tmp_path / "dest"
    assert receive(out / "p0", dest) == 0
    assert receive(out / "p1", dest) == 2
    err = capsys.readouterr().err
    assert "p1" in err and "corrupt" in err
    assert not (dest / "parts" / manifest["parts"][1]["name"]).exists()
    assert devdata.have_missing(manifest, dest) == (["p0"], [p["folder"] for p in manifest["parts"][1:]])


def test_missing_part_makes_assemble_exit_3_naming_it(split_parts, tmp_path, capsys):
    out, manifest, _ = split_parts
    dest = tmp_path / "dest"
    last = manifest["parts"][-1]["folder"]
    assert receive(out / "p0", dest) == 0
    assert receive(out / last, dest) == 0
    assert "p1 came before but are not here" in capsys.readouterr().out  # told at once, in the call that sees it
    assert assemble(dest, tmp_path / "root") == 3
    err = capsys.readouterr().err
    assert "missing" in err and "p1" in err and "p0" not in err.split("missing")[1].split(".")[0]
    assert "restart the sequence from p0" in err
    assert not (tmp_path / "root").exists()
    assert assemble(tmp_path / "empty", tmp_path / "root") == 3  # a fresh machine: nothing received at all


def test_new_split_wipes_parts_of_the_old_one(tmp_path, capsys):
    src_a, src_b = tmp_path / "a", tmp_path / "b"
    make_tiny_data(src_a, seed=1)
    arrays_b = make_tiny_data(src_b, seed=2)
    out_a, out_b = tmp_path / "tree_a" / ".devdata", tmp_path / "tree_b" / ".devdata"
    manifest_a, manifest_b = split(src_a, out_a), split(src_b, out_b)
    assert manifest_a["split_id"] != manifest_b["split_id"]
    dest, root = tmp_path / "dest", tmp_path / "dest" / "root"
    for p in manifest_a["parts"][:2]:
        assert receive(out_a / p["folder"], dest) == 0
    capsys.readouterr()
    assert receive(out_b / "p0", dest) == 0
    assert "wiping" in capsys.readouterr().out
    assert json.loads((dest / "manifest.json").read_text())["split_id"] == manifest_b["split_id"]
    assert devdata.have_missing(manifest_b, dest)[0] == ["p0"]  # p1 of the old split does not count
    assert sorted(devdata.load_receipts(dest)) == ["p0"]
    for p in manifest_b["parts"][1:]:
        assert receive(out_b / p["folder"], dest) == 0
    assert assemble(dest, root) == 0
    images, _ = load_mnist(root, train=True)
    np.testing.assert_array_equal(images.numpy(), arrays_b["mnist_train"])


def test_receiving_twice_is_idempotent(split_parts, tmp_path, capsys):
    out, manifest, _ = split_parts
    dest, root = tmp_path / "dest", tmp_path / "dest" / "root"
    saved = tmp_path / "p0_copy"
    shutil.copytree(out / "p0", saved)
    assert receive(out / "p0", dest) == 0
    assert receive(out / "p0", dest) == 0  # the part was moved out already: nothing to do
    assert "already received" in capsys.readouterr().out
    shutil.rmtree(out / "p0")
    shutil.copytree(saved, out / "p0")  # the tool sends the folder again with the next call
    assert receive(out / "p0", dest) == 0
    assert devdata.have_missing(manifest, dest)[0] == ["p0"]
    for p in manifest["parts"][1:]:
        assert receive(out / p["folder"], dest) == 0
    assert assemble(dest, root) == 0
    assert assemble(dest, root) == 0  # a rerun of the last call on a warm machine
    assert capsys.readouterr().out.count(f"DATA READY {root}") == 2
    assert devdata.main(["status", "--dest", str(dest)]) == 0
    assert f"DATA READY {root}" in capsys.readouterr().out


def test_part_mib_bounds_each_carried_folder(tiny_data, tmp_path):
    src, _ = tiny_data
    out = tmp_path / ".devdata"
    manifest = split(src, out, "--part-mib", "0.15")
    assert len(manifest["parts"]) >= 3
    for p in manifest["parts"]:
        assert sum(f.stat().st_size for f in (out / p["folder"]).iterdir()) <= 0.15 * 2**20


def test_cli_runs_on_the_standard_library_alone(tiny_data, tmp_path):
    """-S -E -s: no site-packages (no numpy, no torch), as on a bare device, run from the tree root as the device
    call runs it; exit code 3 before every part is there."""
    src, arrays = tiny_data
    tree = tmp_path / "tree"
    out = tree / ".devdata"
    dest, root = tmp_path / "dest", tmp_path / "dest" / "root"

    def run(*args: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-S", "-E", "-s", "-m", "campaign.devdata", *args]
        return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=60)

    done = run("split", "--src", str(src), "--out", str(out), "--sets", "mnist", "--part-bytes", "20000")
    assert done.returncode == 0, done.stderr
    n = len(json.loads((out / "manifest.json").read_text())["parts"])
    assert n >= 3 and f"run {n}/{n}: carry=" in done.stdout and "assemble" in done.stdout
    assert run("receive", "--part", str(out / "p0"), "--dest", str(dest)).returncode == 0
    early = run("assemble", "--dest", str(dest), "--root", str(root))
    assert early.returncode == 3 and "p1" in early.stderr
    for k in range(1, n):
        assert run("receive", "--part", str(out / f"p{k}"), "--dest", str(dest)).returncode == 0
    done = run("assemble", "--dest", str(dest), "--root", str(root))
    assert done.returncode == 0 and f"DATA READY {root}" in done.stdout
    images, _ = load_mnist(root, train=False)
    np.testing.assert_array_equal(images.numpy(), arrays["mnist_t10k"])


def test_make_devdata_splits_as_gpu_campaign_calls_it(tiny_data, tmp_path):
    """`make gpu-campaign` runs `make devdata` first: the target itself (not only the module) splits the data and
    prints the device call, with the interpreter the Makefile names."""
    src, _ = tiny_data
    out = tmp_path / ".devdata"
    make = ["make", "-s", "devdata", f"DEVDATA_SRC={src}", f"DEVDATA_OUT={out}", "DEVDATA_SETS=mnist"]
    done = subprocess.run(make, capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "manifest.json").read_text())["parts"][0]["folder"] == "p0"
    assert "receive --part" in done.stdout and "assemble" in done.stdout


@pytest.mark.parametrize("protocol", [2, 5])
def test_cifar_pickles_read_without_numpy(tmp_path, protocol):
    labels = [3, 1, 4, 1, 5, 9, 2]
    data = np.arange(7 * 3072, dtype=np.uint8).reshape(7, 3072)
    blob = pickle.dumps({"data": data, "labels": labels, "batch_label": "x"}, protocol=protocol)
    n, got = devdata.read_cifar_batch(blob, "batch")
    assert (n, got) == (7, labels)
    with pytest.raises(devdata.DevdataError, match="7 labels for 6 images"):
        devdata.read_cifar_batch(pickle.dumps({"data": data[:6], "labels": labels}, protocol=protocol), "b")
    with pytest.raises(devdata.DevdataError, match="unexpected object"):
        devdata.read_cifar_batch(pickle.dumps({"data": data, "labels": labels, "f": Path("x")}), "b")
