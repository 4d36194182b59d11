"""Planning a series' runs: which notebooks, seeds, sweeps and grids, each run's recipe and identity,
what is already done, the order, and how many run at once where (this machine's cores or a cluster's
workers). Every parameter is checked here, before anything runs."""
from __future__ import annotations

import json
import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..config import run_id
from ..errors import LabError
from ..frameworks.pytorch import run_device
from ..paths import reports_dir
from ..results import checkpoint_problem, code_version, read_result
from ..series import notebook_network, own_recipe
from .args import CONFIG_KEYS, check_iterations, configs, parse_grid, parse_overrides  # noqa: F401 (the runner's API)


@dataclass
class Job:
    iteration: int
    seed: int
    notebook: Path   # the committed notebook
    executed: Path   # where the executed copy goes
    result: Path     # the result file it writes
    params: dict     # what papermill injects
    recipe: dict     # the run's identity beyond (iteration, seed): see Config.recipe
    series: str = ""
    epochs: int = 1  # epochs it will train at most (for ordering the jobs)
    variant: dict = field(default_factory=dict)  # a sweep's or grid's settings ({}: the notebook's own)
    own: dict = field(default_factory=dict)      # the notebook's own recipe (series.own_recipe)

    @property
    def place(self) -> dict:
        """Where the run belongs, for its result file: the report places it by this alone."""
        return {"notebook": self.own, "variant": self.variant}

    @property
    def label(self) -> str:
        settings = "".join(f" {k}={v}" for k, v in self.variant.items())
        return f"{self.series + ' ' if self.series else ''}{self.iteration}{settings} seed {self.seed}"


def plan(series, iterations, seeds, out: Path, overrides: dict, smoke: bool, threads: int, data_dir: Path,
         grid: list[dict] | None = None, worker_cpu: str | None = None) -> list[Job]:
    """One job per (series, notebook, sweep value, seed), into <out>/<series>/; seeds None: each series'
    own (its series.json "seeds", else 0). Every job's parameters
    are checked here, before anything runs, by building the Config its notebook will build.
    `iterations` picks notebooks (all when empty); it is meant for one series. `grid` (from --grid)
    replaces the series' own runs and sweeps: each notebook at every combination. `worker_cpu`: the
    jobs run on cluster workers with these vector instructions, not on this machine."""
    jobs = []
    for c in configs(series, iterations, seeds, out, overrides, smoke, threads, data_dir, grid):
        device = run_device(c.cfg, elsewhere=worker_cpu is not None)
        recipe = c.cfg.recipe(notebook_network(c.notebook, c.values), device, worker_cpu)
        rid = run_id(c.cfg.iteration, c.cfg.seed, c.cfg.smoke, recipe)
        folder = out / c.series
        jobs.append(Job(c.iteration, c.cfg.seed, c.notebook,
                        folder / "notebooks" / f"{c.notebook.stem}_{rid.split('_', 1)[1]}.ipynb",
                        folder / "results" / f"{rid}.json", c.params, recipe, c.series, c.cfg.run_epochs,
                        c.variant, own_recipe(c.notebook)))
    seen: dict[Path, Job] = {}
    unique = []
    for job in jobs:
        if job.result in seen:
            if seen[job.result].notebook == job.notebook:
                continue  # a sweep value equal to the notebook's own: the same run, done once
            # two notebooks that declare the same run would race for one file
            raise LabError(f"{seen[job.result].notebook.name} and {job.notebook.name} are the same run "
                           f"({job.result.stem}: same iteration, seed and recipe); give one of them another `iteration`")
        seen[job.result] = job
        unique.append(job)
    # Longest first, so parallel workers finish together. Epoch times come from the output
    # folder's earlier results, else from the committed ones.
    per_epoch = epoch_seconds(series, out)
    return sorted(unique, key=lambda j: -expected_seconds(j, per_epoch))


def epoch_seconds(series, out: Path) -> dict[tuple, float]:
    """Seconds per epoch of each notebook, from the output folder's earlier results, else from the committed ones."""
    per_epoch = {}
    for s in series:
        per_epoch.update(epoch_seconds_seen(out / s.name / "results", s.name)
                         or epoch_seconds_seen(reports_dir() / s.name / "results", s.name))
    return per_epoch


def estimate(jobs: list[Job], workers: int, out: Path, series) -> float | None:
    """The wall time of `jobs` in seconds of training, `workers` at a time, longest first (as they are
    started), from the seconds per epoch of earlier runs; None where no earlier run gives any."""
    per_epoch = epoch_seconds(series, out)
    if not per_epoch:
        return None
    loads = [0.0] * max(1, workers)
    for secs in sorted((expected_seconds(j, per_epoch) for j in jobs), reverse=True):
        loads[loads.index(min(loads))] += secs
    return max(loads)


