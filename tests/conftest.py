import json
import os
import struct
from pathlib import Path

import pytest
import torch

from mnist_lab import fetch, machine

ROOT = Path(__file__).resolve().parents[1]


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


def rescore(checkpoint: Path, mnist_root: Path, result: dict) -> int:
    """Rebuild a committed checkpoint's network, check it is the result file's, and count the held-out
    images it gets right with one thread (as the run evaluated it)."""
    from mnist_lab import Config, MNISTData, evaluate, load_model

    model = load_model(checkpoint)
    assert model.num_params() == result["params"] and model.blocks == result["blocks"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = Config(device="cpu", data_dir=str(mnist_root))
        return evaluate(model, MNISTData.for_config(cfg, "cpu").test, cfg)["correct"]
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


def committed(name: str) -> dict[str, dict]:
    """A series' committed result files, {file name: result}."""
    return {p.name: json.loads(p.read_text()) for p in sorted((ROOT / "reports" / name / "results").glob("*.json"))}


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
    done = subprocess.run([sys.executable, "-m", "papermill", notebook, str(out / "run.ipynb"), "-k", "python3",
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
