"""Shared by every test: the repository root, the real data, the committed results read once per process, and the
helpers the artefact tests share. The tests follow the package: tests/unit (a file per module or wing),
tests/integration (the runner, papermill, kernels, a cluster, a browser), tests/artefacts (the committed results,
reports and layout)."""
import functools
import json
import os
import struct
from pathlib import Path

import pytest
import torch

from mnist_lab import fetch, machine

from fast_notebooks import ROOT  # noqa: E402  the repository root, defined once (that script runs without pytest)


def pytest_configure(config):
    """Under pytest-xdist each worker is one of several processes sharing the cores: one torch thread each (and one
    for the kernels and subprocesses they start), so that two workers on two cores do not each start two threads.
    A test that sets its own thread count still gets it."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = "1"
        torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    """The slow tests first (each runs whole notebooks for a minute or more): started last, one of them would keep
    one worker busy while the other has nothing left to do."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def real_data_root() -> Path:
    return Path(os.environ.get("MNIST_LAB_DATA", ROOT / "data"))


@pytest.fixture(scope="session")
def mnist_root():
    """The real, verified MNIST (make test fetches it first)."""
    root = real_data_root()
    fetch.verify(root)
    return root


def write_idx(path: Path, array: torch.Tensor):
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">BBBB", 0, 0, 8, array.dim()) + struct.pack(f">{array.dim()}I", *array.shape)
    path.write_bytes(header + array.to(torch.uint8).numpy().tobytes())


@pytest.fixture
def tiny_images():
    """A synthetic 'digit' set whose pixel content encodes the label: a centred square of brightness 20*(label+1)."""
    n = 256
    labels = torch.arange(n) % 10
    images = torch.zeros(n, 28, 28, dtype=torch.uint8)
    for i, y in enumerate(labels):
        images[i, 8:20, 8:20] = 20 * (int(y) + 1)
    return images, labels


@functools.cache
def held_out(root: str, dataset: str = "mnist"):
    """A data set's held-out images, loaded and verified once per test process (each rescoring used to load them)."""
    from mnist_lab import Config, MNISTData

    cfg = Config(device="cpu", data_dir=root, dataset=dataset)
    return cfg, MNISTData.for_config(cfg, "cpu").test


def rescore(checkpoint: Path, mnist_root: Path, result: dict) -> int:
    """Rebuild a committed checkpoint's network, check it is the result file's, and count the held-out
    images it gets right with one thread (as the run evaluated it)."""
    from mnist_lab import evaluate, load_model

    model = load_model(checkpoint)
    assert model.num_params() == result["params"] and model.blocks == result["blocks"]
    cfg, test = held_out(str(mnist_root))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return evaluate(model, test, cfg)["correct"]
    finally:
        torch.set_num_threads(threads)


def regenerate_report(name: str, tmp_path: Path, mnist_root: Path, monkeypatch) -> str:
    """The report the generator makes now from a series' committed result files (and its run.json), in a
    copy of reports/, so that the committed results' own notes are in it too."""
    import shutil

    from mnist_lab import paths, reports, series

    committed = paths.reports_dir() / name
    monkeypatch.setattr(paths, "reports_dir", lambda: tmp_path)
    shutil.copytree(committed / "results", tmp_path / name / "results")
    shutil.copy(committed / "run.json", tmp_path / name / "run.json")
    return reports.build(tmp_path / name, series.load(ROOT / "notebooks" / name), data_dir=mnist_root).read_text()


@functools.cache
def _committed_texts(name: str) -> tuple[tuple[str, str], ...]:
    return tuple((p.name, p.read_text()) for p in sorted((ROOT / "reports" / name / "results").glob("*.json")))


def committed(name: str) -> dict[str, dict]:
    """A series' committed result files, {file name: result} (read once per process, a fresh copy each call)."""
    return {file: json.loads(text) for file, text in _committed_texts(name)}


def check_the_committed_plan(name: str):
    """The committed runs of series `name` are what its notebooks plan now, on any machine. Planned for the
    machine the files record (the runner plans for a cluster's workers the same way), every job names a
    committed file of the same recipe and no other; planned for this machine, every job has the same
    method, and the same file exactly where this machine's vector instructions are the recorded ones."""
    from mnist_lab import series
    from mnist_lab.runs import plan

    results = committed(name)
    [(cpu, threads)] = {(r["recipe"]["cpu"], r["recipe"]["threads"]) for r in results.values()}
    spec = series.load(ROOT / "notebooks" / name)

    def planned(worker_cpu):
        jobs = plan.plan([spec], [], None, ROOT / "reports", {"device": "cpu"}, False, threads, ROOT / "data",
                           worker_cpu=worker_cpu)
        return sorted(jobs, key=lambda j: (j.notebook.name, j.seed, json.dumps(j.variant, sort_keys=True)))

    there, here = planned(cpu), planned(None)
    assert sorted(j.result.name for j in there) == sorted(results)
    assert all(plan.finished(j) == (True, None) for j in there)
    key = lambda j: (j.notebook, j.seed, j.variant, machine.method(j.recipe))
    assert [key(j) for j in here] == [key(j) for j in there]
    same = torch.backends.cpu.get_cpu_capability() == cpu
    assert all((a.result == b.result) == same for a, b in zip(here, there))


