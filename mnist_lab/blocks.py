"""Block specs: a network declared as data, and what can be read off it without building it (layer
counts, the receptive field). `net.Net` builds the torch modules from the same list.

A block spec is a plain dict (JSON-safe), so the network's declaration travels with its checkpoint
and result file and can be rebuilt without the notebook that declared it. Nothing here imports torch:
reading a series or writing a report needs none.
"""
from __future__ import annotations


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
