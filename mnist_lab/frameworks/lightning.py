"""The torch `Net` trained by PyTorch Lightning, as its users write it: a LightningModule, a
LightningDataModule, Lightning's Trainer, its EarlyStopping and ModelCheckpoint callbacks, and the
scheduler (StepLR or ReduceLROnPlateau on a monitored metric) returned by `configure_optimizers`.

The module wraps the very `Net` the notebook built (same weights to start with), and the data module
serves the same batches as the PyTorch trainer (same shuffling and augmentation, same validation
split), so a comparison with PyTorch measures what Lightning adds around the same arithmetic.
"""
from __future__ import annotations

import importlib
import logging
import tempfile
import time
import warnings

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..errors import LabError
from . import INSTALL
from .base import FitResult
from .pytorch import evaluate, loss_fn, optimizer_for, place, prepare, scheduler_for


def load():
    try:
        return importlib.import_module("lightning.pytorch")
    except ImportError as exc:
        raise LabError(f"framework 'lightning' needs PyTorch Lightning, which is not installed here ({exc.name or exc}): "
                       f"run `{INSTALL}`") from None


def module(net, cfg, validate: bool = True):
    """A LightningModule around `net`, training with the recipe's optimizer and scheduler (and a
    validation step when there is a validation split)."""
    pl = load()

    class LitNet(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = net
            self.criterion = loss_fn(cfg)  # built once, not per batch

        def forward(self, x):
            return self.net(prepare(x, cfg))

        def _step(self, batch, split):
            x, y = batch
            out = self(x)
            loss = (self.criterion if split == "train" else F.nll_loss)(out, y)
            # on_epoch: Lightning averages over the epoch, weighted by batch size (a mean per image)
            self.log(f"{split}_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(y))
            self.log(f"{split}_acc", 100 * (out.argmax(1) == y).float().mean(), on_step=False, on_epoch=True,
                     prog_bar=True, batch_size=len(y))
            return loss

        def training_step(self, batch, batch_idx):
            return self._step(batch, "train")

        def configure_optimizers(self):
            opt = optimizer_for(self.net, cfg)
            sched = scheduler_for(opt, cfg, self.trainer.estimated_stepping_batches // max(1, cfg.run_epochs))
            if sched is None:
                return opt
            config = {"scheduler": sched, "interval": "step" if cfg.scheduler == "onecycle" else "epoch"}
            if cfg.scheduler == "plateau":
                config["monitor"] = "val_loss"
            return {"optimizer": opt, "lr_scheduler": config}

    class Validated(LitNet):
        def validation_step(self, batch, batch_idx):
            self._step(batch, "val")

    return Validated() if validate else LitNet()


def datamodule(data):
    """A LightningDataModule serving `data`'s batches (already on the training device)."""
    pl = load()

    class MNISTBatches(pl.LightningDataModule):
        def train_dataloader(self):
            return data.train

    if data.val is None:
        return MNISTBatches()

    class WithValidation(MNISTBatches):
        def val_dataloader(self):
            return data.val

    return WithValidation()


def _record(pl, data, cfg):
    """Callback: a progress bar per epoch (the PyTorch trainer's), the held-out test set scored after
    each epoch (for the record only: nothing is chosen by it), one printed line and one history row
    per epoch."""

    class Record(pl.Callback):
        def __init__(self):
            self.result = FitResult()

        def on_train_epoch_start(self, trainer, lit):
            self.t0 = time.perf_counter()
            self.lr = trainer.optimizers[0].param_groups[0]["lr"]
            self.bar = tqdm(total=len(data.train), desc=f"epoch {trainer.current_epoch + 1}/{cfg.run_epochs}",
                            mininterval=1.0, ncols=100)

        def on_train_batch_end(self, trainer, lit, outputs, batch, batch_idx):
            self.bar.update(1)
            if batch_idx % 50 == 0 or batch_idx == len(data.train) - 1:
                self.bar.set_postfix_str(f"loss={float(outputs['loss']):.4f}", refresh=False)

        def on_train_epoch_end(self, trainer, lit):
            self.bar.close()
            m = trainer.callback_metrics
            test = evaluate(lit.net, data.test, cfg)
            lit.net.train()
            val = {"loss": float(m["val_loss"]), "acc": float(m["val_acc"])} if "val_loss" in m else None
            self.result.epoch(trainer.current_epoch + 1, self.lr,
                              {"loss": float(m["train_loss"]), "acc": float(m["train_acc"])}, test, val,
                              time.perf_counter() - self.t0)

    return Record()


def fit(net, data, cfg) -> FitResult:
    """Train `net` with Lightning's Trainer on `data` with `cfg`; `net` ends with the trained weights."""
    pl = load()
    dev = data.train.images.device
    place(net, cfg, dev)  # the PyTorch trainer's memory layout (channels-last): the same convolution kernels
    record = _record(pl, data, cfg)
    callbacks = [record]
    stop = None
    if cfg.patience:
        stop = pl.callbacks.EarlyStopping(monitor="val_loss", mode="min", patience=cfg.patience)
        callbacks.append(stop)
    with tempfile.TemporaryDirectory(prefix="mnist-lab-lightning-") as tmp:
        best = None
        if cfg.restore_best:
            best = pl.callbacks.ModelCheckpoint(dirpath=tmp, monitor="val_loss", mode="min", save_top_k=1)
            callbacks.append(best)
        # Lightning's own progress bar would be a widget in Jupyter, lost in saved notebooks: the Record
        # callback draws the PyTorch trainer's. Its start-up notes (accelerators, an advertisement) are
        # silenced, and a deprecation warning it raises under this torch.
        chatter = logging.getLogger("lightning.pytorch")
        level = chatter.level
        chatter.setLevel(logging.WARNING)
        try:
            trainer = pl.Trainer(
                max_epochs=cfg.run_epochs, accelerator="gpu" if dev.type == "cuda" else "cpu",
                devices=[dev.index or 0] if dev.type == "cuda" else 1, callbacks=callbacks, logger=False,
                enable_checkpointing=best is not None, enable_model_summary=False, enable_progress_bar=False,
                num_sanity_val_steps=0, default_root_dir=tmp)
            lit = module(net, cfg, validate=data.val is not None)
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*LeafSpec.*")
                trainer.fit(lit, datamodule=datamodule(data))
        finally:
            chatter.setLevel(level)
        result = record.result
        result.wall_seconds = time.perf_counter() - start
        result.best_by_val()
        if stop is not None and stop.stopped_epoch > 0:
            result.stop(cfg.patience)
        if best is not None and best.best_model_path:
            ckpt = torch.load(best.best_model_path, map_location=dev, weights_only=True)
            lit.load_state_dict(ckpt["state_dict"])
            result.restore(ckpt["epoch"] + 1)
    return result


def versions(cfg) -> dict:
    pl = load()
    return {"lightning": pl.__version__}
