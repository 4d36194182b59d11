"""The committed results of the baselines series: complete, as its notebooks plan them, and what its report says."""
import json
import statistics
import subprocess
import sys

import pytest
from conftest import ROOT, check_the_committed_plan

from mnist_lab import series
from mnist_lab.config import run_id

REPORTS = ROOT / "reports" / "baselines"
SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def results():
    return {p.name: json.loads(p.read_text()) for p in sorted((REPORTS / "results").glob("*.json"))}


def test_every_notebook_and_sweep_value_has_three_seeds(results):
    spec = series.load(ROOT / "notebooks" / "baselines")
    runs = {(r["iteration"], r["batch_size"], r["seed"]) for r in results.values() if not r["smoke"]}
    want = set()
    for it, nb in spec.notebooks.items():
        own = series.notebook_defaults(nb)["batch_size"]
        for variant in spec.variants(it):
            want |= {(it, variant.get("batch_size", own), s) for s in SEEDS}
    assert runs == want and len(results) == len(want) == 39
    for name, r in results.items():
        assert name == f"{r['run_id']}.json" == f"{run_id(r['iteration'], r['seed'], r['smoke'], r['recipe'])}.json"
        assert r["series"] == "baselines" and r["recipe"]["threads"] == 1 and r["recipe"]["device"] == "cpu"


def test_the_committed_runs_are_what_the_notebooks_plan_now():
    check_the_committed_plan("baselines")


def test_each_run_is_complete_and_consistent(results):
    for name, r in results.items():
        h = r["history"]
        assert [e["epoch"] for e in h] == list(range(1, len(h) + 1)) and len(h) <= r["epochs_planned"], name
        kept = h[r["best_val_epoch"] - 1] if r["restored_best"] else h[-1]
        assert r["final_test_acc"] == kept["test_acc"], name
        assert sum(map(sum, r["confusion"])) == r["test_size"] == 10_000, name
        assert len(r["mistakes"]) == 10_000 - kept["test_correct"], name
        if len(h) < r["epochs_planned"]:  # stopped early: only by the validation loss
            assert r["stopped_early"] and r["config"]["patience"] and r["config"]["val_fraction"], name
        assert (REPORTS / "results" / r["checkpoint"]).is_file(), name
        [nb] = (REPORTS / "notebooks").glob(f"{r['iteration']:02d}_*_{r['run_id'].split('_', 1)[1]}.ipynb")
        assert json.loads(nb.read_text())["metadata"]["papermill"]["parameters"]["seed"] == r["seed"], name


def test_the_numpy_mlp_reaches_97_percent_held_out_on_every_seed(results):
    numpy_runs = [r for r in results.values() if r["framework"] == "numpy"]
    assert len(numpy_runs) == 3 and all(r["final_test_acc"] >= 97.0 for r in numpy_runs)


def test_the_report_is_what_the_generator_makes_from_these_files(tmp_path, mnist_root, monkeypatch):
    from conftest import regenerate_report

    assert regenerate_report("baselines", tmp_path, mnist_root, monkeypatch) == (REPORTS / "README.md").read_text()
    for name in ("train_loss.png", "test_acc_per_epoch.png", "time.png", "final_acc.png", "sweep_4_batch_size.png",
                 "samples.png"):
        assert (REPORTS / name).is_file(), name


def test_the_report_answers_every_question_with_the_files_numbers(results):
    text = (REPORTS / "README.md").read_text()
    spec = series.load(ROOT / "notebooks" / "baselines")
    for q in spec.comparisons:
        assert f"**{q['question']}**" in text
    own = [r for r in results.values() if r["iteration"] == 5]
    accs = [r["final_test_acc"] for r in own]
    assert f"{statistics.fmean(accs):.2f} ± {statistics.stdev(accs):.2f} (n=3)" in text
    run = json.loads((REPORTS / "run.json").read_text())
    assert run["runs"] == 39 and run["failed"] == 0 and f"`{run['command']}`" in text


@pytest.mark.slow
def test_a_tiny_baselines_series_runs_with_papermill(tmp_path, mnist_root):
    done = subprocess.run([sys.executable, "-m", "mnist_lab", "run", "--series", "baselines", "--smoke", "--workers",
                           "2", "--threads", "1", "--out", str(tmp_path), "--data", str(mnist_root)],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    files = sorted((tmp_path / "baselines" / "results").glob("*_smoke_*.json"))
    assert len(files) == 13  # nine notebooks and four more batch sizes of notebook 4
    assert {json.loads(p.read_text())["framework"] for p in files} == {"pytorch", "numpy"}
    assert (tmp_path / "baselines" / "README.md").read_text().count("_smoke_") == 13
    assert "[baselines](baselines/README.md)" in (tmp_path / "README.md").read_text()


@pytest.mark.parametrize("iteration", [5, 9])  # the NumPy-trained MLP, and the CNN with BatchNorm and dropout
def test_a_checkpoint_rebuilds_its_network_and_scores_what_the_file_says(results, mnist_root, iteration):
    from conftest import rescore

    r = next(r for r in results.values() if r["iteration"] == iteration and r["seed"] == 0)
    assert rescore(REPORTS / "results" / r["checkpoint"], mnist_root, r) == 10_000 - len(r["mistakes"])


@pytest.mark.parametrize("page", ["README.md", "docs/results.md"])
def test_readme_headline_equals_the_files(results, page):
    """The baselines table of the README and of docs/results.md: each notebook's held-out mean ± std from the
    result files."""
    spec = series.load(ROOT / "notebooks" / "baselines")
    text = (ROOT / page).read_text()
    table = text[text.index("| # | Network (document) |"):]
    for it, nb in spec.notebooks.items():
        own = series.notebook_defaults(nb)["batch_size"]
        accs = [r["final_test_acc"] for r in results.values() if r["iteration"] == it and r["batch_size"] == own]
        row = next(line for line in table.splitlines() if line.startswith(f"| {it} |"))
        assert f"**{statistics.fmean(accs):.2f} ± {statistics.stdev(accs):.2f}**" in row, row
