"""Integration: the papermill series as smoke runs, failures, resuming, overrides, and the bench command."""
import json
import os
import shutil
import socket
import subprocess
import sys

import nbformat
import pytest
from conftest import ROOT



def lab(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "mnist_lab", *args], cwd=cwd, capture_output=True, text=True)


def results_of(out, it=None, series="study"):
    return sorted((out / series / "results").glob(f"it{it if it is not None else '*'}_seed*.json"))


@pytest.fixture(scope="module")
def series(tmp_path_factory, mnist_root):
    """All seven notebooks plus a deliberately broken eighth, as smoke runs, two at a time. The eighth
    fails after its record cell, so it has written a result file by the time it fails."""
    tmp = tmp_path_factory.mktemp("series")
    nbs = tmp / "notebooks"
    shutil.copytree(ROOT / "notebooks" / "study", nbs / "study")
    broken = nbformat.read(nbs / "study" / "05_bn_below_20k.ipynb", 4)
    broken.cells.append(nbformat.v4.new_code_cell("raise RuntimeError('deliberately broken notebook')"))
    for cell in broken.cells:
        if "parameters" in cell.metadata.get("tags", []):
            cell.source = cell.source.replace("iteration: int = 5", "iteration: int = 8")
    nbformat.write(broken, nbs / "study" / "08_broken.ipynb")
    out = tmp / "reports"
    done = lab("run", "--smoke", "--workers", "2", "--threads", "1", "--notebooks", str(nbs), "--out", str(out),
               "--data", str(mnist_root))
    return tmp, nbs, out, done


@pytest.mark.slow
def test_smoke_series_gives_seven_results_and_a_report(series):
    from mnist_lab.config import recipe_hash

    _, _, out, done = series
    names = [p.name for p in results_of(out)]
    assert [n.split("_smoke_")[0] for n in names] == [f"it{i}_seed0" for i in range(1, 8)], done.stdout + done.stderr
    for name in names:
        r = json.loads((out / "study" / "results" / name).read_text())
        assert r["smoke"] is True and r["test_size"] == 1000 and len(r["history"]) >= 1
        # the name is the identity: iteration, seed, and the hash of the recipe stored inside
        assert name == f"{r['run_id']}.json" and r["run_id"].endswith(recipe_hash(r["recipe"]))
        assert r["recipe"]["threads"] == 1 and r["recipe"]["blocks"] == r["blocks"]
    report = (out / "study" / "README.md").read_text()
    assert "Smoke runs" in report and report.count("| 0 |") == 7
    assert "smoke_test_acc_per_epoch.png" in report and (out / "study" / "smoke_params_vs_acc.png").exists()
    assert "[study](study/README.md)" in (out / "README.md").read_text()  # the index of the output folder
    assert len(list((out / "study" / "notebooks").glob("*.ipynb"))) == 8
    assert not (out / "study" / "run.json").exists()  # smoke runs are not results: no record of how they were made
    assert not (out / ".lock").exists()


@pytest.mark.slow
def test_broken_notebook_is_listed_leaves_no_result_and_the_others_finish(series):
    _, _, out, done = series
    assert done.returncode == 1
    assert "1 notebook(s) failed" in done.stdout and "study 8 seed 0" in done.stdout
    [executed] = (out / "study" / "notebooks").glob("08_broken_seed0_smoke_*.ipynb")
    assert executed.name in done.stdout
    assert "deliberately broken" in executed.read_text()
    assert results_of(out, 8) == [] and not list((out / "study" / "results").glob("it8_*.pt"))


@pytest.mark.slow
def test_executed_notebooks_keep_final_progress_and_relative_paths(series):
    _, _, out, _ = series
    for path in (out / "study" / "notebooks").glob("0[1-7]_*.ipynb"):
        nb = json.loads(path.read_text())
        streams = [o for c in nb["cells"] for o in c.get("outputs", []) if o["output_type"] == "stream"]
        text = "".join("".join(o["text"]) for o in streams)
        assert "\r" not in text and ": 100%|" in text, path.name
        assert len(streams) < 12, path.name  # a few per epoch, not one per redraw
        meta = nb["metadata"]["papermill"]
        assert meta["output_path"].endswith(path.name)  # not the temporary name it was written under


