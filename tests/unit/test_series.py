"""Series as folders, the baselines series' networks (counted by hand), and the blocks and recipe
parameters they brought: dense, bn, flatten, initialisation, optimizers, schedulers, restore_best."""
import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch

from mnist_lab import Config, MNISTData, Net, fit, setup
from mnist_lab import series
from mnist_lab.runs import plan
from mnist_lab.augment import augment, normalize, to_float
from mnist_lab.blocks import bn, conv, dense, flatten, head, layer_counts, pool
from mnist_lab.errors import LabError
from mnist_lab.frameworks.pytorch import optimizer_for, scheduler_for
from conftest import ROOT

BASELINES = ROOT / "notebooks" / "baselines"

# Parameters counted by hand: conv k*k*cin*cout + cout, linear fin*fout + fout, BatchNorm 2 per channel.
HAND = {
    1: (1 * 9 * 16 + 16) + (16 * 9 * 32 + 32) + (32 * 7 * 7 * 128 + 128) + (128 * 10 + 10),       # 206,922
    2: (1 * 9 * 16 + 16) + 2 * 16 + (16 * 9 * 32 + 32) + 2 * 32 + (1568 * 128 + 128) + (128 * 10 + 10),
    3: (1 * 9 * 32 + 32) + (32 * 9 * 64 + 64) + (64 * 7 * 7 * 128 + 128) + (128 * 10 + 10),       # 421,642
    4: (784 * 128 + 128) + (128 * 10 + 10),                                                         # 101,770
    5: (784 * 128 + 128) + (128 * 10 + 10),
    6: (784 * 128 + 128) + (128 * 64 + 64) + (64 * 10 + 10),                                        # 109,386
    7: (784 * 128 + 128) + (128 * 64 + 64) + (64 * 10 + 10),
    8: (784 * 128 + 128) + 2 * 128 + (128 * 64 + 64) + 2 * 64 + (64 * 10 + 10),                     # 109,770
    9: (1 * 9 * 32 + 32) + 2 * 32 + (32 * 9 * 64 + 64) + 2 * 64 + (3136 * 128 + 128) + (128 * 10 + 10),
}


def declared(it):
    s = series.load(BASELINES)
    nb = s.notebooks[it]
    return series.notebook_network(nb, series.notebook_defaults(nb))


@pytest.mark.parametrize("it", sorted(HAND))
def test_every_baselines_network_has_its_hand_counted_parameters(it):
    assert Net(declared(it)).num_params() == HAND[it]


def test_the_series_folders_and_their_notebooks():
    found = series.find(ROOT / "notebooks")
    assert sorted(found) == ["baselines", "frameworks", "study", "study_fashion", "under8k", "under8k_fashion"]
    assert sorted(found["study"].notebooks) == list(range(1, 8)) and found["study"].report == "study"
    assert sorted(found["baselines"].notebooks) == list(range(1, 10)) and found["baselines"].report == "compare"
    for s in found.values():
        for nb in s.notebooks.values():
            params = series.notebook_defaults(nb)
            # a notebook opened in Jupyter writes to its own series' folders; a series that reuses it runs it
            # with series set to its own name (the runner's job, tested in test_transfer)
            assert params["series"] == (s.reuses or s.name), nb
            doc = json.loads(nb.read_text())
            assert doc["metadata"]["kernelspec"]["name"] == "mnist-lab", nb
            # every default is a valid recipe; a notebook's other parameters shape its network (the under-8k
            # series' dropout and width), and the runner reads them from its Net([...]) call
            known = {f.name for f in dataclasses.fields(Config)}
            Config.from_dict({k: v for k, v in params.items() if k in known})
            for extra in set(params) - known:
                assert extra in series.notebook_network_source(nb), (nb, extra)


def test_the_sweep_and_plan_of_the_baselines_series():
    s = series.load(BASELINES)
    assert s.variants(4) == [{}, {"batch_size": 32}, {"batch_size": 128}, {"batch_size": 512}, {"batch_size": 2048}]
    assert s.variants(3) == [{}]
    jobs = plan.plan([s], [], [0, 1, 2], Path("/nonexistent/out"), {}, False, 1, ROOT / "data")
    assert len(jobs) == 3 * (9 + 4) == len({j.result for j in jobs})
    assert all(j.result.parent == Path("/nonexistent/out/baselines/results") for j in jobs)
    numpy_job = next(j for j in jobs if j.iteration == 5)
    assert numpy_job.recipe["framework"] == "numpy" and numpy_job.recipe["optimizer"] == "sgd"


