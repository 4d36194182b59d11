"""The GPU kit and check, without a GPU: what the kit carries and leaves out, the check's time budget, and (slow
tier) the whole check in a stand-in for the GPU machine's image: Python 3.12 with torch 2.11, the kit's wheels
installed with --no-index, the device forced to the CPU and smoke runs."""
import gzip
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from mnist_lab import fetch
from mnist_lab.errors import LabError
from mnist_lab.gpu import check, kit
from conftest import ROOT

SCRIPT = ROOT / "mnist_lab" / "gpu" / "check.sh"
# The GPU machine's image as its pip list reads (Python 3.12.3 there): the versions this lab's code must work with.
IMAGE_PINS = ["torch==2.11.0", "torchvision==0.26.0", "numpy==2.5.2", "pytorch-lightning==2.6.6", "lightning==2.6.6",
              "matplotlib", "pandas", "tqdm", "pytest"]


def _wheel(folder: Path, name: str, requires=()) -> Path:
    path = folder / f"{name}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{name}-1.0.dist-info/METADATA",
                   "Metadata-Version: 2.1\nName: " + name + "\n" + "".join(f"Requires-Dist: {r}\n" for r in requires))
    return path


def _blob(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * size)
    return path


def test_the_kit_takes_the_pinned_versions_and_never_a_package_the_image_has(tmp_path, monkeypatch):
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("# a comment\npapermill==2.7.0\nnbval == 0.11.0  # pinned\n")
    project = tmp_path / "pyproject.toml"
    project.write_text('[project.optional-dependencies]\nframeworks = [\n    "keras==3.15.1",\n    "papermill==9",\n]\n')
    assert kit.pinned(("papermill", "nbval", "nbclient", "keras"), (reqs, project)) == [
        "papermill==2.7.0", "nbval==0.11.0", "nbclient", "keras==3.15.1"]
    assert "keras==3.15.1" in kit.pinned() and "papermill==2.7.0" in kit.pinned()  # this checkout's own pins

    def fake_pip(cmd, **_):  # what pip download leaves: the wanted wheels and everything they need
        assert "--only-binary=:all:" in cmd and cmd[cmd.index("--python-version") + 1] == "3.12"
        dest = Path(cmd[cmd.index("--dest") + 1])
        for name in ("papermill", "PyYAML", "torch", "nbclient", "typing_extensions"):
            _wheel(dest, name)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(kit.subprocess, "run", fake_pip)
    kept = kit.download(tmp_path / "wheels", ["papermill"], log=lambda _: None)
    assert sorted(w.name.split("-")[0] for w in kept) == ["nbclient", "papermill"]
    assert sorted(p.name.split("-")[0] for p in (tmp_path / "wheels").iterdir()) == ["nbclient", "papermill"]


