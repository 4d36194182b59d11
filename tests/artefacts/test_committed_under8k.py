"""The committed results of the under-8k series: complete (four steps, five seeds), as its notebooks plan
them, what the goal check says of them, and what its report and the README say."""
import json
import statistics

import pytest
from conftest import ROOT, check_bit_for_bit, check_remade_recipe, check_the_committed_plan, committed, papermill_remake

from mnist_lab import machine, series, steps
from mnist_lab.config import run_id

REPORTS = ROOT / "reports" / "under8k"
SEEDS = (0, 1, 2, 3, 4)


@pytest.fixture(scope="module")
def results():
    return {p.name: json.loads(p.read_text()) for p in sorted((REPORTS / "results").glob("*.json"))}


def test_every_step_has_five_seeds(results):
    spec = series.load(ROOT / "notebooks" / "under8k")
    assert {(r["iteration"], r["seed"]) for r in results.values()} == {(it, s) for it in spec.notebooks for s in SEEDS}
    assert len(results) == 20
    for name, r in results.items():
        assert name == f"{r['run_id']}.json" == f"{run_id(r['iteration'], r['seed'], r['smoke'], r['recipe'])}.json"
        assert not r["smoke"] and r["series"] == "under8k" and r["schema"] == 4 and r["device_name"] == "AMD EPYC"
        assert r["recipe"]["threads"] == 1 and r["recipe"]["device"] == "cpu"
        assert len(r["history"]) == r["epochs_planned"] == 15 and r["params"] < 8000, name
        assert r["config"]["val_fraction"] == 0 and not r["restored_best"], name  # the test set picks nothing
        h = r["history"]
        assert r["final_test_acc"] == h[-1]["test_acc"] and sum(r["confusion"][i][i] for i in range(10)) == h[-1]["test_correct"]
        assert (REPORTS / "results" / r["checkpoint"]).is_file(), name
        [nb] = (REPORTS / "notebooks").glob(f"{r['iteration']:02d}_*_{r['run_id'].split('_', 1)[1]}.ipynb")
        executed = json.loads(nb.read_text())
        assert executed["metadata"]["papermill"]["parameters"]["seed"] == r["seed"], name
        # the notebook's generated Result states this run's own numbers
        shown = "".join(executed["cells"][-1]["outputs"][0]["data"]["text/markdown"])
        assert f"final {r['final_test_acc']:.2f} %" in shown, name


def test_the_committed_runs_are_what_the_notebooks_plan_now():
    check_the_committed_plan("under8k")


def test_a_checkpoint_scores_what_its_file_says(results, mnist_root):
    from conftest import rescore

    for it in (3, 4):
        [r] = [r for r in results.values() if (r["iteration"], r["seed"]) == (it, 4)]
        assert rescore(REPORTS / "results" / r["checkpoint"], mnist_root, r) == 10_000 - len(r["mistakes"])


def test_the_report_is_what_the_generator_makes_from_these_files(tmp_path, mnist_root, monkeypatch):
    from conftest import regenerate_report

    assert regenerate_report("under8k", tmp_path, mnist_root, monkeypatch) == (REPORTS / "README.md").read_text()


def test_the_report_states_the_goal_check_of_every_step(results):
    text = (REPORTS / "README.md").read_text()
    goal = steps.goal_of(series.load(ROOT / "notebooks" / "under8k"))
    for it in range(1, 5):
        runs = [r for r in results.values() if r["iteration"] == it]
        met = sum(steps.check(r, goal)["meets"] for r in runs)
        worst = min(min(h["test_acc"] for h in r["history"][-3:]) for r in runs)
        goal_table = text[text.index("## The goal, step by step"):]
        row = next(line for line in goal_table.splitlines() if line.startswith(f"| {it} | {runs[0]['name']} |"))
        assert f"| {met} of 5 |" in row and f"; {worst:.2f} |" in row, row
        assert f"### Step {it}: {runs[0]['name']}" in text
    run = json.loads((REPORTS / "run.json").read_text())
    assert run["runs"] == 20 and run["failed"] == 0 and f"`{run['command']}`" in text


@pytest.mark.parametrize("page", ["README.md", "docs/results.md"])
def test_readme_table_equals_the_files(results, page):
    text = (ROOT / page).read_text()
    table = text[text.index("| Step | Network | Params | Recipe |"):].split("\n\n")[0]
    goal = steps.GOAL
    for it in range(1, 5):
        runs = [r for r in results.values() if r["iteration"] == it]
        accs = [r["final_test_acc"] for r in runs]
        row = next(line for line in table.splitlines() if line.startswith(f"| {it} |"))
        assert f"{statistics.fmean(accs):.2f} ± {statistics.stdev(accs):.2f}" in row, row
        assert f"{sum(steps.check(r, goal)['meets'] for r in runs)} of 5" in row, row


# Step 3, seed 0, all 15 epochs where it can be remade bit for bit (OneCycleLR spans them all, so a
# shorter run would be another recipe: about 4 minutes), else a tiny run of the same notebook.
REMADE = next(r for r in committed("under8k").values() if (r["iteration"], r["seed"]) == (3, 0))
BLOCKED = machine.remake_reason(REMADE)


@pytest.fixture(scope="module")
def remade(tmp_path_factory, mnist_root):
    out = tmp_path_factory.mktemp("remake")
    return papermill_remake("notebooks/under8k/03_onecycle.ipynb", out, mnist_root, REMADE), out


@pytest.mark.slow
def test_the_current_code_remakes_a_committed_run_with_its_recipe(remade):
    check_remade_recipe(remade[0], REMADE)


@pytest.mark.skipif(bool(BLOCKED), reason=BLOCKED)
@pytest.mark.slow
def test_the_current_code_remakes_a_committed_run_bit_for_bit(remade):
    check_bit_for_bit(*remade, REMADE, REPORTS / "results")
