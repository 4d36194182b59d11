"""The committed results of the frameworks series: complete, as its notebooks plan them, consistent
across frameworks, and what its report and the README say."""
import json
import statistics

import pytest
import torch
from conftest import ROOT, same_run, check_bit_for_bit, check_remade_recipe, check_the_committed_plan, committed, papermill_remake

from mnist_lab import machine, series
from mnist_lab.config import run_id

REPORTS = ROOT / "reports" / "frameworks"
SEEDS = (0, 1, 2)
VERSIONS = {"pytorch": set(), "keras": {"keras", "keras_backend", "tensorflow"}, "lightning": {"lightning"},
            "numpy": {"numpy"}}


@pytest.fixture(scope="module")
def results():
    return {p.name: json.loads(p.read_text()) for p in sorted((REPORTS / "results").glob("*.json"))}


def by(results, it, framework, seed):
    [r] = [r for r in results.values() if (r["iteration"], r["framework"], r["seed"]) == (it, framework, seed)]
    return r


def test_every_notebook_has_three_seeds_in_every_framework_it_lists(results):
    spec = series.load(ROOT / "notebooks" / "frameworks")
    want = {(it, v.get("framework", "pytorch"), s) for it in spec.notebooks for v in spec.variants(it) for s in SEEDS}
    assert {(r["iteration"], r["framework"], r["seed"]) for r in results.values()} == want
    assert len(results) == len(want) == 48
    for name, r in results.items():
        assert name == f"{r['run_id']}.json" == f"{run_id(r['iteration'], r['seed'], r['smoke'], r['recipe'])}.json"
        assert not r["smoke"] and r["series"] == "frameworks" and r["schema"] == 4
        assert r["recipe"]["threads"] == 1 and r["recipe"]["device"] == "cpu"
        assert set(r["versions"]) == VERSIONS[r["framework"]], name


def test_the_committed_runs_are_what_the_notebooks_plan_now():
    check_the_committed_plan("frameworks")


def test_each_run_is_complete_and_consistent(results):
    for name, r in results.items():
        h = r["history"]
        assert [e["epoch"] for e in h] == list(range(1, len(h) + 1)) and len(h) <= r["epochs_planned"], name
        kept = h[r["best_val_epoch"] - 1] if r["restored_best"] else h[-1]
        assert r["final_test_acc"] == kept["test_acc"], name
        # the confusion matrix comes from the checkpointed weights in PyTorch, the history from the framework
        assert sum(r["confusion"][i][i] for i in range(10)) == kept["test_correct"], name
        assert sum(map(sum, r["confusion"])) == r["test_size"] == 10_000, name
        if len(h) < r["epochs_planned"]:
            assert r["stopped_early"] and r["config"]["patience"] and r["config"]["val_fraction"], name
        assert (REPORTS / "results" / r["checkpoint"]).is_file(), name
        [nb] = (REPORTS / "notebooks").glob(f"{r['iteration']:02d}_*_{r['run_id'].split('_', 1)[1]}.ipynb")
        assert json.loads(nb.read_text())["metadata"]["papermill"]["parameters"]["seed"] == r["seed"], name


def test_the_same_network_has_the_same_parameters_in_every_framework(results):
    for it in {r["iteration"] for r in results.values()}:
        assert len({(r["params"], json.dumps(r["blocks"])) for r in results.values() if r["iteration"] == it}) == 1


# Lightning's own epoch averages (of the training batches' loss and accuracy, and of the validation
# batches') are float32 means: equal to the PyTorch trainer's sums in all but the last digits.


def test_lightning_gave_exactly_the_pytorch_numbers(results):
    """The same arithmetic in Lightning's loop: every held-out figure, every mistake, the same weights."""
    for r in results.values():
        if r["framework"] != "lightning":
            continue
        twin = by(results, r["iteration"], "pytorch", r["seed"])
        same_run(r["history"], twin["history"])
        assert r["mistakes"] == twin["mistakes"] and r["best_val_epoch"] == twin["best_val_epoch"]
        sa, sb = (torch.load(REPORTS / "results" / x["checkpoint"], weights_only=True)["state_dict"] for x in (r, twin))
        assert all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("it,framework", [(2, "keras"), (5, "keras"), (1, "numpy")])
