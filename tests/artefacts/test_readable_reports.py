"""Reports a reader can take in: a column that reads the same on every row is said once above its table, rows
made on different machines say so, epochs are counted in whole numbers, the study asks each question once,
the remake line can be pasted as it is, and the figures show categories as categories, say which framework
they hold fixed, and keep the study's networks of ~18.4k parameters apart."""
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mnist_lab import series
from mnist_lab.reports import build, plots, table
from conftest import ROOT

REPORTS = ROOT / "reports"
# The columns that name a setting or the machine: where every row of a table shares one, it belongs above it.
SETTINGS = {"Params", "Framework", "Epochs", "Epochs trained", "Batch", "Augmentation", "Machine", "CPU threads",
            "torch", "Device, torch", "Seeds", "Test images", "Total layers", "MaxPool", "Linear"}


def _tables(text: str) -> list[list[list[str]]]:
    """Every Markdown table of a page: its header and rows, as lists of cells."""
    found, rows = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif rows:
            found.append([rows[0]] + rows[2:])
            rows = []
    return found


@pytest.mark.parametrize("name", ["study", "baselines", "frameworks", "under8k", "study_fashion", "under8k_fashion"])
def test_no_committed_table_repeats_a_setting_on_every_row(name):
    for head, *rows in _tables((REPORTS / name / "README.md").read_text()):
        if len(rows) < 2:
            continue
        same = [h for i, h in enumerate(head) if h in SETTINGS and len({row[i] for row in rows}) == 1]
        assert same == [], f"{name}: {same} read the same on every row of the table headed {head}"


def test_a_shared_column_is_said_once_above_and_a_measured_one_stays():
    md = table.markdown([("It", None), ("Params", "{} parameters"), ("Acc", None), ("torch", "torch {}")],
                        [["1", "18,422", "99.10", "2.14.1"], ["2", "18,422", "99.10", "2.13.0"]], "All rows")
    assert md[0] == "All rows: 18,422 parameters." and md[2] == "| It | Acc | torch |"
    assert table.markdown([("It", None), ("Params", "{} parameters")], [["1", "5"]], "All")[0] == "| It | Params |"


def test_the_study_table_shows_its_machine_once_and_epochs_whole():
    text = (REPORTS / "study" / "README.md").read_text()
    assert "cpu (1 thr), 2.14.1+cu130" not in text  # the old per-row device cell
    assert re.search(r"^All iterations: .*CPU x86_64, AVX512; 1 CPU thread per run; torch 2\.14\.1\+cu130\.$", text, re.M)
    for name in ("baselines", "frameworks", "under8k"):
        page = (REPORTS / name / "README.md").read_text()
        assert not re.search(r"\| \d+\.0 \(\d+\) \|", page), f"{name}: epochs as '5.0 (5)'"
        for head, *rows in _tables(page):
            if "Epochs trained" in head:
                i = head.index("Epochs trained")
                assert all(re.fullmatch(r"\d+(\.\d)? of \d+", row[i]) for row in rows), [row[i] for row in rows]


def test_the_study_asks_its_question_once_with_every_comparison_under_it():
    text = (REPORTS / "study" / "README.md").read_text()
    assert text.count("one best network under") == 1
    at = text.index("one best network under")
    below = text[at:].splitlines()[1:4]
    assert [line.split(":")[0] for line in below] == ["  - iteration 6 vs 3", "  - iteration 6 vs 5", "  - iteration 6 vs 7"]


def test_rows_made_on_two_machines_never_look_alike(tmp_path):
    """The smoke runs' table of one notebook and seed, run on two CPUs: the machine tells the rows apart."""
    from conftest import fake_result

    res = tmp_path / "study" / "results"
    res.mkdir(parents=True)
    for cpu, acc in (("AVX512", 98.1), ("AVX2", 98.4)):
        r = fake_result(1, 0, acc, smoke=True)
        r.update(device_name="AMD EPYC", recipe={"device": "cpu", "threads": 1, "cpu": cpu, "epochs": 1})
        (res / f"it1_seed0_{cpu}.json").write_text(json.dumps(r))
    page = build(tmp_path / "study", series.load(ROOT / "notebooks" / "study")).read_text()
    smoke = page[page.index("## Smoke runs"):]
    rows = [line for line in smoke.splitlines() if line.startswith("| 1 |")]
    assert len(rows) == 2 and "AMD EPYC, AVX512" in rows[0] + rows[1] and "AMD EPYC, AVX2" in rows[0] + rows[1]
    assert "All smoke runs:" in smoke and "1 CPU thread per run" in smoke


