"""`Net`: the torch modules of a network declared as a list of block specs (mnist_lab/blocks.py).

Blocks are tiny, with stable child names (`conv`, `bn`, `act`, `drop`, `fc`), so state dicts and
summaries can rely on them.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn


def _named(**children) -> OrderedDict:
    return OrderedDict((k, v) for k, v in children.items() if v is not None)


# Blocks are Sequentials with named children: summaries list only the real layers, and state-dict
# keys read like "0.conv.weight", "0.bn.running_mean".
class ConvBlock(nn.Sequential):
    def __init__(self, cin, cout, bn=False, dropout=0.0, pad=1, bias=True):
        super().__init__(_named(
            conv=nn.Conv2d(cin, cout, 3, padding=pad, bias=bias),  # the study's: padding 1, with bias
            bn=nn.BatchNorm2d(cout) if bn else None,
            act=nn.ReLU(),
            drop=nn.Dropout(dropout) if dropout else None,
        ))


class Transition(nn.Sequential):
    def __init__(self, cin, cout, bias=True):
        super().__init__(_named(conv=nn.Conv2d(cin, cout, 1, bias=bias), act=nn.ReLU()))


ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "none": None}
INITS = ("default", "he")


class Dense(nn.Sequential):
    def __init__(self, fin, fout, act="relu", init="default"):
        if act not in ACTIVATIONS:
            raise ValueError(f"dense activation {act!r} unknown; use one of {', '.join(ACTIVATIONS)}")
        if init not in INITS:
            raise ValueError(f"dense init {init!r} unknown; use one of {', '.join(INITS)}")
        fc = nn.Linear(fin, fout)
        if init == "he":
            nn.init.kaiming_normal_(fc.weight, nonlinearity="relu")
            nn.init.zeros_(fc.bias)
        super().__init__(_named(fc=fc, act=ACTIVATIONS[act]() if ACTIVATIONS[act] else None))


def _batchnorm(spec, shape):
    features = spec["features"]
    if shape[0] != features:
        raise RuntimeError(f"bn({features}) follows a block with {shape[0]} features/channels")
    return nn.BatchNorm2d(features) if len(shape) == 3 else nn.BatchNorm1d(features)


class Head(nn.Sequential):
    def __init__(self, features, classes=10, dropout=0.0):
        super().__init__(_named(
            flatten=nn.Flatten(),
            drop=nn.Dropout(dropout) if dropout else None,
            fc=nn.Linear(features, classes),
            logsoftmax=nn.LogSoftmax(dim=1),
        ))


class ConvHead(nn.Sequential):
    def __init__(self, shape, classes=10, dropout=0.0):
        if len(shape) != 3 or shape[1:] != (1, 1):
            raise ValueError(f"head(conv1x1=True) reads a (C, 1, 1) map, not {shape}: put gap() before it")
        super().__init__(_named(
            drop=nn.Dropout(dropout) if dropout else None,
            conv=nn.Conv2d(shape[0], classes, 1),
            flatten=nn.Flatten(),
            logsoftmax=nn.LogSoftmax(dim=1),
        ))


# spec, shape of what comes in (without the batch) -> module
_BUILD = {
    "conv": lambda s, shape: ConvBlock(s["cin"], s["cout"], s.get("bn", False), s.get("dropout", 0.0),
                                       s.get("pad", 1), s.get("bias", True)),
    "trans": lambda s, shape: Transition(s["cin"], s["cout"], s.get("bias", True)),
    "pool": lambda s, shape: nn.MaxPool2d(2),
    "gap": lambda s, shape: nn.AdaptiveAvgPool2d(1),
    "drop": lambda s, shape: nn.Dropout(s["p"]),
    "flatten": lambda s, shape: nn.Flatten(),
    "dense": lambda s, shape: Dense(s["fin"], s["fout"], s.get("act", "relu"), s.get("init", "default")),
    "bn": _batchnorm,
}


class Net(nn.Sequential):
    """A network from a list of block specs; the last one must be `head()`."""

    def __init__(self, blocks: list[dict], input_shape=(1, 28, 28)):
        if not blocks or blocks[-1].get("type") != "head":
            raise ValueError("a network's block list must end with head()")
        unknown = [b.get("type") for b in blocks[:-1] if b.get("type") not in _BUILD]
        if unknown:
            raise ValueError(f"unknown block type(s) {unknown}; known: {sorted(_BUILD)} and head")
        # Each block is built for the shape that reaches it, found by a dry run (BatchNorm's
        # dimension, the head's input size), never from a hand-computed constant. Blocks are built
        # in order, so the weights draw from the seeded generator in the order they are declared.
        body, probe = [], torch.zeros(1, *input_shape)
        for i, b in enumerate(blocks[:-1]):
            try:
                module = _BUILD[b["type"]](b, tuple(probe.shape[1:]))
                with torch.no_grad():
                    probe = module.eval()(probe)
            except KeyError as exc:
                raise ValueError(f"block {i} ({b['type']}) lacks its {exc} setting: declare it with {b['type']}(...)") from None
            except RuntimeError as exc:  # shapes: torch's own message says which
                raise ValueError(f"block {i} ({b['type']}) does not fit what comes before it: {exc}") from None
            body.append(module.train())
        spec = blocks[-1]
        if spec.get("conv1x1"):
            last = ConvHead(tuple(probe.shape[1:]), spec.get("classes", 10), spec.get("dropout", 0.0))
        else:
            last = Head(probe[0].numel(), spec.get("classes", 10), spec.get("dropout", 0.0))
        super().__init__(*body, last)
        self.blocks = [dict(b) for b in blocks]
        self.input_shape = tuple(input_shape)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())
