"""The committed Fashion-MNIST results (study_fashion: the study's seven notebooks, 3 seeds; under8k_fashion: the
four under-8k steps, 5 seeds): complete, as the notebooks plan them, made on Fashion-MNIST with nothing picked on
its test set, every checkpoint scoring exactly what its file says, and the page the generator makes from them."""
import json
import shutil

import pytest
from conftest import ROOT, held_out, check_bit_for_bit, check_remade_recipe, check_the_committed_plan, committed, papermill_remake

from mnist_lab import machine, paths, series
from mnist_lab.config import run_id

SERIES = {"study_fashion": ("study", 7, (0, 1, 2)), "under8k_fashion": ("under8k", 4, (0, 1, 2, 3, 4))}


@pytest.mark.parametrize("name", SERIES)
def test_every_notebook_has_every_seed_on_fashion_mnist(name):
    reused, notebooks, seeds = SERIES[name]
    results = committed(name)
    assert {(r["iteration"], r["seed"]) for r in results.values()} == \
        {(it, s) for it in range(1, notebooks + 1) for s in seeds}
    folder = ROOT / "reports" / name
    for file, r in results.items():
        assert file == f"{run_id(r['iteration'], r['seed'], r['smoke'], r['recipe'])}.json" and not r["smoke"]
        assert r["series"] == name and r["dataset"] == "Fashion-MNIST" and r["config"]["dataset"] == "fashion"
        assert r["recipe"]["dataset"] == "fashion" and r["variant"] == {}, file
        # nothing is picked on the test set: every planned epoch trained, the last one's weights scored
        assert r["config"]["val_fraction"] == 0 and not r["restored_best"] and r["config"].get("patience", 0) == 0
        assert len(r["history"]) == r["epochs_planned"] and r["final_test_acc"] == r["history"][-1]["test_acc"]
        assert sum(r["confusion"][i][i] for i in range(10)) == r["history"][-1]["test_correct"] == 10_000 - len(r["mistakes"])
        assert [sum(row) for row in r["confusion"]] == [1000] * 10  # Fashion-MNIST's test set
        [nb] = (folder / "notebooks").glob(f"{r['iteration']:02d}_*_{r['run_id'].split('_', 1)[1]}.ipynb")
        params = json.loads(nb.read_text())["metadata"]["papermill"]["parameters"]
        assert params["dataset"] == "fashion" and params["seed"] == r["seed"] and params["series"] == name
    # the same networks as the reused series' committed runs, file for file but for the data set
    theirs = {(r["iteration"], r["seed"]): r for r in committed(reused).values() if not r["smoke"]}
    for r in results.values():
        other = theirs[(r["iteration"], r["seed"])]
        assert r["blocks"] == other["blocks"] and r["params"] == other["params"]
        assert {k: v for k, v in r["recipe"].items() if k not in ("dataset", "cpu")} == \
            {k: v for k, v in other["recipe"].items() if k != "cpu"}


@pytest.mark.parametrize("name", SERIES)
def test_the_committed_runs_are_what_the_notebooks_plan_now(name):
    check_the_committed_plan(name)


def _checkpoints():
    """(series, result file) of every committed run: the first of each series in the fast tier, which is what a
    change of the loading or evaluation code breaks; all of them in the full tier (each about 4 s on one thread)."""
    for name in SERIES:
        for i, file in enumerate(committed(name)):
            yield pytest.param(name, file, id=f"{name}/{file[:-5]}", marks=() if i == 0 else pytest.mark.slow)


@pytest.mark.parametrize("name,file", _checkpoints())
def test_every_checkpoint_scores_exactly_its_files_count(name, file, mnist_root):
    """Each committed checkpoint, rebuilt and run on the Fashion-MNIST test set with one thread, gets right
    exactly the images its result file counts: the page's numbers are the checkpoints' own."""
    import torch

    from mnist_lab import evaluate, load_model

    r = committed(name)[file]
    cfg, test = held_out(str(mnist_root), "fashion")
    model = load_model(ROOT / "reports" / name / "results" / r["checkpoint"])
    assert model.dataset.key == "fashion" and model.num_params() == r["params"] and model.blocks == r["blocks"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert evaluate(model, test, cfg)["correct"] == r["history"][-1]["test_correct"], file
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("name", SERIES)
def test_the_page_is_what_the_generator_makes_from_these_files(name, tmp_path, mnist_root, monkeypatch):
    from mnist_lab import reports

    reused = SERIES[name][0]
    committed_dir = paths.reports_dir()
    monkeypatch.setattr(paths, "reports_dir", lambda: tmp_path)
    for s in (name, reused):  # the page reads the reused series' committed results too
        shutil.copytree(committed_dir / s / "results", tmp_path / s / "results")
    shutil.copy(committed_dir / name / "run.json", tmp_path / name / "run.json")
    made = reports.build(tmp_path / name, series.load(ROOT / "notebooks" / name), data_dir=mnist_root).read_text()
    assert made == (committed_dir / name / "README.md").read_text()
    assert "## Does it transfer? MNIST against Fashion-MNIST" in made


@pytest.mark.parametrize("page", ["README.md", "docs/results.md"])
def test_the_transfer_table_equals_the_files(page):
    """The Fashion-MNIST table of the README and of docs/results.md: each network's held-out mean ± std on both
    data sets, from the committed files."""
    import statistics

    text = (ROOT / page).read_text()
    table = text[text.index("| Series | # | Network | Params | MNIST |"):].split("\n\n")[0]
    for name, (reused, notebooks, seeds) in SERIES.items():
        for it in range(1, notebooks + 1):
            row = next(line for line in table.splitlines() if line.startswith(f"| {reused} | {it} |"))
            for s in (reused, name):
                accs = [r["final_test_acc"] for r in committed(s).values() if r["iteration"] == it and not r["smoke"]]
                assert len(accs) == len(seeds)
                assert f"{statistics.fmean(accs):.2f} ± {statistics.stdev(accs):.2f}" in row, (s, row)


# study_fashion notebook 1, seed 0: one epoch, cheap enough to remake at full length where the machine agrees.
REMADE = next(r for r in committed("study_fashion").values() if (r["iteration"], r["seed"]) == (1, 0))
BLOCKED = machine.remake_reason(REMADE)


@pytest.fixture(scope="module")
def remade(tmp_path_factory, mnist_root):
    out = tmp_path_factory.mktemp("remake")
    return papermill_remake("notebooks/study/01_baseline.ipynb", out, mnist_root, REMADE, series="study_fashion",
                            dataset="fashion"), out


@pytest.mark.slow
def test_the_current_code_remakes_a_committed_fashion_run_with_its_recipe(remade):
    check_remade_recipe(remade[0], REMADE)


@pytest.mark.skipif(bool(BLOCKED), reason=BLOCKED)
@pytest.mark.slow
def test_the_current_code_remakes_a_committed_fashion_run_bit_for_bit(remade):
    """The files record the checkout as each run ended (see the series' notes): the code here makes them again."""
    check_bit_for_bit(*remade, REMADE, ROOT / "reports" / "study_fashion" / "results")
