"""`explore()`: a run explorer for Jupyter, built on ipywidgets.

Pick a results folder, a notebook, a framework, a recipe and a seed (or the mean over seeds): the held-out
accuracy, the per-epoch curves and the confusion matrix follow. A click on a cell of the matrix lists the
held-out digits behind it, each with the model's top probabilities. The Compare tab puts a second run set
beside the first: both curves on one axis, and the difference in accuracy judged against seed noise as the
reports judge it. Where no frontend renders widgets (nbval, papermill, a notebook viewer), the same
display is a static figure and a text summary; in batch mode ($MNIST_LAB_BATCH=1: a papermill or nbval
kernel, where nothing else is ever shown) explore() makes only that, from the one run set it shows.
"""
from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path

import ipywidgets as W
from matplotlib.figure import Figure

from ..config import BATCH_ENV
from ..errors import LabError
from ..reports.stats import verdict
from . import digits as D
from .catalog import MEAN, Catalog, default_folders

SHOWN = 40  # digits listed for one cell at most (a diagonal cell holds about a thousand)
CELL = W.Layout(width="54px", height="26px", padding="0", margin="1px")  # room for "1132.3", a mean count
HEAD = W.Layout(width="54px", height="26px", margin="1px")


class Picker(W.VBox):
    """Cascading choices: folder -> notebook -> framework -> recipe -> seed. `on_change()` after each."""

    def __init__(self, catalog: Catalog, on_change, start=None, label="Run"):
        self.catalog, self._on_change, self._busy = catalog, on_change, False
        style = {"description_width": "80px"}
        def wide():  # one Layout each: the recipe's is hidden where there is one recipe
            return W.Layout(width="460px")
        self.folder = W.Dropdown(description="Results", options=catalog.folders(), style=style, layout=wide())
        self.notebook = W.Dropdown(description="Notebook", style=style, layout=wide())
        self.framework = W.Dropdown(description="Framework", style=style, layout=wide())
        self.recipe = W.Dropdown(description="Recipe", style=style, layout=wide())
        self.seed = W.Dropdown(description="Seed", style=style, layout=wide())
        super().__init__([W.HTML(f"<b>{label}</b>"), self.folder, self.notebook, self.framework, self.recipe,
                          self.seed])
        for w, nxt in ((self.folder, self._notebooks), (self.notebook, self._frameworks),
                       (self.framework, self._recipes), (self.recipe, self._seeds), (self.seed, None)):
            w.observe(lambda change, nxt=nxt: self._changed(nxt), names="value")
        self._busy = True
        _fill(self.folder, catalog.folders(), start and start[0].folder)
        self._notebooks(start)
        self._busy = False

    # Each level refills the next; only the last one of a cascade calls on_change.
    def _changed(self, nxt):
        if self._busy:
            return
        self._busy = True
        try:
            if nxt:
                nxt()
        finally:
            self._busy = False
        self._on_change()

    def _notebooks(self, start=None):
        _fill(self.notebook, self.catalog.notebooks(self.folder.value), start and start[0].notebook)
        self._frameworks(start)

    def _frameworks(self, start=None):
        _fill(self.framework, self.catalog.frameworks(self.folder.value, self.notebook.value),
              start and start[0].framework)
        self._recipes(start)

    def _recipes(self, start=None):
        sets = self.catalog.recipes(self.folder.value, self.notebook.value, self.framework.value)
        self._sets = sets
        _fill(self.recipe, [(s.recipe, i) for i, s in enumerate(sets)],
              next((i for i, s in enumerate(sets) if s is start[0]), None) if start else None)
        self.recipe.layout.display = None if len(sets) > 1 else "none"
        self._seeds(start)

    def _seeds(self, start=None):
        rs = self.runset
        opts = [(f"seed {s}", s) for s in rs.seeds]
        _fill(self.seed, ([(f"mean over {len(rs.seeds)} seeds", -1)] if len(rs.seeds) > 1 else []) + opts,
              start[1] if start else None)

    def start(self):
        """What is chosen now, as a start for another picker."""
        return self.runset, self.chosen_seed if self.chosen_seed is not MEAN else -1

    @property
    def runset(self):
        return self._sets[self.recipe.value]

    @property
    def chosen_seed(self):
        return MEAN if self.seed.value == -1 else self.seed.value

    def describe(self) -> str:
        return describe(self.runset, self.chosen_seed)


