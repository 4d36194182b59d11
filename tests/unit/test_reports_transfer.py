"""A series that reuses another's notebooks on another data set (series.json "reuse" and "set"): how it is
read and planned, and its page's "Does it transfer?" section (rank statistics, outcomes, numbers from files)."""
import itertools
import json
import random
import shutil
import statistics

import pytest

from mnist_lab import paths, series
from mnist_lab.config import Config
from mnist_lab.errors import LabError
from mnist_lab.reports import transfer
from conftest import ROOT



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
    # how the MNIST results were made is not about these: its own notes say how its results were made
    assert u.notes != under8k.notes and u.reports_notes and u.reports_notes != under8k.reports_notes
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
# Every seed of a step moved by the same amount: the spread, and so each standard error, stays MNIST's, and each
# comparison's outcome follows from the committed MNIST verdicts (2 - 1 noise, 3 - 2 and 3 - 1 real, 4 - 3 noise).
SHIFT = {1: -8.0, 2: -9.5, 3: -9.6, 4: -9.6}
OUTCOMES = {(2, 1): "shown on Fashion-MNIST only", (3, 2): "shown on MNIST only", (3, 1): "reverses",
            (4, 3): "shown on neither"}


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    """The committed under-8k results as the reference, and a made-up "Fashion-MNIST" copy of them whose
    accuracies are shifted per step, so that the comparisons' outcomes are known in advance."""
    tmp = tmp_path_factory.mktemp("transfer")
    shutil.copytree(paths.reports_dir() / "under8k" / "results", tmp / "under8k" / "results",
                    ignore=shutil.ignore_patterns("*.pt"))
    out = tmp / "under8k_fashion" / "results"
    out.mkdir(parents=True)
    for p in sorted((tmp / "under8k" / "results").glob("*.json")):
        r = json.loads(p.read_text())
        shift = SHIFT[r["iteration"]]
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
        assert row.endswith(f"| {OUTCOMES[(q['a'], q['b'])]} |"), row
    words = text[text.index("### What transfers"):]
    assert "**The comparisons** (4): 1 reverses, 1 shown on MNIST only, 1 shown on Fashion-MNIST only, 1 shown on " \
           "neither. In 2 of them the effect itself differs" in words  # 2 - 1 and 3 - 1: by 1.5 and 1.6 points


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
    mnist = [json.loads(p.read_text()) for p in sorted((tmp / "under8k" / "results").glob("*.json"))]
    for it in range(1, 5):
        row = next(line for line in text[text.index("### The goal's figures"):].splitlines() if line.startswith(f"| {it} |"))
        for files in (mnist, full):
            checks = [steps.check(r, goal) for r in files if r["iteration"] == it]
            lows = [c["lowest"] for c in checks]
            assert f"{statistics.fmean(lows):.2f} ± {statistics.stdev(lows):.2f} (n=5); worst {min(lows):.2f} | " \
                   f"{sum(c['meets'] for c in checks)} of 5 |" in row, row
    words = text[text.index("### What transfers"):]
    assert "**The comparisons** (4)" in words and "**The order of the networks.**" in words
    # the MNIST page's best network (step 3), its most confused pair in Fashion-MNIST's class names
    conf = [r["confusion"] for r in full if r["iteration"] == 3]
    mean = [[statistics.fmean(c[t][p] for c in conf) for p in range(10)] for t in range(10)]
    n, t, p = max((mean[t][p], t, p) for t in range(10) for p in range(10) if t != p)
    names = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
    assert f"Fashion-MNIST: most confused, true taken for predicted, mean per seed: {t} {names[t]} taken for " \
           f"{p} {names[p]} {n:.1f};" in text
    assert "Notebook 3 (onecycle) has the highest MNIST mean" in text


def test_a_study_is_compared_as_its_page_compares():
    spec = series.load(ROOT / "notebooks" / "study_fashion")
    asked = transfer.comparisons(spec)
    assert [(a, b) for a, b, _ in asked] == [(2, 1), (3, 2), (4, 3), (5, 4), (6, 5), (7, 6), (5, 3), (7, 5)]
    questions = dict(((a, b), q) for a, b, q in asked)
    assert questions[(7, 6)] == "Dropout after every stage against head-only dropout"  # the study's own words
    assert questions[(2, 1)] == "Iteration 2 against iteration 1"


def test_ties_and_single_runs_are_not_judged():
    assert transfer.permutation_p([1.0, 2.0, 3.0, 4.0], [5.0, 5.0, 5.0, 5.0]) is None  # no order on one side
    assert transfer.permutation_p([1.0, 2.0, 3.0], [1.0, 1.0, 2.0]) == pytest.approx(2 / 6)
    one = transfer.judged((99.0, float("nan"), 1), (98.0, float("nan"), 1))
    assert one["real"] is None and transfer.outcome(one, one) == "no spread to judge by"


def test_a_notebook_not_yet_run_on_both_is_named(pages):
    tmp, full, _ = pages
    spec = series.load(ROOT / "notebooks" / "under8k_fashion")
    lines = transfer.section(spec, [r for r in full if r["iteration"] != 4], tmp / "partial",
                             reference=tmp / "under8k" / "results")
    text = "\n".join(lines)
    assert "Not run on both data sets yet: Step 4 against step 3" in text and "| 4 | smaller |" not in text


def test_the_page_of_a_reusing_series_holds_the_section(pages, monkeypatch):
    from mnist_lab.reports import page

    tmp, _, _ = pages
    monkeypatch.setattr(paths, "reports_dir", lambda: tmp)
    made = page.build(tmp / "under8k_fashion", series.load(ROOT / "notebooks" / "under8k_fashion")).read_text()
    assert made.index("## Does it transfer? MNIST against Fashion-MNIST") < made.index("## Notes") \
        < made.index("## How these numbers were made")
    assert "held-out Fashion-MNIST test images" in made


def test_set_without_reuse_is_refused(tmp_path):
    shutil.copytree(ROOT / "notebooks" / "under8k", tmp_path / "a")
    (tmp_path / "a" / "series.json").write_text(json.dumps({"set": {"dataset": "fashion"}}))
    with pytest.raises(LabError, match='add "reuse"'):
        series.load(tmp_path / "a")


def test_without_the_reference_the_section_says_so(tmp_path):
    spec = series.load(ROOT / "notebooks" / "under8k_fashion")
    lines = transfer.section(spec, [], tmp_path, reference=tmp_path / "nothing")
    assert "No full runs of under8k" in "\n".join(lines)
