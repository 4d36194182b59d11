"""The under-8k series and what it brought: convs without padding or bias, global average pooling, a 1x1
head, OneCycleLR, label smoothing, the receptive-field table, and the steps' Target / Result / Analysis."""
import json
import math

import pytest
import torch
import torch.nn.functional as F

from mnist_lab import Config, MNISTData, Net, fit, series, setup, show, steps
from mnist_lab.runs import plan
from mnist_lab.blocks import conv, gap, head, pool, receptive_field, trans
from mnist_lab.errors import LabError
from mnist_lab.iterations import BLOCKS
from mnist_lab.frameworks.pytorch import loss_fn, optimizer_for, scheduler_for
from conftest import ROOT

UNDER8K = ROOT / "notebooks" / "under8k"


def declared(it):
    nb = series.load(UNDER8K).notebooks[it]
    return series.notebook_network(nb, series.notebook_defaults(nb))


# Counted by hand: 3x3 conv 9*cin*cout (no bias), 1x1 conv cin*cout, BatchNorm 2 per channel, the 1x1
# head cin*10 + 10.
def hand(width):
    return (9 * 1 * 8 + 2 * 8) + (9 * 8 * width + 2 * width) + width * 8 + (9 * 8 * width + 2 * width) \
        + 2 * (9 * width * width + 2 * width) + (width * 10 + 10)


HAND = {1: hand(16), 2: hand(16), 3: hand(16), 4: hand(12)}  # 7,426 and 4,730


@pytest.mark.parametrize("it", sorted(HAND))
def test_every_step_has_its_hand_counted_parameters_and_stays_under_8k(it):
    net = Net(declared(it))
    assert net.num_params() == HAND[it] < 8000


def test_the_series_states_its_goal_and_a_target_per_step():
    s = series.load(UNDER8K)
    assert s.report == "steps" and sorted(s.notebooks) == [1, 2, 3, 4]
    assert (hand(16), hand(12)) == (7426, 4730)
    assert steps.goal_of(s) == {"params_below": 8000, "acc": 99.4, "last": 3, "max_epochs": 15, "smallest_at": 99.3}
    for it, nb in s.notebooks.items():
        assert series.target_text(nb), nb  # prose, stated before the run
        assert series.notebook_defaults(nb)["epochs"] <= 15


def test_receptive_field_table_matches_a_hand_calculation():
    # 28 -conv p0-> 26 (r 3) -conv p0-> 24 (r 5) -1x1-> 24 (r 5) -pool-> 12 (j 2, r 6) -conv p0-> 10 (r 10)
    # -conv p0-> 8 (r 14) -conv p1-> 8 (r 18) -GAP over 8-> 1 (r 18 + 7 * 2 = 32)
    blocks = [conv(1, 8, pad=0), conv(8, 16, pad=0), trans(16, 8), pool(), conv(8, 16, pad=0), conv(16, 16, pad=0),
              conv(16, 16), gap(), head(conv1x1=True)]
    rows = receptive_field(blocks)
    assert [(r["n"], r["j"], r["r"]) for r in rows] == [
        (28, 1, 1), (26, 1, 3), (24, 1, 5), (24, 1, 5), (12, 2, 6), (10, 2, 10), (8, 2, 14), (8, 2, 18), (1, 2, 32)]
    assert Net(blocks)(torch.zeros(2, 1, 28, 28)).shape == (2, 10)  # the sizes are the network's own
    # the study's iteration 6: padding 1, two pools; the Linear head sees everything, the table stops before it
    study = receptive_field(BLOCKS[6])
    assert [(r["n"], r["j"], r["r"]) for r in study][-1] == (7, 4, 18)
    text = show.receptive_field_table(BLOCKS[6])
    assert "sees 18x18 of the 28x28 input" in text


def test_the_summary_prints_the_receptive_field(capsys):
    show.summary(Net(declared(1)))
    out = capsys.readouterr().out
    assert "receptive field" in out and "GAP" in out and f"parameters: {HAND[1]:,}" in out


def test_new_block_settings_leave_earlier_specs_alone():
    assert conv(1, 8) == {"type": "conv", "cin": 1, "cout": 8, "bn": False, "dropout": 0.0}
    assert trans(8, 4) == {"type": "trans", "cin": 8, "cout": 4} and head() == {"type": "head", "classes": 10, "dropout": 0.0}
    assert conv(1, 8, pad=0, bias=False)["pad"] == 0 and Net([conv(1, 8, bias=False), head()])[0].conv.bias is None


def test_a_1x1_head_needs_the_gap_before_it():
    with pytest.raises(ValueError, match=r"put gap\(\) before it"):
        Net([conv(1, 8), head(conv1x1=True)])
    net = Net([conv(1, 8), gap(), head(conv1x1=True, dropout=0.1)])
    assert net.num_params() == (9 * 8 + 8) + (8 * 10 + 10)


