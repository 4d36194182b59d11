"""Config validation, the trainer on the real code path at tiny size, result files and checkpoints."""
import json

import pytest
import torch
import torch.nn.functional as F

from mnist_lab import Config, MNISTData, Net, evaluate, fit, load_model, record, setup
from mnist_lab.errors import LabError
from mnist_lab.iterations import BLOCKS
from conftest import ROOT

REQUIRED = {"iteration", "name", "params", "seed", "epochs", "batch_size", "lr", "device", "torch", "dataset",
            "test_size", "smoke", "history", "final_test_acc", "wall_seconds"}
EPOCH_KEYS = {"epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc", "seconds"}


def tiny(mnist_root, tmp_path, **kw):
    base = dict(iteration=5, seed=0, epochs=3, smoke=True, smoke_batches=8, smoke_epochs=3, threads=1,
                data_dir=str(mnist_root), results_dir=str(tmp_path), device="cpu")
    base.update(kw)
    return Config(**base)


def train(cfg, it=5):
    dev = setup(cfg)
    model = Net(BLOCKS[it])
    data = MNISTData.for_config(cfg, dev)
    return model, data, fit(model, data, cfg), dev


def test_unknown_key_gets_a_suggestion():
    with pytest.raises(LabError, match="unknown config key 'epoch'. Did you mean 'epochs'"):
        Config.from_dict({"epoch": 3})


@pytest.mark.parametrize("key,value", [("epochs", "20"), ("lr", "0.01"), ("smoke", 1), ("batch_size", 64.0)])
def test_wrong_types_are_rejected(key, value):
    with pytest.raises(LabError, match=f"config key '{key}' must be"):
        Config.from_dict({key: value})


def test_inconsistent_options_are_explained():
    with pytest.raises(LabError, match="needs a validation split"):
        Config(patience=3)
    with pytest.raises(LabError, match="plateau"):
        Config(scheduler="plateau")


def test_seeded_cpu_run_is_identical_twice(mnist_root, tmp_path):
    a = train(tiny(mnist_root, tmp_path))[2].history
    b = train(tiny(mnist_root, tmp_path))[2].history
    strip = lambda h: [{k: v for k, v in e.items() if k != "seconds"} for e in h]
    assert strip(a) == strip(b)
    c = train(tiny(mnist_root, tmp_path, seed=1))[2].history
    assert strip(a) != strip(c)


def test_step_lr_schedule_per_epoch(mnist_root, tmp_path):
    cfg = tiny(mnist_root, tmp_path, step_size=2, gamma=0.1, smoke_batches=2)
    h = train(cfg)[2].history
    assert [e["lr"] for e in h] == pytest.approx([0.002, 0.002, 0.0002])


def test_history_and_held_out_evaluation(mnist_root, tmp_path):
    cfg = tiny(mnist_root, tmp_path)
    model, data, res, _ = train(cfg)
    assert [e["epoch"] for e in res.history] == [1, 2, 3] and EPOCH_KEYS <= set(res.history[0])
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]
    # the reported test loss is the true mean per image over the held-out images
    model.eval()
    with torch.no_grad():
        x = (data.test.images.float().unsqueeze(1) / 255 - 0.1307) / 0.3081
        out = model(x)
        loss = F.nll_loss(out, data.test.labels).item()
        acc = 100 * (out.argmax(1) == data.test.labels).float().mean().item()
    ev = evaluate(model, data.test, cfg)
    assert ev["total"] == 1000 and ev["loss"] == pytest.approx(loss, rel=1e-4)
    assert ev["acc"] == pytest.approx(acc) == pytest.approx(res.history[-1]["test_acc"])


def test_result_file_and_checkpoint(mnist_root, tmp_path):
    cfg = tiny(mnist_root, tmp_path)
    model, data, res, dev = train(cfg)
    path = record(cfg, model, res, data, dev)
    assert path.name == f"{cfg.run_id(BLOCKS[5], dev)}.json" and path.name.startswith("it5_seed0_smoke_")
    r = json.loads(path.read_text())
    assert r["run_id"] == path.stem and r["recipe"] == cfg.recipe(BLOCKS[5], dev)
    assert REQUIRED <= set(r) and r["smoke"] is True and r["params"] == 18_422 and r["test_size"] == 1000
    assert sum(map(sum, r["confusion"])) == 1000
    assert len(r["mistakes"]) == 1000 - r["history"][-1]["test_correct"]
    rebuilt = load_model(path.with_suffix(".pt"))
    x = torch.randn(5, 1, 28, 28)
    model.eval()
    assert torch.allclose(rebuilt(x), model.cpu()(x), atol=1e-5)


def test_record_refuses_an_identity_other_than_the_planned_one(mnist_root, tmp_path, monkeypatch):
    from mnist_lab.config import EXPECT_ENV

    cfg = tiny(mnist_root, tmp_path, epochs=1, smoke_epochs=1, smoke_batches=2)
    model, data, res, dev = train(cfg)
    monkeypatch.setenv(EXPECT_ENV, "it5_seed0_smoke_00000000")
    with pytest.raises(LabError, match="but the runner planned it5_seed0_smoke_00000000"):
        record(cfg, model, res, data, dev)
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_bad_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "x.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(LabError, match="not a mnist_lab checkpoint"):
        load_model(bad)
    with pytest.raises(LabError, match="not found"):
        load_model(tmp_path / "missing.pt")


