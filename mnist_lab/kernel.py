"""`python -m mnist_lab.kernel` (what `make kernel` runs): register the `mnist-lab` kernel for this user.

A Jupyter installed anywhere finds it there. Registering again from another checkout only changes the
fallback: the spec runs the .venv of the checkout a notebook lies in (kernel_launch.py), and this environment
only for notebooks outside any checkout. pip's install of the package also puts the spec into the
environment itself (pyproject's data-files), which that environment's own Jupyter finds first.
"""
from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

from jupyter_client.kernelspec import KernelSpecManager

from .kernel_launch import PYTHON_FLAG

NAME = "mnist-lab"
HERE = Path(__file__).resolve().parent


def spec(python: str) -> dict:
    """kernel.json as pip installs it, plus the fallback Python (a spec in the user's folder cannot tell
    from where it lies which environment registered it)."""
    s = json.loads((HERE / "kernel.json").read_text())
    s["argv"].append(PYTHON_FLAG + python)
    return s


def install(python: str = sys.executable) -> Path:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "kernel.json").write_text(json.dumps(spec(python), indent=1) + "\n")
        shutil.copy(HERE / "kernel_launch.py", tmp)
        return Path(KernelSpecManager().install_kernel_spec(tmp, NAME, user=True))


if __name__ == "__main__":
    where = install()
    print(f"Jupyter kernel 'Python (mnist_lab)' registered in {where}: a notebook runs the .venv of the checkout it "
          f"lies in ({sys.executable} outside any checkout)")
