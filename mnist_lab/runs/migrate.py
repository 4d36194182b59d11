"""One-off migrations of result files, each run once (running again changes nothing).

Result files made before the runner recorded where a run belongs (schema 5) gain it, so that reports read only result files. For each series folder under the given output folder, the
series is planned again for the machine its files record (as for a cluster's workers), and each file whose
name a planned run gives (the same iteration, seed and recipe) gains that run's `notebook` (its file, own
parameters, own network and Target) and `variant`, and `series` where it lacks one. Nothing else in a file
changes: no number, no run id, and the file is rewritten in its own format.

Result files made before they recorded their checkpoint's size and SHA-256 (schema 6) gain them, from the
checkpoint as it is, where it is a complete archive whose every member passes its CRC check; a damaged one
is named and left without, so that resuming redoes its run.

    python -m mnist_lab.runs.migrate reports     # the committed results
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import zipfile

from ..io import atomic_write_json
from ..results import file_digest
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


def digests(out: Path, log=print) -> dict[str, int]:
    """{series: files given their checkpoint's digest} for every series folder in `out`."""
    done = {}
    for folder in sorted(d for d in Path(out).iterdir() if (d / "results").is_dir()):
        done[folder.name] = 0
        for path in sorted((folder / "results").glob("*.json")):
            r = json.loads(path.read_text())
            pt = path.with_name(r.get("checkpoint", path.with_suffix(".pt").name))
            if "checkpoint_sha256" in r or not pt.is_file():
                continue
            if not _sound(pt):
                log(f"{pt}: damaged, left without a digest (resuming redoes its run)")
                continue
            atomic_write_json(path, dict(r, **file_digest(pt)))
            done[folder.name] += 1
    return done


def _sound(pt: Path) -> bool:
    try:
        with zipfile.ZipFile(pt) as z:
            return z.testzip() is None
    except (OSError, zipfile.BadZipFile):
        return False


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "reports")
    for name, n in place(out, base() / "notebooks").items():
        print(f"{name}: {n} result file(s) placed")
    for name, n in digests(out).items():
        print(f"{name}: {n} result file(s) given their checkpoint's size and SHA-256")
