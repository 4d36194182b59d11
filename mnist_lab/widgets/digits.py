"""Held-out test digits for the explorer: the images behind a confusion cell and each model's probabilities
for them, drawn as a small HTML gallery (plain HTML: it renders wherever the widget does)."""
from __future__ import annotations

import base64
import html
import io
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .. import fetch
from ..augment import normalize, to_float
from ..checkpoint import load_model


@lru_cache(maxsize=4)
def test_set(root=None, dataset: str = "mnist") -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 28, 28), labels (N,)) of a data set's held-out test set, fetched on first use."""
    return fetch.load_arrays("test", root, dataset=dataset)


@lru_cache(maxsize=16)
def _model(path: str, stamp: tuple):
    return load_model(path)


def probabilities(checkpoints, images: np.ndarray) -> np.ndarray:
    """(len(images), 10): the class probabilities of each checkpoint's network, averaged over the checkpoints
    (one run: its own). `images`: uint8 (N, 28, 28), normalised here as in training."""
    u8 = torch.from_numpy(np.ascontiguousarray(images))
    total = np.zeros((len(images), 10))
    for path in checkpoints:
        p = Path(path)
        model = _model(str(p.resolve()), (p.stat().st_mtime_ns, p.stat().st_size))  # a remade file is reloaded
        x = normalize(to_float(u8), model.dataset.mean, model.dataset.std)
        with torch.inference_mode():
            total += model(x).exp().double().numpy()
    return total / len(checkpoints)


def png(image: np.ndarray, scale: int = 2) -> bytes:
    big = Image.fromarray(image).resize((image.shape[1] * scale, image.shape[0] * scale), Image.NEAREST)
    buf = io.BytesIO()
    big.save(buf, format="PNG")
    return buf.getvalue()


def top(probs, k: int = 3) -> list[tuple[int, float]]:
    order = np.argsort(-np.asarray(probs), kind="stable")[:k]
    return [(int(c), float(probs[c])) for c in order]


def gallery(items, images: np.ndarray, runs: int, label=str) -> str:
    """HTML: each item ({"index", "true", "pred", "in_runs", "probs"}) as its image with what it is, what the
    model said, and the model's top three probabilities; `label(c)` names class c."""
    cards = []
    for it in items:
        src = "data:image/png;base64," + base64.b64encode(png(images[it["index"]])).decode()
        probs = " · ".join(f"{label(c)} {100 * p:.0f}%" for c, p in top(it["probs"])) if it.get("probs") is not None \
            else "no checkpoint: no probabilities"
        seen = f"<br>in {it['in_runs']} of {runs} runs" if runs > 1 else ""
        cards.append(
            f'<div class="mnist-digit" data-index="{it["index"]}" title="test digit #{it["index"]}: true {it["true"]}, '
            f'predicted {it["pred"]}" style="display:inline-block;width:150px;margin:3px;font-size:11px;'
            f'line-height:1.3;text-align:center;vertical-align:top">'
            f'<img src="{src}" width="56" height="56" style="image-rendering:pixelated" alt="test digit {it["index"]}">'
            f'<br>#{it["index"]}: true {html.escape(label(it["true"]))}, predicted {html.escape(label(it["pred"]))}'
            f'<br>{html.escape(probs)}{seen}</div>')
    return "".join(cards)
