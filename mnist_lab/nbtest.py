"""pytest plugin: `pytest --nbval notebooks/` (or `--nbval-lax`) checks the notebooks as smoke runs.

Without it, nbval would train every network at full length (hours on a CPU) and write result files
into the repository. With it, each notebook runs in smoke mode (20 batches, 2 epochs) in the
environment pytest runs in, its result files go to a temporary folder that is removed at the end,
and nothing is left behind. `--full-length` runs them as written (the results still go to the
temporary folder: nbval checks notebooks, it does not make results). No frontend renders widgets there, so
`explore()` and `pad()` build only their static display (batch mode). Under pytest-xdist (`-n 2`), the
kernels share the cores (one thread each on two cores) instead of each starting a thread per core.
"""
from __future__ import annotations

import os
import shutil
import tempfile

import pytest

from .config import BATCH_ENV, RESULTS_ENV, SMOKE_ENV

_TMP, _ENV, _SAVED = "_mnist_lab_nbval_tmp", "_mnist_lab_nbval_env", "_mnist_lab_saved_env"


def pytest_addoption(parser):
    parser.getgroup("mnist_lab").addoption(
        "--full-length", action="store_true",
        help="mnist_lab: run the notebooks at full length under nbval instead of smoke mode (hours on a CPU)")


def pytest_configure(config):
    opt = config.option
    if not (getattr(opt, "nbval", False) or getattr(opt, "nbval_lax", False)):
        return
    tmp = tempfile.mkdtemp(prefix="mnist_lab_nbval_")
    setattr(config, _TMP, tmp)
    env = {RESULTS_ENV: tmp, BATCH_ENV: "1"}
    if not opt.full_length:
        env[SMOKE_ENV] = "1"
    workers = _xdist_workers(config)
    if workers > 1:  # torch's default thread count (the notebooks' threads=0) and NumPy's BLAS follow these
        share = str(max(1, (os.cpu_count() or 1) // workers))
        env.update({k: share for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
                    if k not in os.environ})  # a count the user set stands
    setattr(config, _ENV, env)
    if not getattr(opt, "nbval_kernel_name", None):
        # The notebooks name the `mnist-lab` kernel (for Jupyter); under pytest, use pytest's own environment.
        opt.nbval_current_env = True


def _xdist_workers(config) -> int:
    """How many pytest-xdist workers run tests side by side (1 without xdist); set in each worker process."""
    given = (getattr(config, "workerinput", None) or {}).get("workercount")
    return int(given or os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """The notebook kernels inherit the environment when they start, in the setup of their first
    cell: set it for notebook cells only, so unit tests collected in the same session are untouched."""
    env = getattr(item.config, _ENV, None)
    if env is None:
        return
    saved = getattr(item.config, _SAVED, None)
    if type(item).__name__ == "IPyNbCell":
        if saved is None:
            setattr(item.config, _SAVED, {k: os.environ.get(k) for k in env})
            os.environ.update(env)
    elif saved is not None:
        _restore(saved)
        setattr(item.config, _SAVED, None)


def _restore(saved):
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def pytest_unconfigure(config):
    saved = getattr(config, _SAVED, None)
    if saved:
        _restore(saved)
    tmp = getattr(config, _TMP, None)
    if tmp:
        shutil.rmtree(tmp, ignore_errors=True)
