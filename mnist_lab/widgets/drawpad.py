"""`pad()`: draw a digit with the mouse inside the notebook and see the class probabilities after each stroke.

A small anywidget (drawpad.js): the page sends each finished stroke as canvas points, and the kernel inks the
strokes into an image (digitize.drawing, shared with `mnist-lab draw`) and classifies it with the same
preprocessing as `mnist-lab predict`. Since the kernel never needs the canvas's pixels, the pad works, and is
tested, without a browser: `Pad.stroke(points)` is what the page does.
"""
from __future__ import annotations

import json
from pathlib import Path

import anywidget
import ipywidgets as W
import traitlets as T

from .. import paths
from ..checkpoint import load_model, result_of
from ..digitize import PAD, PEN, classify, drawing
from ..errors import LabError
from ..reports import best_checkpoint
from .catalog import Catalog

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
        data["text/plain"] = (f"drawing pad ({self.pad.model_name}): needs a Jupyter frontend with widgets; "
                              "elsewhere use `mnist-lab draw` or `mnist-lab predict`")
        return data


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


def pad(target=None) -> PadBox:
    """The drawing pad. `target`: a checkpoint (.pt) or the result file of a run (what `record` returns);
    by default the study's best model. Every checkpoint in reports/ and runs/ is on its model list."""
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
    choices, seen = [], set()
    try:
        sets = Catalog.load().sets
    except LabError:
        sets = []
    best = _best() if target is not None else start  # looked up once: it reads the study's result files
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
    return PadBox(choices, start_key, default=best is not None and start.resolve() == best)