def test_a_failed_download_says_what_pip_said(tmp_path, monkeypatch):
    monkeypatch.setattr(kit.subprocess, "run",
                        lambda cmd, **_: subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution"))
    with pytest.raises(LabError, match="(?s)package index reachable.*No matching distribution"):
        kit.download(tmp_path, ["papermill"], log=lambda _: None)


def test_what_the_kit_needs_from_the_image_is_read_from_its_wheels(tmp_path):
    wheels = [_wheel(tmp_path, "papermill", ["PyYAML", "aiohttp ; python_version >= '3.12'", "tqdm>=4",
                                             "boto3 ; extra == 's3'", "colorama ; sys_platform == 'win32'"]),
              _wheel(tmp_path, "nbclient", ["traitlets>=5"])]
    assert kit.from_image(wheels) == ["aiohttp", "pyyaml", "tqdm"]  # traitlets: in the kit; boto3: an extra


def test_the_kits_mnist_is_the_verified_data_gzipped_the_same_way_every_time(tmp_path, mnist_root):
    a = kit.mnist(tmp_path / "a", mnist_root)
    b = kit.mnist(tmp_path / "b", mnist_root)
    assert [p.name for p in a] == [f"{n}.gz" for n in fetch.FILES]
    for p, q in zip(a, b):
        assert p.read_bytes() == q.read_bytes()
        assert gzip.decompress(p.read_bytes()) == (fetch.raw_dir(mnist_root) / p.name[:-3]).read_bytes()
    assert sum(p.stat().st_size for p in a) < 12 << 20


def test_a_kit_over_its_share_is_refused_and_the_old_kit_stays(tmp_path, mnist_root, monkeypatch):
    monkeypatch.setattr(kit, "download", lambda folder, wanted, log: [_wheel(folder, "papermill")]
                        if folder.mkdir(parents=True) is None else [])
    monkeypatch.setattr(kit, "mnist", lambda folder, root: [_blob(folder / "train-images-idx3-ubyte.gz", 3 << 20)])
    monkeypatch.setattr(kit, "BUDGET", 1 << 20)
    (tmp_path / "kit").mkdir()
    (tmp_path / "kit" / "old").write_text("the kit before")
    with pytest.raises(LabError, match=r"the kit is 3\.0 MiB, over its 1 MiB share of the 64 MiB"):
        kit.build(tmp_path / "kit", mnist_root, log=lambda _: None)
    assert [p.name for p in (tmp_path / "kit").iterdir()] == ["old"]
    assert [p.name for p in tmp_path.iterdir()] == ["kit"]  # no half-built kit left beside it


def test_the_check_skips_what_does_not_fit_and_writes_after_every_step(tmp_path):
    c = check.Check(tmp_path, budget=30, device="cpu", smoke=True, workers=2)
    seen = []

    def first():
        seen.append(json.loads((tmp_path / "gpu_check.json").read_text())["steps"])
        return {"figure": 1}

    c.step("first", 5, first)
    c.step("too_long", 60, lambda: {"figure": 2})
    c.step("broken", 1, lambda: 1 / 0)
    written = json.loads((tmp_path / "gpu_check.json").read_text())
    assert seen == [{}] and written["steps"]["first"]["figure"] == 1
    assert written["steps"]["too_long"]["skipped"].endswith("it needs about 60 s")
    assert written["steps"]["broken"]["failed"] == "ZeroDivisionError: division by zero"
    assert written["device_asked"] == "cpu" and written["smoke"] is True and "date" in written


def test_a_command_running_into_the_deadline_is_stopped_as_ctrl_c_stops_it(tmp_path, monkeypatch):
    monkeypatch.setattr(check, "GRACE", 2)
    c = check.Check(tmp_path, budget=4, device="cpu", smoke=True, workers=2)
    tmp_path.mkdir(exist_ok=True)
    started = time.monotonic()
    code = "import signal, sys, time\ntry:\n    time.sleep(60)\nexcept KeyboardInterrupt:\n    print('kept what finished')\n"
    status, seconds = c.command([sys.executable, "-c", code], tmp_path / "cut.log")
    assert status is None and time.monotonic() - started < 15
    assert "kept what finished" in (tmp_path / "cut.log").read_text()


def test_the_script_without_a_kit_says_how_to_build_one(tmp_path):
    done = subprocess.run(["bash", str(SCRIPT), str(tmp_path / "out")], capture_output=True, text=True,
                          env=dict(os.environ, GPU_KIT=str(tmp_path / "nothing")))
    assert done.returncode == 2 and "build it with 'make gpu-kit'" in done.stderr


# ---- the stand-in for the GPU machine's image (slow) -------------------------------------------------------
def _python312() -> str | None:
    for candidate in (shutil.which("python3.12"), str(Path.home() / ".pyenv" / "versions" / "3.12.1" / "bin" / "python")):
        if candidate and Path(candidate).is_file() and subprocess.run(
                [candidate, "-c", "import venv, ensurepip"], capture_output=True).returncode == 0:
            return candidate
    return None


@pytest.fixture(scope="module")
def standin(tmp_path_factory, mnist_root):
    """(its Python, the kit): a Python 3.12 environment with the image's torch 2.11 (PyPI's build, run on the
    CPU) and its other versions, kept in ~/.cache/mnist_lab between runs (about 3.5 GB to download once),
    and a kit built here by `python -m mnist_lab.gpu.kit`."""
    py = _python312()
    if py is None:
        pytest.skip("no Python 3.12 with venv here: the stand-in for the GPU machine's image needs one")
    kit_dir = tmp_path_factory.mktemp("kit") / ".gpu-kit"
    built = subprocess.run([sys.executable, "-m", "mnist_lab.gpu.kit", "--out", str(kit_dir), "--data", str(mnist_root)],
                           cwd=ROOT, capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-2000:]
    manifest = json.loads((kit_dir / "manifest.json").read_text())
    wanted = IMAGE_PINS + [n for n in manifest["from_image"] if n not in {p.split("==")[0] for p in IMAGE_PINS}]
    env_dir = Path(os.environ.get("MNIST_LAB_STANDIN", Path.home() / ".cache" / "mnist_lab" / "gpu-standin-py312"))
    stamp = env_dir / ".mnist_lab-standin"
    if not stamp.is_file() or stamp.read_text() != " ".join(wanted):
        shutil.rmtree(env_dir, ignore_errors=True)
        subprocess.run([py, "-m", "venv", str(env_dir)], check=True)
        done = subprocess.run([env_dir / "bin" / "python", "-m", "pip", "install", "--quiet", *wanted],
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        stamp.write_text(" ".join(wanted))
    return env_dir / "bin" / "python", kit_dir


@pytest.mark.slow
@pytest.mark.gpu_kit  # `make test-gpu-kit`; not in `make test-all`
def test_the_whole_gpu_check_runs_in_the_stand_in_on_the_cpu(standin, tmp_path):
    python, kit_dir = standin
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MNIST_LAB_DATA", "VIRTUAL_ENV")}
    env.update(PYTHON=str(python), GPU_KIT=str(kit_dir), BUDGET="900", PATH=f"{python.parent}:{env['PATH']}")
    done = subprocess.run(["bash", str(SCRIPT), str(out), "--device", "cpu", "--smoke", "--workers", "2"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=1200)
    print(done.stdout[-3000:], done.stderr[-3000:])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    got = json.loads((out / "gpu_check.json").read_text())
    steps = got["steps"]
    assert got["torch"].startswith("2.11.0") and got["python"].startswith("3.12") and "--device cpu" in got["command"]
    assert steps["device"]["cuda_available"] is False
    assert steps["cuda_tests"]["tests"] > 0 and steps["cuda_tests"]["skipped"] == steps["cuda_tests"]["tests"]
    assert steps["one_notebook"]["runs_finished"] == 1 and steps["one_notebook"]["runs"][0]["notebook"] == check.NOTEBOOK
    for name in ("study_several_at_once", "study_one_at_a_time"):
        step = steps[name]
        assert step["exit_status"] == 0 and step["runs_finished"] == check.STUDY_RUNS, step
        assert all(r["device"] == "cpu" and r["held_out_acc"] > 0 for r in step["runs"])


@pytest.mark.slow
@pytest.mark.gpu_kit  # `make test-gpu-kit`; not in `make test-all`
def test_the_lab_runs_on_the_images_torch(standin, tmp_path, mnist_root):
    """The core unit tests under torch 2.11 (the GPU machine's), with the kit's packages: no API the older
    torch lacks."""
    python, kit_dir = standin
    site = tmp_path / "site"
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", "--target", str(site),
                    *map(str, sorted((kit_dir / "wheels").glob("*.whl")))], check=True)
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env.update(PYTHONPATH=f"{ROOT}:{site}", MNIST_LAB_DATA=str(mnist_root))
    tests = [f"tests/unit/test_{m}.py" for m in ("trainer", "augment", "blocks", "steps", "digitize", "config")]
    assert all((ROOT / t).is_file() for t in tests), "a core test file was renamed: name it here"
    done = subprocess.run([python, "-m", "pytest", "-q", "-m", "not slow", "-p", "no:cacheprovider",
                           *tests], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-4000:]
    # Keras there runs on its torch backend (no TensorFlow in the kit): a smoke run through papermill
    keras = subprocess.run([python, "-m", "mnist_lab", "run", "--series", "frameworks", "--iterations", "1", "--set",
                            "framework=keras", "keras_backend=torch", "device=cpu", "--smoke", "--out",
                            str(tmp_path / "runs"), "--no-report"], cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=600)
    assert keras.returncode == 0 and "framework=keras keras_backend=torch seed 0: ok" in keras.stdout, \
        keras.stdout[-2000:] + keras.stderr[-2000:]
