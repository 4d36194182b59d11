"""The PyTorch trainer: Adam (or the recipe's optimizer) and a per-epoch scheduler, a progress bar per epoch,
held-out evaluation every epoch; and what every framework's run shares: seeding, the device, evaluation
and prediction on the held-out set."""
from __future__ import annotations

import copy
import math
import random
import time

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..errors import LabError
from . import FRAMEWORKS
from .base import FitResult


def pick_device(name: str = "auto", elsewhere: bool = False) -> torch.device:
    """The torch device `name` names. `elsewhere`: for a run on another machine (a cluster worker), so
    this machine's CUDA is not asked, and "auto" cannot be resolved."""
    if name == "auto":
        if elsewhere:
            raise LabError("on a cluster the device is chosen, not detected: device 'cpu' or 'cuda', not 'auto'")
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not elsewhere and not torch.cuda.is_available():
        raise LabError(f"device {name!r} asked for, but CUDA is not available here; use device='cpu' or 'auto'")
    try:
        return torch.device(name)
    except RuntimeError:
        raise LabError(f"unknown device {name!r}; use 'auto', 'cpu' or 'cuda'") from None


def run_device(cfg, elsewhere: bool = False) -> torch.device:
    """Where the run trains: `cfg.device`, but the CPU where its framework runs only there (NumPy, Keras on
    tensorflow-cpu: the data, the weights and the record stay there). `elsewhere`: on a cluster worker
    (see pick_device)."""
    if FRAMEWORKS[cfg.framework].cpu_only(cfg):
        return torch.device("cpu")
    return pick_device(cfg.device, elsewhere)


def setup(cfg) -> torch.device:
    """Seed everything and set this run's threads; call before building the model."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)  # weights and dropout; data draws have their own generator
    device = run_device(cfg)
    if device.type == "cuda":  # cuDNN's autotuner may pick another convolution algorithm each run
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    return device


def adam(model, lr: float) -> torch.optim.Adam:
    # foreach: one call per step for all parameters (the default on CUDA only); the same
    # arithmetic as the per-tensor loop, bit for bit, and less Python per step on the CPU.
    return torch.optim.Adam(model.parameters(), lr=lr, foreach=True)


def optimizer_for(model, cfg) -> torch.optim.Optimizer:
    """The recipe's optimizer. The study's Adam is built exactly as before (no weight_decay argument)."""
    if cfg.optimizer == "adam":
        if not cfg.weight_decay:
            return adam(model, cfg.lr)
        return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True)
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                   weight_decay=cfg.weight_decay, foreach=True)
    return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                           foreach=True)


def scheduler_for(optimizer, cfg, steps_per_epoch: int = 0):
    """StepLR, ReduceLROnPlateau (stepped with the validation loss), OneCycleLR (stepped after every batch,
    over `steps_per_epoch` * the run's epochs) or None."""
    if cfg.scheduler == "onecycle":
        # the lr climbs from lr/25 to lr over pct_start of the steps, then anneals to lr/25e4 (torch's
        # defaults); SGD's momentum (Adam's beta1) cycles the other way, 0.95 -> 0.85 -> 0.95, replacing
        # the optimizer's own (Config refuses a momentum setting it would ignore)
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, epochs=cfg.run_epochs,
                                                   steps_per_epoch=steps_per_epoch, pct_start=cfg.pct_start)
    if cfg.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=cfg.gamma, patience=cfg.plateau_patience)
    if cfg.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.step_size, gamma=cfg.gamma)
    return None


def place(model, cfg, device: torch.device):
    """Move `model` to `device` in the memory layout the trainer feeds it (channels-last when set)."""
    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    return model


def prepare(x, cfg):
    """A batch in the memory layout the network was placed in (channels-last when set)."""
    return x.contiguous(memory_format=torch.channels_last) if cfg.channels_last else x


def loss_fn(cfg):
    """The training loss on the net's log-probabilities: NLL, or with label smoothing the cross-entropy
    against smoothed targets (log_softmax of log-probabilities is the identity, so cross_entropy applies)."""
    if cfg.label_smoothing:
        return lambda out, y: F.cross_entropy(out, y, label_smoothing=cfg.label_smoothing)
    return F.nll_loss


