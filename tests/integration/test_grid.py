"""`mnist-lab run --grid`: every combination of the values, times the seeds, each its own run; the report groups them."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from mnist_lab import reports, series
from mnist_lab.runs import plan
from mnist_lab.errors import LabError

from conftest import fake_result
from conftest import ROOT

KNOWN = series.notebook_parameters(ROOT / "notebooks" / "under8k" / "01_skeleton.ipynb")


def test_a_grid_is_every_combination_typed_as_the_notebook_declares():
    grid = plan.parse_grid(["lr=0.001,0.002", "batch_size=64,128,64", "optimizer=sgd"], KNOWN)
    assert grid == [{"lr": 0.001, "batch_size": 64, "optimizer": "sgd"}, {"lr": 0.001, "batch_size": 128, "optimizer": "sgd"},
                    {"lr": 0.002, "batch_size": 64, "optimizer": "sgd"}, {"lr": 0.002, "batch_size": 128, "optimizer": "sgd"}]
    assert all(type(g["lr"]) is float and type(g["batch_size"]) is int for g in grid)


@pytest.mark.parametrize("entries,message", [
    (["lr"], "--grid 'lr' must look like key=v1,v2"),
    (["lr="], "--grid 'lr=' must look like key=v1,v2"),
    (["lr=0.1", "lr=0.2"], "parameter 'lr' is given twice in --grid"),
    (["lr=0.1,x"], "parameter 'lr' takes a float, got 'x'"),
    (["lrr=0.1"], "unknown notebook parameter 'lrr'. Did you mean 'lr'?"),
    (["seed=1,2"], "'seed' is set by the runner; use --seeds"),
    (["width=8,12"], "--grid over 'width': it shapes only the network"),
])
def test_a_grid_that_cannot_run_is_refused(entries, message):
    with pytest.raises(LabError, match=None) as err:
        plan.parse_grid(entries, KNOWN)
    assert message in str(err.value)


def test_the_plan_of_a_grid_replaces_the_series_sweeps_and_gives_each_run_its_identity():
    s = series.load(ROOT / "notebooks" / "baselines")
    grid = plan.parse_grid(["lr=0.001,0.01", "batch_size=128,4096"], series.notebook_parameters(s.notebooks[4]))
    jobs = plan.plan([s], [4], [0, 1, 2], Path("/nonexistent/out"), {}, False, 1, ROOT / "data", grid)
    assert len(jobs) == 4 * 3 == len({j.result for j in jobs})  # no batch-size sweep of series.json besides
    assert sorted({(j.params["lr"], j.params["batch_size"]) for j in jobs}) == \
        [(0.001, 128), (0.001, 4096), (0.01, 128), (0.01, 4096)]
    assert {(j.recipe["lr"], j.recipe["batch_size"]) for j in jobs} == {(j.params["lr"], j.params["batch_size"]) for j in jobs}
    # a combination equal to the notebook's own values is its own run, once
    own = series.notebook_defaults(s.notebooks[4])
    again = plan.plan([s], [4], [0], Path("/x"), {}, False, 1, ROOT / "data",
                        [{"lr": own["lr"]}, {"lr": own["lr"], "batch_size": own["batch_size"]}])
    assert len(again) == 1


@pytest.mark.parametrize("args,message", [
    (["--set", "lr=0.1", "--grid", "lr=0.1,0.2"], "lr given in both --set and --grid; keep one"),
    (["--series", "under8k", "--grid", "width=8,12"], "--grid over 'width': it shapes only the network"),
    (["--series", "study", "--grid", "optimizer=sgd,adam"], "unknown notebook parameter 'optimizer'. Known: "),
])
def test_grid_mistakes_on_the_command_line_are_one_clear_line(args, message, tmp_path):
    done = subprocess.run([sys.executable, "-m", "mnist_lab", "run", "--smoke", "--out", str(tmp_path / "out"), *args],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert not (tmp_path / "out").exists()


def _write(folder: Path, name: str, r: dict):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(r))


def _grid_result(it, seed, final, lr, batch):
    r = fake_result(it, seed, final)
    r.update(lr=lr, batch_size=batch)
    r["config"] = dict(r["config"], lr=lr, batch_size=batch)
    return r


def test_the_report_groups_a_grid_per_notebook_beside_its_own_recipe(tmp_path):
    res = tmp_path / "study" / "results"
    for seed, acc in enumerate([99.1, 99.3, 99.2]):
        _write(res, f"it5_seed{seed}.json", fake_result(5, seed, acc))  # the notebook's own recipe
        for lr, batch, shift in ((0.01, 64, -0.5), (0.01, 128, 0.3), (0.002, 128, 0.1)):
            _write(res, f"it5_seed{seed}_{lr}_{batch}.json", _grid_result(5, seed, acc + shift, lr, batch))
    md = reports.build(tmp_path / "study", series.load(ROOT / "notebooks" / "study")).read_text()
    section = md[md.index("## Grid: notebook 5"):]
    assert "3 combination(s) besides the notebook's own recipe" in section
    lines = [line for line in section.splitlines() if line.startswith("| ")]
    # what every combination shares is said once above the table (its parameters, seeds and machine)
    assert "All combinations: 18,422 parameters; seeds 0 1 2; CPU x86_64; 1 CPU thread per run;" in section
    assert lines[0] == "| batch_size | lr | Held-out test acc (mean ± std, n) | s / epoch |"
    assert [line.split(" | ")[:2] for line in lines[1:]] == [["| 64 (own)", "0.002"], ["| 64", "0.01"], ["| 128", "0.002"],
                                                            ["| 128", "0.01"]]
    assert "| 128 | 0.01 | 99.50 ± 0.10 (n=3) | 2.00 |" in lines
    assert "- Highest mean: batch_size 128, lr 0.01, 99.50 ± 0.10 (n=3)." in section
    assert "- Against the notebook's own recipe: held-out accuracy +0.30 points" in section
    assert reports.build(tmp_path / "study", series.load(ROOT / "notebooks" / "study")).read_text() == md  # the same files, the same page


def test_a_compare_report_of_a_grid_without_the_own_recipe_is_written(tmp_path):
    res = tmp_path / "baselines" / "results"
    own = series.notebook_defaults(ROOT / "notebooks" / "baselines" / "09_cnn_bn.ipynb")
    for seed in range(2):
        r = _grid_result(5, seed, 99.0 + seed / 10, own["lr"] * 2, own["batch_size"])
        nb = series.own_recipe(ROOT / "notebooks" / "baselines" / "09_cnn_bn.ipynb")
        r.update(iteration=9, blocks=nb["blocks"], notebook=nb)
        _write(res, f"it9_seed{seed}.json", r)
    md = reports.build(tmp_path / "baselines", series.load(ROOT / "notebooks" / "baselines")).read_text()
    assert "## Grid: notebook 9" in md and "## The networks, each at its own recipe" not in md
    assert f"| {own['lr'] * 2:g} |" in md and "99.05 ± 0.07 (n=2)" in md