@pytest.mark.slow
def test_finished_runs_are_skipped_on_resume(series, mnist_root):
    tmp, nbs, out, _ = series
    [path] = results_of(out, 3)
    before = path.stat().st_mtime_ns
    stale = out / "study" / "notebooks" / ".03_twenty_epochs_20k_seed0_smoke_0.ipynb.running"  # as a killed run leaves it
    stale.write_text("{")
    again = lab("run", "--smoke", "--iterations", "3", "--threads", "1", "--notebooks", str(nbs), "--out", str(out),
                "--data", str(mnist_root), "--no-report")
    assert again.returncode == 0 and "skipping" in again.stdout
    assert path.stat().st_mtime_ns == before
    assert "removing .03_twenty_epochs_20k_seed0_smoke_0.ipynb.running" in again.stdout and not stale.exists()


@pytest.mark.slow
def test_another_recipe_gets_its_own_file_and_never_replaces_one(series, mnist_root):
    tmp, nbs, out, _ = series
    [first] = results_of(out, 2)
    before = first.read_bytes()
    other = lab("run", "--smoke", "--iterations", "2", "--set", "lr=0.001", "--threads", "1", "--notebooks",
                str(nbs), "--out", str(out), "--data", str(mnist_root), "--no-report")
    assert other.returncode == 0, other.stdout + other.stderr
    files = results_of(out, 2)
    assert len(files) == 2 and first in files and first.read_bytes() == before
    new = json.loads(next(p for p in files if p != first).read_text())
    assert new["lr"] == 0.001 and new["recipe"]["lr"] == 0.001


@pytest.mark.slow
def test_a_broken_or_foreign_result_file_is_redone_not_skipped(series, mnist_root):
    tmp, nbs, out, _ = series
    [path] = results_of(out, 6)
    r = json.loads(path.read_text())
    planned = r["recipe"]["epochs"]
    r["recipe"]["epochs"] = 99  # as if made by another recipe under this name
    path.write_text(json.dumps(r))
    again = lab("run", "--smoke", "--iterations", "6", "--threads", "1", "--notebooks", str(nbs), "--out", str(out),
                "--data", str(mnist_root), "--no-report")
    assert again.returncode == 0 and "another recipe" in again.stdout
    assert json.loads(path.read_text())["recipe"]["epochs"] == planned
    r = json.loads(path.read_text())
    r["final_test_acc"] = None
    path.write_text(json.dumps(r))
    again = lab("run", "--smoke", "--iterations", "6", "--threads", "1", "--notebooks", str(nbs), "--out", str(out),
                "--data", str(mnist_root), "--no-report")
    assert again.returncode == 0 and "'final_test_acc' is None" in again.stdout
    assert json.loads(path.read_text())["final_test_acc"] is not None
    path.with_suffix(".pt").unlink()
    again = lab("run", "--smoke", "--iterations", "6", "--threads", "1", "--notebooks", str(nbs), "--out", str(out),
                "--data", str(mnist_root), "--no-report")
    assert again.returncode == 0 and "its checkpoint is missing" in again.stdout
    assert path.with_suffix(".pt").is_file()


@pytest.mark.slow
def test_parallel_equals_serial_at_equal_threads(series, mnist_root, tmp_path):
    """Two workers at one thread each give the numbers a serial one-thread run gives."""
    _, nbs, out, _ = series
    serial = lab("run", "--smoke", "--iterations", "4", "7", "--threads", "1", "--notebooks", str(nbs),
                 "--out", str(tmp_path), "--data", str(mnist_root), "--no-report")
    assert serial.returncode == 0, serial.stderr
    for it in (4, 7):
        [pa], [pb] = results_of(out, it), results_of(tmp_path, it)
        assert pa.name == pb.name  # same recipe, same identity
        a, b = json.loads(pa.read_text()), json.loads(pb.read_text())
        assert a["threads"] == b["threads"] == 1
        strip = lambda h: [{k: v for k, v in e.items() if k != "seconds"} for e in h]
        assert strip(a["history"]) == strip(b["history"])


