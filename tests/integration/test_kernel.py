"""The `mnist-lab` Jupyter kernel: one for every checkout of a user, each notebook running the code of the
checkout it lies in, and the mistakes around it (another checkout's code, a set-up by hand, a parameter the
notebook does not have) each stopped with one line.

Checkouts here are throw-away copies of this working tree (its package as it is now, not as last committed),
each with a real virtual environment of its own whose packages are its checkout and, behind it, this
environment's (ipykernel, papermill, pip, setuptools): `make setup`'s environment minus minutes of
installing. Every Jupyter folder points into tmp_path: the user's own kernels are never touched.
"""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from mnist_lab.errors import LabError
from mnist_lab import guard
from mnist_lab import kernel_launch as launch
from mnist_lab.series import notebook_defaults
from conftest import ROOT

SITE = sysconfig.get_paths()["purelib"]
PROBE = "import mnist_lab, mnist_lab.paths\nprint(mnist_lab.__file__)\nprint(mnist_lab.paths.runs_dir())"


def write_probe(path: Path):
    """A notebook that asks for the `mnist-lab` kernel, as the lab's do, and says whose code it ran."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(PROBE)])
    nb.metadata["kernelspec"] = {"name": "mnist-lab", "display_name": "Python (mnist_lab)", "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def environment(prefix: Path, *first: Path) -> Path:
    """A virtual environment at `prefix` whose packages are `first`, then this environment's."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(prefix)], check=True)
    site = prefix / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    (site / "lab.pth").write_text("".join(f"{p}\n" for p in (*first, SITE)))
    return prefix / "bin" / "python"


def checkout(where: Path, venv: bool = True) -> Path:
    """A checkout with the probe notebook, and (`venv`) its .venv, made as by `make setup`."""
    where.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md", "Makefile", "requirements.txt"):
        shutil.copy(ROOT / name, where)
    shutil.copytree(ROOT / "mnist_lab", where / "mnist_lab", ignore=shutil.ignore_patterns("__pycache__"))
    write_probe(where / "notebooks" / "probe.ipynb")
    if venv:
        environment(where / ".venv", where)
        stamp = where / ".venv" / ".installed"  # `make kernel EXTRAS=` then takes the set-up as done
        stamp.touch()
        later = stamp.stat().st_mtime + 60
        os.utime(stamp, (later, later))
    return where


