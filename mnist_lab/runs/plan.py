"""Planning a series' runs: which notebooks, seeds, sweeps and grids, each run's recipe and identity,
what is already done, the order, and how many run at once where (this machine's cores or a cluster's
workers). Every parameter is checked here, before anything runs."""
from __future__ import annotations

import difflib
import itertools
import json
import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..config import NO_NUMBER, PER_RUN, Config, run_id
from ..errors import LabError
from ..frameworks import missing
from ..frameworks.pytorch import run_device
from ..paths import portable, reports_dir
from ..results import code_version, read_result
from ..series import notebook_defaults, notebook_network, own_recipe

CONFIG_KEYS = frozenset(Config.__dataclass_fields__)


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


def parse_overrides(pairs: list[str], known: dict[str, str]) -> dict:
    """'key=value' strings -> typed values, checked against the notebooks' parameters."""
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise LabError(f"override {pair!r} must look like key=value, e.g. epochs=2")
        key, raw = pair.split("=", 1)
        if key in out:
            raise LabError(f"parameter {key!r} is given twice in --set; keep one")
        if key not in known:
            close = difflib.get_close_matches(key, list(known), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise LabError(f"unknown notebook parameter {key!r}.{hint} Known: {', '.join(known)}")
        kind = known[key]
        try:
            if kind == "int":
                value = int(raw)
            elif kind == "float":
                value = float(raw)
            elif kind == "bool":
                if raw.lower() not in ("true", "false", "1", "0"):
                    raise ValueError(raw)
                value = raw.lower() in ("true", "1")
            else:
                value = raw
        except ValueError:
            raise LabError(f"parameter {key!r} takes {'an' if kind == 'int' else 'a'} {kind}, got {raw!r}") from None
        out[key] = value
    for key in out:
        if key in PER_RUN:
            raise LabError(f"{key!r} is set by the runner; use {PER_RUN[key]} instead")
    return out


def check_iterations(notebooks: dict[int, Path], iterations) -> list[int]:
    missing = sorted(set(iterations) - set(notebooks))
    if missing:
        raise LabError(f"no notebook for iteration(s) {missing}; have {sorted(notebooks)}")
    return list(dict.fromkeys(iterations))  # a repeated iteration would be the same run twice


def parse_grid(entries: list[str], known: dict[str, str]) -> list[dict]:
    """'key=v1,v2' strings -> every combination of their values as {key: value}, typed and checked as
    --set checks one value."""
    axes: dict[str, list] = {}
    for entry in entries:
        key, sep, raw = entry.partition("=")
        if not sep or not raw:
            raise LabError(f"--grid {entry!r} must look like key=v1,v2, e.g. lr=0.001,0.002")
        if key in axes:
            raise LabError(f"parameter {key!r} is given twice in --grid; list all its values once: {key}=v1,v2")
        values = [parse_overrides([f"{key}={v.strip()}"], known)[key] for v in raw.split(",")]
        if key in NO_NUMBER:  # every combination would be one run
            raise LabError(f"--grid over {key!r}: it does not change a run's numbers; set it with --set {key}=...")
        if key not in CONFIG_KEYS:  # the report tells a grid's runs apart by their recorded settings
            raise LabError(f"--grid over {key!r}: it shapes only the network, which a run's settings do not record; "
                           f"grid a run setting (lr, batch_size, epochs, ...), or run each {key} with --set {key}=...")
        axes[key] = list(dict.fromkeys(values))
    return [dict(zip(axes, combo)) for combo in itertools.product(*axes.values())]


def plan(series, iterations, seeds, out: Path, overrides: dict, smoke: bool, threads: int, data_dir: Path,
         grid: list[dict] | None = None, worker_cpu: str | None = None) -> list[Job]:
    """One job per (series, notebook, sweep value, seed), into <out>/<series>/; seeds None: each series'
    own (its series.json "seeds", else 0). Every job's parameters
    are checked here, before anything runs, by building the Config its notebook will build.
    `iterations` picks notebooks (all when empty); it is meant for one series. `grid` (from --grid)
    replaces the series' own runs and sweeps: each notebook at every combination. `worker_cpu`: the
    jobs run on cluster workers with these vector instructions, not on this machine."""
    jobs = []
    for s in series:
        folder = out / s.name
        for it in iterations or sorted(s.notebooks):
            nb = s.notebooks[it]
            defaults = notebook_defaults(nb)
            own = own_recipe(nb)
            variants = grid if grid is not None else s.variants(it)
            foreign = sorted({*overrides, *(k for v in variants for k in v)} - set(defaults))
            if foreign:  # it would run with a recipe other than the one planned, and fail at its end
                raise LabError(f"{s.name}/{nb.name} takes no parameter {', '.join(map(repr, foreign))}; pick the "
                               "notebooks that do with --series (and --iterations)")
            for variant in variants:
                for seed in seeds if seeds is not None else (s.seeds or [0]):
                    params = dict(overrides, **variant, series=s.name, seed=seed, smoke=smoke, threads=threads,
                                  data_dir=portable(data_dir), results_dir=portable(folder / "results"))
                    values = dict(defaults, **params)
                    try:  # the notebook's other parameters (a dropout rate, a width) shape only its network
                        cfg = Config.from_dict({k: v for k, v in values.items() if k in CONFIG_KEYS})
                    except LabError as exc:
                        raise LabError(f"{s.name}/{nb.name}{f' {variant}' if variant else ''}: {exc}") from None
                    absent = missing(cfg)
                    if absent:
                        raise LabError(f"{s.name}/{nb.name}{f' {variant}' if variant else ''}: {absent}")
                    device = run_device(cfg, elsewhere=worker_cpu is not None)
                    recipe = cfg.recipe(notebook_network(nb, values), device, worker_cpu)
                    rid = run_id(cfg.iteration, seed, cfg.smoke, recipe)
                    jobs.append(Job(it, seed, nb, folder / "notebooks" / f"{nb.stem}_{rid.split('_', 1)[1]}.ipynb",
                                    folder / "results" / f"{rid}.json", params, recipe, s.name, cfg.run_epochs,
                                    variant, own))
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
    per_epoch = {}
    for s in series:
        per_epoch.update(epoch_seconds_seen(out / s.name / "results", s.name)
                         or epoch_seconds_seen(reports_dir() / s.name / "results", s.name))
    return sorted(unique, key=lambda j: -expected_seconds(j, per_epoch))


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
    """(True, None) when the job's result file is there, usable and of the same recipe;
    (False, why it will be redone) for a file that is there but cannot count."""
    if not job.result.exists():
        return False, None
    r, why = read_result(job.result)
    if why:
        return False, why
    if r.get("recipe") != job.recipe:
        return False, "it was made with another recipe"
    if not job.result.with_suffix(".pt").is_file():
        return False, "its checkpoint is missing"
    return True, None


# ---- how many at once, and where ----------------------------------------------------------------
def local(chosen, iterations, seeds, out, overrides, smoke, data_dir, grid, workers, threads, log=print):
    """(jobs, notebooks at once, threads each) on this machine."""
    device = overrides.get("device", "auto")
    on_cpu = device == "cpu" or (device == "auto" and not torch.cuda.is_available())
    cores = os.cpu_count() or 1
    jobs = plan(chosen, iterations, seeds, out, overrides, smoke, 1, data_dir, grid)  # checks every parameter
    runs = len(jobs)
    # More notebooks at once than runs, or than cores on the CPU, only adds contention.
    # Tiny runs check the path and are no results: by default one per core, where full runs take one at a time.
    asked = workers or (cores if smoke else 1)
    workers = min(asked, runs, cores if on_cpu else runs)
    if workers < asked:
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