def test_a_checkpoint_scores_in_pytorch_what_its_framework_measured(results, mnist_root, it, framework):
    """Keras' CNN (kernels and the flatten order converted), Keras' restored DNN with BatchNorm, NumPy."""
    from conftest import rescore

    r = by(results, it, framework, 0)
    assert rescore(REPORTS / "results" / r["checkpoint"], mnist_root, r) == 10_000 - len(r["mistakes"])
    assert 10_000 - len(r["mistakes"]) == pytest.approx(100 * r["final_test_acc"], abs=0.5)


def test_the_report_is_what_the_generator_makes_from_these_files(tmp_path, mnist_root, monkeypatch):
    from conftest import regenerate_report

    assert regenerate_report("frameworks", tmp_path, mnist_root, monkeypatch) == (REPORTS / "README.md").read_text()
    for it in range(1, 6):
        for name in (f"sweep_{it}_framework.png", f"converge_{it}_framework.png"):
            assert (REPORTS / name).is_file(), name


def test_the_report_answers_every_question_with_the_files_numbers(results):
    text = (REPORTS / "README.md").read_text()
    spec = series.load(ROOT / "notebooks" / "frameworks")
    for q in spec.comparisons:
        assert f"**{q['question']}**" in text
    accs = [by(results, 3, "keras", s)["final_test_acc"] for s in SEEDS]
    assert f"sigmoid_mlp (keras) {statistics.fmean(accs):.2f} ± {statistics.stdev(accs):.2f} (n=3)" in text
    run = json.loads((REPORTS / "run.json").read_text())
    assert run["runs"] == 48 and run["failed"] == 0 and f"`{run['command']}`" in text


@pytest.mark.parametrize("page", ["README.md", "docs/results.md"])
def test_readme_table_equals_the_files(results, page):
    """The frameworks table of the README and of docs/results.md: held-out mean ± std and seconds per epoch
    per framework."""
    text = (ROOT / page).read_text()
    table = text[text.index("| # | Network (document) | Params | PyTorch |"):].split("\n\n")[0]
    for it in range(1, 6):
        row = next(line for line in table.splitlines() if line.startswith(f"| {it} |"))
        for framework in ("pytorch", "keras", "lightning", "numpy"):
            runs = [r for r in results.values() if r["iteration"] == it and r["framework"] == framework]
            if not runs:
                continue
            accs = [r["final_test_acc"] for r in runs]
            secs = statistics.fmean(statistics.fmean(e["seconds"] for e in r["history"]) for r in runs)
            assert f"{statistics.fmean(accs):.2f} ± {statistics.stdev(accs):.2f} ({secs:.2f} s)" in row, (row, framework)


# Notebook 1 in Keras, seed 0: Keras on TensorFlow is as repeatable as the PyTorch trainer.
KERAS = next(r for r in committed("frameworks").values() if (r["iteration"], r["framework"], r["seed"]) == (1, "keras", 0))
BLOCKED = machine.remake_reason(KERAS)
needs_keras = pytest.mark.skipif(__import__("importlib.util").util.find_spec("keras") is None,
                                 reason="the frameworks extra is not installed")


@pytest.fixture(scope="module")
def remade(tmp_path_factory, mnist_root):
    out = tmp_path_factory.mktemp("remake")
    return papermill_remake("notebooks/frameworks/01_mlp.ipynb", out, mnist_root, KERAS, framework="keras"), out


@needs_keras
@pytest.mark.slow
def test_the_current_code_remakes_a_committed_keras_run_with_its_recipe(remade):
    check_remade_recipe(remade[0], KERAS)


@pytest.mark.slow
@needs_keras
@pytest.mark.skipif(bool(BLOCKED), reason=BLOCKED)
def test_the_current_code_remakes_a_committed_keras_run_bit_for_bit(remade):
    check_bit_for_bit(*remade, KERAS, REPORTS / "results")