def test_a_sweep_value_equal_to_the_notebooks_own_runs_once(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    shutil.copy(BASELINES / "04_mlp.ipynb", folder)
    (folder / "series.json").write_text(json.dumps({"sweeps": [{"notebook": 4, "vary": {"batch_size": [64, 256]}}]}))
    jobs = plan.plan([series.load(folder)], [], [0], tmp_path / "out", {}, False, 1, ROOT / "data")
    assert sorted(j.params.get("batch_size", 64) for j in jobs) == [64, 256]


@pytest.mark.parametrize("text,message", [
    ("{not json", "is not a valid series file"),
    (json.dumps({"sweeps": [{"notebook": 9, "vary": {"lr": [0.1]}}]}), "names no notebook of this series"),
    (json.dumps({"comparisons": [{"question": "x", "a": 4}]}), "is not a valid series file"),
    (json.dumps({"report": "fancy"}), "report must be 'study', 'compare' or 'steps'"),
    (json.dumps({"sweeps": [{"notebook": 4, "vary": {"width": [8]}}]}), "sweep a run setting"),
])
def test_a_broken_series_file_is_named_and_explained(tmp_path, text, message):
    shutil.copy(BASELINES / "04_mlp.ipynb", tmp_path)
    (tmp_path / "series.json").write_text(text)
    with pytest.raises(LabError, match=message):
        series.load(tmp_path)


def test_bn_follows_what_comes_in_and_a_mismatch_is_explained():
    net = Net([conv(1, 4), bn(4), pool(), flatten(), dense(4 * 14 * 14, 8), bn(8), head()])
    assert isinstance(net[1], torch.nn.BatchNorm2d) and isinstance(net[5], torch.nn.BatchNorm1d)
    with pytest.raises(ValueError, match=r"block 1 \(bn\) does not fit.*bn\(5\) follows a block with 4"):
        Net([conv(1, 4), bn(5), head()])
    with pytest.raises(ValueError, match="dense activation 'gelu' unknown"):
        Net([flatten(), dense(784, 8, act="gelu"), head()])
    assert layer_counts(declared(8)) == {"conv": 0, "maxpool": 0, "gap": 0, "linear": 3, "batchnorm": 2, "dropout": 2, "total": 7}


def test_he_initialisation_draws_from_the_seed():
    torch.manual_seed(0)
    a = Net([flatten(), dense(784, 256, init="he"), head()])
    torch.manual_seed(0)
    b = Net([flatten(), dense(784, 256, init="he"), head()])
    w = a[1].fc.weight
    assert torch.equal(w, b[1].fc.weight) and not a[1].fc.bias.any()
    assert w.std().item() == pytest.approx((2 / 784) ** 0.5, rel=0.03)


def test_new_settings_leave_the_recipe_alone_at_their_defaults():
    study = Config(iteration=5).recipe([], "cpu")
    assert not {"optimizer", "momentum", "weight_decay", "restore_best", "rotation", "crop_p", "framework",
                "series", "log_every"} & set(study)
    other = Config(iteration=5, optimizer="sgd", momentum=0.9, weight_decay=1e-4, rotation=10.0, crop_p=0.0,
                   val_fraction=0.1, restore_best=True, scheduler="none", series="x", log_every=10).recipe([], "cpu")
    assert {"optimizer": "sgd", "momentum": 0.9, "weight_decay": 1e-4, "rotation": 10.0, "crop_p": 0.0,
            "restore_best": True}.items() <= other.items()
    assert "step_size" not in other and "series" not in other and "log_every" not in other


@pytest.mark.parametrize("kw,message", [
    ({"optimizer": "adamw"}, "optimizer must be one of 'adam', 'rmsprop', 'sgd'"),
    ({"scheduler": "cosine"}, "scheduler must be one of"),
    ({"framework": "jax"}, "framework must be one of 'pytorch', 'keras', 'lightning', 'numpy'"),
    ({"restore_best": True}, "restore_best picks the epoch with the lowest validation loss: set val_fraction"),
    ({"crop_p": 1.5}, "crop_p is a probability"),
    ({"weight_decay": -1.0}, "weight_decay must be >= 0"),
])
def test_bad_recipe_settings_are_refused(kw, message):
    with pytest.raises(LabError, match=message):
        Config(**kw)


def test_optimizers_and_schedulers_are_the_recipes():
    model = Net([flatten(), dense(784, 8), head()])
    assert type(optimizer_for(model, Config())) is torch.optim.Adam
    assert optimizer_for(model, Config()).param_groups[0]["weight_decay"] == 0
    sgd = optimizer_for(model, Config(optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=1e-4))
    assert type(sgd) is torch.optim.SGD and sgd.param_groups[0]["momentum"] == 0.9
    assert sgd.param_groups[0]["weight_decay"] == 1e-4
    assert type(optimizer_for(model, Config(optimizer="rmsprop"))) is torch.optim.RMSprop
    assert scheduler_for(sgd, Config(scheduler="none")) is None
    assert type(scheduler_for(sgd, Config(step_size=5, gamma=0.5))) is torch.optim.lr_scheduler.StepLR


def test_no_augmentation_draws_nothing_but_the_shuffle():
    from mnist_lab.data import Batches

    x = torch.randint(0, 256, (8, 28, 28), dtype=torch.uint8)
    assert torch.equal(augment(x, torch.Generator().manual_seed(0), 0.0, 0.0), normalize(to_float(x)))
    gen = torch.Generator().manual_seed(0)
    got = torch.cat([xb for xb, _ in Batches(x, torch.arange(8), 4, True, gen, rotation=0.0, crop_p=0.0)])
    ref = torch.Generator().manual_seed(0)
    order = torch.randperm(8, generator=ref)
    assert torch.equal(got, normalize(to_float(x[order])))  # shuffled, not augmented
    assert torch.equal(gen.get_state(), ref.get_state())  # and nothing drawn but the shuffle
    small = augment(x, torch.Generator().manual_seed(1), 10.0, 0.0)
    assert small.shape == (8, 1, 28, 28) and not torch.equal(small, normalize(to_float(x)))


def test_restore_best_ends_with_the_best_validation_epoch(mnist_root, tmp_path):
    cfg = Config(seed=0, epochs=3, smoke=True, smoke_batches=5, smoke_epochs=3, threads=1, device="cpu",
                 data_dir=str(mnist_root), results_dir=str(tmp_path), val_fraction=0.1, restore_best=True,
                 optimizer="sgd", lr=3.0, scheduler="none")  # so high that the validation loss jumps about
    dev = setup(cfg)
    model = Net([flatten(), dense(784, 32), head()])
    data = MNISTData.for_config(cfg, dev)
    result = fit(model, data, cfg)
    best = min(result.history, key=lambda h: h["val_loss"])
    assert result.restored and result.best_epoch == best["epoch"] and result.final is best
    assert result.best_epoch < len(result.history)  # the last epoch is not the best: restoring changes the model
    for k, v in model.state_dict().items():
        assert torch.equal(v, result.best_state[k]), k
    from mnist_lab.frameworks.pytorch import evaluate

    assert evaluate(model, data.test, cfg)["acc"] == best["test_acc"]  # the weights the report scores


@pytest.mark.parametrize("name", ["study", "baselines"])
def test_every_committed_recipe_is_what_its_notebook_declares_today(name):
    """On any machine: each committed result's recipe (and so its name) is the one its notebook, with its
    seed, thread count and sweep value, gives now; only the CPU's vector instructions are taken from the file."""
    s = series.load(ROOT / "notebooks" / name)
    files = sorted((ROOT / "reports" / name / "results").glob("*.json"))
    assert files
    for path in files:
        r = json.loads(path.read_text())
        nb = s.notebooks[r["iteration"]]
        rebuilt = []
        for variant in s.variants(r["iteration"]):
            values = dict(series.notebook_defaults(nb), **variant, seed=r["seed"], threads=r["recipe"]["threads"])
            recipe = Config.from_dict(values).recipe(series.notebook_network(nb, values), "cpu")
            recipe["cpu"] = r["recipe"]["cpu"]
            rebuilt.append(recipe)
        assert r["recipe"] in rebuilt, path.name


@pytest.mark.parametrize("vary,message", [
    ({"seed": [1, 2]}, "the runner sets it"),
    ({"batch_size": 32}, "give a non-empty list of values"),
    ({"batch_size": []}, "give a non-empty list of values"),
])
def test_a_sweep_the_runner_could_not_run_is_refused(tmp_path, vary, message):
    shutil.copy(BASELINES / "04_mlp.ipynb", tmp_path)
    (tmp_path / "series.json").write_text(json.dumps({"sweeps": [{"notebook": 4, "vary": vary}]}))
    with pytest.raises(LabError, match=message):
        series.load(tmp_path)


def test_the_numpy_framework_is_refused_what_it_cannot_do():
    with pytest.raises(LabError, match="not optimizer='adam', rotation=15.0, crop_p=0.1$"):
        Config(framework="numpy")
    with pytest.raises(LabError, match="not device='cuda'"):
        Config(framework="numpy", optimizer="sgd", rotation=0.0, crop_p=0.0, device="cuda")
    Config(framework="numpy", optimizer="sgd", rotation=0.0, crop_p=0.0, device="cpu")
    Config(framework="numpy", optimizer="sgd", rotation=0.0, crop_p=0.0)  # "auto": NumPy runs on the CPU
