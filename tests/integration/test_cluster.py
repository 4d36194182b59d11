"""`mnist-lab run --cluster`: a real Dask scheduler and two worker processes on this machine (loopback only)."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import psutil
import pytest
import torch

from mnist_lab.runs import local_cluster as lc
from mnist_lab.runs.local_cluster import local_cluster
from conftest import ROOT



def lab(*args, wait=True):
    cmd = [sys.executable, "-m", "mnist_lab", *args]
    if wait:
        return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _results(out: Path) -> dict[str, Path]:
    return {p.name: p for p in sorted((out / "study" / "results").glob("*.json"))}


def _same_run(a: dict, b: dict):
    """Equal numbers and identity; only timings and where the files were written may differ (and the
    device, which the cluster names as "cpu" where a local run says "auto" and finds the CPU)."""
    timing = lambda h: [{k: v for k, v in e.items() if k != "seconds"} for e in h]
    assert timing(a["history"]) == timing(b["history"])
    assert a["config"].pop("results_dir") != b["config"].pop("results_dir")
    assert a["config"].pop("device") == "auto" and b["config"].pop("device") == "cpu"
    for key in set(a) | set(b):
        if key not in ("history", "wall_seconds"):
            assert a[key] == b[key], key


@pytest.mark.slow  # a real scheduler and worker processes
def test_a_killed_worker_loses_nothing_and_the_cluster_equals_a_local_run(tmp_path, mnist_root):
    args = ["--series", "study", "--iterations", "1", "2", "--seeds", "0", "1", "--smoke", "--threads", "1",
            "--data", str(mnist_root), "--no-report"]
    local = lab("run", *args, "--workers", "2", "--out", str(tmp_path / "local"))
    assert local.returncode == 0, local.stderr
    with local_cluster(tmp_path) as (address, workers):
        run = lab("run", *args, "--cluster", address, "--out", str(tmp_path / "cluster"), wait=False)
        victim = psutil.Process(workers["a"].pid)
        killed_mid_job = False
        deadline = time.time() + 300
        while run.poll() is None and time.time() < deadline:
            running = victim.children(recursive=True)  # papermill and its kernel: a notebook is running
            if len(running) >= 2:
                time.sleep(2)  # its kernel has started
                if victim.children(recursive=True):
                    orphans = victim.children(recursive=True)
                    os.kill(victim.pid, signal.SIGKILL)  # the worker alone, as when its machine is lost
                    killed_mid_job = True
                    break
            time.sleep(0.1)
        stdout, stderr = run.communicate(timeout=300)
    assert killed_mid_job, "worker a never ran a job"
    assert run.returncode == 0, stdout + stderr
    # The notebook it was running died with it instead of running on unseen.
    assert psutil.wait_procs(orphans, timeout=15)[1] == []
    lines = [line for line in stdout.replace("\r", "\n").splitlines() if line.startswith("  study ")]
    labels = [line.split(":")[0].strip() for line in lines]
    assert sorted(labels) == sorted(f"study {i} seed {s}" for i in (1, 2) for s in (0, 1))  # each once
    assert all(": ok in " in line for line in lines) and " on b," in lines[-1], stdout
    mine, theirs = _results(tmp_path / "cluster"), _results(tmp_path / "local")
    assert sorted(mine) == sorted(theirs) and len(mine) == 4  # the same run identities, once each
    for name in mine:
        _same_run(json.loads(theirs[name].read_text()), json.loads(mine[name].read_text()))
        a, b = (torch.load(p.with_suffix(".pt"), weights_only=False)["state_dict"] for p in (theirs[name], mine[name]))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    folder = tmp_path / "cluster" / "study"
    executed = sorted(p.name for p in (folder / "notebooks").iterdir())
    assert executed == sorted(p.name for p in (tmp_path / "local" / "study" / "notebooks").iterdir())  # no temp files
    assert sorted(p.name for p in (folder / "results").iterdir()) == \
        sorted(n for name in mine for n in (name, name.replace(".json", ".pt")))
    for name in executed:
        nb = nbformat.read(folder / "notebooks" / name, 4)
        assert nb.metadata.papermill.input_path.startswith("notebooks/study/")
        assert not nb.metadata.papermill.get("exception")
    assert not (tmp_path / "cluster" / ".lock").exists()


@pytest.mark.slow  # a real scheduler and worker processes
def test_a_notebook_that_keeps_failing_is_retried_by_dask_then_reported_like_a_local_failure(tmp_path, mnist_root):
    nbs = tmp_path / "notebooks" / "study"
    nbs.mkdir(parents=True)
    shutil.copy(ROOT / "notebooks" / "study" / "01_baseline.ipynb", nbs)
    broken = nbformat.read(ROOT / "notebooks" / "study" / "02_five_epochs_25k.ipynb", 4)
    broken.cells.append(nbformat.v4.new_code_cell(
        "import os\nopen(os.environ['TRIES'], 'a').write('try\\n')\nraise RuntimeError('deliberately broken notebook')"))
    nbformat.write(broken, nbs / "02_broken.ipynb")
    tries = tmp_path / "tries.txt"
    # Workers whose torch uses other vector instructions than this machine's (none, or where this process
    # runs without them, the CPU's own): the runs are planned with theirs.
    here = torch.backends.cpu.get_cpu_capability()
    theirs = "default" if here != "DEFAULT" else None
    with local_cluster(tmp_path, env={"TRIES": str(tries), "ATEN_CPU_CAPABILITY": theirs}) as (address, _):
        done = lab("run", "--notebooks", str(nbs), "--smoke", "--retries", "1", "--cluster", address,
                   "--out", str(tmp_path / "out"), "--data", str(mnist_root), "--no-report")
    assert done.returncode == 1, done.stderr
    assert tries.read_text() == "try\ntry\n"  # the first run and one retry, by Dask
    assert "1 notebook(s) failed:" in done.stdout and "study 2 seed 0: RuntimeError: deliberately broken notebook " \
        "(on every one of 2 tries)" in done.stdout
    [executed] = (tmp_path / "out" / "study" / "notebooks").glob("02_broken_seed0_smoke_*.ipynb")
    assert executed.name in done.stdout and "deliberately broken" in executed.read_text()
    [result] = _results(tmp_path / "out").values()
    planned = json.loads(result.read_text())["recipe"]["cpu"]
    assert result.name.startswith("it1_seed0_smoke_") and planned != here and planned == (theirs or planned).upper()
    assert not list((tmp_path / "out" / "study" / "results").glob("it2_*"))


@pytest.mark.slow  # a real scheduler and worker processes
def test_a_grid_on_the_cluster_gives_the_local_grid_and_resumes(tmp_path, mnist_root):
    args = ["--series", "study", "--iterations", "1", "--grid", "lr=0.001,0.003", "batch_size=64,128", "--smoke",
            "--threads", "1", "--data", str(mnist_root)]
    local = lab("run", *args, "--workers", "2", "--out", str(tmp_path / "local"), "--no-report")
    assert local.returncode == 0, local.stderr
    with local_cluster(tmp_path) as (address, _):
        run = lab("run", *args, "--cluster", address, "--out", str(tmp_path / "cluster"))
        again = lab("run", *args, "--cluster", address, "--out", str(tmp_path / "cluster"), "--no-report")
    assert run.returncode == 0, run.stderr
    assert "study 1 lr=0.003 batch_size=128 seed 0: ok in" in run.stdout  # each run named by its settings
    mine, theirs = _results(tmp_path / "cluster"), _results(tmp_path / "local")
    assert sorted(mine) == sorted(theirs) and len(mine) == 4
    got = {(r["lr"], r["batch_size"]) for r in (json.loads(p.read_text()) for p in mine.values())}
    assert got == {(0.001, 64), (0.001, 128), (0.003, 64), (0.003, 128)}
    for name in mine:
        _same_run(json.loads(theirs[name].read_text()), json.loads(mine[name].read_text()))
    assert "4 run(s) already have result files with the same recipe; skipping them" in again.stdout
    report = (tmp_path / "cluster" / "study" / "README.md").read_text()  # the grid, grouped: one line each
    assert "## Smoke grid: notebook 1 (baseline) at other settings" in report and "| batch_size | lr | Held-out test acc" in report
    assert "| 64 (own) | 0.001 |" in report and "| 128 | 0.003 |" in report


# A parent that starts a scheduler and a worker as the lab does, prints their pids, and waits to be killed.
_PARENT = """
import json, sys, time
from pathlib import Path
import psutil
from mnist_lab.runs import local_cluster as lc
from mnist_lab.runs.local_cluster import local_cluster
with local_cluster(Path(sys.argv[1]), workers=("a",)):
    print(json.dumps([p.pid for p in psutil.Process().children()]), flush=True)
    time.sleep(600)
