"""`mnist-lab bench`: the study's PIL pipeline and mnist_lab's data path, measured side by side.

Same device, network (iteration 5), batch size and augmentation recipe. Rounds alternate
reference / lab so that load from other users of a shared machine falls on both.
"""
from __future__ import annotations

import contextlib
import statistics
import time

import torch
import torch.nn.functional as F

from . import fetch
from .augment import reference_transform, test_transform
from .config import Config
from .data import MNISTData
from .frameworks.pytorch import adam, evaluate, pick_device, place, train_one_epoch
from .iterations import BLOCKS, EPOCHS
from .net import Net


@contextlib.contextmanager
def main_threads(n: int = 0):
    """Run the reference with `n` torch threads in the main process (0: leave torch's default).

    The study never set it, so by default the main process's threads and the DataLoader's two
    workers share the cores; `--reference-threads 1` shows the same pipeline without that contention.
    """
    old = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


TRAIN, TEST = 60_000, 10_000


def epoch_seconds(train_img_s: float, eval_img_s: float) -> float:
    """One epoch: the training set at one speed, then the held-out test set at the other."""
    return TRAIN / train_img_s + TEST / eval_img_s


def reference_batches(root, device):
    """The study's training batches, endlessly: per-image PIL transforms in 2 worker processes."""
    from torch.utils.data import DataLoader
    from torchvision.datasets import MNIST


    loader = DataLoader(MNIST(str(root), train=True, download=False, transform=reference_transform()),
                        batch_size=64, shuffle=True, num_workers=2, pin_memory=device.type == "cuda",
                        persistent_workers=True, drop_last=True)
    while True:
        yield from loader


def reference_round(model, opt, loader_iter, batches, device, threads=0) -> float:
    """Training img/s of the study's pipeline over `batches` batches."""
    model.train()
    with main_threads(threads):
        n, t = 0, time.perf_counter()
        for _ in range(batches):
            x, y = next(loader_iter)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            loss = F.nll_loss(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            n += len(y)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return n / (time.perf_counter() - t)


@torch.inference_mode()
def reference_eval(model, root, device, threads=0) -> float:
    """The study's way to evaluate the 10,000 test images: PIL ToTensor + Normalize through a DataLoader."""
    from torch.utils.data import DataLoader
    from torchvision.datasets import MNIST


    loader = DataLoader(MNIST(str(root), train=False, transform=test_transform()), batch_size=1000,
                        num_workers=2, pin_memory=device.type == "cuda")
    model.eval()
    with main_threads(threads):
        n, t = 0, time.perf_counter()
        for x, y in loader:
            model(x.to(device)).argmax(1).eq(y.to(device)).sum().item()
            n += len(y)
        rate = n / (time.perf_counter() - t)
    model.train()
    return rate


def _lab_round(model, opt, data, cfg, device) -> float:
    t = time.perf_counter()
    stats = train_one_epoch(model, data.train, opt, cfg, desc="lab")
    if device.type == "cuda":
        torch.cuda.synchronize()
    return stats["seen"] / (time.perf_counter() - t)


def run(device="auto", rounds=5, batches=300, data_dir=None, reference_threads=0, log=print) -> dict:

    dev = pick_device(device)
    root = fetch.ensure(data_dir).parent.parent
    torch.manual_seed(0)
    # (a) the study's pipeline: per-image PIL transforms in 2 worker processes
    it = reference_batches(root, dev)
    ref_model = Net(BLOCKS[5]).to(dev)
    ref_opt = torch.optim.Adam(ref_model.parameters(), lr=0.002)
    # (b) mnist_lab: data on the device, batched augmentation, the real trainer loop
    cfg = Config(iteration=5, device=str(dev), data_dir=str(root))
    data = MNISTData.load(root, dev, batch_size=64, seed=0, max_batches=batches)
    lab_model = place(Net(BLOCKS[5]), cfg, dev)
    lab_opt = adam(lab_model, 0.002)
    reference_round(ref_model, ref_opt, it, 10, dev, reference_threads)  # warm-up: workers started, kernels chosen
    data.train.max_batches = 10
    _lab_round(lab_model, lab_opt, data, cfg, dev)
    data.train.max_batches = batches
    ref, lab = [], []
    for i in range(rounds):
        ref.append(reference_round(ref_model, ref_opt, it, batches, dev, reference_threads))
        lab.append(_lab_round(lab_model, lab_opt, data, cfg, dev))
        log(f"round {i + 1}/{rounds}: reference {ref[-1]:,.0f} img/s, lab {lab[-1]:,.0f} img/s")
    evals = []
    for _ in range(3):
        t = time.perf_counter()
        stats = evaluate(lab_model, data.test, cfg)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        evals.append(stats["total"] / (time.perf_counter() - t))
    ref_eval = reference_eval(ref_model, root, dev, reference_threads)
    ref_m, lab_m = statistics.median(ref), statistics.median(lab)
    # What the study's pipeline would need for the study's 106 epochs with held-out evaluation each epoch
    series_epochs = sum(EPOCHS.values())
    ref_series = series_epochs * epoch_seconds(ref_m, ref_eval)
    return {
        "device": str(dev),
        "threads": torch.get_num_threads(),
        "reference_threads": reference_threads or torch.get_num_threads(),
        "torch": torch.__version__,
        "rounds": rounds,
        "batches_per_round": batches,
        "reference_img_s": round(ref_m, 1),
        "lab_img_s": round(lab_m, 1),
        "ratio": round(lab_m / ref_m, 2),
        # the per-round ratios show how much of the spread is the machine
        "round_ratios": [round(l / r, 2) for r, l in zip(ref, lab)],
        "reference_epoch_s": round(TRAIN / ref_m, 1),
        "lab_epoch_s": round(TRAIN / lab_m, 1),
        "eval_img_s": round(statistics.median(evals), 1),
        "reference_eval_img_s": round(ref_eval, 1),
        "reference_series_min": round(ref_series / 60, 1),
        "eval_10k_s": round(TEST / statistics.median(evals), 3),
    }