def test_validation_split_early_stopping_and_best_checkpoint(mnist_root, tmp_path):
    cfg = tiny(mnist_root, tmp_path, val_fraction=0.1, patience=1, smoke_epochs=6, epochs=6, lr=0.05,
               smoke_batches=4, restore_best=True)  # the checkpoint then holds the best epoch's weights
    model, data, res, dev = train(cfg)
    assert len(data.train.images) + len(data.val.images) == 60_000 and len(data.val.images) == 6_000
    vals = [e["val_loss"] for e in res.history]
    assert res.best_epoch == 1 + vals.index(min(vals))  # chosen by validation loss, never by test accuracy
    if res.stopped_early:
        assert len(vals) - res.best_epoch == cfg.patience
    path = record(cfg, model, res, data, dev)
    best = load_model(path.with_suffix(".pt"))
    assert all(torch.equal(best.state_dict()[k], v.cpu()) for k, v in res.best_state.items())


def test_validation_split_is_seeded(mnist_root):
    a = MNISTData.load(mnist_root, seed=4, val_fraction=0.1)
    b = MNISTData.load(mnist_root, seed=4, val_fraction=0.1)
    assert torch.equal(a.val.labels, b.val.labels) and torch.equal(a.val.images[:50], b.val.images[:50])


def test_plateau_scheduler_lowers_lr_when_val_loss_stalls(mnist_root, tmp_path):
    # lr 1e-12 and no BatchNorm (iteration 3): the validation loss cannot improve, so the lr must drop
    # after plateau_patience + 1 epochs, by gamma
    cfg = tiny(mnist_root, tmp_path, iteration=3, val_fraction=0.1, scheduler="plateau", lr=1e-12,
               plateau_patience=1, gamma=0.5, smoke_epochs=5, epochs=5, smoke_batches=2)
    h = train(cfg, it=3)[2].history
    assert [e["lr"] for e in h] == pytest.approx([1e-12, 1e-12, 1e-12, 5e-13, 5e-13])


def test_auto_device_is_cuda_where_available_and_a_named_device_is_honoured(monkeypatch):
    """"auto" asks CUDA; a named device is honoured (CUDA named where there is none is refused, not
    replaced); on a cluster worker this machine's CUDA is never asked. No tensor is made on a device."""
    from mnist_lab import pick_device

    def cuda(available):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: available)

    cuda(False)
    assert pick_device("auto") == pick_device() == torch.device("cpu")
    assert pick_device("cpu") == torch.device("cpu")
    for name in ("cuda", "cuda:0", "cuda:1"):
        with pytest.raises(LabError, match=f"device '{name}' asked for, but CUDA is not available here; "
                                           "use device='cpu' or 'auto'"):
            pick_device(name)
    cuda(True)
    assert pick_device("auto") == pick_device() == torch.device("cuda")
    assert pick_device("cpu") == torch.device("cpu")  # an explicit CPU, whatever is available
    assert pick_device("cuda") == torch.device("cuda") and pick_device("cuda:1") == torch.device("cuda", 1)
    for available in (False, True):
        cuda(available)
        with pytest.raises(LabError, match="unknown device 'gpu'; use 'auto', 'cpu' or 'cuda'"):
            pick_device("gpu")

    def never():
        raise AssertionError("a cluster worker's device must not be detected here")

    monkeypatch.setattr(torch.cuda, "is_available", never)
    assert pick_device("cuda", elsewhere=True) == torch.device("cuda")  # the worker has it, not this machine
    assert pick_device("cpu", elsewhere=True) == torch.device("cpu")
    with pytest.raises(LabError, match="on a cluster the device is chosen, not detected: device 'cpu' or 'cuda', "
                                       "not 'auto'"):
        pick_device("auto", elsewhere=True)


def test_foreach_adam_is_bitwise_the_per_tensor_adam():
    """The trainer's foreach Adam must not change a single bit of the study's optimiser."""
    from mnist_lab.frameworks.pytorch import adam

    torch.manual_seed(0)
    a, b = Net(BLOCKS[7]), Net(BLOCKS[7])
    b.load_state_dict(a.state_dict())
    opt_a, opt_b = torch.optim.Adam(a.parameters(), lr=0.002, foreach=False), adam(b, 0.002)
    gen = torch.Generator().manual_seed(1)
    for step in range(30):
        x, y = torch.randn(16, 1, 28, 28, generator=gen), torch.randint(0, 10, (16,), generator=gen)
        for net, opt in ((a, opt_a), (b, opt_b)):
            torch.manual_seed(step)  # the same dropout masks on both sides
            opt.zero_grad()
            F.nll_loss(net(x), y).backward()
            opt.step()
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), name


def test_a_run_made_outside_the_runner_records_its_notebook_and_what_it_changed(mnist_root, tmp_path):
    """In Jupyter or by papermill no runner says where a run belongs: its notebook is found by its series and
    number, so that a report places it as it places the runner's runs."""
    from mnist_lab.series import load, own_recipe

    cfg = tiny(mnist_root, tmp_path, series="study", epochs=1, smoke_epochs=1, smoke_batches=2, lr=0.05)
    model, data, res, dev = train(cfg)
    r = json.loads(record(cfg, model, res, data, dev).read_text())
    own = own_recipe(load(ROOT / "notebooks" / "study").notebooks[5])
    assert r["notebook"] == own and r["variant"] == {"epochs": 1, "lr": 0.05}
