"""Run identity, folders resolved from the repository, parameter ranges, executed-notebook compaction."""
import json
import re

import pytest

from mnist_lab import paths
from mnist_lab.config import Config, recipe_hash
from mnist_lab.errors import LabError
from mnist_lab.iterations import BLOCKS
from mnist_lab.runs.nbfiles import compact_outputs, final_text
from conftest import ROOT



def test_every_parameter_that_changes_the_numbers_changes_the_identity():
    base = Config(iteration=5, threads=1)
    rid = base.run_id(BLOCKS[5], "cpu")
    assert rid.startswith("it5_seed0_") and len(rid.split("_")[-1]) == 8
    changed = [Config(**{"iteration": 5, "threads": 1, k: v})
               for k, v in
               [("seed", 1), ("epochs", 1), ("batch_size", 128), ("lr", 0.001), ("step_size", 10), ("gamma", 0.5),
                ("threads", 2), ("channels_last", False), ("val_fraction", 0.1), ("smoke", True)]]
    ids = {c.run_id(BLOCKS[5], "cpu") for c in changed} | {base.run_id(BLOCKS[6], "cpu"), rid}
    assert len(ids) == len(changed) + 2  # all different
    if __import__("torch").cuda.is_available():
        assert base.run_id(BLOCKS[5], "cuda") != rid


def test_names_and_folders_do_not_change_the_identity():
    a = Config(iteration=5, threads=1)
    b = Config(iteration=5, threads=1, name="other", data_dir="/elsewhere", results_dir="x", device="cpu")
    assert a.run_id(BLOCKS[5], "cpu") == b.run_id(BLOCKS[5], "cpu")
    assert a.recipe(BLOCKS[5], "cpu")["device"] == "cpu"
    assert recipe_hash({"b": 1, "a": 2}) == recipe_hash({"a": 2, "b": 1})


@pytest.mark.parametrize("cwd", ["root", "notebooks", "elsewhere"])
def test_default_folders_come_from_the_repository_not_the_working_directory(cwd, tmp_path, monkeypatch):
    monkeypatch.delenv("MNIST_LAB_DATA", raising=False)
    monkeypatch.delenv("MNIST_LAB_RESULTS", raising=False)
    monkeypatch.chdir({"root": ROOT, "notebooks": ROOT / "notebooks" / "study", "elsewhere": tmp_path}[cwd])
    cfg = Config()
    assert cfg.data_path == ROOT / "data" and cfg.results_path == ROOT / "runs" / "results"
    assert Config(series="study").results_path == ROOT / "runs" / "study" / "results"  # a series' own folder
    assert Config(results_dir="reports/results").results_path == ROOT / "reports" / "results"
    assert Config(results_dir=str(tmp_path)).results_path == tmp_path
    assert cfg.portable_dict()["data_dir"] == "data" and cfg.portable_dict()["results_dir"] == "runs/results"


def test_portable_paths_are_relative_inside_the_repository_only(tmp_path):
    assert paths.portable(ROOT / "reports" / "results" / "a.json") == "reports/results/a.json"
    assert paths.portable(tmp_path / "x") == str(tmp_path / "x")


@pytest.mark.parametrize("key,value,message", [
    ("epochs", 0, "epochs must be >= 1, got 0"), ("batch_size", -5, "batch_size must be >= 1"),
    ("lr", 0.0, "lr must be > 0"), ("lr", -0.1, "lr must be > 0"), ("seed", -1, "seed must be >= 0"),
    ("gamma", 0.0, "gamma must be > 0"), ("threads", -1, "threads must be >= 0"), ("epochs", 2.5, "must be int"),
])
def test_out_of_range_parameters_are_refused(key, value, message):
    with pytest.raises(LabError, match=message):
        Config(**{key: value})


def test_a_progress_bar_keeps_its_final_state():
    assert final_text("epoch 1:  10%\repoch 1:  50%\repoch 1: 100%\n") == "epoch 1: 100%\n"
    assert final_text("a\rb\r\nnext line\n") == "b\nnext line\n"
    outs = [{"output_type": "stream", "name": "stderr", "text": ["\rbar  1%"]},
            {"output_type": "stream", "name": "stderr", "text": "\rbar 100%\n"},
            {"output_type": "stream", "name": "stdout", "text": "epoch 1 done\n"},
            {"output_type": "display_data", "data": {}, "metadata": {}}]
    got = compact_outputs(outs)
    assert [o["output_type"] for o in got] == ["stream", "stream", "display_data"]
    assert got[0]["text"] == ["bar 100%\n"] and got[1]["text"] == ["epoch 1 done\n"]


# An absolute path whose last folder is data, reports or runs, after a quote or whitespace: what a run made
# outside the repository would write ("/home/me/mnist/reports"); "reports/x" or "wrote reports/x" is fine.
ABSOLUTE = re.compile(r'["\s]/[\w.-]+(?:/[\w.-]+)*/(?:data|reports|runs)')


def absolute_paths(text: str) -> list[str]:
    """Each absolute path ending in /data, /reports or /runs in `text`, with the quote or space before it."""
    return [m.group() for m in ABSOLUTE.finditer(text)]


@pytest.mark.parametrize("text,found", [
    ('"data_dir": "/home/me/mnist/data"', ['"/home/me/mnist/data']),
    ('{"path": "/srv/lab/reports/study/results/it1.json"}', ['"/srv/lab/reports']),
    ("saved to /tmp/lab-1/runs/study", [" /tmp/lab-1/runs"]),
    ("wrote\t/x/y.z/data and /a/runs", ["\t/x/y.z/data", " /a/runs"]),
    ('"/home/someone/projects/a-rather-long-checkout-name/reports"',  # a path of any length
     ['"/home/someone/projects/a-rather-long-checkout-name/reports']),
    ("wrote reports/x", []), ("runs/study", []), ('"runs/study/results/a.json"', []),
    ('"data_dir": "data"', []), ("see ./reports/study", []), ("https://example.org/data", []),
])
def test_an_absolute_path_is_found_and_a_relative_one_is_not(text, found):
    assert absolute_paths(text) == found


def test_committed_results_and_executed_notebooks_hold_no_absolute_paths():
    for path in list(ROOT.glob("reports/*/results/*.json")) + list(ROOT.glob("reports/*/notebooks/*.ipynb")):
        text = path.read_text()
        assert not absolute_paths(text), (path.name, absolute_paths(text))
        if path.suffix == ".ipynb":
            meta = json.loads(text)["metadata"]["papermill"]
            assert all(not str(v).startswith("/") for v in meta["parameters"].values()), path.name
