"""Integration: the papermill series in tiny mode, failures, resuming, overrides, and the bench command."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]


def lab(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "mnist_lab", *args], cwd=cwd, capture_output=True, text=True)


@pytest.fixture(scope="module")
def series(tmp_path_factory, mnist_root):
    """All seven notebooks plus a deliberately broken eighth, in tiny mode, two at a time."""
    tmp = tmp_path_factory.mktemp("series")
    nbs = tmp / "notebooks"
    shutil.copytree(ROOT / "notebooks", nbs)
    broken = nbformat.read(nbs / "05_bn_below_20k.ipynb", 4)
    broken.cells.insert(4, nbformat.v4.new_code_cell("raise RuntimeError('deliberately broken notebook')"))
    nbformat.write(broken, nbs / "08_broken.ipynb")
    out = tmp / "reports"
    done = lab("run", "--smoke", "--workers", "2", "--threads", "1", "--notebooks", str(nbs), "--out", str(out),
               "--data", str(mnist_root))
    return tmp, nbs, out, done


def test_smoke_series_gives_seven_results_and_a_report(series):
    _, _, out, done = series
    names = sorted(p.name for p in (out / "results").glob("*.json"))
    assert names == [f"it{i}_seed0_smoke.json" for i in range(1, 8)], done.stdout + done.stderr
    for name in names:
        r = json.loads((out / "results" / name).read_text())
        assert r["smoke"] is True and r["test_size"] == 1000 and len(r["history"]) >= 1
    report = (out / "README.md").read_text()
    assert "Tiny runs" in report and report.count("| 0 |") == 7
    assert len(list((out / "notebooks").glob("*.ipynb"))) == 8


def test_broken_notebook_is_listed_and_the_others_finish(series):
    _, _, out, done = series
    assert done.returncode == 1
    assert "1 notebook(s) failed" in done.stdout and "iteration 8" in done.stdout
    executed = out / "notebooks" / "08_broken_seed0_smoke.ipynb"
    assert str(executed) in done.stdout and executed.exists()
    assert "deliberately broken" in executed.read_text()


def test_finished_runs_are_skipped_on_resume(series, mnist_root):
    tmp, nbs, out, _ = series
    before = (out / "results" / "it3_seed0_smoke.json").stat().st_mtime_ns
    again = lab("run", "--smoke", "--iterations", "3", "--notebooks", str(nbs), "--out", str(out),
                "--data", str(mnist_root), "--no-report")
    assert again.returncode == 0 and "skipping" in again.stdout
    assert (out / "results" / "it3_seed0_smoke.json").stat().st_mtime_ns == before


def test_parallel_equals_serial_at_equal_threads(series, mnist_root, tmp_path):
    """Two workers at one thread each give the numbers a serial one-thread run gives."""
    _, nbs, out, _ = series
    serial = lab("run", "--smoke", "--iterations", "4", "7", "--threads", "1", "--notebooks", str(nbs),
                 "--out", str(tmp_path), "--data", str(mnist_root), "--no-report")
    assert serial.returncode == 0, serial.stderr
    for it in (4, 7):
        a = json.loads((out / "results" / f"it{it}_seed0_smoke.json").read_text())
        b = json.loads((tmp_path / "results" / f"it{it}_seed0_smoke.json").read_text())
        assert a["threads"] == b["threads"] == 1
        strip = lambda h: [{k: v for k, v in e.items() if k != "seconds"} for e in h]
        assert strip(a["history"]) == strip(b["history"])


@pytest.mark.parametrize("args,message", [
    (["--set", "epocs=2"], "unknown notebook parameter 'epocs'. Did you mean 'epochs'"),
    (["--set", "epochs=two"], "parameter 'epochs' takes a int"),
    (["--iterations", "9"], "no notebook for iteration(s) [9]"),
])
def test_bad_run_arguments_are_clear(args, message, tmp_path):
    done = lab("run", "--smoke", "--out", str(tmp_path), *args)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr


def test_bench_json_has_its_figures(mnist_root):
    done = lab("bench", "--rounds", "1", "--batches", "5", "--json", "--data", str(mnist_root))
    assert done.returncode == 0, done.stderr
    res = json.loads(done.stdout)
    assert {"reference_img_s", "lab_img_s", "ratio", "eval_img_s", "device"} <= set(res)
    assert res["ratio"] == pytest.approx(res["lab_img_s"] / res["reference_img_s"], rel=0.01)


def test_runner_orders_by_recorded_time(tmp_path):
    """Heavier notebooks go first when earlier result files say how long an epoch took."""
    from mnist_lab import runner

    nbs = runner.find_notebooks(ROOT / "notebooks")
    results = tmp_path / "results"
    results.mkdir()
    for it, sec in {3: 5.0, 7: 9.0, 4: 7.0}.items():
        (results / f"it{it}_seed0.json").write_text(json.dumps(
            {"iteration": it, "smoke": False, "history": [{"seconds": sec}, {"seconds": sec}]}))
    (results / "it5_seed0.json").write_text("{not json")  # unreadable: ignored
    (results / "it6_seed0_smoke.json").write_text(json.dumps(
        {"iteration": 6, "smoke": True, "history": [{"seconds": 99.0}]}))  # tiny runs say nothing
    order = [j.iteration for j in runner.plan(nbs, sorted(nbs), [0], tmp_path, {}, False, 1, tmp_path)]
    # 20 epochs each: 7 (9 s), 4 (7 s), then 5 and 6 at the mean of the known (7 s), then 3 (5 s); 2, 1 last
    assert order[:2] == [7, 4] and set(order[2:4]) == {5, 6} and order[4:] == [3, 2, 1]
    elsewhere = tmp_path / "elsewhere" / "notebooks"  # no results here, none beside the notebooks
    shutil.copytree(ROOT / "notebooks", elsewhere)
    plain = [j.iteration for j in runner.plan(runner.find_notebooks(elsewhere), sorted(nbs), [0], tmp_path / "none",
                                              {}, False, 1, tmp_path)]
    assert plain == [3, 4, 5, 6, 7, 2, 1]  # nothing recorded: by epochs


def test_series_makespan_packs_longest_first():
    from mnist_lab.benchseries import makespan

    assert makespan({1: 5.0, 2: 4.0, 3: 3.0}, 1) == 12.0
    assert makespan({1: 5.0, 2: 4.0, 3: 3.0, 4: 2.0}, 2) == 7.0  # 5+2 | 4+3
    assert makespan({1: 5.0}, 7) == 5.0


def test_bench_series_json(mnist_root):
    done = lab("bench", "--series", "--rounds", "1", "--batches", "3", "--workers", "2", "--json",
               "--data", str(mnist_root))
    assert done.returncode == 0, done.stderr
    res = json.loads(done.stdout)
    assert [r["iteration"] for r in res["per_iteration"]] == list(range(1, 8))
    assert res["workers"] == 2 and res["threads"] == 1
    assert res["ratio"] == pytest.approx(res["reference_series_min"] / res["lab_series_min"], rel=0.05)
    assert "leaked" not in done.stderr
