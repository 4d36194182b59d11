"""`pad()`: draw a digit with the mouse inside the notebook and see the class probabilities after each stroke.

A small anywidget (drawpad.js): the page sends each finished stroke as canvas points, and the kernel inks the
strokes into an image (digitize.drawing, shared with `mnist-lab draw`) and classifies it with the same
preprocessing as `mnist-lab predict`. Since the kernel never needs the canvas's pixels, the pad works, and is
tested, without a browser: `Pad.stroke(points)` is what the page does. In batch mode ($MNIST_LAB_BATCH=1: a
papermill or nbval kernel) `pad()` makes only the line such a run shows, without listing every checkpoint.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import anywidget
import ipywidgets as W
import traitlets as T

from .. import paths
from ..checkpoint import load_model, result_of
from ..config import BATCH_ENV
from ..digitize import PAD, PEN, classify, drawing
from ..errors import LabError
from ..reports import best_checkpoint
from .catalog import Catalog, default_folders

HINT = "Draw a digit with the mouse"


class Pad(anywidget.AnyWidget):
    _esm = Path(__file__).with_name("drawpad.js")
    size = T.Int(PAD).tag(sync=True)
    pen = T.Int(PEN).tag(sync=True)
    strokes = T.List().tag(sync=True)  # [[[x, y], ...], ...]: canvas points of each finished stroke
    probs = T.List([0.0] * 10).tag(sync=True)
    guess = T.Unicode(HINT).tag(sync=True)
    model_name = T.Unicode("").tag(sync=True)

    def __init__(self, model, model_name: str = "", **kwargs):
        self.model = model
        super().__init__(model_name=model_name, **kwargs)

    @T.validate("strokes")
    def _points(self, proposal):
        """Strokes as lists of (x, y) numbers; anything else a page might send is dropped, not raised."""
        clean = []
        for s in proposal["value"] or []:
            try:
                pts = [[float(x), float(y)] for x, y in s]
            except (TypeError, ValueError):
                continue
            if pts:
                clean.append(pts)
        return clean

    @T.observe("strokes")
    def _strokes_changed(self, _change):
        self.predict()

    @property
    def image(self):
        """What the model sees before preprocessing: the strokes, black on white, as `mnist-lab draw` inks them."""
        return drawing(self.strokes, self.size, self.pen)

    def predict(self):
        if not self.strokes:
            self.guess, self.probs = HINT, [0.0] * 10
            return None
        try:
            digit, conf, probs = classify(self.model, self.image)
        except LabError:  # only a speck: a hint, not a guess
            self.guess, self.probs = HINT, [0.0] * 10
            return None
        self.probs, self.guess = probs, f"Prediction: {digit}  ({100 * conf:.1f}%)"
        return digit

    def stroke(self, points):
        """Add one stroke, as the page does when the mouse button is released."""
        self.strokes = [*self.strokes, [list(p) for p in points]]

    def clear(self):
        self.strokes = []

    def use(self, model, model_name: str):
        self.model, self.model_name = model, model_name
        self.predict()


class PadBox(W.VBox):
    """The pad with a choice of model: the study's best by default, or any checkpoint found."""

    def __init__(self, choices: list[tuple[str, str]], start: str, default: bool = False):
        self._reverting = False
        self.choice = W.Dropdown(description="Model", options=choices, value=start,
                                 style={"description_width": "50px"}, layout=W.Layout(width="560px"))
        self.pad = Pad(load_model(start, default=default), _label(choices, start))
        self.choice.observe(self._chose, names="value")
        super().__init__([self.choice, self.pad])
        self.add_class("mnist-pad-box")

    def _chose(self, change):
        if self._reverting:
            return
        try:
            self.pad.use(load_model(change["new"]), _label(self.choice.options, change["new"]))
        except LabError as exc:  # the list goes back to the model the pad still uses, and says why
            self._reverting = True
            self.choice.value = change["old"]
            self._reverting = False
            self.pad.guess = f"not switched: {exc}"

    def _repr_mimebundle_(self, **kwargs):
        data = super()._repr_mimebundle_(**kwargs)
        data["text/plain"] = pad_line(self.pad.model_name)
        return data


class StaticPad:
    """pad() in batch mode: the line the pad shows where no frontend renders widgets, without the pad."""

    def __init__(self, model_name: str):
        self.model_name = model_name

    def _repr_mimebundle_(self, **kwargs):
        return {"text/plain": pad_line(self.model_name)}

    def __repr__(self):
        return pad_line(self.model_name)


