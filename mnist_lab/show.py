"""What the notebooks display: the summary, a grid of augmented digits, curves, mistakes."""
from __future__ import annotations

import copy

import matplotlib.pyplot as plt
import torch

from .augment import augment
from .blocks import receptive_field
from .frameworks.pytorch import predict
from .reports.plots import digit_grid


def summary(model) -> None:
    """torchsummary's table and the exact parameter count, without touching the model or the RNG."""
    from torchsummary import summary as ts

    with torch.random.fork_rng(devices=[]):  # torchsummary draws a random input and runs in train mode
        ts(copy.deepcopy(model).cpu(), model.input_shape, device="cpu")
    print(f"parameters: {model.num_params():,}")
    print(receptive_field_table(model.blocks, model.input_shape[-1]))


def receptive_field_table(blocks, size: int = 28) -> str:
    """The receptive-field table as text: per layer kernel, stride, padding, output size, jump, receptive field."""
    rows = receptive_field(blocks, size)
    lines = ["receptive field (n: output size, j: jump, r: receptive field, in input pixels)",
             f"{'layer':<14}{'k':>4}{'s':>4}{'p':>4}{'n':>5}{'j':>4}{'r':>5}"]
    lines += [f"{r['layer']:<14}{r['k']:>4}{r['s']:>4}{r['p']:>4}{r['n']:>5}{r['j']:>4}{r['r']:>5}" for r in rows]
    last = rows[-1]
    if len(rows) == 1:
        lines.append("no convolution: the first dense layer sees the whole input")
    elif last["r"] < size:
        lines.append(f"each unit of the last layer before the head sees {last['r']}x{last['r']} of the {size}x{size} input")
    return "\n".join(lines)


def augmented_grid(data, n: int = 12, seed: int = 0):
    """n training digits after augmentation, with their labels (own generator: training is unaffected)."""
    gen = torch.Generator(device=data.train.images.device).manual_seed(seed + 10_000)
    t = data.train
    x = augment(t.images[:n], gen, t.rotation, t.crop_p, t.mean, t.std) * t.std + t.mean
    return digit_grid(x[:, 0].cpu(), [f"label {data.dataset.label(int(y))}" for y in t.labels[:n]])


def curves(history):
    """The 2x2 figure: train loss, test loss, train accuracy, test accuracy per epoch."""
    ep = [h["epoch"] for h in history]
    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    for ax, key, title in zip(axes.flat, ["train_loss", "test_loss", "train_acc", "test_acc"],
                              ["training loss", "held-out test loss", "training accuracy (%)",
                               "held-out test accuracy (%)"]):
        ax.plot(ep, [h[key] for h in history], marker="o", ms=3)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def mistakes(model, data, cfg, limit: int = 24):
    """The held-out test digits the model gets wrong, with predicted and true labels."""
    pred, _ = predict(model, data.test, cfg)
    truth = data.test.labels.cpu()
    wrong = (pred != truth).nonzero().squeeze(1)
    print(f"{len(wrong)} of {len(truth)} held-out test digits misclassified; showing {min(limit, len(wrong))}")
    if len(wrong) == 0:
        return None
    idx = wrong[:limit]
    name = data.dataset.label
    return digit_grid(data.test.images.cpu()[idx], [f"pred {name(int(pred[i]))} / true {name(int(truth[i]))}"
                                                    for i in idx], cols=8)
