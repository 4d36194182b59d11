"""A series that reuses another's notebooks on another data set (series.json "reuse" and "set"): how it is
read and planned, and its page's "Does it transfer?" section (rank statistics, outcomes, numbers from files)."""
import itertools
import json
import random
import shutil
import statistics
from pathlib import Path

import pytest

from mnist_lab import paths, series
from mnist_lab.config import Config
from mnist_lab.errors import LabError
from mnist_lab.reports import transfer

ROOT = Path(__file__).resolve().parents[1]


# ---- the statistics ------------------------------------------------------------------------------------
def test_ranks_put_ties_at_their_mean_place():
    assert transfer.ranks([3.0, 1.0, 3.0, 2.0]) == [1.5, 4.0, 1.5, 3.0]
    assert transfer.ranks([5.0, 4.0, 3.0]) == [1.0, 2.0, 3.0]


def test_spearman_is_the_textbook_formula_without_ties():
    rnd = random.Random(3)
    for _ in range(20):
        x = [rnd.random() for _ in range(7)]
        y = [rnd.random() for _ in range(7)]
        rx, ry = transfer.ranks(x), transfer.ranks(y)
        d2 = sum((a - b) ** 2 for a, b in zip(rx, ry))
        assert transfer.spearman(x, y) == pytest.approx(1 - 6 * d2 / (7 * (7 ** 2 - 1)))
    assert transfer.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert transfer.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)


def test_the_permutation_p_value_counts_orders_at_least_as_concordant():
    x = [1.0, 2.0, 3.0, 4.0]
    assert transfer.permutation_p(x, [1.0, 2.0, 3.0, 4.0]) == pytest.approx(1 / 24)  # only the order itself
    assert transfer.permutation_p(x, [4.0, 3.0, 2.0, 1.0]) == pytest.approx(1.0)
    # against a count by the sum of squared rank differences (rho falls as it grows)
    y = [2.0, 1.0, 4.0, 3.0, 6.0, 5.0]
    x6 = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    d2 = lambda p: sum((i + 1 - r) ** 2 for i, r in enumerate(p))
    observed = d2([2, 1, 4, 3, 6, 5])
    share = sum(d2(p) <= observed for p in itertools.permutations(range(1, 7))) / 720
    assert transfer.permutation_p(x6, y) == pytest.approx(share)
    assert transfer.permutation_p(list(range(9)), list(range(9))) is None  # too many orders to count


@pytest.mark.parametrize("x, y, expected", [
    ((0.5, True), (2.0, True), "transfers"),
    ((0.5, True), (-2.0, True), "reverses"),
    ((0.5, True), (0.1, False), "shown on the first only"),
    ((0.01, False), (-1.2, True), "shown on the second only"),
    ((0.01, False), (0.02, False), "shown on neither"),
    ((0.01, None), (0.02, True), "no spread to judge by"),
])
def test_outcomes(x, y, expected):
    first, second = ({"d": d, "real": r} for d, r in (x, y))
    assert transfer.outcome(first, second) == expected


# ---- the series --------------------------------------------------------------------------------------------
def test_a_reusing_series_runs_the_other_series_notebooks_with_its_settings():
    study = series.load(ROOT / "notebooks" / "study")
    s = series.load(ROOT / "notebooks" / "study_fashion")
    assert s.notebooks == study.notebooks and s.reuses == "study" and s.settings == {"dataset": "fashion"}
    assert s.report == "study" and s.seeds == [0, 1, 2] and s.title != study.title
    u = series.load(ROOT / "notebooks" / "under8k_fashion")
    under8k = series.load(ROOT / "notebooks" / "under8k")
    assert (u.report, u.comparisons, u.goal, u.seeds) == (under8k.report, under8k.comparisons, under8k.goal, under8k.seeds)
    assert u.notes != under8k.notes and u.reports_notes == []  # how the MNIST results were made is not about these
    assert {"study_fashion", "under8k_fashion"} <= set(series.find(ROOT / "notebooks"))


@pytest.mark.parametrize("manifest, said", [
    ({"reuse": "nowhere"}, "no folder of numbered notebooks"),
    ({"reuse": "a", "set": {"seed": 3}}, "set a run setting"),
    ({"reuse": "a", "set": {"width": 3}}, "set a run setting"),
    ({"reuse": "a", "set": {"dataset": ["fashion"]}}, "to one value"),
])
def test_a_bad_reuse_is_named(tmp_path, manifest, said):
    shutil.copytree(ROOT / "notebooks" / "under8k", tmp_path / "a")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "series.json").write_text(json.dumps(manifest))
    with pytest.raises(LabError, match=said):
        series.load(tmp_path / "b")


def test_a_folder_with_notebooks_cannot_also_reuse(tmp_path):
    shutil.copytree(ROOT / "notebooks" / "under8k", tmp_path / "a")
    shutil.copytree(ROOT / "notebooks" / "under8k", tmp_path / "b")
    (tmp_path / "b" / "series.json").write_text(json.dumps({"reuse": "a"}))
    with pytest.raises(LabError, match="keep one of the two"):
        series.load(tmp_path / "b")