def describe(rs, seed) -> str:
    """A run set and a seed (or MEAN) in a line: what the explorer names its choice by."""
    return f"{rs.folder} {rs.notebook} ({rs.framework}, {'mean over seeds' if seed is MEAN else f'seed {seed}'})"


def counterpart(catalog: Catalog, start):
    """What the Compare tab opens on: the same notebook in another folder (your run beside the committed ones,
    most seeds first, as their mean), else the notebook before it in the same folder (or after it)."""
    rs = start[0]
    others = [s for s in catalog.sets if s.notebook == rs.notebook and s.framework == rs.framework
              and s.folder != rs.folder]
    if others:
        best = max(others, key=lambda s: (s.folder.startswith("reports"), len(s.runs), not s.first["smoke"]))
        return best, -1 if len(best.runs) > 1 else best.seeds[0]
    near = [s for s in catalog.sets if s.folder == rs.folder and s.notebook != rs.notebook]
    if near:
        best = min(near, key=lambda s: (s.iteration > rs.iteration, abs(s.iteration - rs.iteration), -len(s.runs)))
        return best, -1 if len(best.runs) > 1 else best.seeds[0]
    return start


def _fill(dropdown: W.Dropdown, options, value=None):
    """New options, and the value `value` (None: the first option): ipywidgets leaves none chosen."""
    dropdown.options = options
    if options:
        first = options[0][1] if isinstance(options[0], tuple) else options[0]
        dropdown.value = first if value is None else value