@pytest.fixture
def jupyter_env(tmp_path):
    """This user's Jupyter folders, all in tmp_path; the user's own folder before any environment's, as a
    Jupyter installed outside the checkouts sees them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "MNIST_LAB_")) and k != "PYTHONPATH"}
    return dict(env, HOME=str(tmp_path / "home"), JUPYTER_DATA_DIR=str(tmp_path / "jupyter"),
                JUPYTER_CONFIG_DIR=str(tmp_path / "jupyter_config"), JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
                JUPYTER_PREFER_ENV_PATH="0")


def papermill(notebook: Path, cwd: Path, env: dict, python=sys.executable, *args):
    out = notebook.with_name("out.ipynb")
    done = subprocess.run([str(python), "-m", "papermill", str(notebook), str(out), "-k", "mnist-lab",
                           "--no-progress-bar", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    return done, (nbformat.read(out, as_version=4) if out.exists() else None)


def printed(nb) -> list[str]:
    return "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", [])).split()


def errors(nb) -> list:
    return [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]


# The parts, without Jupyter


def test_a_lab_error_is_one_line_in_ipython():
    """IPython shows an exception with _render_traceback_ as the lines it returns: a LabError in a notebook
    is its message, with no traceback into the package."""
    code = ("from IPython.core.interactiveshell import InteractiveShell\n"
            "InteractiveShell.instance().run_cell('from mnist_lab.errors import LabError\\n"
            "def setup():\\n    raise LabError(\"no MNIST in /x: run mnist-lab data\")\\nsetup()')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.stdout.strip() == "LabError: no MNIST in /x: run mnist-lab data", done.stdout + done.stderr
    assert LabError("x")._render_traceback_() == ["LabError: x"]


def test_the_launcher_runs_the_venv_of_the_checkout_the_kernel_starts_in(tmp_path):
    def tree(where, venv):
        for d in ("mnist_lab", "notebooks/study"):
            (where / d).mkdir(parents=True)
        (where / "pyproject.toml").touch()
        if venv:
            (where / ".venv" / "bin").mkdir(parents=True)
            (where / ".venv" / "bin" / "python").touch(mode=0o755)
        return where

    a, b, bare = tree(tmp_path / "A", True), tree(tmp_path / "B", True), tree(tmp_path / "C", False)
    fallback = str(a / ".venv" / "bin" / "python")
    assert launch.choose(b / "notebooks" / "study", fallback) == (b / ".venv" / "bin" / "python", "")
    assert launch.choose(b, fallback)[0] == b / ".venv" / "bin" / "python"
    assert launch.choose(bare / "notebooks", fallback)[0] == Path(fallback)  # the guard then names both
    assert launch.choose(tmp_path, fallback)[0] == Path(fallback)           # outside any checkout
    shutil.rmtree(a)
    python, why = launch.choose(bare / "notebooks", fallback)
    assert python is None and why == (f"mnist-lab kernel: {bare} has no .venv and {fallback}, which registered "
                                      f"this kernel, is gone: run `make setup` in {bare}")
    python, why = launch.choose(tmp_path, fallback)
    assert python is None and "lies in no mnist_lab checkout" in why and "\n" not in why


def test_the_guard_names_both_checkouts_in_one_line(tmp_path):
    a, b = tmp_path / "A", tmp_path / "B"
    for c in (a, b):
        for d in ("mnist_lab", "notebooks/study"):
            (c / d).mkdir(parents=True)
        (c / "pyproject.toml").touch()
    guard.same_checkout(b / "notebooks" / "study", b)  # its own code
    guard.same_checkout(tmp_path, a)                   # a notebook outside any checkout
    guard.same_checkout(b / "notebooks", None)         # an installed copy belongs to no checkout
    with pytest.raises(LabError) as e:
        guard.same_checkout(b / "notebooks" / "study", a)
    assert str(e.value) == (f"this notebook lies in the checkout {b} but its kernel runs the code of {a}: run `make "
                            f"setup` in {b} and pick the kernel 'Python (mnist_lab)', or open it with `make lab` there")


OWN = "# Parameters: flat literals only; papermill injects its overrides in the cell after this one.\n" \
      "seed: int = 0  # seeds everything\nsmoke: bool = False\nlr: float = 0.002"


def test_the_parameters_papermill_injects_are_checked_against_the_notebooks_own(capsys):
    ns = {"In": ["", OWN, "# Parameters\nseed = 1\n", "from mnist_lab import Config"], "seed": 1}
    guard.parameters(ns)
    assert ns["seed"] == 1 and capsys.readouterr().out == ""
    ns = {"In": ["", OWN, "# Parameters\ntiny = True\n", "import mnist_lab"], "tiny": True, "smoke": False}
    guard.parameters(ns)
    assert ns["smoke"] is True and "tiny" not in ns
    assert capsys.readouterr().out == "parameter 'tiny' is read as 'smoke' (the lab's name for it): smoke=True\n"
    with pytest.raises(LabError, match=r"^this notebook has no parameter 'bogus', 'sed'\. Did you mean 'seed'\? "
                                       r"Its parameters: seed, smoke, lr$"):
        guard.parameters({"In": ["", OWN, "# Parameters\nbogus = 1\nsed = 2\n", "import mnist_lab"]})
    with pytest.raises(LabError, match="both given"):
        guard.parameters({"In": ["", OWN, "# Parameters\ntiny = True\nsmoke = True\n"], "tiny": True})
    guard.parameters({"In": ["", OWN, "import mnist_lab"]})  # Jupyter, no papermill: nothing to check


# One kernel for every checkout


@pytest.mark.slow
def test_a_notebook_runs_the_code_of_its_own_checkout_whichever_registered_the_kernel(tmp_path, jupyter_env):
    a, b = checkout(tmp_path / "A"), checkout(tmp_path / "B")
    made = subprocess.run(["make", "-C", str(a), "kernel", "EXTRAS="], env=jupyter_env, capture_output=True, text=True)
    assert "Jupyter kernel 'Python (mnist_lab)' registered" in made.stdout, made.stdout + made.stderr
    spec = tmp_path / "jupyter" / "kernels" / "mnist-lab"
    assert sorted(p.name for p in spec.iterdir()) == ["kernel.json", "kernel_launch.py"]  # the launcher lives in no checkout

    def runs_b():
        done, nb = papermill(b / "notebooks" / "probe.ipynb", b / "notebooks", jupyter_env)
        assert done.returncode == 0, done.stderr[-3000:]
        assert printed(nb) == [str(b / "mnist_lab" / "__init__.py"), str(b / "runs")]

    runs_b()
    shutil.rmtree(a)
    runs_b()

    # A notebook outside any checkout runs in the environment that registered the kernel: gone, one line.
    elsewhere = write_probe(tmp_path / "elsewhere" / "probe.ipynb")
    done, _ = papermill(elsewhere, elsewhere.parent, jupyter_env)
    assert done.returncode != 0
    [line] = [s for s in done.stderr.splitlines() if s.startswith("mnist-lab kernel:")]
    assert line == (f"mnist-lab kernel: {elsewhere.parent} lies in no mnist_lab checkout and {a}/.venv/bin/python, "
                    "which registered this kernel, is gone: run `make setup` in the notebook's checkout, and start "
                    "papermill there or give it --cwd")


@pytest.mark.slow
def test_a_notebook_whose_checkout_has_no_environment_stops_with_one_line(tmp_path, jupyter_env):
    """B not set up: the kernel falls back to A's environment, and mnist_lab's import stops the notebook."""
    a, b = checkout(tmp_path / "A"), checkout(tmp_path / "B", venv=False)
    subprocess.run([a / ".venv" / "bin" / "python", "-m", "mnist_lab.kernel"], env=jupyter_env, check=True,
                   capture_output=True)
    done, nb = papermill(b / "notebooks" / "probe.ipynb", b / "notebooks", jupyter_env)
    assert done.returncode != 0 and printed(nb) == []
    [error] = errors(nb)
    assert error.traceback == [f"LabError: this notebook lies in the checkout {b} but its kernel runs the code of {a}: "
                               f"run `make setup` in {b} and pick the kernel 'Python (mnist_lab)', or open it with "
                               "`make lab` there"]


# A set-up by hand


@pytest.mark.slow
def test_a_set_up_by_hand_gets_the_kernel_from_the_readmes_one_line(tmp_path, jupyter_env):
    """`pip install -e .` cannot ship the kernel: setuptools' editable wheel leaves data files out. The README's
    one line registers it, and the notebook then runs the code of the checkout it lies in."""
    source = checkout(tmp_path / "lab", venv=False)
    python = environment(tmp_path / "env")
    pip = [python, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", "--no-build-isolation",
           "--ignore-installed"]
    done = subprocess.run([*pip, "-e", str(source)], env=jupyter_env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    [fix] = set(re.findall(r"`python (-m mnist_lab\.kernel)`", (ROOT / "README.md").read_text()))
    subprocess.run([python, *fix.split()], env=jupyter_env, check=True, capture_output=True)
    done, nb = papermill(source / "notebooks" / "probe.ipynb", source / "notebooks", jupyter_env, python)
    assert done.returncode == 0, done.stderr[-3000:]
    assert printed(nb) == [str(source / "mnist_lab" / "__init__.py"), str(source / "runs")]


@pytest.mark.slow
def test_an_install_of_the_package_puts_the_kernel_into_its_environment(tmp_path, jupyter_env):
    """`pip install .` (not editable) installs the spec into the environment's share/jupyter/kernels, which
    its Jupyter searches; from there the launcher falls back to that environment."""
    source = checkout(tmp_path / "lab", venv=False)
    python = environment(tmp_path / "env")
    done = subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", "--no-build-isolation",
                           "--ignore-installed", str(source)], env=jupyter_env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    spec = tmp_path / "env" / "share" / "jupyter" / "kernels" / "mnist-lab"
    assert json.loads((spec / "kernel.json").read_text()) == json.loads((ROOT / "mnist_lab/kernel.json").read_text())
    elsewhere = write_probe(tmp_path / "elsewhere" / "probe.ipynb")
    done, nb = papermill(elsewhere, elsewhere.parent, jupyter_env, python)
    assert done.returncode == 0, done.stderr[-3000:]
    assert Path(printed(nb)[0]).is_relative_to(tmp_path / "env")


# Parameters papermill hands a notebook


def study(tmp_path, *params):
    """01_baseline through papermill in this checkout (the runner's way: `-k python3`), results in tmp_path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MNIST_LAB_")}
    env["MNIST_LAB_RESULTS"] = str(tmp_path / "results")
    out = tmp_path / "out.ipynb"
    done = subprocess.run([sys.executable, "-m", "papermill", "notebooks/study/01_baseline.ipynb", str(out),
                           "-k", "python3", "--no-progress-bar", "-p", "threads", "1", *params],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    return done, nbformat.read(out, as_version=4)


def test_a_parameter_the_notebook_does_not_have_stops_its_first_cell_with_one_line(tmp_path):
    done, nb = study(tmp_path, "-p", "bogus", "1")
    assert done.returncode != 0
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "injected-parameters" in code[1].metadata.tags
    known = ", ".join(notebook_defaults(ROOT / "notebooks" / "study" / "01_baseline.ipynb"))
    line = f"LabError: this notebook has no parameter 'bogus'. Its parameters: {known}"
    assert [o.traceback for o in code[2].outputs if o.output_type == "error"] == [[line]]
    assert all(c.execution_count is None for c in code[3:])  # nothing after it ran
    assert line in done.stderr and not (tmp_path / "results").exists()


@pytest.mark.slow
def test_tiny_is_read_as_smoke(tmp_path, mnist_root):
    done, nb = study(tmp_path, "-p", "tiny", "True", "-p", "data_dir", str(mnist_root))
    assert done.returncode == 0, done.stderr[-3000:]
    code = [c for c in nb.cells if c.cell_type == "code"]
    said = "".join(o.get("text", "") for o in code[2].outputs)
    assert said.startswith("parameter 'tiny' is read as 'smoke' (the lab's name for it): smoke=True\n")
    [result] = (tmp_path / "results").glob("*.json")
    assert json.loads(result.read_text())["smoke"] is True


# make lab


def test_make_lab_adds_allow_root_exactly_when_run_as_root():
    dry = subprocess.run(["make", "--no-print-directory", "-n", "-o", "setup", "lab"], cwd=ROOT, capture_output=True,
                         text=True)  # run from `make test`, make would print the folders it enters
    assert dry.returncode == 0 and dry.stdout.startswith(".venv/bin/jupyter lab"), dry.stdout + dry.stderr
    assert ("--allow-root" in dry.stdout.split()) == (os.geteuid() == 0)


@pytest.mark.slow
def test_make_lab_serves_the_notebooks(tmp_path, jupyter_env):
    """Started as the machine's user (root in a container), it serves notebooks/."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = f"--no-browser --ip=127.0.0.1 --port={port} --IdentityProvider.token=t"
    lab = subprocess.Popen(["make", "-o", "setup", "lab", f"LAB_ARGS={args}"], cwd=ROOT, env=jupyter_env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        for _ in range(240):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/contents?token=t", timeout=5) as r:
                    listed = {c["name"] for c in json.load(r)["content"]}
                break
            except OSError:
                assert lab.poll() is None, "jupyter lab stopped"
                time.sleep(0.5)
        else:
            pytest.fail("jupyter lab did not serve within 2 minutes")
        assert {"study", "baselines"} <= listed
    finally:
        os.killpg(lab.pid, 15)
        lab.wait(30)
