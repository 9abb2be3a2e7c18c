#!/usr/bin/env python3
"""Carry MNIST / CIFAR-10 to the bare GPU machine in verified parts, one device call per part (standard library only).

The device tool sends the working tree plus the git-ignored paths named in `carry` (64 MiB in all per call), and a
machine stays warm only ~30 s between calls. So the data travel as one compressed tar archive cut into parts, each in
its own folder with a copy of the manifest, and each call carries only its own folder:

    here:    python3 -m campaign.devdata split --src DATA --out .devdata --sets mnist,cifar10   (prints the calls)
    call k:  python3 -m campaign.devdata receive --part .devdata/pK --dest /tmp/antisym-data    carry=[".devdata/pK"]
    last:    ... receive (last part) && python3 -m campaign.devdata assemble --dest /tmp/antisym-data \\
                 --root /tmp/antisym-data/root && <command> data.root=/tmp/antisym-data/root
    any:     python3 -m campaign.devdata status --dest /tmp/antisym-data

`receive` moves the part out of the tree into --dest, checks its sha256 against the manifest and says what is still
missing; receiving a part twice is harmless, and parts of another split in --dest are wiped first. `assemble` checks
that every part is there (else exit 3: the machine was probably given back between calls, restart from part 0),
checks the whole archive's sha256, unpacks it into torchvision's layout under --root and checks every file (size,
sha256) and its content (image counts, per-class counts: IDX headers and CIFAR pickles read without numpy) against
the manifest before printing `DATA READY <root>`. Exit codes: 0 ok, 2 bad input or corrupt data, 3 parts missing.
`split --report FILE` also times a local receive + assemble (this host standing in for the device) and writes FILE;
`assemble --report FILE` fills in that file's device section with what it measured there.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import hashlib
import io
import json
import lzma
import os
import pickle
import platform
import re
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from campaign.limits import CARRY_BYTES as TREE_LIMIT
from campaign.limits import MIB

FORMAT = "antisym-devdata/2"
MANIFEST_RESERVE = 64 * 1024  # room left in each part folder for its copy of the manifest (--part-mib)
CHUNK = 4 * MIB
DEFAULT_DEST = "/tmp/antisym-data"
PART_DIR_RE = re.compile(r"^p\d+$")
DEVICE_BEGIN, DEVICE_END = "<!-- device-measurement -->", "<!-- /device-measurement -->"

MNIST_FILES = {
    "train": ("MNIST/raw/train-images-idx3-ubyte", "MNIST/raw/train-labels-idx1-ubyte"),
    "test": ("MNIST/raw/t10k-images-idx3-ubyte", "MNIST/raw/t10k-labels-idx1-ubyte"),
}
CIFAR_DIR = "cifar-10-batches-py"
CIFAR_FILES = {
    "train": tuple(f"{CIFAR_DIR}/data_batch_{i}" for i in range(1, 6)),
    "test": (f"{CIFAR_DIR}/test_batch",),
}
CIFAR_OPTIONAL = (f"{CIFAR_DIR}/batches.meta",)  # torchvision reads it; the project's loader does not
FULL_SIZE = {  # the released data sets (../shared/data/README.md)
    "mnist": {
        "train": {"images": 60000, "class_counts": [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]},
        "test": {"images": 10000, "class_counts": [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]},
    },
    "cifar10": {
        "train": {"images": 50000, "class_counts": [5000] * 10},
        "test": {"images": 10000, "class_counts": [1000] * 10},
    },
}
SETS = ("mnist", "cifar10")
CODECS = ("gz", "xz", "none")
SUFFIX = {"gz": ".tar.gz", "xz": ".tar.xz", "none": ".tar"}


class DevdataError(Exception):
    """A failure with the message for the user and the exit code."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


def log(msg: str = "") -> None:
    print(msg, flush=True)


def warn(msg: str) -> None:
    print(f"WARNING: {msg}", file=sys.stderr, flush=True)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).astimezone().isoformat(timespec="seconds")


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, cwd=Path(__file__).parent
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def host_line() -> str:
    return f"{platform.node() or '?'} ({platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()})"


# ---------------------------------------------------------------------------------------------------------------------
# Content checks with the standard library only (the device has no torchvision, maybe no numpy).


def read_idx(data: bytes, name: str) -> tuple[int, tuple[int, ...], bytes]:
    """(type code, dims, payload) of an IDX file; raises DevdataError when the header and the size disagree."""
    if len(data) < 4:
        raise DevdataError(f"{name}: too short for an IDX header")
    zero, type_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or type_code != 0x08 or not 1 <= ndim <= 3:
        raise DevdataError(f"{name}: not a uint8 IDX file (magic {data[:4].hex()})")
    dims = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    payload = data[4 + 4 * ndim :]
    expected = 1
    for d in dims:
        expected *= d
    if len(payload) != expected:
        raise DevdataError(f"{name}: {len(payload)} bytes of data for dims {dims} (expected {expected})")
    return type_code, dims, payload


def class_counts(labels, name: str) -> list[int]:
    counts = [0] * 10
    for y in labels:
        if not 0 <= y <= 9:
            raise DevdataError(f"{name}: label {y} is not a digit 0-9")
        counts[y] += 1
    return counts


