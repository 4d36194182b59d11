"""`mnist-lab bench --cluster`: one small sweep, on this machine and on a Dask cluster of two local workers.

A small sweep (study notebook 1 as smoke runs, a grid of 2 learning rates x 2 batch sizes, seeds 0 and 1:
8 runs, one thread each) is run three ways in every round, each into a fresh folder: `mnist-lab run
--workers 1`, `--workers 2`, and `--cluster` on a scheduler with two one-thread workers started here
on the loopback interface. The wall time of each command is printed. Rounds rotate the order, so a
shared machine's drift falls on every side.
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import fetch
from .errors import LabError
from .paths import base
from .runs.local_cluster import local_cluster

SWEEP = ["--series", "study", "--iterations", "1", "--grid", "lr=0.001,0.002", "batch_size=64,128", "--seeds", "0", "1",
         "--smoke", "--threads", "1", "--no-report"]


def _timed_run(args, out: Path) -> float:
    t = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "mnist_lab", "run", *SWEEP, *args, "--out", str(out)],
                          cwd=base(), capture_output=True, text=True)
    if done.returncode:
        raise LabError(f"`mnist-lab run {' '.join(SWEEP + args)}` failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
    return time.perf_counter() - t


def run(rounds: int, data, log=print) -> dict:

    data = str(Path(data).resolve() if data else fetch.default_root())
    fetch.ensure(data)
    sides = {"local, 1 worker": ["--workers", "1"], "local, 2 workers": ["--workers", "2"], "cluster, 2 workers": None}
    times = {k: [] for k in sides}
    with tempfile.TemporaryDirectory(prefix="mnist-lab-bench-") as tmp:
        tmp = Path(tmp)
        with local_cluster(tmp) as (address, _):
            for r in range(rounds):
                names = list(sides)[r % 3:] + list(sides)[:r % 3]
                for name in names:
                    args = sides[name] if sides[name] is not None else ["--cluster", address]
                    times[name].append(_timed_run([*args, "--data", data], tmp / f"round{r}-side{list(sides).index(name)}"))
                    log(f"  round {r + 1}, {name}: {times[name][-1]:.1f} s")
    return {"command": "mnist-lab run " + " ".join(SWEEP), "runs": 8, "rounds": rounds,
            "seconds": {k: [round(x, 1) for x in v] for k, v in times.items()},
            "median": {k: round(statistics.median(v), 1) for k, v in times.items()}, "cores": os.cpu_count()}
