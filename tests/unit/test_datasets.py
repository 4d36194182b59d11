"""The data-set seam: one table row per data set (datasets.py), read by fetching, loading, training, result files,
checkpoints and predict; Fashion-MNIST fetched offline from Debian's package and verified."""
import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from mnist_lab import Config, LabError, MNISTData, Net, conv, datasets, fetch, fit, head, load_model, pool, record, setup
from mnist_lab.augment import normalize
from mnist_lab.cli import main
from mnist_lab.digitize import classify, to_input


@pytest.fixture(scope="session")
def fashion_root(mnist_root):
    """Fashion-MNIST beside MNIST (`make setup` fetches both); skipped, saying how, where it is not there."""
    try:
        fetch.verify(mnist_root, "fashion")
    except LabError as exc:
        pytest.skip(f"Fashion-MNIST is not fetched here: run `mnist-lab data --dataset fashion` ({exc})")
    return mnist_root


def test_the_table_holds_what_differs_and_names_an_unknown_data_set():
    assert set(datasets.DATASETS) == {"mnist", "fashion"}
    assert (datasets.MNIST.mean, datasets.MNIST.std) == (0.1307, 0.3081)
    assert (datasets.FASHION.mean, datasets.FASHION.std) == (0.2860, 0.3530)
    assert datasets.FASHION.label(7) == "7 Sneaker" and datasets.MNIST.label(7) == "7"
    with pytest.raises(LabError, match="unknown dataset 'kmnist'; known: 'mnist', 'fashion'"):
        datasets.get("kmnist")
    with pytest.raises(LabError, match="dataset must be one of 'mnist', 'fashion'"):
        Config(dataset="kmnist")


def test_mnist_stays_out_of_the_recipe_so_no_committed_run_is_renamed():
    blocks = [conv(1, 4), pool(), head()]
    mnist, fashion = Config(), Config(dataset="fashion")
    assert "dataset" not in mnist.recipe(blocks, "cpu") and fashion.recipe(blocks, "cpu")["dataset"] == "fashion"
    assert mnist.run_id(blocks, "cpu") != fashion.run_id(blocks, "cpu")


def test_mnist_is_normalised_with_the_very_numbers_it_always_was():
    x = torch.rand(3, 1, 28, 28)
    assert torch.equal(normalize(x), (x - 0.1307) / 0.3081)


def test_a_result_file_says_its_data_set_and_older_ones_are_mnist():
    assert datasets.of_result({"config": {"dataset": "fashion"}}) is datasets.FASHION
    assert datasets.of_result({"dataset": "MNIST", "config": {}}) is datasets.MNIST
    assert datasets.of_result({}) is datasets.MNIST


def test_fashion_mnist_on_disk_is_verified_by_bytes_counts_and_pixel_statistics(fashion_root):
    raw = fetch.verify(fashion_root, "fashion")
    assert raw == fashion_root / "FashionMNIST" / "raw"
    fetch.check_contents(raw, datasets.FASHION)  # 6,000 / 1,000 per class, mean 0.2860, std 0.3530
    images, labels = fetch.load_arrays("test", fashion_root, fetch=False, dataset="fashion")
    assert images.shape == (10_000, 28, 28) and np.bincount(labels).tolist() == [1000] * 10
    from torchvision.datasets import FashionMNIST  # torchvision reads the same folder as its own

    tv = FashionMNIST(str(fashion_root), train=False, download=False)
    assert torch.equal(tv.data, torch.from_numpy(images))


def test_files_that_are_the_right_bytes_of_the_wrong_set_are_caught_by_their_contents(tmp_path, mnist_root):
    # a table row whose checksums are MNIST's but whose counts and statistics are Fashion-MNIST's
    wrong = dataclasses.replace(datasets.FASHION, files=datasets.MNIST.files)
    with pytest.raises(LabError, match="per class; expected"):
        fetch.check_contents(mnist_root / "MNIST" / "raw", wrong)
    stats_only = dataclasses.replace(datasets.MNIST, mean=0.2860)
    with pytest.raises(LabError, match="mean 0.1307"):
        fetch.check_contents(mnist_root / "MNIST" / "raw", stats_only)


def test_a_damaged_fashion_file_is_named_with_the_command_that_repairs_it(tmp_path, fashion_root, capsys):
    raw = tmp_path / "FashionMNIST" / "raw"
    shutil.copytree(fashion_root / "FashionMNIST" / "raw", raw)
    (raw / "t10k-labels-idx1-ubyte").write_bytes(b"\0" * 10_008)
    with pytest.raises(SystemExit):
        main(["data", "--dataset", "fashion", "--root", str(tmp_path)])
    err = capsys.readouterr().err
    assert "t10k-labels-idx1-ubyte" in err and "mnist-lab data --dataset fashion --repair" in err
    assert "Traceback" not in err


@pytest.mark.slow
def test_without_installing_debians_package_is_downloaded_and_unpacked(tmp_path, monkeypatch):
    """The path of a machine where apt-get cannot install (not root): `apt-get download` and `dpkg-deb -x`."""
    if not (shutil.which("apt-get") and shutil.which("dpkg-deb")):
        pytest.skip("no apt-get and dpkg-deb here: the Debian path cannot be taken")
    monkeypatch.setattr(fetch, "_from_torchvision", lambda *a: (_ for _ in ()).throw(RuntimeError("offline")))
    monkeypatch.setattr(fetch, "_installed", lambda ds: tmp_path / "not-installed")
    monkeypatch.setattr(fetch.os, "geteuid", lambda: 1000)
    lines = []
    raw = fetch.ensure(tmp_path / "data", log=lines.append, dataset="fashion")
    assert any("apt-get download" in line for line in lines) and fetch.problems(tmp_path / "data", "fashion") == {}
    assert raw == tmp_path / "data" / "FashionMNIST" / "raw"


def test_a_fashion_run_trains_on_fashion_and_its_checkpoint_predicts_with_its_constants(tmp_path, fashion_root):
    cfg = Config(iteration=1, name="tiny", dataset="fashion", epochs=1, smoke=True, smoke_batches=3, device="cpu",
                 data_dir=str(fashion_root), results_dir=str(tmp_path))
    device = setup(cfg)
    data = MNISTData.for_config(cfg, device)
    fashion_test, _ = fetch.load_arrays("test", fashion_root, fetch=False, dataset="fashion")
    assert data.dataset is datasets.FASHION and torch.equal(data.test.images, torch.from_numpy(fashion_test[:1000]))
    assert (data.train.mean, data.train.std) == (0.2860, 0.3530)
    model = Net([conv(1, 4), pool(), conv(4, 8), pool(), head()])
    path = record(cfg, model, fit(model, data, cfg), data, device)
    r = json.loads(path.read_text())
    assert r["dataset"] == "Fashion-MNIST" and r["config"]["dataset"] == "fashion" and "dataset" in r["recipe"]
    loaded = load_model(path.with_suffix(".pt"))
    assert loaded.dataset is datasets.FASHION
    image = Image.fromarray(255 - fashion_test[0])  # dark on light, as a photo would be
    # the same preprocessed pixels, normalised with each data set's own constants
    assert torch.allclose(to_input(image, datasets.FASHION) * 0.3530 + 0.2860, to_input(image) * 0.3081 + 0.1307,
                          atol=1e-6)
    assert not torch.allclose(to_input(image, datasets.FASHION), to_input(image))
    with torch.inference_mode():
        want = loaded(to_input(image, datasets.FASHION)).exp()[0]
    assert classify(loaded, image)[2] == [round(float(p), 6) for p in want]