def pad_line(model_name: str) -> str:
    return (f"drawing pad ({model_name}): needs a Jupyter frontend with widgets; "
            "elsewhere use `mnist-lab draw` or `mnist-lab predict`")


def _own_label(checkpoint: Path) -> str:
    """A checkpoint outside reports/ and runs/ (a notebook's own run in another folder): named by its result file."""
    r = result_of(checkpoint)
    if r is None or "final_test_acc" not in r:
        return paths.shown(checkpoint)
    return (f"this run: {r['iteration']:02d} {r['name']}, seed {r['seed']}{' (smoke run)' if r['smoke'] else ''}: "
            f"{r['final_test_acc']:.2f} %")


def _best() -> Path | None:
    """The study's best model's checkpoint, resolved; None where the study has no committed results."""
    try:
        return best_checkpoint().resolve()
    except LabError:
        return None


def _label(choices, value) -> str:
    return next((label for label, v in choices if v == value), str(value))


def checkpoint_of(target) -> Path:
    """A checkpoint given as itself (.pt) or as its run's result file (.json)."""
    p = Path(target)
    if p.suffix == ".json":
        try:
            return p.with_name(json.loads(p.read_text())["checkpoint"])
        except (OSError, ValueError, KeyError, TypeError):
            raise LabError(f"{paths.shown(p)} is not a readable result file; pass its .pt checkpoint instead") from None
    return p


def pad(target=None) -> PadBox | StaticPad:
    """The drawing pad. `target`: a checkpoint (.pt) or the result file of a run (what `record` returns);
    by default the study's best model. Every checkpoint in reports/ and runs/ is on its model list. In batch
    mode, only the line the pad shows there (StaticPad), from the model's own results folder; the model is
    still loaded, so that a damaged one is refused as the pad refuses it."""
    if target is None:
        start = _best()
        if start is None:
            raise LabError("the study has no committed results to take its best model from (restore them with "
                           "`git checkout -- reports/study`), or pass a checkpoint: pad('path/to/run.pt')")
    else:
        start = checkpoint_of(target)
    if start.is_dir():
        raise LabError(f"{paths.shown(start)} is a folder: pass a checkpoint (.pt) or a run's result file (.json)")
    if not start.is_file():
        raise LabError(f"no checkpoint {paths.shown(start)}: train one with `mnist-lab run`, or pass another")
    best = _best() if target is not None else start  # looked up once: it reads the study's result files
    default, start_key = best is not None and start.resolve() == best, str(start.resolve())
    if os.environ.get(BATCH_ENV) == "1":
        load_model(start_key, default=default)
        return StaticPad(_label(_offer(_sets_beside(start), best, start), start_key))
    try:
        sets = Catalog.load().sets
    except LabError:
        sets = []
    return PadBox(_offer(sets, best, start), start_key, default=default)


def _offer(sets, best: Path | None, start: Path) -> list[tuple[str, str]]:
    """The model list: (label, resolved checkpoint) for each run of `sets` but the committed smoke runs, and
    `start` first where it is none of them."""
    choices, seen = [], set()
    for s in sets:
        for r in s.runs:
            if r["smoke"] and s.folder.startswith("reports"):
                continue
            ck = Path(r["_path"]).with_name(r["checkpoint"])
            key = str(ck.resolve())
            if key in seen:
                continue
            seen.add(key)
            star = " (the study's best)" if best is not None and ck.resolve() == best else ""
            smoke = " (smoke run)" if r["smoke"] else ""
            data = "" if s.dataset.key == "mnist" else f" {s.dataset.name}"
            choices.append((f"{s.folder} {s.notebook},{data} {s.framework}, seed {r['seed']}{smoke}: "
                            f"{r['final_test_acc']:.2f} %{star}", key))
    start_key = str(start.resolve())
    if start_key not in seen:
        choices.insert(0, (_own_label(start), start_key))
    return choices


def _sets_beside(checkpoint: Path) -> list:
    """The run sets of the results folder in reports/ or runs/ that holds `checkpoint`, named as on the full
    model list; none where it lies elsewhere."""
    try:
        folders = default_folders()
    except LabError:
        return []
    here = {checkpoint.parent.resolve(), checkpoint.resolve().parent}
    mine = next((f for f in folders if f.resolve() in here), None)
    if mine is None:
        return []
    try:
        return Catalog.load(folders, only=mine).sets
    except LabError:
        return []