def test_onecycle_steps_every_batch_along_torchs_formula():
    cfg = Config(optimizer="sgd", lr=0.1, scheduler="onecycle", pct_start=0.25, epochs=2)
    model = Net([conv(1, 2), gap(), head(conv1x1=True)])
    opt = optimizer_for(model, cfg)
    sched = scheduler_for(opt, cfg, steps_per_epoch=10)
    lrs, momenta = [], []
    for _ in range(20):
        lrs.append(opt.param_groups[0]["lr"])
        momenta.append(opt.param_groups[0]["momentum"])
        opt.step()
        sched.step()
    # the oracle: cosine from lr/25 up to lr over the first 0.25 * 20 - 1 = 4 steps, then down to lr/25/1e4
    up, total = 0.25 * 20 - 1, 20 - 1

    def cos(a, b, t):
        return b + (a - b) / 2 * (math.cos(math.pi * t) + 1)

    want = [cos(0.004, 0.1, s / up) if s <= up else cos(0.1, 0.004 / 1e4, (s - up) / (total - up)) for s in range(20)]
    assert lrs == pytest.approx(want, rel=1e-9)
    # the momentum the schedule sets, the other way round: 0.95 at both ends, 0.85 at the lr's peak
    assert momenta[0] == pytest.approx(0.95) and min(momenta) == pytest.approx(0.85) and momenta[4] == pytest.approx(0.85)


def test_label_smoothing_is_the_smoothed_cross_entropy():
    torch.manual_seed(0)
    logp = F.log_softmax(torch.randn(5, 10), 1)
    y = torch.tensor([0, 3, 9, 1, 1])
    want = 0.9 * F.nll_loss(logp, y) + 0.1 * (-logp.mean(1)).mean()
    assert loss_fn(Config(label_smoothing=0.1))(logp, y).item() == pytest.approx(want.item(), rel=1e-6)
    assert loss_fn(Config()) is F.nll_loss  # the study's loss, untouched


def test_new_recipe_settings_are_in_the_recipe_only_when_used():
    plain = Config(iteration=5).recipe([], "cpu")
    assert not {"label_smoothing", "pct_start"} & set(plain)
    one = Config(iteration=5, scheduler="onecycle", pct_start=0.2, label_smoothing=0.1).recipe([], "cpu")
    assert one["pct_start"] == 0.2 and one["label_smoothing"] == 0.1 and "step_size" not in one and "gamma" not in one


@pytest.mark.parametrize("kw,message", [
    ({"label_smoothing": 1.0}, "label_smoothing must be in"),
    ({"pct_start": 0.0}, "pct_start must be in"),
    ({"framework": "keras", "scheduler": "onecycle"}, "framework 'keras' here trains with scheduler"),
    ({"framework": "numpy", "optimizer": "sgd", "scheduler": "onecycle", "rotation": 0.0, "crop_p": 0.0},
     "framework 'numpy'"),
    ({"framework": "numpy", "optimizer": "sgd", "rotation": 0.0, "crop_p": 0.0, "label_smoothing": 0.1},
     "framework 'numpy'"),
    ({"optimizer": "sgd", "momentum": 0.9, "scheduler": "onecycle"}, "OneCycleLR cycles the momentum itself"),
])
def test_recipes_a_trainer_cannot_follow_are_refused(kw, message):
    with pytest.raises(LabError, match=message):
        Config(**kw)


def test_a_tiny_onecycle_run_with_smoothing_is_deterministic_and_lightning_agrees(mnist_root, tmp_path):
    pytest.importorskip("lightning")
    kw = dict(seed=0, epochs=2, batch_size=32, lr=0.05, optimizer="sgd", scheduler="onecycle",
              label_smoothing=0.1, rotation=0.0, crop_p=0.0, smoke=True, smoke_batches=6, data_dir=str(mnist_root),
              results_dir=str(tmp_path), device="cpu", iteration=3, name="t", threads=1)
    blocks = [conv(1, 4, bn=True, pad=0, bias=False, dropout=0.05), pool(), conv(4, 8, bn=True, pad=0, bias=False),
              gap(), head(conv1x1=True)]
    histories, weights = [], []
    for framework in ("pytorch", "pytorch", "lightning"):
        cfg = Config(framework=framework, **kw)
        device = setup(cfg)
        data = MNISTData.for_config(cfg, device)
        net = Net(blocks)
        r = fit(net, data, cfg)
        histories.append([{k: v for k, v in h.items() if k not in ("seconds", "train_loss", "train_acc")}
                          for h in r.history])
        weights.append({k: v.clone() for k, v in net.state_dict().items()})
    assert histories[0] == histories[1] == histories[2]
    # the lr each epoch starts with: OneCycleLR's initial lr / 25, then part-way down from its peak
    assert histories[0][0]["lr"] == pytest.approx(0.05 / 25) and histories[0][1]["lr"] > 0.01
    for k in weights[0]:
        assert torch.equal(weights[0][k], weights[1][k]) and torch.equal(weights[0][k], weights[2][k]), k


def _run(accs, params=7000, seed=0, name="s", iteration=2):
    return {"params": params, "seed": seed, "name": name, "history": [{"test_acc": a} for a in accs],
            "config": {"lr": 0.1}, "blocks": [], "smoke": False, "iteration": iteration, "run_id": f"it{iteration}_x"}