# What a tiny run changes in a recipe (Config.recipe): its own epoch count and batch limit.
TINY_FIELDS = ("smoke", "epochs", "smoke_batches", "smoke_epochs")


def papermill_remake(notebook: str, out: Path, mnist_root: Path, result: dict, **params) -> dict:
    """Run `notebook` now through papermill in a fresh kernel with the committed `result`'s seed and thread
    count: at full length where this machine can remake it bit for bit, else as a tiny run (only the
    path is checked then, and a full run would cost minutes for nothing). Returns the new result."""
    import subprocess
    import sys

    tiny = bool(machine.remake_blockers(result))
    args = dict(params, seed=result["seed"], threads=result["recipe"]["threads"], device="cpu",
                results_dir=str(out), data_dir=str(mnist_root), smoke=tiny)
    done = subprocess.run([sys.executable, "-m", "mnist_lab.runs.papermill_main", notebook, str(out / "run.ipynb"), "-k", "python3",
                           "-y", json.dumps(args)], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    [new] = out.glob(f"it{result['iteration']}_seed{result['seed']}_*.json")
    return json.loads(new.read_text())


def check_remade_recipe(new: dict, old: dict):
    """What a remake shows on any machine: it completed with the committed run's method (apart from the
    tiny-run fields when it was a tiny run), and shares its file name exactly where the machine agrees."""
    drop = TINY_FIELDS if new["smoke"] else ()
    strip = lambda r: {k: v for k, v in machine.method(r).items() if k not in drop}
    assert strip(new["recipe"]) == strip(old["recipe"])
    assert len(new["history"]) == new["epochs_planned"] and new["final_test_acc"] is not None
    same = not new["smoke"] and all(new["recipe"].get(k) == old["recipe"].get(k) for k in machine.MACHINE_FIELDS)
    assert (new["run_id"] == old["run_id"]) == same


def check_bit_for_bit(new: dict, new_dir: Path, old: dict, old_dir: Path):
    """The same history (but the seconds), confusion matrix, mistakes and weights."""
    strip = lambda h: [{k: v for k, v in e.items() if k != "seconds"} for e in h]
    assert new["run_id"] == old["run_id"]
    assert strip(new["history"]) == strip(old["history"])
    assert new["confusion"] == old["confusion"] and new["mistakes"] == old["mistakes"]
    sa, sb = (torch.load(Path(d) / r["checkpoint"], weights_only=True)["state_dict"]
              for d, r in ((new_dir, new), (old_dir, old)))
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# A study result file as the runner writes it, for the report tests (no training behind it).
@functools.cache
def study_notebook(it: int) -> dict:
    """What the runner records of study notebook `it` in its result files."""
    from mnist_lab import series

    return series.own_recipe(series.load(ROOT / "notebooks" / "study").notebooks[it])


def fake_result(it, seed, final, smoke=False):
    from mnist_lab.iterations import BLOCKS, EPOCHS, LR
    from mnist_lab.net import Net

    h = [{"epoch": e, "lr": LR[it], "train_loss": 0.1, "train_acc": 98.0, "test_loss": 0.05,
          "test_acc": final - 0.1 * (EPOCHS[it] - e), "test_correct": 0, "seconds": 2.0}
         for e in range(1, EPOCHS[it] + 1)]
    return {"iteration": it, "name": f"it{it}", "params": Net(BLOCKS[it]).num_params(), "seed": seed,
            "epochs": EPOCHS[it], "batch_size": 64, "lr": LR[it], "device": "cpu", "device_name": "x86_64",
            "threads": 1, "torch": "2.14.1", "python": "3.11.7", "dataset": "MNIST", "test_size": 10_000,
            "smoke": smoke, "blocks": BLOCKS[it], "config": {"val_fraction": 0.0, "scheduler": "step"},
            "history": h, "final_test_acc": final, "final_train_acc": 98.0, "wall_seconds": 2.0 * EPOCHS[it],
            "confusion": [[100 if i == j else 0 for j in range(10)] for i in range(10)], "mistakes": [], "checkpoint": f"it{it}_seed{seed}.pt",
            "notebook": study_notebook(it), "variant": {}}



AVERAGED = ("train_loss", "train_acc", "val_loss", "val_acc")  # per-epoch means over batches: float32 sums


def same_run(a: dict, b: dict):
    """Two histories of the same arithmetic: held-out figures and learning rates equal, averages to float32."""
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert {k: v for k, v in x.items() if k not in AVERAGED + ("seconds",)} == \
               {k: v for k, v in y.items() if k not in AVERAGED + ("seconds",)}
        keys = [k for k in AVERAGED if k in x]
        assert keys == [k for k in AVERAGED if k in y]
        assert [x[k] for k in keys] == pytest.approx([y[k] for k in keys], rel=1e-5)
