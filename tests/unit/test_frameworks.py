"""One block list in every framework: the Keras model compiled from it, the Lightning module around
it, the NumPy trainer; equal parameter counts, weights carried both ways, a few tiny training steps
in each, and the checkpoint each writes evaluated as a PyTorch network."""
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from mnist_lab import Config, MNISTData, Net, fit, load_model, record, series, setup
from mnist_lab.runs import plan
from mnist_lab.blocks import bn, conv, dense, drop, flatten, gap, head, pool, trans
from mnist_lab.errors import LabError
from mnist_lab.frameworks.pytorch import evaluate, predict

from conftest import ROOT

# Keras alone (on its torch backend, as on a GPU machine with the kit) is not enough: these tests train on
# TensorFlow too. The frameworks are imported by the fixtures below, in the tests that use them only, so that
# collecting this file (in every pytest process) imports neither TensorFlow nor Lightning.
EXTRA = ("keras", "tensorflow", "lightning")


@pytest.fixture(scope="session")
def frameworks_extra():
    if any(importlib.util.find_spec(m) is None for m in EXTRA):
        pytest.skip("the frameworks extra is not installed: pip install -e '.[frameworks]'")


@pytest.fixture(scope="session")
def keras_net(frameworks_extra):
    from mnist_lab.frameworks import keras as keras_net

    return keras_net


@pytest.fixture(scope="session")
def keras(keras_net):
    # not `importorskip("keras")`: Keras must be imported the way keras_net.load does it (see there)
    return keras_net.load("tensorflow")


@pytest.fixture(scope="session")
def lightning(keras):  # after Keras: see keras_net.load
    import lightning

    return lightning


@pytest.fixture(scope="session")
def lightning_net(lightning):
    from mnist_lab.frameworks import lightning as lightning_net

    return lightning_net


def every_network():
    """(series/notebook, blocks) of every notebook of every series, as the notebook declares it."""
    for name, s in series.find(ROOT / "notebooks").items():
        for it, nb in s.notebooks.items():
            yield f"{name}/{nb.name}", series.notebook_network(nb, series.notebook_defaults(nb))


NETWORKS = list(every_network())


def buffers(net) -> int:
    return sum(b.numel() for n, b in net.named_buffers() if not n.endswith("num_batches_tracked"))


@pytest.mark.parametrize("where,blocks", NETWORKS, ids=[w for w, _ in NETWORKS])
def test_every_network_has_the_same_parameters_in_every_framework(where, blocks, keras, keras_net, lightning_net):
    net = Net(blocks)
    model, _ = keras_net.build(blocks, keras=keras)
    trainable, frozen = keras_net.count(model)
    assert trainable == net.num_params(), where           # weights and biases, BatchNorm's scale and shift
    assert frozen == buffers(net), where                  # BatchNorm's running mean and variance
    # Lightning trains this very Net: its module holds nothing else
    lit = lightning_net.module(net, Config())
    assert [p is q for p, q in zip(lit.parameters(), net.parameters())] == [True] * len(list(net.parameters()))


CONVNET = [conv(1, 8, bn=True), pool(), trans(8, 4), conv(4, 6, dropout=0.1), pool(), flatten(),
           dense(6 * 7 * 7, 16, act="sigmoid"), bn(16), drop(0.2), head(dropout=0.1)]


# convs without padding or bias, global average pooling and a 1x1 head (the under-8k series' kind)
GAPNET = [conv(1, 6, bn=True, pad=0, bias=False), conv(6, 8, bn=True, pad=0, bias=False, dropout=0.05),
          trans(8, 4, bias=False), pool(), conv(4, 8, pad=0), gap(), head(conv1x1=True, dropout=0.1)]


@pytest.mark.parametrize("blocks", [CONVNET, GAPNET], ids=["convnet", "gapnet"])
def test_keras_computes_what_the_torch_network_computes_and_weights_go_both_ways(blocks, mnist_root, keras, keras_net):
    """Conv kernels, the flatten order of a feature map, BatchNorm statistics: the Keras model given the
    torch weights gives the torch log-probabilities, and its weights come back unchanged."""
    torch.manual_seed(0)
    net = Net(blocks)
    with torch.no_grad():  # running statistics away from 0 and 1, so that copying them matters
        for m in net.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    net.eval()
    data = MNISTData.load(mnist_root, test_size=200)
    x = next(iter(data.test))[0][:200]
    model, links = keras_net.build(blocks, keras=keras)
    keras_net.weights_to_keras(net, links)
    theirs = np.asarray(model(x.permute(0, 2, 3, 1).numpy(), training=False))
    with torch.no_grad():
        ours = net(x).numpy()
    assert np.abs(theirs - ours).max() < 1e-4
    assert (theirs.argmax(1) == ours.argmax(1)).all()

    back = Net(blocks)
    keras_net.weights_to_torch(links, back)
    for (k, a), b in zip(net.state_dict().items(), back.state_dict().values()):
        if not k.endswith("num_batches_tracked"):
            assert torch.equal(a, b), k