def test_the_goal_is_checked_on_every_one_of_the_last_epochs():
    goal = steps.GOAL
    assert steps.check(_run([99.0] * 12 + [99.41, 99.40, 99.45]), goal)["meets"]
    miss = steps.check(_run([99.0] * 12 + [99.5, 99.39, 99.6]), goal)
    assert not miss["meets"] and miss["lowest"] == 99.39 and miss["stays_from"] == 15
    assert not steps.check(_run([99.5] * 16), goal)["epochs_ok"]
    assert not steps.check(_run([99.5] * 15, params=8000), goal)["meets"]
    md = steps.result_md(_run([99.0] * 12 + [99.5, 99.39, 99.6]), goal, _run([99.0] * 15, name="before", iteration=1))
    assert "**not met**" in md and "lowest 99.39 %" in md and "+0.39 points" in md and "run it1_x" in md
    assert "Short of the goal's accuracy by 0.01 points" in md
    first = steps.result_md(_run([99.4] * 15, iteration=1), goal)
    assert "**met**" in first and "The first step: nothing before it" in first and "At the goal's accuracy in" in first
    missing = steps.result_md(_run([99.4] * 15), goal, None, "it1_seed0_abc")
    assert "(it1_seed0_abc) is not in this results folder" in missing


def test_a_broken_goal_in_the_series_file_is_explained(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / "01_a.ipynb").write_text((UNDER8K / "01_skeleton.ipynb").read_text())
    (folder / "series.json").write_text(json.dumps({"report": "steps", "goal": {"acc": "high"}}))
    with pytest.raises(LabError, match="goal 'acc'"):
        series.load(folder)


def test_make_reproduce_runs_each_series_with_the_seeds_of_its_committed_results(tmp_path):
    found = series.find(ROOT / "notebooks")
    jobs = plan.plan([found["study"], found["under8k"]], [], None, tmp_path, {}, True, 1, tmp_path)
    assert {j.seed for j in jobs if j.series == "under8k"} == {0, 1, 2, 3, 4}
    assert {j.seed for j in jobs if j.series == "study"} == {0, 1, 2}
    assert "--series-seeds" in (ROOT / "Makefile").read_text()
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "mnist_lab", "run", "--seeds", "1", "--series-seeds", "--out",
                           str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 2 and "give --seeds or --series-seeds, not both" in done.stderr


def test_keras_refuses_a_padding_it_cannot_build():
    from mnist_lab.frameworks import keras as keras_net

    pytest.importorskip("keras")
    with pytest.raises(LabError, match="pad 1 or 0, not 2"):
        keras_net.build([conv(1, 4, pad=2), gap(), head(conv1x1=True)])


@pytest.mark.slow
def test_a_tiny_series_run_gives_every_step_its_result_analysis_and_report(tmp_path, mnist_root):
    """The four notebooks in tiny mode through the runner (two seeds, two workers); each notebook's generated
    Result and Analysis; then the steps report, built from the same files marked as full runs."""
    import subprocess
    import sys

    from mnist_lab import reports
    from mnist_lab.results import read_result

    done = subprocess.run([sys.executable, "-m", "mnist_lab", "run", "--series", "under8k", "--seeds", "0", "1",
                           "--smoke", "--workers", "2", "--threads", "1", "--out", str(tmp_path), "--data",
                           str(mnist_root), "--no-report"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    results = tmp_path / "under8k" / "results"
    assert len(list(results.glob("*.json"))) == 8
    for nb in (tmp_path / "under8k" / "notebooks").glob("*.ipynb"):
        shown = "".join(json.loads(nb.read_text())["cells"][-1]["outputs"][0]["data"]["text/markdown"])
        assert "### Result" in shown and "### Analysis" in shown, nb.name
        if nb.name.startswith("01_"):
            assert "The first step" in shown
        else:  # the previous step's run of this seed, found by the name its own recipe gives it
            assert "Against the previous step" in shown or "is not in this results folder" in shown, nb.name
    spec = series.load(UNDER8K)
    for p in results.glob("it[234]_*.json"):  # the name the previous step gives this seed is that run's file
        r, _ = read_result(p)
        assert (results / f"{steps.previous_id(spec, r)}.json").is_file(), p.name
    # the same files as if full-length: the report's steps section and plot
    full = tmp_path / "full" / "under8k" / "results"
    full.mkdir(parents=True)
    for p in results.glob("*.json"):
        r, _ = read_result(p)
        r["smoke"] = False
        (full / p.name.replace("_smoke", "")).write_text(json.dumps(r))
        (full / p.with_suffix(".pt").name.replace("_smoke", "")).write_bytes(p.with_suffix(".pt").read_bytes())
    text = reports.build(full.parent, spec, data_dir=mnist_root).read_text()
    for it, name in ((1, "skeleton"), (2, "dropout_steplr"), (3, "onecycle"), (4, "smaller")):
        assert f"### Step {it}: {name}" in text and f"| {it} | {name} |" in text
    assert text.count("**Target.**") == 4 and "Receptive field: as step 3" in text and "| 7 GAP | 6 | 1 | 0 | 1 | 2 | 28 |" in text
    assert "### The best, and the smallest" in text and (full.parent / "goal_epochs.png").is_file()