def epoch_seconds_seen(results: Path, series: str = "") -> dict[tuple, float]:
    """Mean seconds per epoch of each iteration, from full-length result files already in `results`.

    Iterations differ in cost per epoch (BatchNorm and dropout layers add work), so ordering by
    epochs alone can leave one worker with the three heaviest notebooks; ordering by expected time
    keeps the workers' loads even. Unreadable files are simply not used.
    """
    seen: dict[tuple, list[float]] = {}
    for path in sorted(results.glob("it*_seed*.json")) if results.is_dir() else []:
        try:
            rec = json.loads(path.read_text())
            if not rec.get("smoke"):
                key = (series, int(rec["iteration"]), int(rec["batch_size"]))
                seen.setdefault(key, []).extend(float(h["seconds"]) for h in rec["history"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return {key: sum(v) / len(v) for key, v in seen.items() if v}


def expected_seconds(job: Job, per_epoch: dict[tuple, float]) -> float:
    # A notebook never run here counts as the mean of the others (all equal when none was run).
    default = sum(per_epoch.values()) / len(per_epoch) if per_epoch else 1.0
    key = (job.series, job.iteration, job.params.get("batch_size", 0))
    near = [v for k, v in per_epoch.items() if k[:2] == key[:2]]
    return job.epochs * per_epoch.get(key, statistics.fmean(near) if near else default)


def finished(job: Job) -> tuple[bool, str | None]:
    """(True, None) when the job's three files are there and sound: its result file (usable, of the same
    recipe), the checkpoint it records (the size and SHA-256 it records), and its executed notebook;
    (False, why it will be redone) for a run that left some of them but cannot count. A run killed after
    its notebook wrote the result but before papermill wrote the executed copy would otherwise never be
    redone, and its executed notebook lost for good."""
    if not job.result.exists():
        return False, None
    r, why = read_result(job.result)
    if why:
        return False, why
    if r.get("recipe") != job.recipe:
        return False, "it was made with another recipe"
    why = checkpoint_problem(job.result, r)
    if why:
        return False, why
    if not job.executed.is_file():
        return False, "its executed notebook is missing (the run was stopped before papermill wrote it)"
    return True, None


# ---- how many at once, and where ----------------------------------------------------------------
def local(chosen, iterations, seeds, out, overrides, smoke, data_dir, grid, workers, threads, log=print):
    """(jobs, notebooks at once, threads each) on this machine."""
    device = overrides.get("device", "auto")
    on_cpu = device == "cpu" or (device == "auto" and not torch.cuda.is_available())
    cores = os.cpu_count() or 1
    asked_by_user = bool(workers)
    jobs = plan(chosen, iterations, seeds, out, overrides, smoke, 1, data_dir, grid)  # checks every parameter
    runs = len(jobs)
    # More notebooks at once than runs, or than cores on the CPU, only adds contention.
    # By default one notebook per core, each with one thread: the committed results' recipe, and the most
    # notebooks a CPU runs at once without contention.
    asked = workers or cores
    workers = min(asked, runs, cores if on_cpu else runs)
    if workers < asked and asked_by_user:  # the default just fits; a --workers that cannot be had is said
        log(f"--workers {asked} capped to {workers} ({runs} run(s){f', {cores} cores' if on_cpu else ''})")
    threads = threads or (max(1, cores // workers) if on_cpu else 0)
    if threads != 1:  # the thread count is part of each run's identity: plan again with the real one
        jobs = plan(chosen, iterations, seeds, out, overrides, smoke, threads, data_dir, grid)
    return jobs, workers, threads


def on_cluster(cluster, address, chosen, iterations, seeds, out, overrides, smoke, data_dir, grid, threads,
               log=print):
    """(jobs, worker threads in all, threads each) on the cluster's workers. Their device cannot be
    detected from here, so it is a choice: the CPU unless --set device=cuda."""
    device = overrides.get("device", "auto")
    if device == "auto":
        overrides = dict(overrides, device="cpu")
        log("on a cluster the device is chosen, not detected: the CPU (--set device=cuda for workers started "
            "with --resources GPU=1)")
    elif device.startswith("cuda") and not cluster.gpus():
        raise LabError(f"--set device={device} needs workers with a GPU, and none of {address} offers one: start "
                       "them with `dask worker ADDRESS --nthreads 1 --resources GPU=1`")
    for what, mine in (("code", code_version()), ("torch", torch.__version__)):
        theirs = sorted({f[what] for f in cluster.workers.values()} - {mine})
        if theirs:  # the workers' packages train this checkout's notebooks: say so; each result records its own
            log(f"note: the workers run {'mnist_lab' if what == 'code' else 'torch'} {', '.join(theirs)}, this "
                f"checkout {mine}; each result file records the one that made it")
    threads = threads or 1  # the committed results' recipe; a worker runs as many notebooks as its threads
    jobs = plan(chosen, iterations, seeds, out, overrides, smoke, threads, data_dir, grid,
                cluster.cpu(strict=not device.startswith("cuda")))
    if any(j.recipe["device"] == "cuda" for j in jobs) and not cluster.gpus():
        raise LabError(f"runs on CUDA need workers with a GPU, and none of {address} offers one: start them with "
                       "`dask worker ADDRESS --nthreads 1 --resources GPU=1`")
    return jobs, cluster.threads(), threads