"""


def _alive(proc: psutil.Process) -> bool:
    """Running, and not a zombie: an orphan's new parent may never reap it, yet it is dead."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


LINUX_ONLY = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's prctl")


@LINUX_ONLY
@pytest.mark.slow  # a real scheduler and worker process
def test_a_killed_parent_leaves_no_scheduler_or_worker_behind(tmp_path):
    parent = subprocess.Popen([sys.executable, "-c", _PARENT, str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        started = [psutil.Process(pid) for pid in json.loads(parent.stdout.readline() or "[]")]
    finally:
        parent.kill()  # SIGKILL: no finally of its own runs, as when pytest itself is killed
        parent.wait()
    assert len(started) == 2, "the parent did not start a scheduler and a worker"
    deadline = time.time() + 30
    while any(map(_alive, started)) and time.time() < deadline:
        time.sleep(0.2)
    survivors = [f"{p.pid} ({' '.join(p.cmdline())})" for p in started if _alive(p)]
    for p in started:  # this test leaves none behind either
        if _alive(p):
            p.kill()
    assert survivors == [], "outlived their killed parent: " + ", ".join(survivors)


@LINUX_ONLY
def test_a_process_whose_parent_died_before_it_could_ask_to_die_with_it_never_runs(tmp_path):
    cmd = lc.die_with_parent([sys.executable, "-c", "import sys; open(sys.argv[1], 'w')", tmp_path / "ran"])
    assert subprocess.run(cmd).returncode == 0 and (tmp_path / "ran").exists()
    (tmp_path / "ran").unlink()
    cmd[3] = "1"  # the parent it expects is not its parent: as if it had been handed to init already
    assert subprocess.run(cmd).returncode == 1 and not (tmp_path / "ran").exists()


@pytest.mark.slow  # a real worker process, waiting out its death timeout
def test_a_worker_that_cannot_reach_its_scheduler_gives_up(tmp_path, monkeypatch):
    """What left two workers waiting 45 minutes for a scheduler that was gone before they registered."""
    monkeypatch.setattr(lc, "DEATH_TIMEOUT", 3)
    nobody = f"tcp://127.0.0.1:{lc._free_port()}"
    worker = subprocess.Popen(lc.dask_command("worker", nobody, "--no-nanny", "--no-dashboard"), cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert worker.wait(timeout=60) != 0
    finally:
        worker.kill()
        worker.wait()


@pytest.mark.parametrize("args,message", [
    pytest.param(["--cluster", "tcp://127.0.0.1:1"], "no Dask scheduler answers at tcp://127.0.0.1:1",
                 marks=pytest.mark.slow),  # it waits out the connection's timeout
    (["--cluster", "tcp://127.0.0.1:1", "--workers", "2"], "--workers is for runs on this machine"),
])
def test_cluster_mistakes_are_one_clear_line(args, message, tmp_path):
    done = lab("run", "--series", "study", "--smoke", "--out", str(tmp_path / "out"), *args)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert not (tmp_path / "out").exists()


def test_workers_must_agree_on_what_makes_a_cpu_runs_identity():
    from mnist_lab.runs.cluster import Cluster
    from mnist_lab.errors import LabError
    from mnist_lab.frameworks.pytorch import run_device
    from mnist_lab.config import Config

    cluster = Cluster.__new__(Cluster)  # its workers' facts, without a scheduler
    cluster.workers = {"tcp://a": {"cpu": "AVX2"}, "tcp://b": {"cpu": "AVX512"}}
    with pytest.raises(LabError, match=r"differ in vector instructions \(tcp://a: AVX2, tcp://b: AVX512\).*ATEN_CPU_CAPABILITY"):
        cluster.cpu()
    assert cluster.cpu(strict=False) == "AVX2"  # runs on CUDA do not depend on it
    cluster.workers = {"tcp://a": {"cpu": "AVX2"}, "tcp://b": {"cpu": "AVX2"}}
    assert cluster.cpu() == "AVX2"
    with pytest.raises(LabError, match="on a cluster the device is chosen, not detected"):
        run_device(Config(device="auto"), elsewhere=True)
    with pytest.raises(LabError, match="unknown device 'gpu'"):
        run_device(Config(device="gpu"), elsewhere=True)
    assert run_device(Config(device="cuda"), elsewhere=True).type == "cuda"  # no GPU needed here to plan it