def tiny(mnist_root, tmp_path, **kw):
    settings = dict(seed=0, epochs=2, batch_size=32, lr=0.01, rotation=0.0, crop_p=0.0, smoke=True, smoke_batches=6,
                    data_dir=str(mnist_root), results_dir=str(tmp_path), device="cpu", iteration=3, name="t")
    return Config(**{**settings, **kw})


def train(cfg, blocks):
    device = setup(cfg)
    data = MNISTData.for_config(cfg, device)
    net = Net(blocks)
    start = {k: v.clone() for k, v in net.state_dict().items()}
    return net, data, device, fit(net, data, cfg), start


@pytest.mark.parametrize("framework", ["keras", "lightning"])
def test_a_few_steps_in_each_framework_write_a_result_whose_checkpoint_evaluates(framework, mnist_root, tmp_path,
                                                                                 keras, lightning):
    cfg = tiny(mnist_root, tmp_path, framework=framework, val_fraction=0.1, scheduler="plateau", gamma=0.5,
               patience=1, restore_best=True, weight_decay=1e-4)
    net, data, device, result, start = train(cfg, CONVNET)
    assert 1 <= len(result.history) <= 2 and result.restored and result.best_epoch >= 1
    for row in result.history:
        assert {"train_loss", "train_acc", "test_acc", "val_loss", "val_acc", "seconds", "lr"} <= set(row)
    assert any(not torch.equal(start[k], v) for k, v in net.state_dict().items())  # the net holds what was trained
    path = record(cfg, net, result, data, device)
    r = json.loads(path.read_text())
    assert r["framework"] == framework and r["recipe"]["framework"] == framework
    assert r["versions"] == ({"keras": keras.__version__, "keras_backend": "tensorflow",
                              "tensorflow": sys.modules["tensorflow"].__version__} if framework == "keras"
                             else {"lightning": lightning.__version__})
    # The checkpoint, rebuilt as a PyTorch network, scores what the framework itself measured.
    model = load_model(path.with_suffix(".pt"))
    assert evaluate(model, data.test, cfg)["acc"] == pytest.approx(r["final_test_acc"])


def test_lightning_trains_the_same_numbers_as_the_pytorch_loop(mnist_root, tmp_path, lightning):
    """Same network, weights, batches, optimizer and scheduler: Lightning adds a loop around the same
    arithmetic, so on the CPU with equal threads its history equals the PyTorch trainer's."""
    blocks = [conv(1, 4, bn=True), pool(), drop(0.1), flatten(), dense(4 * 14 * 14, 16), head()]
    from conftest import same_run

    runs, weights = {}, {}
    for framework in ("pytorch", "lightning"):
        cfg = tiny(mnist_root, tmp_path, framework=framework, threads=1, val_fraction=0.1, scheduler="step",
                   step_size=1, gamma=0.5)
        net, *_ = trained = train(cfg, blocks)
        runs[framework], weights[framework] = trained[3].history, net.state_dict()
    same_run(runs["lightning"], runs["pytorch"])  # held-out figures exact; Lightning's own averages to float32
    assert all(torch.equal(weights["lightning"][k], weights["pytorch"][k]) for k in weights["pytorch"])
    assert [r["lr"] for r in runs["pytorch"]] == [0.01, 0.005]


def test_keras_gives_the_same_numbers_twice_and_steps_the_learning_rate_per_epoch(mnist_root, tmp_path, keras):
    cfg = tiny(mnist_root, tmp_path, framework="keras", optimizer="sgd", momentum=0.9, scheduler="step",
               step_size=1, gamma=0.5)
    blocks = [flatten(), dense(784, 32), drop(0.2), head()]
    first, second = ([{k: v for k, v in row.items() if k != "seconds"} for row in train(cfg, blocks)[3].history]
                     for _ in range(2))
    assert first == second
    assert [row["lr"] for row in first] == pytest.approx([0.01, 0.005])


