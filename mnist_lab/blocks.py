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
def conv(cin: int, cout: int, bn: bool = False, dropout: float = 0.0, pad: int = 1, bias: bool = True) -> dict:
    """3x3 conv -> [BatchNorm] -> ReLU -> [Dropout].

    pad=1 keeps the size (the study's); pad=0 shrinks it by 2 and grows the receptive field at no cost.
    bias=False drops the conv's bias, which a following BatchNorm's shift makes redundant."""
    return {"type": "conv", "cin": cin, "cout": cout, "bn": bn, "dropout": dropout, **_unless_default(pad=pad, bias=bias)}


def trans(cin: int, cout: int, bias: bool = True) -> dict:
    """1x1 transition conv -> ReLU: mixes or reduces channels cheaply."""
    return {"type": "trans", "cin": cin, "cout": cout, **_unless_default(bias=bias)}


def gap() -> dict:
    """Global average pooling: (C, H, W) -> (C, 1, 1); a head after it needs no flatten size at all."""
    return {"type": "gap"}


def pool() -> dict:
    """MaxPool(2): halves the spatial size."""
    return {"type": "pool"}


def drop(p: float) -> dict:
    """Dropout(p) on a feature map."""
    return {"type": "drop", "p": p}


def flatten() -> dict:
    """(C, H, W) feature map -> one vector of C*H*W features (an MLP's first block)."""
    return {"type": "flatten"}


def dense(fin: int, fout: int, act: str = "relu", init: str = "default") -> dict:
    """Linear(fin, fout) -> activation ("relu", "sigmoid", "tanh" or "none").

    init: "default" (torch's), or "he" (Kaiming normal for ReLU, zero bias)."""
    return {"type": "dense", "fin": fin, "fout": fout, "act": act, "init": init}


def bn(features: int) -> dict:
    """BatchNorm of what comes in: BatchNorm2d after a conv, BatchNorm1d after a dense block."""
    return {"type": "bn", "features": features}


def head(classes: int = 10, dropout: float = 0.0, conv1x1: bool = False) -> dict:
    """Flatten -> [Dropout] -> one Linear -> log_softmax. Its input size is computed by Net.

    conv1x1=True: [Dropout] -> a 1x1 conv to `classes` channels -> flatten -> log_softmax, on the (C, 1, 1)
    map that gap() leaves (the same weights as a Linear, declared as the all-convolutional nets do)."""
    return {"type": "head", "classes": classes, "dropout": dropout, **_unless_default(conv1x1=conv1x1)}


# A spec holds a setting added after networks were first recorded only when it differs from its
# default, so that earlier networks keep their exact specs, recipes and run names.
_DEFAULTS = {"pad": 1, "bias": True, "conv1x1": False}


def _unless_default(**settings) -> dict:
    return {k: v for k, v in settings.items() if v != _DEFAULTS[k]}


# ---- modules ----------------------------------------------------------------------------------
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


def layer_counts(blocks: list[dict]) -> dict:
    """The report's layer columns: conv (3x3 and 1x1), maxpool, global average pooling, linear, BatchNorm,
    dropout, total."""
    c = {"conv": 0, "maxpool": 0, "gap": 0, "linear": 0, "batchnorm": 0, "dropout": 0}
    for b in blocks:
        t = b["type"]
        if t in ("conv", "trans") or (t == "head" and b.get("conv1x1")):
            c["conv"] += 1
        c["batchnorm"] += bool(t == "conv" and b.get("bn")) + (t == "bn")
        c["linear"] += t == "dense"
        c["dropout"] += bool(t in ("conv", "head") and b.get("dropout")) + (t == "drop")
        c["maxpool"] += t == "pool"
        c["gap"] += t == "gap"
        c["linear"] += t == "head" and not b.get("conv1x1")
    c["total"] = sum(c.values())
    return c


# ---- receptive field ----------------------------------------------------------------------------
# (kernel, stride, padding) of the blocks that change the geometry; the rest (BatchNorm, Dropout) keep it.
def _geometry(spec, n):
    t = spec["type"]
    if t == "conv":
        return 3, 1, spec.get("pad", 1)
    if t == "trans":
        return 1, 1, 0
    if t == "pool":
        return 2, 2, 0
    if t == "gap":  # one window over the whole map
        return n, 1, 0
    return None


def receptive_field(blocks: list[dict], size: int = 28) -> list[dict]:
    """Per layer that changes the geometry: output size n, jump j (input pixels between neighbouring
    outputs) and receptive field r, from n_out = (n_in + 2p - k) / s + 1, j_out = j_in * s,
    r_out = r_in + (k - 1) * j_in, starting from the input (n = size, j = 1, r = 1). A flatten (or a
    Linear head) sees everything that reaches it; the table ends there."""
    rows, n, j, r = [{"layer": "input", "k": "", "s": "", "p": "", "n": size, "j": 1, "r": 1}], size, 1, 1
    for i, b in enumerate(blocks):
        g = _geometry(b, n)
        if g is None:
            if b["type"] in ("flatten", "dense", "head") and not (b["type"] == "head" and b.get("conv1x1")):
                break
            continue
        k, s, p = g
        n, j, r = (n + 2 * p - k) // s + 1, j * s, r + (k - 1) * j
        name = {"conv": "conv 3x3", "trans": "conv 1x1", "pool": "maxpool 2", "gap": "GAP"}[b["type"]]
        rows.append({"layer": f"{i} {name}", "k": k, "s": s, "p": p, "n": n, "j": j, "r": r})
    return rows