@pytest.mark.parametrize("args,message", [
    (["--set", "epocs=2"], "unknown notebook parameter 'epocs'. Did you mean 'epochs'"),
    (["--set", "epochs=two"], "parameter 'epochs' takes an int"),
    (["--set", "epochs=1", "epochs=3"], "parameter 'epochs' is given twice"),
    (["--set", "epochs=-1"], "epochs must be >= 1, got -1"),
    (["--set", "batch_size=0"], "batch_size must be >= 1, got 0"),
    (["--set", "lr=0"], "lr must be > 0, got 0"),
    (["--set", "threads=3"], "'threads' is set by the runner; use --threads"),
    (["--set", "lr=nan"], "lr must be a finite number, got nan"),
    (["--seeds", "0", "-1"], "seeds must be 0 or more, got [-1]"),
    (["--series", "study", "--iterations", "9"], "no notebook for iteration(s) [9]"),
    (["--iterations", "1"], "--iterations picks notebooks of one series; add --series NAME"),
    (["--series", "studdy"], "no series 'studdy'; have baselines, frameworks, study"),
    (["--series", "baselines", "--set", "framework=jax"], "framework must be one of 'pytorch', 'keras', 'lightning', 'numpy'"),
    (["--set", "rotation=0"], "study/01_baseline.ipynb takes no parameter 'rotation'; pick the notebooks"),
    (["--series", "baselines", "--set", "framework=numpy"], "framework 'numpy' trains with minibatch SGD"),
])
def test_bad_run_arguments_are_clear_and_nothing_runs(args, message, tmp_path, capsys):
    """In the test's process (a command line each would cost a Python start-up and the lab's import); the test
    after this one sees such a line reach a real console."""
    from mnist_lab import cli

    with pytest.raises(SystemExit) as stop:
        cli.main(["run", "--smoke", "--out", str(tmp_path / "out"), *args])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and message in err and "Traceback" not in err
    assert err.count("\n") == 1  # one line
    assert not (tmp_path / "out").exists()


def test_a_bad_run_argument_is_one_line_on_the_console_and_nothing_runs(tmp_path):
    done = lab("run", "--smoke", "--out", str(tmp_path / "out"), "--set", "epocs=2")
    assert done.returncode == 2 and "Did you mean 'epochs'" in done.stderr and "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_two_notebooks_declaring_the_same_run_are_refused(tmp_path):
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    shutil.copy(ROOT / "notebooks" / "study" / "05_bn_below_20k.ipynb", nbs)
    shutil.copy(ROOT / "notebooks" / "study" / "05_bn_below_20k.ipynb", nbs / "09_copy.ipynb")  # still says iteration 5
    done = lab("run", "--smoke", "--notebooks", str(nbs), "--out", str(tmp_path / "out"))
    assert done.returncode == 2 and "are the same run" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # whole smoke runs through papermill
def test_workers_are_capped_and_repeated_iterations_run_once(tmp_path, mnist_root):
    done = lab("run", "--smoke", "--series", "study", "--iterations", "1", "1", "--workers", "100", "--out", str(tmp_path),
               "--data", str(mnist_root), "--no-report")
    assert done.returncode == 0, done.stderr
    assert "--workers 100 capped to 1 (1 run(s)" in done.stdout and "1 run(s): series study [1]" in done.stdout


@pytest.mark.slow  # whole smoke runs through papermill
def test_an_output_folder_being_written_is_refused_and_a_stale_lock_taken_over(tmp_path, mnist_root):
    from mnist_lab.runs.lock import FolderLock

    with FolderLock(tmp_path):
        busy = lab("run", "--smoke", "--series", "study", "--iterations", "1", "--out", str(tmp_path), "--data",
                   str(mnist_root))
    assert busy.returncode == 2 and f"being written by process {os.getpid()}" in busy.stderr
    assert "Traceback" not in busy.stderr and not (tmp_path / "study").exists()
    # A run killed with SIGKILL leaves its lock file behind, but not its lock.
    dead = subprocess.Popen(["sleep", "0"])
    dead.wait()
    (tmp_path / ".lock").write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "command": "x"}))
    again = lab("run", "--smoke", "--series", "study", "--iterations", "1", "--out", str(tmp_path), "--data",
                str(mnist_root), "--no-report")
    assert again.returncode == 0, again.stderr
    assert f"taking over the lock of process {dead.pid}" in again.stdout
    assert not (tmp_path / ".lock").exists()


