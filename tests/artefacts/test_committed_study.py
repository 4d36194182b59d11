"""The committed canonical results: complete, consistent, and what the committed report says."""
import json
import re
import statistics

import pytest
from conftest import ROOT, check_bit_for_bit, check_remade_recipe, check_the_committed_plan, committed

from mnist_lab import machine
from mnist_lab.iterations import EPOCHS, LR, PARAMS

REPORTS = ROOT / "reports" / "study"
SEEDS = (0, 1, 2)


def canonical(r) -> bool:
    """The committed series: the study's recipe, one CPU thread per run (as `make reproduce` runs it), on
    the machine that made them (AVX-512). `make reproduce` elsewhere adds files of its own beside these."""
    rec = r.get("recipe", {})
    return (not r["smoke"] and rec.get("device") == "cpu" and rec.get("threads") == 1 and rec.get("cpu") == "AVX512"
            and r["epochs"] == EPOCHS[r["iteration"]] and r["lr"] == LR[r["iteration"]] and r["batch_size"] == 64)


@pytest.fixture(scope="module")
def all_results():
    return {p.name: json.loads(p.read_text()) for p in sorted((REPORTS / "results").glob("*.json"))}


@pytest.fixture(scope="module")
def results(all_results):
    """{"it5_seed0.json": result} for the canonical runs (their files carry a recipe hash as well)."""
    out = {}
    for name, r in all_results.items():
        if canonical(r):
            key = f"it{r['iteration']}_seed{r['seed']}.json"
            assert key not in out, f"two canonical results for {key}"
            out[key] = r
    return out


def test_seven_iterations_three_seeds(results, all_results):
    assert set(results) == {f"it{i}_seed{s}.json" for i in range(1, 8) for s in SEEDS}
    for name, r in all_results.items():
        # each file is named by its identity: iteration, seed and the hash of its recipe
        from mnist_lab.config import run_id

        assert name == f"{r['run_id']}.json" == f"{run_id(r['iteration'], r['seed'], r['smoke'], r['recipe'])}.json"


def test_each_run_is_complete_and_follows_the_recipe(results):
    for name, r in results.items():
        it = r["iteration"]
        assert r["smoke"] is False, name
        assert r["epochs"] == EPOCHS[it] == len(r["history"]), name
        assert r["params"] == PARAMS[it], name
        assert r["test_size"] == 10_000 and r["train_size"] == 60_000, name
        assert r["lr"] == LR[it] and r["batch_size"] == 64, name
        assert [h["epoch"] for h in r["history"]] == list(range(1, EPOCHS[it] + 1)), name
        assert r["final_test_acc"] == r["history"][-1]["test_acc"], name
        assert r["history"][-1]["test_correct"] / 100 == pytest.approx(r["final_test_acc"]), name
        assert sum(map(sum, r["confusion"])) == 10_000, name
        assert len(r["mistakes"]) == 10_000 - r["history"][-1]["test_correct"], name
        # weights in float32 plus the block list: nothing else rides along
        assert (REPORTS / "results" / r["checkpoint"]).stat().st_size < 4 * PARAMS[it] + 8_000, name
        lrs = [h["lr"] for h in r["history"]]  # StepLR(15, 0.1), once per epoch
        assert lrs == pytest.approx([LR[it] * (0.1 if e > 15 else 1) for e in range(1, len(lrs) + 1)]), name


def test_the_committed_runs_are_what_the_notebooks_plan_now():
    check_the_committed_plan("study")


def test_report_table_equals_the_means_of_the_files(results):
    text = (REPORTS / "README.md").read_text()
    for it in range(1, 8):
        accs = [results[f"it{it}_seed{s}.json"]["final_test_acc"] for s in SEEDS]
        cell = f"**{statistics.fmean(accs):.2f} ± {statistics.stdev(accs):.2f} (n=3)**"
        row = next(line for line in text.splitlines() if re.match(rf"\| {it} \|", line))
        assert cell in row, (it, cell, row)
        assert f"| {PARAMS[it]:,} |" in row


