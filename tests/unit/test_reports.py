"""The report: computed from result files only, deterministic, smoke runs kept apart."""
import json
import statistics

import pytest

from mnist_lab.reports import build
from conftest import fake_result




@pytest.fixture
def reports(tmp_path):
    res = tmp_path / "study" / "results"  # a study report: notebooks/study/series.json says so
    res.mkdir(parents=True)
    accs = {3: [99.1, 99.3, 99.2], 5: [99.4, 99.5, 99.6]}
    for it, values in accs.items():
        for seed, a in enumerate(values):
            (res / f"it{it}_seed{seed}.json").write_text(json.dumps(fake_result(it, seed, a)))
    (res / "it5_seed0_smoke.json").write_text(json.dumps(fake_result(5, 0, 12.34, smoke=True)))
    return tmp_path / "study", accs


def test_table_shows_mean_std_n_and_keeps_tiny_runs_apart(reports):
    folder, accs = reports
    text = build(folder, data_dir=folder / "nodata").read_text()
    for values in accs.values():
        m, s = statistics.fmean(values), statistics.stdev(values)
        assert f"{m:.2f} ± {s:.2f} (n=3)" in text
    main_table = text.split("## Smoke runs")[0]
    assert "12.34" not in main_table and "12.34" in text.split("## Smoke runs")[1]
    assert "99.55 (train data)" in text  # the study's number, labelled
    assert (folder / "test_acc_per_epoch.png").exists() and (folder / "params_vs_acc.png").exists()
    assert (folder / "confusion_best.png").exists()


def test_same_files_same_report(reports):
    folder, _ = reports
    first = build(folder, data_dir=folder / "nodata").read_bytes()
    png = (folder / "params_vs_acc.png").read_bytes()
    assert build(folder, data_dir=folder / "nodata").read_bytes() == first
    assert (folder / "params_vs_acc.png").read_bytes() == png


def test_analysis_judges_differences_against_the_spread(reports):
    folder, _ = reports
    text = build(folder, data_dir=folder / "nodata").read_text()
    assert "(iteration 5 vs 3): +0.30 points" in text and "real difference" in text


def test_no_results_is_a_clear_error(tmp_path):
    from mnist_lab.errors import LabError

    with pytest.raises(LabError, match="run `mnist-lab run` first"):
        build(tmp_path)


def test_unusable_result_files_are_skipped_with_a_warning_naming_each(reports, capsys):
    folder, accs = reports
    res = folder / "results"
    (res / "list.json").write_text("[1, 2]")
    broken = fake_result(5, 7, 99.0)
    broken["final_test_acc"] = None
    (res / "null_acc.json").write_text(json.dumps(broken))
    no_seed = fake_result(5, 8, 99.0)
    del no_seed["seed"]
    (res / "no_seed.json").write_text(json.dumps(no_seed))
    (res / "cut.json").write_text('{"iteration": 5, "se')
    no_torch = fake_result(5, 9, 99.0)
    del no_torch["torch"]
    (res / "no_torch.json").write_text(json.dumps(no_torch))
    warnings = []
    text = build(folder, data_dir=folder / "nodata", warn=warnings.append).read_text()
    assert len(warnings) == 5 and all(w.startswith("warning: skipping ") for w in warnings)
    joined = "\n".join(warnings)
    for name, why in [("list.json", "a JSON list"), ("null_acc.json", "'final_test_acc' is None"),
                      ("no_seed.json", "no 'seed'"), ("cut.json", "unreadable"), ("no_torch.json", "no 'torch'")]:
        assert name in joined and why in joined, joined
    m, s = statistics.fmean(accs[5]), statistics.stdev(accs[5])
    assert f"{m:.2f} ± {s:.2f} (n=3)" in text  # the good files still make the report


def test_report_command_warns_and_does_not_crash(reports):
    import subprocess
    import sys

    folder, _ = reports
    (folder / "results" / "list.json").write_text("[]")
    done = subprocess.run([sys.executable, "-m", "mnist_lab", "report", "--out", str(folder.parent)],
                          capture_output=True, text=True)
    assert done.returncode == 0 and "warning: skipping" in done.stderr and "Traceback" not in done.stderr


def test_a_tiny_run_report_has_its_own_plots(tmp_path):
    (tmp_path / "study" / "results").mkdir(parents=True)
    (tmp_path / "study" / "results" / "it5_seed0_smoke.json").write_text(json.dumps(fake_result(5, 0, 50.0, smoke=True)))
    text = build(tmp_path / "study", data_dir=tmp_path / "nodata").read_text()
    assert "![smoke_test_acc_per_epoch.png]" in text and (tmp_path / "study" / "smoke_params_vs_acc.png").exists()