def test_keras_reads_the_batches_the_pytorch_trainer_reads(mnist_root, keras, keras_net):
    data = MNISTData.load(mnist_root, batch_size=100, seed=3, max_batches=5)
    reference = MNISTData.load(mnist_root, batch_size=100, seed=3, max_batches=5)
    epochs = keras_net._Epochs(keras, data.train)
    for _ in range(2):  # two epochs: each draws its own shuffle and augmentation, as the PyTorch loop's
        expected = list(reference.train)
        got = [epochs[i] for i in range(len(epochs))]
        epochs.on_epoch_end()
        for (x, y), (kx, ky) in zip(expected, got):
            assert np.array_equal(x.permute(0, 2, 3, 1).numpy(), kx) and np.array_equal(y.numpy(), ky)


def test_the_numpy_framework_starts_from_the_networks_weights(mnist_root, tmp_path):
    cfg = tiny(mnist_root, tmp_path, framework="numpy", optimizer="sgd", lr=0.1)
    net, data, device, result, start = train(cfg, [flatten(), dense(784, 16), head()])
    assert len(result.history) == 2 and result.history[-1]["test_acc"] > 30
    path = record(cfg, net, result, data, device)
    assert json.loads(path.read_text())["versions"] == {"numpy": np.__version__}
    pred, _ = predict(load_model(path.with_suffix(".pt")), data.test, cfg)
    assert 100 * (pred == data.test.labels).float().mean().item() == pytest.approx(result.final["test_acc"])


def test_framework_settings_enter_the_recipe_only_where_they_act():
    blocks = [flatten(), dense(784, 8), head()]
    plain = Config().recipe(blocks, "cpu")
    assert "framework" not in plain and "keras_backend" not in plain  # the earlier runs' names are unchanged
    assert Config(framework="lightning").recipe(blocks, "cpu")["framework"] == "lightning"
    assert "keras_backend" not in Config(framework="lightning", keras_backend="torch").recipe(blocks, "cpu")
    assert Config(framework="keras", keras_backend="torch").recipe(blocks, "cpu")["keras_backend"] == "torch"
    with pytest.raises(LabError, match="keras_backend must be one of 'tensorflow', 'torch', 'jax'"):
        Config(framework="keras", keras_backend="theano")
    with pytest.raises(LabError, match="runs on the CPU here.*keras_backend='torch'"):
        Config(framework="keras", device="cuda")


