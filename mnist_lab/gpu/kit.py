"""`make gpu-kit` (`python -m mnist_lab.gpu.kit`): the folder that travels to a GPU machine with the working
tree, built here, where the package index can be reached.

That machine runs Python 3.12 with torch, Lightning, numpy, matplotlib, pandas, pytest and more already
installed (IMAGE_HAS), and reaches nothing. The kit holds what the lab needs beyond them, as wheels of
Python 3.12 for x86-64 Linux (papermill and the Jupyter kernel that runs the notebooks, nbval, torchsummary,
Dask), and MNIST as its four gzipped IDX files, made from the verified copy in data/. Everything that
travels with the working tree must stay under 64 MiB, so the kit's size is printed and checked.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .. import fetch, paths
from ..errors import LabError
from ..io import atomic_write_text

KIT = ".gpu-kit"  # beside the working tree, ignored by git; `carry` names it
LIMIT = 64 << 20  # what travels with the working tree, kit included
BUDGET = 40 << 20  # the kit's own share at most (it is about 28 MiB); the rest is the working tree's
# What the GPU check does not need of the working tree, left out of it by `make gpu-slim` (a sparse checkout):
# the committed checkpoints and executed notebooks, about 87 MB of it.
SLIM_OUT = ("/reports/*/results/*.pt", "/reports/*/notebooks/")
PYTHON = "3.12"
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64",
             "linux_x86_64")
# What the lab needs that the GPU machine's image lacks, at the versions requirements.txt and pyproject.toml
# pin (jupyter, the notebook server, is left out: papermill needs only a kernel; so is TensorFlow, 600 MB:
# Keras runs there on its torch backend, keras_backend="torch"). ipywidgets and anywidget: the study notebooks
# end with explore() and pad(), which papermill runs too.
NEEDED = ("papermill", "ipykernel", "nbclient", "nbformat", "nbval", "torchsummary", "distributed", "keras",
          "ipywidgets", "anywidget")
# The Python packages of the GPU machine's image (its Python 3.12 environment, as listed by pip there): a
# wheel of one of them is never carried, the image's own version is used.
IMAGE_HAS = frozenset("""
absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build certifi
charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core cuda-pathfinder
cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock flatbuffers flax fonttools
formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx huggingface-hub humanize hypothesis idna
imageio iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin jaxlib jaxtyping jinja2 joblib kiwisolver
lazy-loader lightning lightning-utilities linear-operator lineax llvmlite lxml markdown markdown-it-py markupsafe
matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack multidict multipledispatch mypy-extensions nanobind narwhals
networkx ninja numba numba-cuda numpy numpyro nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime
nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13
nvidia-ml-py nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx onnx-ir onnxruntime onnxscript
opencv-python-headless optax opt-einsum opt-einsum-fx optimistix orbax-checkpoint packaging pandas pathspec patsy peft
pillow pip pluggy portalocker prometheus-client propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments
pyparsing pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock pytest-timeout pytest-xdist
python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu safetensors scikit-build-core scikit-image
scikit-learn scipy seaborn sentencepiece sentence-transformers setuptools shellingham simplejson six sortedcontainers
statsmodels sympy tabulate tensorboard tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken timm
tokenizers toolz torch torchaudio torchdiffeq torch-geometric torchmetrics torchvision tqdm transformers treescope
triton typer typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel wrapt xarray xxhash yarl
zipp""".split())


def normal(name: str) -> str:
    """A distribution's name as the package index compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def wheel_name(path: Path) -> str:
    return normal(path.name.split("-")[0])


def pinned(names=NEEDED, files=None) -> list[str]:
    """`names`, each at the version requirements.txt or pyproject.toml (its extras) pins it to, where one does."""
    pins = {}
    for f in files or (paths.base() / "requirements.txt", paths.base() / "pyproject.toml"):
        for m in re.finditer(r"^[\s\"']*([A-Za-z0-9_.\-]+)\s*==\s*([^\s#;\"',]+)", Path(f).read_text(), re.M):
            pins.setdefault(normal(m[1]), m[2])
    return [f"{n}=={pins[normal(n)]}" if normal(n) in pins else n for n in names]


def download(folder: Path, wanted: list[str], log=print) -> list[Path]:
    """Wheels for Python 3.12 on x86-64 Linux of `wanted` and of what they need, into `folder`; then the
    wheels of what the image has are removed. Returns the wheels kept."""
    folder.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--python-version", PYTHON,
           "--implementation", "cp", "--abi", f"cp{PYTHON.replace('.', '')}", *(f"--platform={p}" for p in PLATFORMS),
           "--dest", str(folder), *wanted]
    log("downloading: " + " ".join(wanted))
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        raise LabError(f"pip could not download the kit's wheels (is the package index reachable?):\n{tail}")
    kept = []
    for whl in sorted(folder.glob("*.whl")):
        if wheel_name(whl) in IMAGE_HAS:
            whl.unlink()
        else:
            kept.append(whl)
    return kept