class _Dtype:
    def __init__(self, name="u1", *_args):
        self.name = name if isinstance(name, str) else name.decode("latin1")

    def __setstate__(self, state):
        self.state = state

    @property
    def itemsize(self) -> int:
        digits = re.sub(r"\D", "", self.name)
        return int(digits) if digits else 1


class _Array:
    """What numpy's pickled ndarray becomes without numpy: shape, dtype and raw bytes."""

    def __init__(self, shape=(0,), dtype=None, raw=b""):
        self.shape, self.dtype, self.raw = tuple(shape), dtype, raw

    def __setstate__(self, state):
        if len(state) == 5:
            state = state[1:]
        shape, dtype, _fortran, raw = state
        self.shape, self.dtype = tuple(shape), dtype
        self.raw = raw.encode("latin1") if isinstance(raw, str) else bytes(raw)

    def values(self) -> list[int]:
        size = self.dtype.itemsize if self.dtype is not None else 1
        if size == 1:
            return list(self.raw)
        fmt = {2: "h", 4: "i", 8: "q"}[size]  # little-endian, as numpy writes on x86 and Arm
        return list(struct.unpack(f"<{len(self.raw) // size}{fmt}", self.raw))


def _reconstruct(_cls, shape=(0,), _typecode=b"b"):
    return _Array(shape)


def _frombuffer(buf, dtype, shape, _order="C"):
    return _Array(shape, dtype, bytes(buf))


class _NoNumpyUnpickler(pickle.Unpickler):
    """Loads CIFAR-10 batches (numpy arrays inside) without numpy; refuses any other global."""

    def find_class(self, module, name):
        if module.startswith("numpy"):
            found = {"_reconstruct": _reconstruct, "ndarray": _Array, "dtype": _Dtype, "_frombuffer": _frombuffer}
            if name in found:
                return found[name]
        if (module, name) in {("_codecs", "encode"), ("builtins", "bytearray"), ("__builtin__", "bytearray")}:
            return super().find_class("_codecs" if name == "encode" else "builtins", name)
        raise DevdataError(f"unexpected object {module}.{name} in a CIFAR-10 pickle")


def read_cifar_batch(data: bytes, name: str) -> tuple[int, list[int]]:
    """(number of images, labels) of a CIFAR-10 python batch."""
    try:
        entry = _NoNumpyUnpickler(io.BytesIO(data), encoding="latin1").load()
        images, labels = entry["data"], entry.get("labels", entry.get("fine_labels"))
    except DevdataError:
        raise
    except Exception as err:
        raise DevdataError(f"{name}: not a CIFAR-10 batch ({type(err).__name__}: {err})") from None
    if not isinstance(images, _Array) or len(images.shape) != 2 or images.shape[1] != 3072:
        raise DevdataError(f"{name}: data is not an (N, 3072) array")
    if images.dtype is not None and images.dtype.itemsize != 1:
        raise DevdataError(f"{name}: data is not uint8")
    n = images.shape[0]
    if len(images.raw) != n * 3072:
        raise DevdataError(f"{name}: {len(images.raw)} bytes of pixels for {n} images")
    labels = labels.values() if isinstance(labels, _Array) else list(labels)
    if len(labels) != n:
        raise DevdataError(f"{name}: {len(labels)} labels for {n} images")
    return n, labels


def describe_split(root: Path, dataset: str, split: str) -> dict:
    """Image count and per-class counts of one split, read from the files under root."""
    if dataset == "mnist":
        images_rel, labels_rel = MNIST_FILES[split]
        _, dims, _ = read_idx((root / images_rel).read_bytes(), images_rel)
        _, ldims, labels = read_idx((root / labels_rel).read_bytes(), labels_rel)
        if len(dims) != 3 or dims[1:] != (28, 28):
            raise DevdataError(f"{images_rel}: images are {dims[1:]}, not 28x28")
        if len(ldims) != 1 or ldims[0] != dims[0]:
            raise DevdataError(f"{labels_rel}: {ldims[0]} labels for {dims[0]} images")
        return {"images": dims[0], "class_counts": class_counts(labels, labels_rel)}
    n_total, counts = 0, [0] * 10
    for rel in CIFAR_FILES[split]:
        n, labels = read_cifar_batch((root / rel).read_bytes(), rel)
        n_total += n
        counts = [a + b for a, b in zip(counts, class_counts(labels, rel), strict=True)]
    return {"images": n_total, "class_counts": counts}


def dataset_files(src: Path, dataset: str) -> list[str]:
    if dataset == "mnist":
        required = [rel for pair in MNIST_FILES.values() for rel in pair]
        optional: tuple[str, ...] = ()
    else:
        required = [rel for group in CIFAR_FILES.values() for rel in group]
        optional = CIFAR_OPTIONAL
    missing = [rel for rel in required if not (src / rel).is_file()]
    if missing:
        raise DevdataError(f"{dataset}: missing under {src}: {', '.join(missing)} (torchvision layout expected)")
    return sorted(required + [rel for rel in optional if (src / rel).is_file()])