def test_the_remake_line_can_be_pasted_as_it_is(tmp_path):
    """Its report command, pasted into a shell in the repository's root, remakes the page byte for byte,
    even from a folder whose name has a space in it."""
    out = tmp_path / "my runs"
    shutil.copytree(REPORTS / "under8k" / "results", out / "under8k" / "results")
    page = build(out / "under8k", series.load(ROOT / "notebooks" / "under8k")).read_text()
    assert "the parent folder" not in page
    line = next(line for line in page.splitlines() if line.startswith("- Remake the runs with"))
    run, report = re.findall(r"`(mnist-lab [^`]+)`", line)
    assert run.startswith("mnist-lab run --series under8k --seeds 0 1 2 3 4 --threads 1 --out ")
    before = (out / "under8k" / "README.md").read_text()
    (out / "under8k" / "README.md").unlink()
    argv = shlex.split(report)
    assert argv[-2:] == ["--out", str(out)]
    done = subprocess.run([sys.executable, "-m", "mnist_lab", *argv[1:]], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (out / "under8k" / "README.md").read_text() == before
    committed = (REPORTS / "under8k" / "README.md").read_text()
    assert "`mnist-lab report --series under8k --out reports`" in committed


@pytest.fixture
def figures(monkeypatch):
    """Every figure a report draws, kept open by name instead of written."""
    drawn = {}
    monkeypatch.setattr(plots, "save", lambda fig, path: drawn.__setitem__(Path(path).name, fig))
    return drawn


def _report(name, tmp_path):
    shutil.copytree(REPORTS / name / "results", tmp_path / name / "results", ignore=shutil.ignore_patterns("*.pt"))
    build(tmp_path / name, series.load(ROOT / "notebooks" / name), data_dir=tmp_path / "no data")


def test_the_frameworks_figures_show_frameworks_as_categories_and_say_which_one_they_fix(tmp_path, figures):
    _report("frameworks", tmp_path)
    for it in range(1, 6):
        fig = figures[f"sweep_{it}_framework.png"]
        for ax in fig.axes:
            joined = [line for line in ax.get_lines() if len(line.get_xdata()) > 1 and line.get_linestyle() not in
                      ("None", "", " ") and len(set(line.get_xdata())) > 1]
            assert joined == [], f"sweep_{it}_framework.png joins frameworks with a line"
    for name in ("final_acc.png", "time.png", "train_loss.png", "test_acc_per_epoch.png"):
        assert "framework pytorch only" in figures[name].axes[0].get_title(), name


def test_the_study_networks_near_18k_parameters_are_each_labelled_where_nothing_covers_them(tmp_path, figures):
    _report("study", tmp_path)
    fig = figures["params_vs_acc.png"]
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    labels = {t.get_text(): t.get_window_extent(renderer) for ax in fig.axes for t in ax.texts}
    crowd = [f"it {it}" for it in (3, 5, 6, 7)]
    assert set(crowd) <= set(labels), sorted(labels)
    for i, a in enumerate(crowd):
        for b in crowd[i + 1:]:
            assert not labels[a].overlaps(labels[b]), f"{a} and {b} cover each other"
    zoom = next(ax for ax in fig.axes if ax.texts)
    points = [zoom.transData.transform((line.get_xdata()[0], line.get_ydata()[0])) for line in zoom.get_lines()
              if line.get_marker() == "o"]
    assert len(points) == 4
    assert min(((p - q) ** 2).sum() ** 0.5 for i, p in enumerate(points) for q in points[i + 1:]) > 10  # pixels