def _missing(module, framework):
    """Run a tiny notebook-like script in a Python where `module` cannot be imported."""
    code = (f"import sys; sys.modules[{module!r}] = None\n"
            "from mnist_lab import Config, Net, fit, flatten, dense, head\n"
            f"fit(Net([flatten(), dense(784, 8), head()]), None, Config(framework={framework!r}))\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)


@pytest.mark.parametrize("module,framework,what", [("tensorflow", "keras", "needs TensorFlow and Keras"),
                                                   ("lightning", "lightning", "needs PyTorch Lightning")])
def test_a_framework_that_is_not_installed_says_how_to_install_it(module, framework, what):
    done = _missing(module, framework)
    assert done.returncode != 0
    assert what in done.stderr and "pip install -e '.[frameworks]'" in done.stderr


def test_keras_on_the_torch_backend(mnist_root, tmp_path, frameworks_extra):
    """keras_backend='torch': Keras 3 on PyTorch; a fresh process, since a process holds one backend."""
    code = (f"from mnist_lab import Config, MNISTData, Net, fit, setup, flatten, dense, head\n"
            f"cfg = Config(framework='keras', keras_backend='torch', epochs=1, smoke=True, smoke_batches=5, "
            f"rotation=0.0, crop_p=0.0, device='cpu', data_dir={str(mnist_root)!r})\n"
            "dev = setup(cfg); data = MNISTData.for_config(cfg, dev)\n"
            "r = fit(Net([flatten(), dense(784, 8), head()]), data, cfg)\n"
            "import keras; print('backend', keras.backend.backend())\n"
            "print('acc', r.final['test_acc'])\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env={**os.environ, "KERAS_BACKEND": ""})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "backend torch" in done.stdout and float(done.stdout.split("acc ")[-1]) > 20


def test_the_frameworks_series_sweeps_every_framework_and_its_comparisons_resolve():
    s = series.load(ROOT / "notebooks" / "frameworks")
    assert [v.get("framework", "pytorch") for v in s.variants(1)] == ["pytorch", "numpy", "keras", "lightning"]
    for it in range(2, 6):
        assert [v.get("framework", "pytorch") for v in s.variants(it)] == ["pytorch", "keras", "lightning"]
    for nb in s.notebooks.values():
        params = series.notebook_defaults(nb)
        assert params["framework"] == "pytorch" and params["keras_backend"] == "tensorflow"
    assert all(s.side_ok(c["a"]) and s.side_ok(c["b"]) for c in s.comparisons)
    assert not s.side_ok({"notebook": 2, "framework": "numpy"})  # the CNN has no NumPy run


def test_a_comparison_with_a_side_no_sweep_makes_is_refused(tmp_path):
    import shutil

    shutil.copy(ROOT / "notebooks" / "frameworks" / "01_mlp.ipynb", tmp_path)
    (tmp_path / "series.json").write_text(json.dumps({
        "sweeps": [{"notebook": 1, "vary": {"framework": ["keras"]}}],
        "comparisons": [{"question": "q", "a": 1, "b": {"notebook": 1, "framework": "lightning"}}]}))
    with pytest.raises(LabError, match="is not a valid series file.*needs a question and two sides"):
        series.load(tmp_path)


@pytest.mark.slow
def test_the_whole_frameworks_series_runs_as_smoke_runs_with_a_report(tmp_path, mnist_root, frameworks_extra):
    """papermill runs notebooks 1 and 5 in every framework they list (1: all four; 5: BatchNorm, early
    stopping and ReduceLROnPlateau in each framework's own callbacks), then the comparison report."""
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "mnist_lab", "run", "--smoke", "--series", "frameworks",
                           "--iterations", "1", "5", "--workers", "2", "--threads", "1", "--out", str(out),
                           "--data", str(mnist_root)], capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    files = sorted((out / "frameworks" / "results").glob("*.json"))
    got = sorted((json.loads(p.read_text())["iteration"], json.loads(p.read_text())["framework"]) for p in files)
    assert got == sorted([(1, f) for f in ("pytorch", "numpy", "keras", "lightning")] +
                         [(5, f) for f in ("pytorch", "keras", "lightning")])
    page = (out / "frameworks" / "README.md").read_text()  # smoke runs: listed, never compared
    smoke = page[page.index("## Smoke runs"):]
    assert "All smoke runs: 2 epochs; 1,000 test images;" in smoke  # said once, not on every row
    for framework in ("pytorch", "numpy", "keras", "lightning"):
        assert f"| 1 | 0 | {framework} | 101,770 |" in smoke


def test_a_series_needing_a_framework_that_is_not_installed_stops_before_anything_runs(monkeypatch, tmp_path,
                                                                                        frameworks_extra):
    monkeypatch.setitem(sys.modules, "lightning", None)  # as if it were not installed
    s = series.load(ROOT / "notebooks" / "frameworks")
    with pytest.raises(LabError, match=r"frameworks/01_mlp.ipynb \{'framework': 'lightning'\}: framework 'lightning' "
                                       r"needs lightning, not installed here: run `pip install -e '.\[frameworks\]'"):
        plan.plan([s], [1], [0], tmp_path, {}, True, 1, ROOT / "data")
    assert not (tmp_path / "frameworks").exists()


def test_an_optional_keras_backend_that_is_not_installed_is_named(monkeypatch, frameworks_extra):
    from mnist_lab.frameworks import missing

    monkeypatch.setitem(sys.modules, "jax", None)
    assert missing(Config(framework="keras", keras_backend="jax")) == (
        "keras_backend 'jax' needs JAX, not installed here: run `pip install jax` in this environment")
    assert missing(Config(framework="keras")) is None and missing(Config()) is None


def test_time_to_a_target_accuracy_counts_every_epoch_until_it_is_reached():
    from mnist_lab.reports.compare import to_target

    run = lambda accs: {"history": [{"seconds": 2.0, "test_acc": a} for a in accs]}
    row = {"runs": [run([96.0, 97.5, 98.0]), run([97.0, 97.2, 97.9]), run([95.0, 96.0, 96.5])]}
    (mean, std, n), missed = to_target(row, 97.0)
    assert (mean, n, missed) == (3.0, 2, 1) and std == pytest.approx(1.4142, abs=1e-4)  # 4 s and 2 s; one never
    assert to_target(row, 99.0) == (None, 3)


def test_keras_fit_takes_the_batches_in_the_seeded_order(mnist_root, tmp_path, monkeypatch, keras, keras_net):
    """What Keras' fit actually asks the PyDataset for: every batch once per epoch, in order (Keras
    would shuffle a PyDataset's batches unless told not to)."""
    asked = []
    make = keras_net._Epochs

    def spy(keras_, batches):
        epochs = make(keras_, batches)
        get = epochs.__getitem__
        type(epochs).__getitem__ = lambda self, i: (asked.append(i), get(i))[1]
        return epochs

    monkeypatch.setattr(keras_net, "_Epochs", spy)
    cfg = tiny(mnist_root, tmp_path, framework="keras")
    train(cfg, [flatten(), dense(784, 8), head()])
    n = cfg.smoke_batches
    assert asked[-2 * n:] == list(range(n)) * 2  # (Keras may peek at batch 0 first to learn the shapes)