def test_notebooks_left_running_by_a_killed_run_keep_its_folder_locked(tmp_path, mnist_root):
    """The notebooks inherit the lock: a run killed with SIGKILL leaves them holding it."""
    dead = subprocess.Popen(["sleep", "0"])
    dead.wait()
    (tmp_path / ".lock").write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "command": "x"}))
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR); "
                               "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)",
                               str(tmp_path / ".lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        busy = lab("run", "--smoke", "--series", "study", "--iterations", "1", "--out", str(tmp_path), "--data",
                   str(mnist_root))
        assert busy.returncode == 2 and f"still running from stopped process {dead.pid}" in busy.stderr
    finally:
        holder.kill()
        holder.wait()


def test_nbval_smoke_mode_does_not_leak_into_unit_tests():
    """`pytest --nbval-lax` over unit tests: the plugin's smoke mode is for notebook cells only."""
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
                           "tests/unit/test_config.py::test_every_parameter_that_changes_the_numbers_changes_the_identity"],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:]


@pytest.mark.slow
def test_bench_json_has_its_figures(mnist_root):
    done = lab("bench", "--rounds", "1", "--batches", "5", "--json", "--data", str(mnist_root))
    assert done.returncode == 0, done.stderr
    res = json.loads(done.stdout)
    assert {"reference_img_s", "lab_img_s", "ratio", "eval_img_s", "device"} <= set(res)
    assert res["ratio"] == pytest.approx(res["lab_img_s"] / res["reference_img_s"], rel=0.01)


def test_runner_orders_by_recorded_time(tmp_path, monkeypatch):
    """Heavier notebooks go first when earlier result files say how long an epoch took."""
    from mnist_lab.runs import plan

    from mnist_lab import series

    study = series.load(ROOT / "notebooks" / "study")
    results = tmp_path / "study" / "results"
    results.mkdir(parents=True)
    for it, sec in {3: 5.0, 7: 9.0, 4: 7.0}.items():
        (results / f"it{it}_seed0_0000000{it}.json").write_text(json.dumps(
            {"iteration": it, "smoke": False, "batch_size": 64, "history": [{"seconds": sec}, {"seconds": sec}]}))
    (results / "it5_seed0_00000005.json").write_text("{not json")  # unreadable: ignored
    (results / "it6_seed0_smoke_00000006.json").write_text(json.dumps(
        {"iteration": 6, "smoke": True, "batch_size": 64, "history": [{"seconds": 99.0}]}))  # smoke runs say nothing
    order = [j.iteration for j in plan.plan([study], [], [0], tmp_path, {}, False, 1, tmp_path)]
    # 20 epochs each: 7 (9 s), 4 (7 s), then 5 and 6 at the mean of the known (7 s), then 3 (5 s); 2, 1 last
    assert order[:2] == [7, 4] and set(order[2:4]) == {5, 6} and order[4:] == [3, 2, 1]
    monkeypatch.setattr(plan, "reports_dir", lambda: tmp_path / "no-reports")  # no committed results either
    plain = [j.iteration for j in plan.plan([study], [], [0], tmp_path / "none", {}, False, 1, tmp_path)]
    assert plain == [3, 4, 5, 6, 7, 2, 1]  # nothing recorded: by epochs


def test_series_makespan_packs_longest_first():
    from mnist_lab.benchseries import makespan

    assert makespan({1: 5.0, 2: 4.0, 3: 3.0}, 1) == 12.0
    assert makespan({1: 5.0, 2: 4.0, 3: 3.0, 4: 2.0}, 2) == 7.0  # 5+2 | 4+3
    assert makespan({1: 5.0}, 7) == 5.0


@pytest.mark.slow
def test_bench_series_json(mnist_root):
    done = lab("bench", "--series", "--rounds", "1", "--batches", "3", "--workers", "2", "--json",
               "--data", str(mnist_root))
    assert done.returncode == 0, done.stderr
    res = json.loads(done.stdout)
    assert [r["iteration"] for r in res["per_iteration"]] == list(range(1, 8))
    assert res["workers"] == 2 and res["threads"] == 1
    assert res["ratio"] == pytest.approx(res["reference_series_min"] / res["lab_series_min"], rel=0.05)
    assert "leaked" not in done.stderr
