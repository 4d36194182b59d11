import os
import struct
from pathlib import Path

import pytest
import torch

from mnist_lab import fetch

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

    from mnist_lab import paths, report

    committed = paths.reports_dir() / name
    monkeypatch.setattr(paths, "reports_dir", lambda: tmp_path)
    shutil.copytree(committed / "results", tmp_path / name / "results")
    shutil.copy(committed / "run.json", tmp_path / name / "run.json")
    return report.build(tmp_path / name, data_dir=mnist_root).read_text()
