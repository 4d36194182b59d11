"""Executing planned runs: one papermill process per notebook, here (a pool of workers) or on a cluster,
resumable, each run's files written atomically; and the record of the last run into a folder (run.json)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from ..config import BATCH_ENV, EXPECT_ENV, PLACE_ENV, RESULTS_ENV
from ..io import atomic_write_json
from ..paths import base, portable
from ..results import read_result
from . import nbfiles
from .plan import Job, finished


def papermill_command(notebook: str, output: str, cwd: str, params: dict) -> list[str]:
    """The papermill process that runs one notebook (paths as the executed notebook records them)."""
    return [sys.executable, "-m", "mnist_lab.runs.papermill_main", notebook, output, "--cwd", cwd, "-k", "python3", "--no-progress-bar",
            "-y", json.dumps(params)]


def job_vars(job: Job) -> dict[str, str]:
    """The environment variables a job sets for its papermill process (the rest is the machine's)."""
    out = {EXPECT_ENV: job.result.stem,  # record() refuses to write under any other identity
           PLACE_ENV: json.dumps(job.place),
           BATCH_ENV: "1"}  # no frontend: explore() and pad() build only the static display the notebook keeps
    if job.params.get("threads"):  # NumPy's BLAS takes its thread count from these, when it starts
        out.update({k: str(job.params["threads"]) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")})
    return out


def process_env(**job) -> dict[str, str]:
    """This machine's environment for a job's papermill process, with the job's variables `job`."""
    env = {k: v for k, v in os.environ.items() if k != RESULTS_ENV}  # --out decides where results go
    return dict(env, **job)


def tail_of(stderr: str) -> str:
    return (stderr.strip().splitlines() or ["no output"])[-1]


def keep_executed(tmp: Path, job: Job) -> bool:
    """Put papermill's output `tmp` in place as the job's executed notebook; False when it was cut short."""
    try:
        nbfiles.compact(tmp, job.executed, portable(job.executed))
        tmp.unlink()
        return True
    except (OSError, ValueError):  # cut short while papermill wrote it: keep it as it is
        os.replace(tmp, job.executed)
        return False


def execute(job: Job, keep_fds=()) -> tuple[bool, str]:
    """Run one notebook in its own papermill process; the executed copy appears only when done.

    `keep_fds` are inherited by papermill: the output folder's lock, so that it stays held while a
    notebook still runs even if this process is killed."""
    job.executed.parent.mkdir(parents=True, exist_ok=True)
    tmp = job.executed.with_name(f".{job.executed.name}.running")
    # Paths relative to the repository, so the executed notebook records no machine's folders.
    cmd = papermill_command(portable(job.notebook), portable(tmp), portable(job.notebook.parent), job.params)
    started = time.time()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=base(), env=process_env(**job_vars(job)), pass_fds=tuple(keep_fds))
    kept = keep_executed(tmp, job) if tmp.exists() else True  # a failed run keeps its executed notebook too
    ok = done.returncode == 0 and job.result.exists() and kept
    if not ok:
        # A failed notebook leaves no result file, even one it wrote before failing.
        for path in (job.result, job.result.with_suffix(".pt")):
            if path.exists() and path.stat().st_mtime >= started:
                path.unlink()
    tail = "" if ok else tail_of(done.stderr) if kept else "the executed notebook was cut short (unreadable)"
    return ok, tail


def _local(todo: list[Job], workers: int, keep_fds):
    """(job, ok, why, seconds, where) as each finishes, `workers` papermill processes at a time."""
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {pool.submit(_timed, execute, j, keep_fds): j for j in todo}
        try:
            for fut in as_completed(futures):
                (ok, why), secs = fut.result()
                yield futures[fut], ok, why, secs, ""
        finally:  # interrupted: start nothing more (the running notebooks finish or die with us)
            for f in futures:
                f.cancel()


def run_series(jobs: list[Job], workers: int, force: bool, log=print, keep_fds=(), cluster=None) -> list[tuple[Job, str]]:
    """Run the jobs, here or on `cluster` (runs.cluster.Cluster); return the failures as (job, reason).
    Finished results are never redone unless force."""
    from tqdm import tqdm

    # Left by a run that was killed while a notebook was being written; we hold the folder's lock,
    # so no one is writing them now.
    folders = {j.executed.parent for j in jobs}
    for stale in sorted(p for folder in folders if folder.is_dir() for p in folder.glob(".*.running")):
        log(f"  removing {stale.name}, left by a run that was stopped")
        stale.unlink(missing_ok=True)
    todo = []
    for j in jobs:
        done, why = finished(j)
        if why:
            log(f"  redoing {portable(j.result)}: {why}")
        if force or not done:
            todo.append(j)
    skipped = len(jobs) - len(todo)
    if skipped:
        log(f"{skipped} run(s) already have result files with the same recipe; skipping them (--force to redo)")
    failures = []
    start = time.perf_counter()
    bar = tqdm(total=len(todo), desc="series", unit="notebook", file=sys.stdout, ncols=90)
    outcomes = cluster.run(todo) if cluster is not None else _local(todo, workers, keep_fds)
    try:
        for job, ok, why, secs, where in outcomes:
            acc = ""
            if ok:
                r, bad = read_result(job.result)
                acc = f", held-out acc {r['final_test_acc']:.2f}%" if r else f" but its result file has {bad}"
            bar.write(f"  {job.label}: {'ok' if ok else 'FAILED'} in {secs:.0f} s{f' on {where}' if where else ''}{acc}")
            bar.update(1)
            if not ok:
                failures.append((job, why))
    except KeyboardInterrupt:
        bar.write("interrupted: finished runs are kept; run the same command again to resume")
        outcomes.close()
        raise
    bar.close()
    log(f"series wall time {time.perf_counter() - start:.1f} s for {len(todo)} notebook(s), "
        f"{cluster.describe() if cluster is not None else f'{workers} worker(s)'}")
    return failures


def _timed(fn, *args):
    t = time.perf_counter()
    return fn(*args), time.perf_counter() - t


def _portable_arg(arg: str) -> str:
    """A command-line word as a record keeps it: absolute paths inside the repository made relative."""
    return portable(arg) if os.path.isabs(arg) else arg


def log_run(out: Path, chosen, jobs, failures, skipped, seconds, workers, threads):
    """<out>/<series>/run.json: the last `mnist-lab run` into this folder, for the report's "how made"."""
    for s in chosen:
        mine = [j for j in jobs if j.series == s.name]
        if not mine:
            continue
        atomic_write_json(out / s.name / "run.json", {
            "command": "mnist-lab " + " ".join(_portable_arg(x) for x in sys.argv[1:]), "series": [c.name for c in chosen],
            "runs": len(jobs), "runs_of_this_series": len(mine),
            "skipped": sum(j.result in skipped for j in mine),  # already done: a resumed run does the rest
            "failed": sum(j.series == s.name for j, _ in failures), "wall_seconds": round(seconds, 1),
            "workers": workers, "threads": threads})
