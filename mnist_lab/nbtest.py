"""pytest plugin: `pytest --nbval notebooks/` (or `--nbval-lax`) checks the notebooks as tiny runs.

Without it, nbval would train every network at full length (hours on a CPU) and write result files
into the repository. With it, each notebook runs in tiny mode (20 batches, 2 epochs) in the
environment pytest runs in, its result files go to a temporary folder that is removed at the end,
and nothing is left behind. `--full-length` runs them as written (the results still go to the
temporary folder: nbval checks notebooks, it does not make results).
"""
from __future__ import annotations

import os
import shutil
import tempfile

from .config import RESULTS_ENV, SMOKE_ENV

_TMP = "_mnist_lab_nbval_tmp"


def pytest_addoption(parser):
    parser.getgroup("mnist_lab").addoption(
        "--full-length", action="store_true",
        help="mnist_lab: run the notebooks at full length under nbval instead of tiny mode (hours on a CPU)")


def pytest_configure(config):
    opt = config.option
    if not (getattr(opt, "nbval", False) or getattr(opt, "nbval_lax", False)):
        return
    tmp = tempfile.mkdtemp(prefix="mnist_lab_nbval_")
    setattr(config, _TMP, tmp)
    os.environ[RESULTS_ENV] = tmp  # the kernels inherit this environment
    if not opt.full_length:
        os.environ[SMOKE_ENV] = "1"
    if not getattr(opt, "nbval_kernel_name", None):
        # The notebooks name the `mnist-lab` kernel (for Jupyter); under pytest, use pytest's own environment.
        opt.nbval_current_env = True


def pytest_unconfigure(config):
    tmp = getattr(config, _TMP, None)
    if tmp:
        shutil.rmtree(tmp, ignore_errors=True)