class Explorer(W.VBox):
    def __init__(self, catalog: Catalog, start=None, data_dir=None):
        self.catalog, self.data_dir = catalog, data_dir
        self.shown: list[dict] = []  # the digits of the last clicked cell, as listed
        self.picker = Picker(catalog, self.refresh_all, start)  # the Compare tab's A is this choice too
        self.summary = W.HTML()
        self.curves = W.Image(format="png", layout=W.Layout(max_width="720px"))
        self.cells = [[W.Button(layout=CELL) for _ in range(10)] for _ in range(10)]
        corner = '<div style="font-size:10px;line-height:12px">true ↓<br>predicted →</div>'
        grid = [W.HTML(corner, layout=W.Layout(width="60px", height="26px", margin="1px"))] + \
               [W.HTML(f"<center><b>{p}</b></center>", layout=HEAD) for p in range(10)]
        for t in range(10):
            grid.append(W.HTML(f"<center><b>{t}</b></center>", layout=HEAD))
            for p in range(10):
                b = self.cells[t][p]
                b.add_class("mnist-cm-cell")
                b.add_class(f"mnist-cm-{t}-{p}")
                b.on_click(lambda _b, t=t, p=p: self.show_cell(t, p))
                grid.append(b)
        self.matrix = W.GridBox(grid, layout=W.Layout(grid_template_columns="62px repeat(10, 56px)"))
        self.digits_title = W.HTML("<i>Click a cell of the confusion matrix to see its digits.</i>")
        self.digits = W.HTML()
        self.digits.add_class("mnist-digits")
        run_tab = W.VBox([self.summary, self.curves,
                          W.HTML("<b>Confusion matrix</b> (rows: true class, columns: predicted class; "
                                 "held-out test set)"),
                          self.matrix, self.digits_title, self.digits])
        self.other = Picker(catalog, self.refresh_compare, counterpart(catalog, start or self.picker.start()),
                            label="Compare with")
        self.compare_plot = W.Image(format="png", layout=W.Layout(max_width="720px"))
        self.verdict = W.HTML()
        self.verdict.add_class("mnist-verdict")
        compare_tab = W.VBox([self.other, self.verdict, self.compare_plot])
        self.tabs = W.Tab([run_tab, compare_tab])
        self.tabs.set_title(0, "Run")
        self.tabs.set_title(1, "Compare")
        warn = (f"<small>{len(catalog.skipped)} result file(s) skipped: {catalog.skipped[0]}</small>"
                if catalog.skipped else "")
        super().__init__([self.picker, W.HTML(warn), self.tabs])
        self.add_class("mnist-explorer")
        self.refresh_all()

    # -- the Run tab
    def refresh(self):
        rs, seed = self.picker.runset, self.picker.chosen_seed
        self.curves.value = _png(curves_figure([(self.picker.describe(), rs.history(seed))]))
        conf = rs.confusion(seed)
        wrong_max = max([conf[t][p] for t in range(10) for p in range(10) if t != p] + [1])
        for t in range(10):
            for p in range(10):
                v, b = conf[t][p], self.cells[t][p]
                b.description = f"{v:g}" if v == int(v) else f"{v:.1f}"
                b.tooltip = (f"true {rs.dataset.label(t)}, predicted {rs.dataset.label(p)}: {v:g} image(s)"
                             + (" per seed" if seed is MEAN else ""))
                level = v / max(1, rs.test_size() / 10) if t == p else v / wrong_max
                b.style.button_color = _shade(level, good=t == p) if v else "#ffffff"
        self.shown, self.digits.value = [], ""
        self.digits_title.value = "<i>Click a cell of the confusion matrix to see its digits.</i>"
        # the summary last: a page that shows the new summary shows the new matrix too (messages keep their order)
        acc = _acc(rs.accuracy(seed))
        r, trained = rs.pick(seed)[0], rs.epochs_trained(seed)
        self.summary.value = (
            f'<div class="mnist-summary"><b>{html.escape(rs.notebook)}</b> ({rs.framework}, {html.escape(rs.recipe)}): '
            f"held-out test accuracy <b>{acc}</b> on {rs.test_size():,} test images; {r['params']:,} parameters, "
            f"{trained} epoch{'s' if trained != '1' else ''} trained; made on {html.escape(rs.where(seed))}</div>")

    def show_cell(self, true: int, pred: int) -> list[dict]:
        """List the held-out digits of confusion cell (true, pred) of the chosen run(s)."""
        rs, seed = self.picker.runset, self.picker.chosen_seed
        try:
            images, labels = D.test_set(self.data_dir or rs.data_dir(), rs.dataset.key)
        except LabError as exc:  # in a button's callback: said on the page, not in a log nobody reads
            self.shown, self.digits.value = [], ""
            self.digits_title.value = f"<b>{html.escape(str(exc))}</b>"
            return []
        found = rs.cell(true, pred, labels, seed)
        runs = len(rs.pick(seed))
        items = [{"index": i, "true": true, "pred": pred, "in_runs": k} for i, k in found[:SHOWN]]
        probs, trouble = None, ""
        if items:
            try:
                probs = D.probabilities(rs.checkpoints(seed), images[[it["index"] for it in items]])
            except (LabError, OSError) as exc:
                trouble = f"<br><i>no probabilities: {html.escape(str(exc))}</i>"
        for j, it in enumerate(items):
            it["probs"] = None if probs is None else [float(p) for p in probs[j]]
        self.shown = items
        name = rs.dataset.label
        what = "correctly classified" if true == pred else f"predicted {name(pred)}"
        many = f", showing {len(items)}" if len(found) > len(items) else ""
        per = f" (in any of the {runs} runs; mean probabilities of their models)" if runs > 1 else ""
        self.digits_title.value = (f"<b>True {name(true)}, {what}: {len(found)} held-out digit(s){many}{per}</b>"
                                   if found else f"<b>True {name(true)}, {what}: no held-out digit</b>") + trouble
        self.digits.value = D.gallery(items, images, runs, name)
        return items

    # -- the Compare tab
    def refresh_compare(self):
        a, b = self.picker, self.other
        acc_a, acc_b = a.runset.accuracy(a.chosen_seed), b.runset.accuracy(b.chosen_seed)
        self.verdict.value = (
            f"<b>A</b> {html.escape(a.describe())}: {_acc(acc_a)}<br><b>B</b> {html.escape(b.describe())}: "
            f"{_acc(acc_b)}<br><b>B − A</b>: {judge(acc_b, acc_a)}{_unlike(a.runset, b.runset)}")
        self.compare_plot.value = _png(curves_figure([
            ("A " + a.describe(), a.runset.history(a.chosen_seed)),
            ("B " + b.describe(), b.runset.history(b.chosen_seed))]))

    def refresh_all(self):
        self.refresh()
        self.refresh_compare()

    def _repr_mimebundle_(self, **kwargs):
        """The widget for a frontend that renders widgets; a figure and a text summary for the rest."""
        data = super()._repr_mimebundle_(**kwargs)
        data.update(static_display(self.picker.runset, self.picker.chosen_seed))
        return data


