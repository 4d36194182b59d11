"""A one-off migration: result files made before the runner recorded where a run belongs (schema 5) gain
it, so that reports read only result files. For each series folder under the given output folder, the
series is planned again for the machine its files record (as for a cluster's workers), and each file whose
name a planned run gives (the same iteration, seed and recipe) gains that run's `notebook` (its file, own
parameters, own network and Target) and `variant`, and `series` where it lacks one. Nothing else in a file
changes: no number, no run id, and the file is rewritten in its own format.

    python -m mnist_lab.runs.migrate reports     # the committed results (run once; running again changes nothing)
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from ..io import atomic_write_json
from ..paths import base
from ..series import find
from .plan import plan

ADDED = ("series", "notebook", "variant")


def place(out: Path, notebooks: Path) -> dict[str, int]:
    """{series: files given their place} for every series folder in `out` with a notebooks folder."""
    specs = find(notebooks)
    done = {}
    for folder in sorted(d for d in Path(out).iterdir() if (d / "results").is_dir() and d.name in specs):
        files = {p: json.loads(p.read_text()) for p in sorted((folder / "results").glob("*.json"))}
        machines = {(r["recipe"].get("cpu"), r["recipe"].get("threads") or 1) for r in files.values()
                    if r["recipe"].get("device") == "cpu"}
        jobs = {}
        for cpu, threads in sorted(machines):
            for smoke in (False, True):
                for job in plan([specs[folder.name]], [], sorted({r["seed"] for r in files.values()}), Path(out),
                                {"device": "cpu"}, smoke, threads, base() / "data", worker_cpu=cpu):
                    jobs[job.result.name] = job
        done[folder.name] = 0
        for path, r in files.items():
            job = jobs.get(path.name)
            if job is None or all(k in r for k in ADDED):
                continue
            placed = dict(r, series=r.get("series") or folder.name, **job.place)
            atomic_write_json(path, placed)
            done[folder.name] += 1
    return done


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "reports")
    for name, n in place(out, base() / "notebooks").items():
        print(f"{name}: {n} result file(s) placed")