def train_one_epoch(model, batches, optimizer, cfg, desc: str = "", per_batch=None) -> dict:
    """One pass over `batches`; `per_batch` is a scheduler stepped after every optimizer step (OneCycleLR).
    The loss and accuracy it returns are those of the training loss as trained (smoothed, when set)."""
    model.train()
    criterion = loss_fn(cfg)
    dev = batches.images.device
    # Sums stay on the device and are read once per epoch (or when the bar shows them), so CUDA
    # never waits on the host inside the loop.
    loss_sum = torch.zeros((), device=dev)
    correct = torch.zeros((), dtype=torch.long, device=dev)
    seen = 0
    bar = tqdm(batches, desc=desc, total=len(batches), mininterval=1.0, leave=True, dynamic_ncols=False,
               ncols=100)
    for i, (x, y) in enumerate(bar):
        out = model(prepare(x, cfg))
        loss = criterion(out, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if per_batch is not None:
            per_batch.step()
        with torch.no_grad():
            loss_sum += loss.detach() * len(y)
            correct += (out.argmax(1) == y).sum()
        seen += len(y)
        if cfg.log_every and (i + 1) % cfg.log_every == 0:
            bar.write(f"  batch {i + 1}/{len(batches)}  loss {loss.item():.4f}")
        if i % 50 == 0 or i == len(batches) - 1:
            bar.set_postfix_str(f"loss={loss.item():.4f} acc={100 * correct.item() / seen:.2f}%", refresh=False)
    return {"loss": loss_sum.item() / seen, "acc": 100 * correct.item() / seen, "seen": seen}


@torch.inference_mode()
def evaluate(model, batches, cfg) -> dict:
    """True mean loss per sample and accuracy over a split, no augmentation."""
    model.eval()
    dev = batches.images.device
    loss_sum = torch.zeros((), device=dev)
    correct = torch.zeros((), dtype=torch.long, device=dev)
    total = 0
    for x, y in batches:
        out = model(prepare(x, cfg))
        loss_sum += F.nll_loss(out, y, reduction="sum")
        correct += (out.argmax(1) == y).sum()
        total += len(y)
    c = correct.item()
    return {"loss": loss_sum.item() / total, "correct": c, "total": total, "acc": 100 * c / total}


def fit(model, data, cfg) -> FitResult:
    """The PyTorch loop: Adam (or the recipe's optimizer) and a per-epoch scheduler; `model` ends with the
    trained weights."""
    dev = data.train.images.device
    optimizer = optimizer_for(place(model, cfg, dev), cfg)
    scheduler = scheduler_for(optimizer, cfg, len(data.train))
    per_batch = scheduler if cfg.scheduler == "onecycle" else None
    result, best_val, waited = FitResult(), math.inf, 0
    start = time.perf_counter()
    for epoch in range(1, cfg.run_epochs + 1):
        t0 = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        train = train_one_epoch(model, data.train, optimizer, cfg, desc=f"epoch {epoch}/{cfg.run_epochs}",
                                per_batch=per_batch)
        val = evaluate(model, data.val, cfg) if data.val is not None else None
        test = evaluate(model, data.test, cfg)
        result.epoch(epoch, lr, train, test, val, time.perf_counter() - t0)
        if cfg.scheduler == "plateau":
            scheduler.step(val["loss"])
        elif scheduler is not None and per_batch is None:
            scheduler.step()
        if val:  # model selection and stopping use the validation split, never the test set
            if val["loss"] < best_val:
                best_val, waited, result.best_epoch = val["loss"], 0, epoch
                result.best_state = copy.deepcopy(model.state_dict())
            else:
                waited += 1
                if cfg.patience and waited >= cfg.patience:
                    result.stop(waited)
                    break
    result.wall_seconds = time.perf_counter() - start
    if cfg.restore_best and result.best_state is not None:
        model.load_state_dict(result.best_state)
        result.restore(result.best_epoch)
    return result


def versions(cfg) -> dict:
    return {}  # torch's version: every result file records it


@torch.inference_mode()
def predict(model, batches, cfg) -> tuple[torch.Tensor, torch.Tensor]:
    """(predicted labels, log-probabilities) over a split, in its order, on the CPU."""
    model.eval()
    outs = [model(prepare(x, cfg)).float().cpu() for x, _ in batches]
    logp = torch.cat(outs)
    return logp.argmax(1), logp
