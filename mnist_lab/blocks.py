"""Tiny building blocks, and `Net`: a network declared as a list of block specs.

A block spec is a plain dict (JSON-safe), so the network's declaration travels with its checkpoint
and result file and can be rebuilt without the notebook that declared it. Child names are stable
(`conv`, `bn`, `act`, `drop`, `fc`) so state dicts and summaries can rely on them.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn


# ---- specs: what a notebook writes ------------------------------------------------------------
def conv(cin: int, cout: int, bn: bool = False, dropout: float = 0.0) -> dict:
    """3x3 conv (padding 1, keeps the size) -> [BatchNorm] -> ReLU -> [Dropout]."""
    return {"type": "conv", "cin": cin, "cout": cout, "bn": bn, "dropout": dropout}


def trans(cin: int, cout: int) -> dict:
    """1x1 transition conv -> ReLU: mixes or reduces channels cheaply."""
    return {"type": "trans", "cin": cin, "cout": cout}


def pool() -> dict:
    """MaxPool(2): halves the spatial size."""
    return {"type": "pool"}


def drop(p: float) -> dict:
    """Dropout(p) on a feature map."""
    return {"type": "drop", "p": p}


def head(classes: int = 10, dropout: float = 0.0) -> dict:
    """Flatten -> [Dropout] -> one Linear -> log_softmax. Its input size is computed by Net."""
    return {"type": "head", "classes": classes, "dropout": dropout}


# ---- modules ----------------------------------------------------------------------------------
def _named(**children) -> OrderedDict:
    return OrderedDict((k, v) for k, v in children.items() if v is not None)


# Blocks are Sequentials with named children: summaries list only the real layers, and state-dict
# keys read like "0.conv.weight", "0.bn.running_mean".
class ConvBlock(nn.Sequential):
    def __init__(self, cin, cout, bn=False, dropout=0.0):
        super().__init__(_named(
            conv=nn.Conv2d(cin, cout, 3, padding=1),  # with bias, as the study
            bn=nn.BatchNorm2d(cout) if bn else None,
            act=nn.ReLU(),
            drop=nn.Dropout(dropout) if dropout else None,
        ))


class Transition(nn.Sequential):
    def __init__(self, cin, cout):
        super().__init__(_named(conv=nn.Conv2d(cin, cout, 1), act=nn.ReLU()))


class Head(nn.Sequential):
    def __init__(self, features, classes=10, dropout=0.0):
        super().__init__(_named(
            flatten=nn.Flatten(),
            drop=nn.Dropout(dropout) if dropout else None,
            fc=nn.Linear(features, classes),
            logsoftmax=nn.LogSoftmax(dim=1),
        ))


_BUILD = {
    "conv": lambda s: ConvBlock(s["cin"], s["cout"], s.get("bn", False), s.get("dropout", 0.0)),
    "trans": lambda s: Transition(s["cin"], s["cout"]),
    "pool": lambda s: nn.MaxPool2d(2),
    "drop": lambda s: nn.Dropout(s["p"]),
}


class Net(nn.Sequential):
    """A network from a list of block specs; the last one must be `head()`."""

    def __init__(self, blocks: list[dict], input_shape=(1, 28, 28)):
        if not blocks or blocks[-1].get("type") != "head":
            raise ValueError("a network's block list must end with head()")
        unknown = [b.get("type") for b in blocks[:-1] if b.get("type") not in _BUILD]
        if unknown:
            raise ValueError(f"unknown block type(s) {unknown}; known: {sorted(_BUILD)} and head")
        body = [_BUILD[b["type"]](b) for b in blocks[:-1]]
        # The flatten size comes from a dry run, never from a hand-computed constant.
        with torch.no_grad():
            probe = nn.Sequential(*body).eval()(torch.zeros(1, *input_shape))
        spec = blocks[-1]
        super().__init__(*body, Head(probe[0].numel(), spec.get("classes", 10), spec.get("dropout", 0.0)))
        self.blocks = [dict(b) for b in blocks]
        self.input_shape = tuple(input_shape)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


def layer_counts(blocks: list[dict]) -> dict:
    """The study's layer columns: conv (3x3 and 1x1), maxpool, linear, BatchNorm, dropout, total."""
    c = {"conv": 0, "maxpool": 0, "linear": 0, "batchnorm": 0, "dropout": 0}
    for b in blocks:
        t = b["type"]
        if t in ("conv", "trans"):
            c["conv"] += 1
        c["batchnorm"] += bool(t == "conv" and b.get("bn"))
        c["dropout"] += bool(t in ("conv", "head") and b.get("dropout")) + (t == "drop")
        c["maxpool"] += t == "pool"
        c["linear"] += t == "head"
    c["total"] = sum(c.values())
    return c