# ---------------------------------------------------------------------------------------------------------------------
# split


class PartWriter:
    """A write-only stream cut into files of at most part_bytes, each in its own folder; hashes parts and the whole."""

    def __init__(self, out: Path, part_bytes: int):
        self.out, self.part_bytes = out, part_bytes
        self.parts: list[dict] = []
        self.whole = hashlib.sha256()
        self.total = 0
        self._file = None
        self._hash = None
        self._size = 0

    def _open(self) -> None:
        k = len(self.parts)
        folder = self.out / f"p{k}"
        folder.mkdir(parents=True)
        name = f"part-{k:02d}"
        self._file, self._hash, self._size = open(folder / name, "wb"), hashlib.sha256(), 0  # noqa: SIM115 (closed in _close)
        self.parts.append({"index": k, "folder": f"p{k}", "name": name})

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
            self.parts[-1].update(size=self._size, sha256=self._hash.hexdigest())
            self._file = None

    def write(self, data) -> int:
        view = memoryview(data)
        while len(view):
            if self._file is None or self._size == self.part_bytes:
                self._close()
                self._open()
            piece = view[: self.part_bytes - self._size]
            self._file.write(piece)
            self._hash.update(piece)
            self.whole.update(piece)
            self._size += len(piece)
            self.total += len(piece)
            view = view[len(piece) :]
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self._close()


def compressor(codec: str, raw) -> io.RawIOBase:
    if codec == "gz":
        return gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0)
    if codec == "xz":
        return lzma.LZMAFile(raw, mode="wb", preset=6)
    return raw


