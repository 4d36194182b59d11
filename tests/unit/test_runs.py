"""The runner's job environment (runs/execute.py): what every papermill kernel it starts is told."""
from pathlib import Path
from types import SimpleNamespace

from mnist_lab.config import BATCH_ENV, EXPECT_ENV
from mnist_lab.runs.execute import job_vars


def job(**params):
    return SimpleNamespace(result=Path("out/it1_seed0_abcd1234.json"), place={"notebook": "01_x.ipynb"}, params=params)


def test_every_job_runs_in_batch_mode_under_its_planned_identity():
    env = job_vars(job())
    assert env[BATCH_ENV] == "1" and env[EXPECT_ENV] == "it1_seed0_abcd1234"
    assert "OMP_NUM_THREADS" not in env  # threads=0: torch's and BLAS's own defaults


def test_a_jobs_threads_reach_blas_too():
    env = job_vars(job(threads=3))
    assert env["OMP_NUM_THREADS"] == env["OPENBLAS_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "3"