def test_report_is_what_the_generator_makes_from_these_files(tmp_path, mnist_root, monkeypatch):
    """Regenerating from the committed result files gives the committed page, byte for byte."""
    import shutil

    from mnist_lab import paths, reports, series

    monkeypatch.setattr(paths, "reports_dir", lambda: tmp_path)  # a copy of reports/: its notes too

    shutil.copytree(REPORTS / "results", tmp_path / "study" / "results")
    reports.build(tmp_path / "study", series.load(ROOT / "notebooks" / "study"), data_dir=mnist_root)
    assert (tmp_path / "study" / "README.md").read_text() == (REPORTS / "README.md").read_text()
    for png in ("test_acc_per_epoch.png", "params_vs_acc.png", "confusion_best.png", "mistakes_best.png"):
        # the generator drew each figure the page shows, at the committed figure's size (matplotlib's bytes
        # differ between its builds, so the pixels are not compared)
        made, kept = (tmp_path / "study" / png).read_bytes(), (REPORTS / png).read_bytes()
        assert made[:8] == b"\x89PNG\r\n\x1a\n" and made[16:24] == kept[16:24], png  # IHDR: width, height
        assert f"({png})" in (REPORTS / "README.md").read_text(), png


@pytest.mark.parametrize("page", ["README.md", "docs/results.md"])
def test_readme_headline_equals_the_report(results, page):
    text = (ROOT / page).read_text()
    for it in range(1, 8):
        accs = [results[f"it{it}_seed{s}.json"]["final_test_acc"] for s in SEEDS]
        row = next(line for line in text.splitlines() if line.startswith(f"| {it} |"))
        assert f"**{statistics.fmean(accs):.2f} ± {statistics.stdev(accs):.2f}**" in row, row


def test_each_result_has_its_executed_notebook_with_final_progress(all_results):
    for name, r in all_results.items():
        rid = r["run_id"]
        [nb] = (REPORTS / "notebooks").glob(f"{r['iteration']:02d}_*_{rid.split('_', 1)[1]}.ipynb")
        doc = json.loads(nb.read_text())
        assert doc["metadata"]["papermill"]["parameters"]["seed"] == r["seed"], nb.name
        streams = [o for c in doc["cells"] for o in c.get("outputs", []) if o["output_type"] == "stream"]
        assert not any("\r" in "".join(o["text"]) for o in streams), nb.name
        assert len(streams) <= 3 * r["epochs"] + 6, nb.name  # a bar and a line per epoch, not every redraw
        # where the run wrote it (the folder it recorded: see the series' notes on the move)
        assert f"wrote {r['config']['results_dir']}/{rid}.json" in "".join("".join(o["text"]) for o in streams), nb.name




# Iteration 1, seed 0: one epoch, cheap enough to remake at full length on every machine.
REMADE = next(r for r in committed("study").values() if canonical(r) and (r["iteration"], r["seed"]) == (1, 0))
BLOCKED = machine.remake_reason(REMADE)


@pytest.fixture(scope="module")
def remade(tmp_path_factory, mnist_root):
    """The committed run made again now, through the runner and papermill, with its own thread count."""
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("remake")
    done = subprocess.run([sys.executable, "-m", "mnist_lab", "run", "--series", "study", "--iterations", "1",
                           "--seeds", "0", "--threads", str(REMADE["recipe"]["threads"]), "--set", "device=cpu",
                           "--out", str(out), "--data", str(mnist_root), "--no-report"],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    [new] = (out / "study" / "results").glob("it1_seed0_*.json")
    return json.loads(new.read_text()), new.parent


@pytest.mark.slow
def test_the_current_code_remakes_a_committed_run_with_its_recipe(remade):
    check_remade_recipe(remade[0], REMADE)


@pytest.mark.skipif(bool(BLOCKED), reason=BLOCKED)
@pytest.mark.slow
def test_the_current_code_remakes_a_committed_run_bit_for_bit(remade):
    check_bit_for_bit(*remade, REMADE, REPORTS / "results")