def write_tar(stream, src: Path, files: list[str]) -> None:
    """A deterministic tar of the files (same bytes in, same archive out)."""
    with tarfile.open(fileobj=stream, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for rel in files:
            info = tarfile.TarInfo(rel)
            info.size = (src / rel).stat().st_size
            info.mode, info.mtime, info.uid, info.gid, info.uname, info.gname = 0o644, 0, 0, 0, "", ""
            with open(src / rel, "rb") as f:
                tar.addfile(info, f)


def clean_out(out: Path) -> None:
    """Remove what an earlier split wrote (p*/ folders, manifest, calls); leave anything else alone."""
    if not out.exists():
        return
    for entry in out.iterdir():
        if entry.is_dir() and PART_DIR_RE.match(entry.name):
            shutil.rmtree(entry)
        elif entry.name in ("manifest.json", "CALLS.txt"):
            entry.unlink()


def call_sequence(manifest: dict, out_rel: str, dest: str, root: str) -> list[tuple[str, str]]:
    """(carry, command) of each device call, in order."""
    calls = []
    n = len(manifest["parts"])
    for part in manifest["parts"]:
        folder = f"{out_rel}/{part['folder']}"
        cmd = f"python3 -m campaign.devdata receive --part {folder} --dest {dest}"
        if part["index"] == n - 1:
            cmd += (
                f" && python3 -m campaign.devdata assemble --dest {dest} --root {root}"
                f" && <YOUR COMMAND> data.root={root}"
            )
        calls.append((json.dumps([folder]), cmd))
    return calls


def format_calls(calls: list[tuple[str, str]]) -> str:
    lines = []
    for i, (carry, cmd) in enumerate(calls):
        lines.append(f"run {i + 1}/{len(calls)}: carry={carry}")
        lines.append(f"    command: {cmd}")
    return "\n".join(lines)


def tree_bytes(repo: Path) -> int | None:
    """Bytes of the working tree the device tool sends (tracked + untracked-not-ignored files), or None without git."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "-co", "--exclude-standard"], capture_output=True, cwd=repo, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    total = 0
    for rel in out.stdout.decode().split("\0"):
        p = repo / rel
        if rel and p.is_file() and not p.is_symlink():
            total += p.stat().st_size
    return total


def split(args) -> int:
    t_start = time.perf_counter()
    src, out = Path(args.src), Path(args.out)
    sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    unknown = [s for s in sets if s not in SETS]
    if unknown or not sets:
        raise DevdataError(f"--sets takes a comma list of {', '.join(SETS)}; got {args.sets!r}")
    if args.part_bytes:
        part_bytes, folder_limit = int(args.part_bytes), None
    else:
        folder_limit = int(args.part_mib * MIB)
        part_bytes = folder_limit - MANIFEST_RESERVE
    if part_bytes < 1024:
        raise DevdataError(f"parts of {part_bytes} bytes are too small")

    # Read every file once: sizes, sha256, content (image and class counts).
    t0 = time.perf_counter()
    datasets, files = {}, []
    for name in sets:
        rels = dataset_files(src, name)
        entries = {rel: {"size": (src / rel).stat().st_size, "sha256": sha256_file(src / rel)} for rel in rels}
        splits = {split: describe_split(src, name, split) for split in ("train", "test")}
        full = splits == FULL_SIZE[name]
        if not full:
            got = ", ".join(f"{s} {v['images']}" for s, v in splits.items())
            want = ", ".join(f"{s} {v['images']}" for s, v in FULL_SIZE[name].items())
            warn(f"{name} under {src} is not the full data set ({got} images; the release has {want}).")
        datasets[name] = {"files": entries, "splits": splits, "full_size": full}
        files += rels
    t_read = time.perf_counter() - t0

    clean_out(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    writer = PartWriter(out, part_bytes)
    stream = compressor(args.compression, writer)
    write_tar(stream, src, files)
    if stream is not writer:
        stream.close()
    writer.close()
    t_write = time.perf_counter() - t0

    parts = writer.parts
    split_id = hashlib.sha256((writer.whole.hexdigest() + "".join(p["sha256"] for p in parts)).encode()).hexdigest()
    manifest = {
        "format": FORMAT,
        "split_id": split_id,
        "created": now_iso(),
        "commit": git_commit(),
        "host": host_line(),
        "compression": args.compression,
        "archive": {
            "name": "archive" + SUFFIX[args.compression],
            "size": writer.total,
            "sha256": writer.whole.hexdigest(),
        },
        "input_bytes": sum(e["size"] for d in datasets.values() for e in d["files"].values()),
        "part_bytes": part_bytes,
        "parts": parts,
        "datasets": datasets,
    }
    text = json.dumps(manifest, indent=1) + "\n"
    if len(text) > MANIFEST_RESERVE:
        raise DevdataError(f"manifest is {len(text)} bytes, more than the {MANIFEST_RESERVE} reserved for it")
    (out / "manifest.json").write_text(text)
    for part in parts:
        (out / part["folder"] / "manifest.json").write_text(text)
        size = sum(f.stat().st_size for f in (out / part["folder"]).iterdir())
        part["folder_bytes"] = size
        if folder_limit is not None and size > folder_limit:
            raise DevdataError(f"{part['folder']} holds {size} bytes, over --part-mib {args.part_mib}")
    t_split = time.perf_counter() - t_start

    repo = Path(__file__).resolve().parents[1]
    try:
        out_rel = out.resolve().relative_to(repo).as_posix()  # carry and the device commands are repo-relative
    except ValueError:
        out_rel = str(out)
        warn(f"{out} is outside the repository {repo}: the device tool can only carry folders inside it.")
    calls = call_sequence(manifest, out_rel, args.dest, args.root)
    (out / "CALLS.txt").write_text(format_calls(calls) + "\n")
    log(
        f"split {', '.join(sets)} from {src}: {manifest['input_bytes']:,} bytes -> {writer.total:,} bytes "
        f"({args.compression}, sha256 {writer.whole.hexdigest()[:16]}...) in {len(parts)} part(s), {t_split:.2f} s"
    )
    for part in parts:
        log(f"  {out}/{part['folder']}: {part['name']} {part['size']:,} bytes  sha256 {part['sha256'][:16]}...")
    tree = tree_bytes(repo)
    biggest = max(p["folder_bytes"] for p in parts)
    if tree is not None:
        last = parts[-1]["folder_bytes"]
        log(
            f"per call: working tree {tree / MIB:.1f} MiB + largest part folder {biggest / MIB:.1f} MiB; the last "
            f"call has {(TREE_LIMIT - tree - last) / MIB:.1f} MiB left for other carried paths (e.g. .whl)"
        )
        if tree + biggest > TREE_LIMIT:
            warn(
                f"working tree ({tree / MIB:.1f} MiB) + a part folder ({biggest / MIB:.1f} MiB) is over the device "
                "tool's 64 MiB per call: split again with a smaller --part-mib."
            )
    log("\nDevice calls (one `run` per part, back to back: a machine stays warm ~30 s between calls):")
    log(format_calls(calls))

    if args.report:
        sim = simulate(out, manifest)
        compare = compare_codecs(src, files, part_bytes) if args.compare else None
        timings = {"read_check_s": t_read, "tar_compress_split_s": t_write, "split_total_s": t_split}
        write_report(Path(args.report), manifest, args, sets, timings, tree, calls, sim, compare)
        log(f"\nreport: {args.report}")
    return 0


def simulate(out: Path, manifest: dict) -> dict:
    """receive + assemble on this host, from copies of the part folders (the originals stay for the device)."""
    with tempfile.TemporaryDirectory(prefix="devdata-sim-") as tmp:
        tmp = Path(tmp)
        dest, root = tmp / "dest", tmp / "dest" / "root"
        receive_s = []
        for part in manifest["parts"]:
            copy = tmp / "tree" / part["folder"]
            shutil.copytree(out / part["folder"], copy)
            t0 = time.perf_counter()
            receive_part(copy, dest, quiet=True)
            receive_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        stages = assemble_parts(dest, root, quiet=True)
        assemble_s = time.perf_counter() - t0
    return {"receive_s": receive_s, "assemble_s": assemble_s, "stages": stages}


def compare_codecs(src: Path, files: list[str], part_bytes: int) -> list[dict]:
    """Size, parts, compress and decompress time of each codec on the same tar stream (held in memory)."""
    buf = io.BytesIO()
    write_tar(buf, src, files)
    tar_bytes = buf.getvalue()
    rows = []
    for codec in CODECS:
        t0 = time.perf_counter()
        if codec == "gz":
            compressed = gzip.compress(tar_bytes, compresslevel=6, mtime=0)
        elif codec == "xz":
            compressed = lzma.compress(tar_bytes, preset=6)
        else:
            compressed = tar_bytes
        t_c = time.perf_counter() - t0
        t0 = time.perf_counter()
        if codec == "gz":
            gzip.decompress(compressed)
        elif codec == "xz":
            lzma.decompress(compressed)
        t_d = time.perf_counter() - t0
        n_parts = -(-len(compressed) // part_bytes)
        size = len(compressed)
        rows.append({"codec": codec, "bytes": size, "ratio": size / len(tar_bytes), "parts": n_parts,
                     "compress_s": t_c, "decompress_s": t_d})  # fmt: skip
        del compressed
    return rows


# ---------------------------------------------------------------------------------------------------------------------
# receive / status / assemble (device side)


def load_manifest(path: Path) -> dict:
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise DevdataError(f"cannot read the manifest {path}: {err}") from None
    if manifest.get("format") != FORMAT:
        raise DevdataError(f"{path} is not a {FORMAT} manifest")
    return manifest


def load_receipts(dest: Path) -> dict:
    path = dest / "receipts.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def save_receipts(dest: Path, receipts: dict) -> None:
    tmp = dest / "receipts.json.tmp"
    tmp.write_text(json.dumps(receipts, indent=1) + "\n")
    tmp.replace(dest / "receipts.json")


def have_missing(manifest: dict, dest: Path) -> tuple[list[str], list[str]]:
    receipts = load_receipts(dest)
    have, missing = [], []
    for part in manifest["parts"]:
        ok = receipts.get(part["folder"], {}).get("sha256") == part["sha256"]
        ok = ok and (dest / "parts" / part["name"]).is_file()
        (have if ok else missing).append(part["folder"])
    return have, missing


def wipe(dest: Path) -> None:
    """Remove what receive/assemble wrote into dest (only those entries, and the root that assemble filled)."""
    ready = dest / "ready.json"
    if ready.is_file():
        root = Path(json.loads(ready.read_text()).get("root", ""))
        if root.name and root.is_dir():
            shutil.rmtree(root)
    for name in ("parts", "manifest.json", "receipts.json", "receipts.json.tmp", "ready.json"):
        p = dest / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
    for p in dest.glob("*.assembling"):
        shutil.rmtree(p, ignore_errors=True)


def receive_part(part_dir: Path, dest: Path, quiet: bool = False) -> tuple[list[str], list[str]]:
    t0 = time.time()
    manifest_path = part_dir / "manifest.json"
    dest.mkdir(parents=True, exist_ok=True)
    current = dest / "manifest.json"
    if not manifest_path.is_file():
        # The tree copy was moved out on an earlier call of this warm machine: fine if dest has the part.
        if current.is_file():
            manifest = load_manifest(current)
            folder = part_dir.name
            have, missing = have_missing(manifest, dest)
            if folder in have:
                if not quiet:
                    log(f"{folder}: already received and verified in {dest}")
                    report_progress(manifest, have, missing)
                return have, missing
        raise DevdataError(
            f'{part_dir} holds no manifest.json: carry it with this call (carry=["{part_dir}"]) after '
            "`split` wrote it here"
        )
    manifest = load_manifest(manifest_path)
    if current.is_file():
        old = load_manifest(current)
        if old["split_id"] != manifest["split_id"]:
            if not quiet:
                log(f"{dest} holds parts of another split ({old['split_id'][:12]}...): wiping it, starting over")
            wipe(dest)
    (dest / "parts").mkdir(parents=True, exist_ok=True)
    if not current.is_file():
        shutil.copyfile(manifest_path, current)
    by_folder = {p["folder"]: p for p in manifest["parts"]}
    part = by_folder.get(part_dir.name)
    if part is None:
        raise DevdataError(f"{part_dir.name} is not a part of this split (parts: {', '.join(by_folder)})")
    src_file = part_dir / part["name"]
    target = dest / "parts" / part["name"]
    receipts = load_receipts(dest)
    if not src_file.is_file():
        if receipts.get(part["folder"], {}).get("sha256") == part["sha256"] and target.is_file():
            have, missing = have_missing(manifest, dest)
            if not quiet:
                log(f"{part['folder']}: already received and verified in {dest}")
                report_progress(manifest, have, missing)
            return have, missing
        raise DevdataError(f"{src_file} is missing: carry {part_dir} with this call")
    staging = target.with_suffix(".incoming")
    shutil.move(str(src_file), staging)  # out of the tree: the next call re-sends the tree anyway
    digest = sha256_file(staging)
    if digest != part["sha256"]:
        staging.unlink()
        raise DevdataError(
            f"{part['folder']} ({part['name']}) is corrupt: sha256 {digest[:16]}... but the manifest says "
            f"{part['sha256'][:16]}...; split it again here and resend {part['folder']}"
        )
    if staging.stat().st_size != part["size"]:
        staging.unlink()
        raise DevdataError(f"{part['folder']} ({part['name']}) has the wrong size")
    staging.replace(target)
    receipts[part["folder"]] = {"sha256": digest, "received_at": t0, "seconds": time.time() - t0}
    save_receipts(dest, receipts)
    have, missing = have_missing(manifest, dest)
    if not quiet:
        log(f"{part['folder']}: {part['name']} {part['size']:,} bytes, sha256 ok, moved to {target}")
        report_progress(manifest, have, missing)
    return have, missing


def report_progress(manifest: dict, have: list[str], missing: list[str]) -> None:
    log(f"have {len(have)}/{len(manifest['parts'])}: {' '.join(have) or '-'}; missing: {' '.join(missing) or '-'}")
    if not missing:
        log("all parts here: assemble next (same call)")
    else:
        earlier = [f for f in missing if int(f[1:]) < max((int(h[1:]) for h in have), default=-1)]
        if earlier:
            log(
                f"NOTE: {' '.join(earlier)} came before but are not here: the machine was probably given back "
                "between calls (it stays warm only ~30 s), so restart the sequence from p0."
            )


def status(args) -> int:
    dest = Path(args.dest)
    current = dest / "manifest.json"
    if not current.is_file():
        log(f"{dest}: nothing received (no manifest.json)")
        return 0
    manifest = load_manifest(current)
    have, missing = have_missing(manifest, dest)
    log(
        f"{dest}: split {manifest['split_id'][:12]}... from {manifest.get('commit') or '?'} "
        f"({', '.join(manifest['datasets'])}, {manifest['archive']['size']:,} bytes, {len(manifest['parts'])} parts)"
    )
    report_progress(manifest, have, missing)
    ready = dest / "ready.json"
    if ready.is_file():
        info = json.loads(ready.read_text())
        if info.get("split_id") == manifest["split_id"]:
            log(f"DATA READY {info['root']}")
    return 0


class _ChainReader(io.RawIOBase):
    """The parts read as one stream."""

    def __init__(self, paths: list[Path]):
        self.paths, self.f = list(paths), None

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while True:
            if self.f is None:
                if not self.paths:
                    return 0
                self.f = open(self.paths.pop(0), "rb")  # noqa: SIM115 (closed in readinto/close)
            n = self.f.readinto(b)
            if n:
                return n
            self.f.close()
            self.f = None

    def close(self) -> None:
        if self.f is not None:
            self.f.close()
            self.f = None
        super().close()


def assemble_parts(dest: Path, root: Path, quiet: bool = False) -> dict:
    current = dest / "manifest.json"
    if not current.is_file():
        raise DevdataError(
            f"{dest} holds no parts: the machine was probably given back between calls (a fresh one starts empty); "
            "restart the sequence from p0 (receive every part, then assemble, without pauses)",
            code=3,
        )
    manifest = load_manifest(current)
    _, missing = have_missing(manifest, dest)
    if missing:
        raise DevdataError(
            f"parts missing in {dest}: {' '.join(missing)}. The machine was probably given back between calls "
            "(it stays warm only ~30 s; a fresh one starts empty): restart the sequence from p0.",
            code=3,
        )
    ready = dest / "ready.json"
    if ready.is_file() and root.is_dir():
        info = json.loads(ready.read_text())
        if info.get("split_id") == manifest["split_id"] and info.get("root") == str(root):
            if not quiet:
                log(f"already assembled and checked in {root}")
            return info.get("stages", {})

    stages = {}
    t0 = time.perf_counter()
    paths = [dest / "parts" / p["name"] for p in manifest["parts"]]
    whole = hashlib.sha256()
    for part, path in zip(manifest["parts"], paths, strict=True):
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                h.update(chunk)
                whole.update(chunk)
        if h.hexdigest() != part["sha256"]:
            raise DevdataError(f"{part['folder']} ({path}) changed since it was received: receive it again")
    if whole.hexdigest() != manifest["archive"]["sha256"]:
        raise DevdataError("the concatenated parts do not match the archive's sha256: split again and resend")
    stages["verify_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    expected = {rel: e for d in manifest["datasets"].values() for rel, e in d["files"].items()}
    staging = root.parent / (root.name + ".assembling")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    mode = {"gz": "r|gz", "xz": "r|xz", "none": "r|"}[manifest["compression"]]
    with _ChainReader(paths) as raw, tarfile.open(fileobj=io.BufferedReader(raw, CHUNK), mode=mode) as tar:
        for member in tar:
            if member.name not in expected or not member.isfile():
                raise DevdataError(f"unexpected entry {member.name!r} in the archive")
            target = staging / member.name
            target.parent.mkdir(parents=True, exist_ok=True)
            with tar.extractfile(member) as fsrc, open(target, "wb") as fdst:
                shutil.copyfileobj(fsrc, fdst, CHUNK)
    stages["unpack_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    check_tree(staging, manifest)
    stages["check_s"] = time.perf_counter() - t0
    if root.exists():
        shutil.rmtree(root)
    staging.rename(root)
    ready.write_text(json.dumps({"split_id": manifest["split_id"], "root": str(root), "stages": stages}) + "\n")
    if not quiet:
        log(
            f"assembled {manifest['archive']['size']:,} bytes: verify {stages['verify_s']:.1f} s, unpack "
            f"{stages['unpack_s']:.1f} s, check {stages['check_s']:.1f} s"
        )
    return stages


def check_tree(root: Path, manifest: dict) -> None:
    """Every file of the manifest (size, sha256) and nothing else; image and class counts per split."""
    expected = {rel: e for d in manifest["datasets"].values() for rel, e in d["files"].items()}
    found = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    if found != sorted(expected):
        missing = sorted(set(expected) - set(found))
        extra = sorted(set(found) - set(expected))
        raise DevdataError(f"unpacked files differ from the manifest: missing {missing}, unexpected {extra}")
    for rel, entry in expected.items():
        size = (root / rel).stat().st_size
        if size != entry["size"] or sha256_file(root / rel) != entry["sha256"]:
            raise DevdataError(f"{rel}: size or sha256 differs from the manifest after unpacking")
    for name, info in manifest["datasets"].items():
        for split, want in info["splits"].items():
            got = describe_split(root, name, split)
            if got != want:
                raise DevdataError(f"{name} {split}: {got} after unpacking, the manifest says {want}")


def assemble(args) -> int:
    dest, root = Path(args.dest), Path(args.root)
    t0 = time.time()
    stages = assemble_parts(dest, root)
    manifest = load_manifest(dest / "manifest.json")
    for name, info in manifest["datasets"].items():
        counts = ", ".join(f"{s} {v['images']:,}" for s, v in info["splits"].items())
        log(f"  {name}: {counts} images, class counts as split{'' if info['full_size'] else ' (NOT full size)'}")
    if args.report:
        fill_device_report(Path(args.report), manifest, dest, stages, time.time() - t0)
        log(f"device measurement written into {args.report}")
    log(f"DATA READY {root}")
    return 0


# ---------------------------------------------------------------------------------------------------------------------
# report


def write_report(path: Path, manifest, args, sets, timings, tree, calls, sim, compare) -> None:
    n = len(manifest["parts"])
    arch = manifest["archive"]
    lines = [
        "# Carrying the data sets to the device: measured cost",
        "",
        f"Written by `python3 -m campaign.devdata split --src {args.src} --sets {','.join(sets)} --report {path}`"
        " (numbers measured by that run; do not edit by hand).",
        "",
        f"- date: {manifest['created']}",
        f"- commit: {manifest['commit'] or 'unknown (no git)'}",
        f"- host: {manifest['host']}",
        f"- data sets: {', '.join(sets)}"
        + "".join(
            f"; {k}: "
            + ", ".join(f"{s} {v['images']:,}" for s, v in d["splits"].items())
            + " images"
            + ("" if d["full_size"] else " (NOT full size)")
            for k, d in manifest["datasets"].items()
        ),
        f"- input: {manifest['input_bytes']:,} bytes in {sum(len(d['files']) for d in manifest['datasets'].values())}"
        f" files; archive ({manifest['compression']}): {arch['size']:,} bytes"
        f" ({arch['size'] / manifest['input_bytes']:.3f} of the input), sha256 `{arch['sha256']}`",
        f"- split time here: {timings['split_total_s']:.2f} s (read + sha256 + content counts "
        f"{timings['read_check_s']:.2f} s; tar + compress + split {timings['tar_compress_split_s']:.2f} s)",
        "",
        "| part | carry | bytes | MiB | folder MiB (with manifest) | sha256 |",
        "|---|---|---:|---:|---:|---|",
    ]
    for p in manifest["parts"]:
        lines.append(
            f"| {p['name']} | `{args.out}/{p['folder']}` | {p['size']:,} | {p['size'] / MIB:.2f} | "
            f"{p['folder_bytes'] / MIB:.2f} | `{p['sha256'][:16]}…` |"
        )
    if tree is not None:
        biggest = max(p["folder_bytes"] for p in manifest["parts"])
        lines += [
            "",
            f"Per call the tool sends the working tree ({tree / MIB:.1f} MiB when compressed) plus one part folder "
            f"(at most {biggest / MIB:.1f} MiB): {(tree + biggest) / MIB:.1f} of 64 MiB. The last call, which also "
            f"runs the training, has {(TREE_LIMIT - tree - manifest['parts'][-1]['folder_bytes']) / MIB:.1f} MiB "
            "left for other carried paths (wheels in .whl, say).",
        ]
    lines += [
        "",
        "## Local stand-in for the device (this host, temporary dest)",
        "",
        "| step | seconds |",
        "|---|---:|",
    ]
    for p, s in zip(manifest["parts"], sim["receive_s"], strict=True):
        lines.append(f"| receive {p['folder']} (move + sha256) | {s:.2f} |")
    st = sim["stages"]
    lines += [
        f"| assemble: sha256 of every part and of the whole archive | {st['verify_s']:.2f} |",
        f"| assemble: decompress + untar | {st['unpack_s']:.2f} |",
        f"| assemble: per-file sha256, IDX/pickle counts, class counts | {st['check_s']:.2f} |",
        f"| total receive + assemble | {sum(sim['receive_s']) + sim['assemble_s']:.2f} |",
    ]
    if compare:
        lines += [
            "",
            f"## Compression of the same tar ({compare[-1]['bytes']:,} bytes), measured here",
            "",
            "| codec | bytes | ratio | parts | compress s | decompress s |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for r in compare:
            lines.append(
                f"| {r['codec']} | {r['bytes']:,} | {r['ratio']:.3f} | {r['parts']} | {r['compress_s']:.1f} | "
                f"{r['decompress_s']:.1f} |"
            )
    lines += [
        "",
        "## Device calls",
        "",
        f"{n} call(s), back to back (a machine stays warm ~30 s after a call; a fresh one starts empty):",
        "",
        "```",
        format_calls(calls),
        "```",
        "",
        "Device time of the transfer ≈ T_start + Σ_k (T_send(tree + part k) + T_receive(k)) + T_assemble + T_idle,",
        f"with k over the {n} call(s); T_start is the first call's machine start (a minute or more), T_send the "
        "tool's copy of the tree and one part folder, T_idle the ~30 s a machine stays held after the last call "
        "(unless given back). The receive/assemble terms are measured above on this host; T_start and T_send can "
        "only be measured there:",
        "",
        DEVICE_BEGIN,
        "- TODO device: run the sequence with `assemble ... --report " + str(path) + "` in the last call and "
        "bring the file back through $OUT (e.g. `&& cp " + str(path) + " $OUT/`).",
        DEVICE_END,
        "",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


def fill_device_report(path: Path, manifest: dict, dest: Path, stages: dict, assemble_s: float) -> None:
    receipts = load_receipts(dest)
    starts = sorted(r["received_at"] for r in receipts.values())
    span = time.time() - starts[0] if starts else float("nan")
    per_part = ", ".join(
        f"{p['folder']} {receipts[p['folder']]['seconds']:.2f} s" for p in manifest["parts"] if p["folder"] in receipts
    )
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    block = [
        DEVICE_BEGIN,
        f"- measured on the device {now_iso()}, host {host_line()}, split {manifest['split_id'][:12]}…:",
        f"  receive per part: {per_part}; assemble {assemble_s:.2f} s (verify {stages.get('verify_s', 0):.2f}, "
        f"unpack {stages.get('unpack_s', 0):.2f}, check {stages.get('check_s', 0):.2f});",
        "  start of one receive to the next (command end, warm wait, tree + part sent, next command start): "
        + (", ".join(f"{g:.1f} s" for g in gaps) or "one call only")
        + f"; first receive to DATA READY {span:.1f} s (the first call's machine start is not included).",
        DEVICE_END,
    ]
    text = (
        path.read_text()
        if path.is_file()
        else f"# Carrying the data sets to the device\n\n{DEVICE_BEGIN}\n{DEVICE_END}\n"
    )
    if DEVICE_BEGIN in text and DEVICE_END in text:
        head, rest = text.split(DEVICE_BEGIN, 1)
        tail = rest.split(DEVICE_END, 1)[1]
        text = head + "\n".join(block) + tail
    else:
        text = text.rstrip("\n") + "\n\n" + "\n".join(block) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


# ---------------------------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("split", help="here: archive the data sets into part folders and print the device calls")
    p.add_argument("--src", default=os.environ.get("ANTISYM_DATA", "data"), help="data folder (torchvision layout)")
    p.add_argument("--out", default=".devdata")
    p.add_argument("--sets", default="mnist", help="comma list of: " + ", ".join(SETS))
    p.add_argument("--part-mib", type=float, default=60.0, help="each part folder (part + manifest) at most this")
    p.add_argument("--part-bytes", type=int, default=None, help="exact part size in bytes (tests); wins over MiB")
    p.add_argument("--compression", choices=CODECS, default="gz")
    p.add_argument("--dest", default=DEFAULT_DEST, help="device folder named in the printed calls")
    p.add_argument("--root", default=None, help="data root named in the printed calls (default DEST/root)")
    p.add_argument("--report", default=None, help="also time a local receive + assemble and write this markdown")
    p.add_argument("--compare", action="store_true", help="with --report: measure gz, xz and plain tar too")
    r = sub.add_parser("receive", help="device: move one part into --dest and verify it")
    r.add_argument("--part", required=True, help="the carried part folder, e.g. .devdata/p0")
    r.add_argument("--dest", default=DEFAULT_DEST)
    a = sub.add_parser("assemble", help="device: check all parts, unpack and check the data under --root")
    a.add_argument("--dest", default=DEFAULT_DEST)
    a.add_argument("--root", default=None, help="default: DEST/root")
    a.add_argument("--report", default=None, help="fill this report's device section with what was measured")
    s = sub.add_parser("status", help="what --dest holds")
    s.add_argument("--dest", default=DEFAULT_DEST)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "root", "x") is None:
        args.root = str(Path(args.dest) / "root")
    try:
        if args.cmd == "split":
            return split(args)
        if args.cmd == "receive":
            receive_part(Path(args.part), Path(args.dest))
            return 0
        if args.cmd == "assemble":
            return assemble(args)
        return status(args)
    except DevdataError as err:
        print(f"ERROR: {err}", file=sys.stderr, flush=True)
        return err.code


if __name__ == "__main__":
    sys.exit(main())