class StaticExplorer:
    """explore() in batch mode: the explorer's static display of one run set, without its widgets."""

    def __init__(self, runset, seed):
        self.runset, self.seed = runset, seed

    def _repr_mimebundle_(self, **kwargs):
        return static_display(self.runset, self.seed)

    def __repr__(self):
        return summary_line(self.runset, self.seed)


def static_display(rs, seed) -> dict:
    """What a viewer without widgets shows of a run set and seed: a figure (PNG, base64) and a line."""
    return {"image/png": base64.b64encode(_png(static_figure(describe(rs, seed), rs, seed))).decode(),
            "text/plain": summary_line(rs, seed)}


def summary_line(rs, seed) -> str:
    return (f"{describe(rs, seed)}: held-out test accuracy {_acc(rs.accuracy(seed))}, {rs.first['params']:,} "
            "parameters; explore() needs a Jupyter frontend with widgets")


def judge(b, a) -> str:
    """B − A as the reports judge a difference (stats.verdict); one run against several with the several runs'
    seed spread, as a remake is judged against the committed runs."""
    return verdict(b, a, "points", single_like_others=True)


def _unlike(a, b) -> str:
    """What makes two run sets' accuracies incomparable, said beside the verdict."""
    notes = []
    if a.first["smoke"] != b.first["smoke"] or a.test_size() != b.test_size():
        notes.append(f"A is scored on {a.test_size():,} test images{' (a smoke run)' if a.first['smoke'] else ''}, "
                     f"B on {b.test_size():,}{' (a smoke run)' if b.first['smoke'] else ''}: a smoke run checks the "
                     "code, its accuracy says nothing about the network")
    if a.dataset != b.dataset:
        notes.append(f"A is {a.dataset.name}, B {b.dataset.name}: different data sets")
    return "".join(f"<br><i>Note: {n}.</i>" for n in notes)


def _acc(acc) -> str:
    """An accuracy in percent: mean ± std (n) over seeds, as the reports write it; the bare number for one run."""
    m, s, n = acc
    return f"{m:.2f} ± {s:.2f} % (n={n})" if n > 1 else f"{m:.2f} %"


def _shade(level: float, good: bool) -> str:
    level = max(0.0, min(1.0, level))
    base = (46, 139, 87) if good else (214, 69, 65)
    mix = [round(255 + (c - 255) * (0.15 + 0.85 * level)) for c in base]
    return "#%02x%02x%02x" % tuple(mix)


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return buf.getvalue()


