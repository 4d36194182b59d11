"""Run the notebook series with papermill: subsets, seeds, overrides, parallel workers, resumable."""
from __future__ import annotations

import difflib
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from .config import Config
from .errors import LabError
from .iterations import EPOCHS

NOTEBOOK = re.compile(r"^(\d+)_.*\.ipynb$")


@dataclass
class Job:
    iteration: int
    seed: int
    notebook: Path   # the committed notebook
    executed: Path   # where the executed copy goes
    result: Path     # the result file it writes
    params: dict


def find_notebooks(folder) -> dict[int, Path]:
    folder = Path(folder)
    found = {int(m.group(1)): folder / n for n in sorted(os.listdir(folder)) if (m := NOTEBOOK.match(n))} \
        if folder.is_dir() else {}
    if not found:
        raise LabError(f"no numbered notebooks (01_*.ipynb ...) in {folder}; run from the repository root "
                       "or pass --notebooks DIR")
    return found


def notebook_parameters(path: Path) -> dict[str, str]:
    """{name: type name} of the notebook's `parameters` cell."""
    import papermill

    return {k: v["inferred_type_name"] for k, v in papermill.inspect_notebook(str(path)).items()}


def parse_overrides(pairs: list[str], known: dict[str, str]) -> dict:
    """'key=value' strings -> typed values, checked against the notebooks' parameters."""
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise LabError(f"override {pair!r} must look like key=value, e.g. epochs=2")
        key, raw = pair.split("=", 1)
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
            raise LabError(f"parameter {key!r} takes a {kind}, got {raw!r}") from None
        out[key] = value
    for key in ("iteration", "seed", "results_dir"):
        if key in out:
            raise LabError(f"{key!r} is set by the runner; use --iterations, --seeds or --out instead")
    return out


def check_iterations(notebooks: dict[int, Path], iterations) -> list[int]:
    missing = sorted(set(iterations) - set(notebooks))
    if missing:
        raise LabError(f"no notebook for iteration(s) {missing}; have {sorted(notebooks)}")
    return list(iterations)


def plan(notebooks: dict[int, Path], iterations, seeds, out: Path, overrides: dict, smoke: bool,
         threads: int, data_dir: Path) -> list[Job]:
    jobs = []
    for it in iterations:
        for seed in seeds:
            nb = notebooks[it]
            params = dict(overrides, seed=seed, smoke=smoke, threads=threads,
                          data_dir=str(data_dir.resolve()), results_dir=str((out / "results").resolve()))
            run_id = Config(iteration=it, seed=seed, smoke=smoke).run_id
            jobs.append(Job(it, seed, nb, out / "notebooks" / f"{nb.stem}_seed{seed}{'_smoke' if smoke else ''}.ipynb",
                            out / "results" / f"{run_id}.json", params))
    # Longest first, so parallel workers finish together. Epoch times come from the output
    # folder's earlier results, else from the committed ones next to the notebooks.
    per_epoch = epoch_seconds_seen(out / "results") or \
        epoch_seconds_seen(next(iter(notebooks.values())).parent.parent / "reports" / "results")
    return sorted(jobs, key=lambda j: -expected_seconds(j, per_epoch))


def _epochs(job: Job) -> int:
    return job.params.get("epochs", EPOCHS.get(job.iteration, 20))


def epoch_seconds_seen(results: Path) -> dict[int, float]:
    """Mean seconds per epoch of each iteration, from full-length result files already in `results`.

    Iterations differ in cost per epoch (BatchNorm and dropout layers add work), so ordering by
    epochs alone can leave one worker with the three heaviest notebooks; ordering by expected time
    keeps the workers' loads even. Unreadable files are simply not used.
    """
    seen: dict[int, list[float]] = {}
    for path in sorted(results.glob("it*_seed*.json")) if results.is_dir() else []:
        try:
            rec = json.loads(path.read_text())
            if not rec.get("smoke"):
                seen.setdefault(int(rec["iteration"]), []).extend(float(h["seconds"]) for h in rec["history"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return {it: sum(v) / len(v) for it, v in seen.items() if v}


def expected_seconds(job: Job, per_epoch: dict[int, float]) -> float:
    # An iteration never run here counts as the mean of the others (all equal when none was run).
    default = sum(per_epoch.values()) / len(per_epoch) if per_epoch else 1.0
    return _epochs(job) * per_epoch.get(job.iteration, default)


def execute(job: Job) -> tuple[bool, str]:
    """Run one notebook in its own papermill process; the executed copy appears only when done."""
    job.executed.parent.mkdir(parents=True, exist_ok=True)
    tmp = job.executed.with_name(f".{job.executed.name}.running")
    cmd = [sys.executable, "-m", "papermill", str(job.notebook), str(tmp), "--cwd", str(job.notebook.parent),
           "-k", "python3", "--no-progress-bar", "-y", json.dumps(job.params)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if tmp.exists():
        os.replace(tmp, job.executed)  # a failed run keeps its executed notebook: it shows the error
    ok = done.returncode == 0 and job.result.exists()
    tail = "" if ok else (done.stderr.strip().splitlines() or ["no output"])[-1]
    return ok, tail


def run_series(jobs: list[Job], workers: int, force: bool, log=print) -> list[tuple[Job, str]]:
    """Run the jobs; return the failures as (job, reason). Finished results are never redone unless force."""
    from tqdm import tqdm

    todo = [j for j in jobs if force or not j.result.exists()]
    skipped = len(jobs) - len(todo)
    if skipped:
        log(f"{skipped} run(s) already have result files; skipping them (--force to redo)")
    failures = []
    start = time.perf_counter()
    bar = tqdm(total=len(todo), desc="series", unit="notebook", file=sys.stdout, ncols=90)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {pool.submit(_timed, execute, j): j for j in todo}
        try:
            for fut in as_completed(futures):
                job = futures[fut]
                (ok, why), secs = fut.result()
                status = "ok" if ok else "FAILED"
                acc = ""
                if ok:
                    r = json.loads(job.result.read_text())
                    acc = f", held-out acc {r['final_test_acc']:.2f}%"
                bar.write(f"  iteration {job.iteration} seed {job.seed}: {status} in {secs:.0f} s{acc}")
                bar.update(1)
                if not ok:
                    failures.append((job, why))
        except KeyboardInterrupt:
            bar.write("interrupted: finished runs are kept; run the same command again to resume")
            for f in futures:
                f.cancel()
            raise
    bar.close()
    log(f"series wall time {time.perf_counter() - start:.1f} s for {len(todo)} notebook(s), {workers} worker(s)")
    return failures


def _timed(fn, *args):
    t = time.perf_counter()
    return fn(*args), time.perf_counter() - t
