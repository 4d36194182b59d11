"""Run the notebook series with papermill: subsets, seeds, overrides, parallel workers, resumable."""
from __future__ import annotations

import ast
import difflib
import itertools
import json
import os
import re
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from . import nbfiles
from .config import EXPECT_ENV, RESULTS_ENV, Config, run_id
from .errors import LabError
from .paths import base, portable, reports_dir
from .results import read_result

BLOCK_NAMES = ("conv", "trans", "pool", "drop", "head", "flatten", "dense", "bn", "gap")  # what a Net([...]) may use
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

    @property
    def label(self) -> str:
        settings = "".join(f" {k}={v}" for k, v in self.variant.items())
        return f"{self.series + ' ' if self.series else ''}{self.iteration}{settings} seed {self.seed}"


def find_notebooks(folder) -> dict[int, Path]:
    """The numbered notebooks of one series folder."""
    from .series import numbered

    found = numbered(Path(folder))
    if not found:
        raise LabError(f"no numbered notebooks (01_*.ipynb ...) in {folder}; run from the repository root "
                       "or pass --notebooks DIR")
    return found


def notebook_parameters(path: Path) -> dict[str, str]:
    """{name: type name} of the notebook's `parameters` cell."""
    return {k: type(v).__name__ for k, v in notebook_defaults(path).items()}


def _code_cells(path: Path) -> list:
    import nbformat

    try:
        return [c for c in nbformat.read(path, 4).cells if c.cell_type == "code"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise LabError(f"{path} is not a readable notebook ({exc})") from None


def notebook_defaults(path: Path) -> dict:
    """The values of the notebook's `parameters` cell (flat literals, as the house style wants)."""
    cell = next((c for c in _code_cells(path) if "parameters" in c.metadata.get("tags", [])), None)
    if cell is None:
        raise LabError(f"{path.name} has no cell tagged 'parameters'")
    out = {}
    for node in ast.parse(cell.source).body:
        target = node.target if isinstance(node, ast.AnnAssign) else \
            node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else None
        if isinstance(target, ast.Name) and node.value is not None:
            try:
                out[target.id] = ast.literal_eval(node.value)
            except ValueError:
                raise LabError(f"{path.name}: parameter {target.id!r} is not a flat literal") from None
    return out


def _net_calls(path: Path) -> list:
    found = []
    for cell in _code_cells(path):
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            continue
        found += [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
                  and n.func.id == "Net" and n.args]
    return found


def notebook_network_source(path: Path) -> str:
    """The source of the block list in the notebook's Net([...]) call ("" when there is none)."""
    found = _net_calls(path)
    return ast.unparse(found[0].args[0]) if len(found) == 1 else ""


def notebook_network(path: Path, params: dict) -> list[dict]:
    """The block list a notebook declares in its `Net([...])` call, read without running the notebook
    (the list is evaluated with the block constructors and the run's parameters, nothing else)."""
    from . import blocks

    names = {n: getattr(blocks, n) for n in BLOCK_NAMES}
    found = _net_calls(path)
    if len(found) != 1:
        raise LabError(f"{path.name} must declare its network in exactly one Net([...]) call; found {len(found)}")
    expr = ast.Expression(found[0].args[0])
    try:
        return eval(compile(expr, str(path), "eval"), {"__builtins__": {}}, dict(params, **names))
    except Exception as exc:
        raise LabError(f"{path.name}: its network could not be read ({type(exc).__name__}: {exc})") from None


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
    instead = {"iteration": "--iterations", "seed": "--seeds", "series": "--series", "results_dir": "--out", "data_dir": "--data",
               "smoke": "--smoke", "threads": "--threads"}
    for key in out:
        if key in instead:
            raise LabError(f"{key!r} is set by the runner; use {instead[key]} instead")
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
        if key in ("name", "log_every"):  # they change no number: every combination would be one run
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
    from .trainer import missing, run_device

    jobs = []
    for s in series:
        folder = out / s.name
        for it in iterations or sorted(s.notebooks):
            nb = s.notebooks[it]
            defaults = notebook_defaults(nb)
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
                                    variant))
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


def papermill_command(notebook: str, output: str, cwd: str, params: dict) -> list[str]:
    """The papermill process that runs one notebook (paths as the executed notebook records them)."""
    return [sys.executable, "-m", "papermill", notebook, output, "--cwd", cwd, "-k", "python3", "--no-progress-bar",
            "-y", json.dumps(params)]


def job_vars(job: Job) -> dict[str, str]:
    """The environment variables a job sets for its papermill process (the rest is the machine's)."""
    out = {EXPECT_ENV: job.result.stem}  # record() refuses to write under any other identity
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
    """Run the jobs, here or on `cluster` (mnist_lab.cluster.Cluster); return the failures as (job, reason).
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
