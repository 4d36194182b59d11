"""MNIST held as uint8 tensors on the training device, served in augmented batches.

One split is one (N, 28, 28) uint8 tensor: 47 MB for the training set, so it fits on any device and
an epoch never touches Python per image. Shuffling and augmentation draw from one seeded generator.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from . import datasets, fetch
from .augment import augment, normalize, to_float
from .config import SMOKE_TEST_SIZE


def load_split(split: str, root=None, device="cpu", dataset="mnist") -> tuple[torch.Tensor, torch.Tensor]:
    """(images uint8 (N, 28, 28), labels int64 (N,)) of 'train' or 'test', fetched on first use."""
    images, labels = (torch.from_numpy(a) for a in fetch.load_arrays(split, root, dataset=dataset))
    return images.to(device), labels.long().to(device)


@dataclass
class Batches:
    """Iterates (inputs, targets) batches over a split that lives on `images.device`."""
    images: torch.Tensor
    labels: torch.Tensor
    batch_size: int = 64
    train: bool = False  # shuffle and augment
    generator: torch.Generator | None = None
    max_batches: int | None = None  # the smoke-run knob
    rotation: float = 15.0  # augmentation (train only): see augment.augment
    crop_p: float = 0.1
    dataset: datasets.Dataset = datasets.MNIST  # whose normalisation constants the batches take

    @property
    def mean(self) -> float:
        return self.dataset.mean

    @property
    def std(self) -> float:
        return self.dataset.std

    def __len__(self):
        n = -(-len(self.images) // self.batch_size)
        return min(n, self.max_batches) if self.max_batches else n

    def __iter__(self):
        n = len(self.images)
        dev = self.images.device
        if self.train:
            order = torch.randperm(n, generator=self.generator, device=self.generator.device).to(dev)
        else:
            order = torch.arange(n, device=dev)
        for i in range(len(self)):
            idx = order[i * self.batch_size:(i + 1) * self.batch_size]
            x, y = self.images[idx], self.labels[idx]
            augmented = self.train and (self.rotation or self.crop_p)
            yield (augment(x, self.generator, self.rotation, self.crop_p, self.mean, self.std) if augmented
                   else normalize(to_float(x), self.mean, self.std)), y


@dataclass
class MNISTData:
    """A data set's splits (MNIST's by default; named so by the notebooks, whatever the data set)."""
    train: Batches
    test: Batches
    val: Batches | None = None
    dataset: datasets.Dataset = datasets.MNIST

    @classmethod
    def load(cls, root=None, device="cpu", batch_size=64, seed=0, max_batches=None,
             test_size=None, val_fraction=0.0, eval_batch_size=1000, rotation=15.0, crop_p=0.1, dataset="mnist"):
        ds = datasets.get(dataset)
        device = torch.device(device)
        # The generator lives where the data does, so drawing from it never leaves the device.
        gen = torch.Generator(device=device).manual_seed(seed)
        xtr, ytr = load_split("train", root, device, ds.key)
        xte, yte = load_split("test", root, device, ds.key)
        if test_size:
            xte, yte = xte[:test_size], yte[:test_size]
        val = None
        if val_fraction:
            # A seeded split of the training set: same seed, same validation images.
            order = torch.randperm(len(xtr), generator=torch.Generator().manual_seed(seed)).to(device)
            k = int(round(len(xtr) * val_fraction))
            xva, yva = xtr[order[:k]], ytr[order[:k]]
            xtr, ytr = xtr[order[k:]], ytr[order[k:]]
            val = Batches(xva, yva, eval_batch_size, False, dataset=ds)
        return cls(Batches(xtr, ytr, batch_size, True, gen, max_batches, rotation, crop_p, ds),
                   Batches(xte, yte, eval_batch_size, False, dataset=ds), val, ds)

    @classmethod
    def for_config(cls, cfg, device):
        return cls.load(cfg.data_path, device, cfg.batch_size, cfg.seed,
                        max_batches=cfg.smoke_batches if cfg.smoke else None,
                        test_size=SMOKE_TEST_SIZE if cfg.smoke else None, val_fraction=cfg.val_fraction,
                        rotation=cfg.rotation, crop_p=cfg.crop_p, dataset=cfg.dataset)