def test_its_runs_are_the_notebooks_own_recipes_on_the_other_data_set():
    from mnist_lab.runs import plan

    mine = plan.plan([series.load(ROOT / "notebooks" / "under8k_fashion")], [], None, ROOT / "runs", {"device": "cpu"},
                     False, 1, ROOT / "data")
    theirs = plan.plan([series.load(ROOT / "notebooks" / "under8k")], [], None, ROOT / "runs", {"device": "cpu"},
                       False, 1, ROOT / "data")
    assert len(mine) == len(theirs) == 20
    assert all(j.params["dataset"] == "fashion" and j.recipe["dataset"] == "fashion" and j.variant == {} for j in mine)
    assert all("dataset" not in j.recipe for j in theirs)  # left out at "mnist": no committed run renamed
    assert {j.result.name for j in mine}.isdisjoint({j.result.name for j in theirs})
    assert {j.result.parent for j in mine} == {ROOT / "runs" / "under8k_fashion" / "results"}
    # a run of the same notebook made in Jupyter (papermill) is placed the same way
    own = series.notebook_defaults(series.load(ROOT / "notebooks" / "under8k").notebooks[3])
    cfg = Config.from_dict({k: v for k, v in dict(own, series="under8k_fashion", dataset="fashion").items()
                            if k in Config.__dataclass_fields__})
    assert series.place_of(cfg)["variant"] == {}
    cfg = Config.from_dict({k: v for k, v in dict(own, series="under8k").items() if k in Config.__dataclass_fields__})
    assert series.place_of(Config(**{**cfg.to_dict(), "dataset": "fashion"}))["variant"] == {"dataset": "fashion"}


# ---- the section, from files -----------------------------------------------------------------------------
SHIFT = {1: -8.0, 2: -9.5, 3: -7.5, 4: -9.0}  # step 2 - step 1 turns from +0.08 on MNIST to about -1.4


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    """The committed under-8k results as the reference, and a made-up "Fashion-MNIST" copy of them whose
    accuracies are shifted per step, so that the comparisons' outcomes are known in advance."""
    tmp = tmp_path_factory.mktemp("transfer")
    shutil.copytree(paths.reports_dir() / "under8k" / "results", tmp / "under8k" / "results",
                    ignore=shutil.ignore_patterns("*.pt"))
    out = tmp / "under8k_fashion" / "results"
    out.mkdir(parents=True)
    rnd = random.Random(0)
    for p in sorted((tmp / "under8k" / "results").glob("*.json")):
        r = json.loads(p.read_text())
        shift = SHIFT[r["iteration"]] + rnd.gauss(0, 0.15)
        for h in r["history"]:
            h["test_acc"] += shift
        r["final_test_acc"] += shift
        r["config"]["dataset"] = r["recipe"]["dataset"] = "fashion"
        r["dataset"] = "Fashion-MNIST"
        (out / p.name).write_text(json.dumps(r))
    spec = series.load(ROOT / "notebooks" / "under8k_fashion")
    from mnist_lab.results import load_results

    full = load_results(out)
    text = "\n".join(transfer.section(spec, full, out.parent, reference=tmp / "under8k" / "results"))
    return tmp, full, text


def _mean_std(files, it):
    xs = [r["final_test_acc"] for r in files if r["iteration"] == it]
    return statistics.fmean(xs), statistics.stdev(xs), len(xs)


def test_the_section_states_each_comparison_from_the_files(pages):
    tmp, full, text = pages
    mnist = [json.loads(p.read_text()) for p in sorted((tmp / "under8k" / "results").glob("*.json"))]
    for q in series.load(ROOT / "notebooks" / "under8k").comparisons:
        row = next(line for line in text.splitlines() if line.startswith(f"| {q['question']} |"))
        for files in (mnist, full):
            (ma, sa, na), (mb, sb, nb) = _mean_std(files, q["a"]), _mean_std(files, q["b"])
            se = (sa ** 2 / na + sb ** 2 / nb) ** 0.5
            assert f"{ma - mb:+.2f} ± {se:.2f}, {'real' if abs(ma - mb) > 2 * se else 'noise'}" in row, row
    step2 = next(line for line in text.splitlines() if line.startswith("| Step 2 against step 1"))
    assert step2.endswith("| no | shown on Fashion-MNIST only |"), step2


def test_the_ranking_and_its_correlation_are_the_files(pages):
    tmp, full, text = pages
    mnist = [json.loads(p.read_text()) for p in sorted((tmp / "under8k" / "results").glob("*.json"))]
    a = [_mean_std(mnist, it)[0] for it in range(1, 5)]
    b = [_mean_std(full, it)[0] for it in range(1, 5)]
    assert f"ρ = {transfer.spearman(a, b):+.2f}" in text
    assert f"{transfer.permutation_p(a, b):.1%} of the 24 orders" in text
    for it in range(1, 5):
        row = next(line for line in text.splitlines() if line.startswith(f"| {it} | "))
        assert f"{b[it - 1] - a[it - 1]:+.2f} |" in row
    assert (tmp / "under8k_fashion" / "transfer_accuracy.png").stat().st_size > 10_000
    assert (tmp / "under8k_fashion" / "transfer_confusion.png").stat().st_size > 10_000


def test_the_goal_figures_and_the_words(pages):
    tmp, full, text = pages
    from mnist_lab import steps

    goal = steps.goal_of(series.load(ROOT / "notebooks" / "under8k"))
    for it in range(1, 5):
        lows = [steps.check(r, goal)["lowest"] for r in full if r["iteration"] == it]
        row = next(line for line in text[text.index("### The goal's figures"):].splitlines() if line.startswith(f"| {it} |"))
        assert f"worst {min(lows):.2f} | 0 of 5 |" in row, row
    words = text[text.index("### What transfers"):]
    assert "**The comparisons** (4)" in words and "**The order of the networks.**" in words
    assert "6 Shirt" in text and "Lowest accuracy per class" in text  # Fashion-MNIST's class names


def test_without_the_reference_the_section_says_so(tmp_path):
    spec = series.load(ROOT / "notebooks" / "under8k_fashion")
    lines = transfer.section(spec, [], tmp_path, reference=tmp_path / "nothing")
    assert "No full runs of under8k" in "\n".join(lines)