def from_image(wheels: list[Path]) -> list[str]:
    """What the kit's wheels need that the image provides (read from each wheel's metadata, for Python 3.12
    on x86-64 Linux): the packages a stand-in for the image must have."""
    import zipfile

    from packaging.requirements import Requirement  # pip's own dependency: there wherever pip is

    env = {"python_version": PYTHON, "python_full_version": f"{PYTHON}.0", "sys_platform": "linux",
           "platform_system": "Linux", "platform_machine": "x86_64", "implementation_name": "cpython",
           "platform_python_implementation": "CPython", "os_name": "posix", "extra": ""}
    needed = set()
    for whl in wheels:
        with zipfile.ZipFile(whl) as z:
            meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
            for line in z.read(meta).decode().splitlines():
                if line.startswith("Requires-Dist:"):
                    req = Requirement(line.split(":", 1)[1].strip())
                    if req.marker is None or req.marker.evaluate(env):
                        needed.add(normal(req.name))
    return sorted(needed & IMAGE_HAS)


def mnist(folder: Path, data_root=None) -> list[Path]:
    """The four IDX files of the verified MNIST here, gzipped (no timestamp: the same bytes every time)."""
    raw = fetch.verify(data_root)  # a LabError saying how to fetch it when it is missing or damaged
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name in fetch.FILES:
        target = folder / f"{name}.gz"
        with open(raw / name, "rb") as src, open(target, "wb") as dst, \
                gzip.GzipFile(filename=name, mode="wb", fileobj=dst, mtime=0, compresslevel=6) as gz:
            shutil.copyfileobj(src, gz)
        out.append(target)
    return out


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def size_of(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def tree_bytes(root: Path | None = None) -> int:
    """The bytes of the working tree as it would travel: the files git tracks or would track, where they are."""
    root = root or paths.base()
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                            capture_output=True, check=True).stdout.split(b"\0")
    return sum((root / os.fsdecode(n)).stat().st_size for n in listed if n and (root / os.fsdecode(n)).is_file())


def build(out: Path, data_root=None, log=print) -> dict:
    """Build the kit into `out` (replacing what is there once the new one is complete) and return its manifest."""
    out = Path(out)
    tmp = Path(tempfile.mkdtemp(prefix=".gpu-kit-", dir=out.parent))
    try:
        wheels = download(tmp / "wheels", pinned(), log)
        data = mnist(tmp / "MNIST" / "raw", data_root)
        manifest = {"python": PYTHON, "platforms": list(PLATFORMS), "needed": pinned(),
                    "wheels": {w.name: _sha256(w) for w in wheels}, "from_image": from_image(wheels),
                    "mnist": {d.name: _sha256(d) for d in data}}
        atomic_write_text(tmp / "manifest.json", json.dumps(manifest, indent=1) + "\n")
        total = size_of(tmp)
        if total > BUDGET:
            raise LabError(f"the kit is {total / 2**20:.1f} MiB, over its {BUDGET >> 20} MiB share of the "
                           f"{LIMIT >> 20} MiB that travels with the working tree; see {tmp}")
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    manifest["bytes"] = total
    return manifest


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m mnist_lab.gpu.kit", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(paths.base() / KIT), help=f"the kit's folder (default: {KIT} in the checkout)")
    p.add_argument("--data", default=None, help="MNIST folder (default $MNIST_LAB_DATA, else the repository's data/)")
    args = p.parse_args(argv)
    try:
        m = build(Path(args.out), args.data)
    except LabError as exc:
        print(f"gpu-kit: {exc}", file=sys.stderr)
        return 2
    wheels = sum((Path(args.out) / "wheels" / w).stat().st_size for w in m["wheels"])
    print(f"gpu-kit: {paths.portable(Path(args.out))}: {len(m['wheels'])} wheels ({wheels / 2**20:.1f} MiB), MNIST "
          f"({(m['bytes'] - wheels) / 2**20:.1f} MiB with the manifest); {m['bytes'] / 2**20:.1f} MiB in all")
    try:
        tree = tree_bytes()
    except (OSError, subprocess.CalledProcessError):
        return 0  # not a git checkout: nothing to say about what travels with it
    total = tree + m["bytes"]
    print(f"gpu-kit: with the working tree ({tree / 2**20:.1f} MiB), {total / 2**20:.1f} MiB would travel, of at most "
          f"{LIMIT >> 20} MiB")
    if total > LIMIT:
        print("gpu-kit: too much to travel: `make gpu-slim` leaves the committed checkpoints and executed notebooks "
              "out of the working tree (a sparse checkout; `make gpu-full` brings them back)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