def curves_figure(series) -> Figure:
    """Held-out accuracy and losses per epoch for [(label, history)]; a mean history is drawn with the
    band between its seeds' lowest and highest accuracy."""
    fig = Figure(figsize=(9, 3.2))
    acc, loss = fig.subplots(1, 2)
    for label, hist in series:
        ep = [h["epoch"] for h in hist]
        line, = acc.plot(ep, [h["test_acc"] for h in hist], marker="o", ms=3, label=label)
        if "test_acc_min" in hist[0]:
            acc.fill_between(ep, [h["test_acc_min"] for h in hist], [h["test_acc_max"] for h in hist],
                             color=line.get_color(), alpha=0.15)
        if all("test_loss" in h for h in hist):
            loss.plot(ep, [h["test_loss"] for h in hist], color=line.get_color(), marker="o", ms=3)
        if all("train_loss" in h for h in hist):
            loss.plot(ep, [h["train_loss"] for h in hist], color=line.get_color(), ls="--", alpha=0.7)
    acc.set_title("held-out test accuracy (%)")
    loss.set_title("loss: held-out (solid), training (dashed)")
    for ax in (acc, loss):
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
    if len(series) > 1:
        acc.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def static_figure(title: str, rs, seed) -> Figure:
    """What a viewer without widgets shows: the curves and the confusion matrix, with the accuracy above."""
    fig = Figure(figsize=(11, 4))
    acc, cm = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.3, 1]})
    hist = rs.history(seed)
    ep = [h["epoch"] for h in hist]
    acc.plot(ep, [h["test_acc"] for h in hist], marker="o", ms=3, label="held-out test")
    acc.plot(ep, [h["train_acc"] for h in hist], marker="o", ms=3, label="training")
    acc.set_xlabel("epoch")
    acc.xaxis.get_major_locator().set_params(integer=True)
    acc.set_title("accuracy (%)")
    acc.grid(alpha=0.3)
    acc.legend(fontsize=8)
    conf = rs.confusion(seed)
    cm.imshow([[0 if t == p else v for p, v in enumerate(row)] for t, row in enumerate(conf)], cmap="Reds")
    for t in range(10):
        for p in range(10):
            v = conf[t][p]
            if v:
                cm.text(p, t, f"{v:g}" if v == int(v) else f"{v:.1f}", ha="center", va="center", fontsize=6.5,
                        color="#2e8b57" if t == p else "black")
    cm.set_xticks(range(10))
    cm.set_yticks(range(10))
    cm.set_xlabel("predicted")
    cm.set_ylabel("true")
    cm.set_title("confusion matrix (mistakes shaded)")
    fig.suptitle(f"{title}: held-out test accuracy {_acc(rs.accuracy(seed))}", fontsize=10)
    fig.tight_layout()
    return fig


def explore(target=None, data_dir=None) -> Explorer | StaticExplorer:
    """The explorer. `target`: a result file (what `record` returns: the explorer opens on that run, beside
    every committed series to compare with), a results folder (only its runs), or None (every series'
    committed results in reports/ and your runs in runs/). In batch mode, only what it opens on, as its static
    display (StaticExplorer), read from the folder of that run set alone."""
    folders, start = _sources(target)
    batch = os.environ.get(BATCH_ENV) == "1"
    if batch:
        try:
            catalog = Catalog.load(folders, only=folders[0] if start is None else start.parent)
            return StaticExplorer(*(catalog.first() if start is None else catalog.find(start)))
        except LabError:  # that folder alone is not enough: read them all, to raise (or show) what the explorer does
            pass
    catalog = Catalog.load(folders)
    opening = None if start is None else catalog.find(start)
    if batch:
        return StaticExplorer(*(opening or catalog.first()))
    return Explorer(catalog, start=opening, data_dir=data_dir)


def _sources(target) -> tuple[list[Path], Path | None]:
    """The results folders explore(target) reads, and the result file it opens on (None: the first run set)."""
    if target is None:
        return default_folders(), None
    p = Path(target)
    if p.is_dir():
        return [p / "results" if (p / "results").is_dir() else p], None
    if p.suffix != ".json" or not p.is_file():
        raise LabError(f"explore() takes a result file (.json), a results folder or nothing; {target} is neither")
    try:
        folders = default_folders()
    except LabError:
        folders = []
    return [f for f in folders if f.resolve() != p.parent.resolve()] + [p.parent], p
