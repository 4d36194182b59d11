"""Every figure of the reports, one function each, drawn the same way: whole-number ticks on every
per-epoch axis, one colour per notebook (by its number) and one per framework in every figure, value
labels beside their error bars, and PNG bytes that depend on the data alone."""
from __future__ import annotations

import io
import statistics
from pathlib import Path

import numpy as np

from ..errors import LabError
from ..datasets import MNIST, of_result
from ..fetch import load_arrays
from ..io import atomic_write_bytes
from .rows import describe

# A framework keeps its colour in every figure; notebooks take matplotlib's ten in turn by number.
FRAMEWORK_COLOURS = {"pytorch": "#1b9e77", "keras": "#d95f02", "lightning": "#7570b3", "numpy": "#e7298a"}

MAX_MISTAKES_SHOWN = 100  # of a data set with hundreds of mistakes per run: a picture, not a wall


def _pyplot():
    import matplotlib  # heavy, and only the figures need it: a page's text is written without

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def notebook_colour(it: int) -> str:
    return f"C{(it - 1) % 10}"


def value_colour(key: str, value, fallback: str) -> str:
    """A sweep value's colour: a framework's own, else `fallback` (the line's place in its figure)."""
    return FRAMEWORK_COLOURS.get(str(value), fallback) if key == "framework" else fallback


def _epochs(ax):
    """An axis that counts epochs: ticks on whole numbers only."""
    from matplotlib.ticker import MaxNLocator  # matplotlib: only with a figure (see _pyplot)

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def save(fig, path: Path):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})  # no version stamp: stable bytes
    atomic_write_bytes(path, buf.getvalue())
    _pyplot().close(fig)


def _mean_per_epoch(row, key):
    n_ep = min(len(run["history"]) for run in row["runs"])  # early stopping: the epochs every seed has
    return [statistics.fmean(run["history"][e][key] for run in row["runs"]) for e in range(n_ep)]


# ---- the study --------------------------------------------------------------------------------------
def study_curves(rows, folder: Path, prefix: str = "") -> list[str]:
    """Held-out accuracy per epoch of each row, and parameters against final held-out accuracy."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    for r in rows:
        mean = _mean_per_epoch(r, "test_acc")
        ep = list(range(1, len(mean) + 1))
        # A one-epoch run is a single point: draw it large and on top, or the lines hide it.
        single = len(ep) == 1
        ax.plot(ep, mean, marker="D" if single else "o", ms=8 if single else 3, zorder=3 if single else 2,
                color=notebook_colour(r["iteration"]),
                label=f"it {r['iteration']} ({r['params']:,} params{', 1 epoch' if single else ''})")
    ax.set(xlabel="epoch", ylabel="held-out test accuracy (%)", title="Held-out test accuracy per epoch (mean over seeds)")
    _epochs(ax)
    lo = min(min(statistics.fmean(run["history"][0]["test_acc"] for run in r["runs"]) for r in rows), 97)
    ax.set_ylim(max(lo - 0.5, 0), 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save(fig, folder / f"{prefix}test_acc_per_epoch.png")

    crowd = crowded(rows)
    fig, axes = plt.subplots(1, 2 if crowd else 1, figsize=(12 if crowd else 7, 5), squeeze=False,
                             gridspec_kw={"width_ratios": [3, 2]} if crowd else None)
    for r in rows:
        axes[0][0].errorbar(r["params"], r["final_mean"], yerr=0 if r["n"] < 2 else r["final_std"], fmt="o", capsize=4,
                            color=notebook_colour(r["iteration"]),
                            label=f"it {r['iteration']}: {r['params']:,} params, {r['final_mean']:.2f}%")
    axes[0][0].legend(fontsize=8, loc="lower left")
    axes[0][0].set(xlabel="parameters", ylabel="final held-out test accuracy (%)",
                   title="Parameters vs held-out accuracy (mean ± std over seeds)")
    axes[0][0].grid(alpha=0.3)
    if crowd:
        _zoom(axes[0][1], crowd)
    fig.tight_layout()
    save(fig, folder / f"{prefix}params_vs_acc.png")
    return [f"{prefix}test_acc_per_epoch.png", f"{prefix}params_vs_acc.png"]


def crowded(rows, within: float = 0.02) -> list[dict]:
    """The largest group of rows whose parameter counts lie within `within` (a fraction) of each other:
    drawn over the whole range they sit on one another (the study's iterations 3, 5, 6 and 7 lie within 50
    parameters of 18.4k), so they get a panel of their own. [] when no two rows are that close."""
    ordered = sorted(rows, key=lambda r: r["params"])
    best = []
    for i, r in enumerate(ordered):
        group = [q for q in ordered[i:] if q["params"] <= r["params"] * (1 + within)]
        best = group if len(group) > len(best) else best
    return best if len(best) > 1 else []


def _zoom(ax, rows):
    """The crowded rows alone, each labelled with its iteration beside its point. Rows with the same count
    are set side by side (the axis says so); labels are spread apart vertically where they would touch."""
    counts = sorted({r["params"] for r in rows})
    span = max(counts[-1] - counts[0], 40)
    step = span / 12  # the sideways offset between rows of one count
    xs = {}
    for count in counts:
        same = sorted((r for r in rows if r["params"] == count), key=lambda r: r["iteration"])
        for k, r in enumerate(same):
            xs[r["iteration"]] = count + (k - (len(same) - 1) / 2) * step
    for r in rows:
        ax.errorbar(xs[r["iteration"]], r["final_mean"], yerr=0 if r["n"] < 2 else r["final_std"], fmt="o", capsize=4,
                    color=notebook_colour(r["iteration"]))
    ax.set_xlim(counts[0] - span / 2, counts[-1] + span / 2)
    ax.set_xticks(counts, [f"{c:,}" for c in counts])
    low = min(r["final_mean"] - (r["final_std"] if r["n"] > 1 else 0) for r in rows)
    high = max(r["final_mean"] + (r["final_std"] if r["n"] > 1 else 0) for r in rows)
    pad = max(high - low, 0.1) * 0.15
    ax.set_ylim(low - pad, high + pad)
    gap = (high - low + 2 * pad) * 0.06  # the least vertical distance between two labels
    placed = []
    for r in sorted(rows, key=lambda r: r["final_mean"]):
        y = max([r["final_mean"]] + [p + gap for p in placed])
        placed.append(y)
        ax.annotate(f"it {r['iteration']}", (xs[r["iteration"]], r["final_mean"]), xytext=(xs[r["iteration"]] + step / 3, y),
                    fontsize=8, va="center", color=notebook_colour(r["iteration"]))
    ax.set(xlabel="parameters (equal counts set side by side)",
           title=f"Close-up: {len(rows)} networks within 2% of each other's size")
    ax.grid(alpha=0.3)


def best_views(best, folder: Path, data_dir) -> list[str]:
    """Confusion matrix (summed over seeds) and the misclassified digits of the best iteration's first seed."""
    plt = _pyplot()
    conf = np.sum([np.array(r["confusion"]) for r in best["runs"] if "confusion" in r], axis=0)
    if conf.ndim != 2:
        return []
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    ax.imshow(np.log1p(conf), cmap="Blues")
    for i in range(10):
        for j in range(10):
            ax.text(j, i, str(conf[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if i == j else "black")
    ax.set(xticks=range(10), yticks=range(10), xlabel="predicted", ylabel="true",
           title=f"Iteration {best['iteration']}: confusion on the 10,000 test images\n"
                 f"(counts summed over {best['n']} seed(s))")
    run = best["runs"][0]
    ds = of_result(run)
    if ds.classes != MNIST.classes:  # MNIST's classes are the digits the ticks already show
        ax.set_xticklabels([ds.label(c) for c in range(10)], rotation=45, ha="right", fontsize=7)
        ax.set_yticklabels([ds.label(c) for c in range(10)], fontsize=7)
    fig.tight_layout()
    save(fig, folder / "confusion_best.png")
    made = ["confusion_best.png"]
    test = _test_images(data_dir, ds.key)
    if test is None:
        return made  # no data here: the confusion matrix still stands
    images, _ = test
    wrong = run["mistakes"]
    if ds.classes == MNIST.classes:
        titles, what = [f"{pred} (true {true})" for _, pred, true in wrong], f"all {len(wrong)}"
    else:  # hundreds of mistakes: the first ones, in test-set order, with short class names
        wrong = wrong[:MAX_MISTAKES_SHOWN]
        titles = [f"{ds.classes[pred][:7]}\n(true {ds.classes[true][:7]})" for _, pred, true in wrong]
        what = f"the first {len(wrong)} of {len(run['mistakes'])}"
    fig = digit_grid([images[idx] for idx, _, _ in wrong], titles, cols=10, size=1.1, fontsize=7)
    fig.suptitle(f"Iteration {best['iteration']}, seed {run['seed']}: {what} misclassified test images "
                 "(predicted, true)" if ds.classes != MNIST.classes else
                 f"Iteration {best['iteration']}, seed {run['seed']}: {what} misclassified test digits "
                 "(predicted, true)", fontsize=9)
    fig.tight_layout()
    save(fig, folder / "mistakes_best.png")
    return made + ["mistakes_best.png"]


def _test_images(data_dir, dataset="mnist"):
    """(images, labels) of the held-out set of `dataset` as NumPy arrays, or None where it is not on disk: a
    report never fetches data (`mnist-lab data` does), it is written without the digits then."""
    try:
        return load_arrays("test", data_dir, fetch=False, dataset=dataset)
    except LabError:
        return None


def digit_grid(images, titles, cols=6, size=1.6, fontsize=9):
    """Digits in a grid, each with its title (used by the notebooks and the report). It draws with the
    backend it finds: in a notebook, the notebook's own (the report's figures have set Agg before)."""
    import matplotlib.pyplot as plt  # heavy, and only the figures need it

    rows = max(1, -(-len(images) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * size, rows * size * 1.15), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, title in zip(axes.flat, images, titles):
        ax.imshow(img, cmap="gray_r")
        ax.set_title(title, fontsize=fontsize)
    fig.tight_layout()
    return fig


# ---- a comparison of notebooks --------------------------------------------------------------------
def compare_figures(own: dict, sweeps, folder: Path, data_dir) -> list[str]:
    """A compare series' figures: training loss and held-out accuracy per epoch, time, final accuracy,
    each sweep, and sample predictions with right and wrong marked."""
    plt = _pyplot()
    made = []
    items = sorted(own.items())
    fixed = own_setting(own, sweeps)
    for key, name, ylabel, title, log in [
            ("train_loss", "train_loss.png", "training loss (mean per image)", "Training loss per epoch", True),
            ("test_acc", "test_acc_per_epoch.png", "held-out test accuracy (%)", "Held-out test accuracy per epoch",
             False)]:
        fig, ax = plt.subplots(figsize=(8, 5))
        for it, row in items:
            mean = _mean_per_epoch(row, key)
            ax.plot(range(1, len(mean) + 1), mean, marker="o", ms=3, color=notebook_colour(it),
                    label=f"{it} {row['name']}")
        ax.set(xlabel="epoch", ylabel=ylabel, title=f"{title} (mean over seeds){fixed}")
        if log:
            ax.set_yscale("log")
        else:
            ax.set_ylim(max(min(ax.get_ylim()[0], 97) - 0.5, 80), 100)
        _epochs(ax)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        save(fig, folder / name)
        made.append(name)

    labels = [f"{it} {row['name']}" for it, row in items]
    colours = [notebook_colour(it) for it, _ in items]
    desc = [describe(row) for _, row in items]
    spread = lambda d, k: 0 if d[k][2] < 2 else d[k][1]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.5))
    a1.barh(labels, [d["total"][0] for d in desc], xerr=[spread(d, "total") for d in desc], capsize=3, color=colours)
    a1.set(xlabel="seconds", title=f"Training time per run (mean ± std over seeds){fixed}")
    a2.barh(labels, [d["sec"][0] for d in desc], xerr=[spread(d, "sec") for d in desc], capsize=3, color=colours)
    a2.set(xlabel="seconds", title="Seconds per epoch (training + evaluation)")
    for ax in (a1, a2):
        ax.invert_yaxis()
        ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    save(fig, folder / "time.png")
    made.append("time.png")

    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.barh(labels, [d["acc"][0] for d in desc], xerr=[spread(d, "acc") for d in desc], capsize=3, color=colours)
    right = max(d["acc"][0] + spread(d, "acc") for d in desc)
    pad = 0.02 * (100 - (min(d["acc"][0] for d in desc) - 1))
    for i, d in enumerate(desc):  # beyond the end of its error bar, never across it
        ax.text(d["acc"][0] + spread(d, "acc") + pad, i, f"{d['acc'][0]:.2f}", va="center", fontsize=8)
    ax.set_xlim(min(d["acc"][0] for d in desc) - 1, max(100, right + 12 * pad))
    ax.invert_yaxis()
    ax.set(xlabel="held-out test accuracy (%)", title=f"Final held-out accuracy (mean ± std over seeds){fixed}")
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    save(fig, folder / "final_acc.png")
    made.append("final_acc.png")

    for it, key, pairs, own_value in sweeps:
        if len(pairs) < 2:
            continue
        values = [v for v, _ in pairs]
        d = [describe(row) for _, row in pairs]
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
        # positive numbers on a log axis (batch sizes, learning rates), anything else evenly spaced
        log = all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in values)
        xs = values if log else list(range(len(values)))
        colour = notebook_colour(it)
        if log:  # amounts: a line through them shows the trend
            a1.errorbar(xs, [x["acc"][0] for x in d], yerr=[spread(x, "acc") for x in d], marker="o", capsize=3,
                        color=colour)
            a2.plot(xs, [x["sec"][0] for x in d], marker="o", color=colour)
        else:  # choices (frameworks): nothing lies between two of them, so no line joins them; accuracy as
            # points (bars would have to start at zero, where every framework looks alike), time as bars
            shades = [value_colour(key, v, colour) for v in values]
            for x, row, shade in zip(xs, d, shades):
                a1.errorbar([x], [row["acc"][0]], yerr=[spread(row, "acc")], fmt="o", ms=7, capsize=4, color=shade)
            a1.set_xlim(-0.6, len(xs) - 0.4)
            a2.bar(xs, [x["sec"][0] for x in d], yerr=[spread(x, "sec") for x in d], capsize=3, color=shades)
        for ax, ylabel in ((a1, "held-out test accuracy (%)"), (a2, "seconds per epoch")):
            ax.set(xscale="log" if log else "linear", xlabel=key, ylabel=ylabel)
            ax.set_xticks(xs, [str(v) for v in values])
            ax.grid(alpha=0.3)
        fig.suptitle(f"Notebook {it} ({pairs[0][1]['name']}): the effect of {key} (mean ± std over seeds)")
        fig.tight_layout()
        name = f"sweep_{it}_{key}.png"
        save(fig, folder / name)
        made.append(name)
        if not log:  # choices rather than amounts (frameworks): how each converges, epoch by epoch
            made.append(convergence(it, key, pairs, folder))
    return made + samples(items, folder, data_dir)


def own_setting(own: dict, sweeps) -> str:
    """What the figures of each notebook's own recipe hold fixed that a sweep varies, as a title's second
    line: "framework pytorch only ..." where every notebook sweeps one key from one own value (a frameworks
    series: its accuracy figure shows PyTorch alone, the sweeps' figures the rest), else "each notebook's own
    recipe ..." where some notebook has a sweep, else nothing."""
    swept = [(it, key, str(own_value)) for it, key, pairs, own_value in sweeps if len(pairs) > 1]
    if not swept:
        return ""
    kinds = {(key, value) for _, key, value in swept}
    if len(kinds) == 1 and {it for it, _, _ in swept} >= set(own):
        (key, value), = kinds
        return f"\n{key} {value} only: the sweep figures show the others"
    return "\neach notebook's own recipe: the sweep figures show the others"


def convergence(it, key, pairs, folder: Path) -> str:
    """Training loss and held-out accuracy per epoch, and accuracy against training time, for each value
    of a sweep (mean over seeds, up to the epochs every seed trained)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for i, (value, row) in enumerate(pairs):
        mean = {k: _mean_per_epoch(row, k) for k in ("train_loss", "test_acc", "seconds")}
        ep = list(range(1, len(mean["seconds"]) + 1))
        elapsed = [sum(mean["seconds"][:e]) for e in ep]
        colour = value_colour(key, value, f"C{i}")
        axes[0].plot(ep, mean["train_loss"], marker="o", ms=3, color=colour, label=str(value))
        axes[1].plot(ep, mean["test_acc"], marker="o", ms=3, color=colour, label=str(value))
        axes[2].plot(elapsed, mean["test_acc"], marker="o", ms=3, color=colour, label=str(value))
    axes[0].set(xlabel="epoch", ylabel="training loss (mean per image)", yscale="log", title="Training loss")
    axes[1].set(xlabel="epoch", ylabel="held-out test accuracy (%)", title="Held-out accuracy per epoch")
    axes[2].set(xlabel="seconds of training (evaluation included)", ylabel="held-out test accuracy (%)",
                title="Held-out accuracy against time")
    for ax in axes[:2]:
        _epochs(ax)
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, title=key)
    fig.suptitle(f"Notebook {it} ({pairs[0][1]['name']}): convergence by {key} (mean over seeds)")
    fig.tight_layout()
    name = f"converge_{it}_{key}.png"
    save(fig, folder / name)
    return name


def samples(items, folder: Path, data_dir) -> list[str]:
    """Twelve held-out digits that some network gets wrong, as each network (first seed) labels them:
    green when right, red when wrong. Read from the result files' mistakes, no model is rerun."""
    test = _test_images(data_dir, of_result(items[0][1]["runs"][0]).key) if items else None
    if test is None:
        return []  # no data here: the other figures still stand
    plt = _pyplot()
    images, labels = test
    wrong = {it: {m[0]: m[1] for m in min(row["runs"], key=lambda r: r["seed"])["mistakes"]} for it, row in items}
    # the first twelve test images (in test-set order) that at least one network gets wrong, one per
    # network in turn, so each network's errors are shown
    picks, pools = [], [sorted(w) for w in wrong.values()]
    while len(picks) < 12 and any(pools):
        for pool in pools:
            while pool and pool[0] in picks:
                pool.pop(0)
            if pool and len(picks) < 12:
                picks.append(pool.pop(0))
    picks.sort()
    fig, axes = plt.subplots(len(items), len(picks), figsize=(len(picks) * 0.9, len(items) * 1.0), squeeze=False)
    for r, (it, row) in enumerate(items):
        for c, idx in enumerate(picks):
            ax = axes[r][c]
            pred = wrong[it].get(idx, int(labels[idx]))
            ax.imshow(images[idx], cmap="gray_r")
            ax.set_xticks([])
            ax.set_yticks([])
            ok = pred == int(labels[idx])
            ax.set_title(str(pred), fontsize=9, color="green" if ok else "red", pad=2)
            for spine in ax.spines.values():
                spine.set_edgecolor("green" if ok else "red")
            if c == 0:
                ax.set_ylabel(f"{it} {row['name']}", fontsize=7, rotation=0, ha="right", va="center")
    fig.suptitle("Held-out digits some network gets wrong: each network's label (first seed), green right, red wrong; "
                 f"true labels {' '.join(str(int(labels[i])) for i in picks)}", fontsize=8)
    fig.tight_layout()
    save(fig, folder / "samples.png")
    return ["samples.png"]


# ---- a steps series -----------------------------------------------------------------------------------
def goal_epochs(own: dict, goal: dict, folder: Path) -> list[str]:
    """goal_epochs.png: held-out accuracy per epoch of every seed of every step, the goal's line and its
    last epochs marked, zoomed to where the goal is decided."""
    its = sorted(own)
    if not its:
        return []
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(its), figsize=(3.6 * len(its), 3.4), sharey=True, squeeze=False)
    for ax, it in zip(axes[0], its):
        for r in own[it]["runs"]:
            ep = [h["epoch"] for h in r["history"]]
            ax.plot(ep, [h["test_acc"] for h in r["history"]], lw=1, marker="o", ms=2, label=f"seed {r['seed']}")
        last = len(own[it]["runs"][0]["history"])
        ax.axhline(goal["acc"], color="k", lw=0.8, ls="--")
        ax.axvspan(last - goal["last"] + 0.5, last + 0.5, color="0.9", zorder=0)
        ax.set_title(f"step {it}: {own[it]['name']} ({own[it]['params']:,})", fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_xlim(0.5, last + 0.5)
        _epochs(ax)
        ax.set_ylim(goal["acc"] - 1.0, min(100.0, goal["acc"] + 0.4))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("held-out test accuracy (%)")
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"every seed, every epoch; dashed: {goal['acc']:g} %, shaded: the last {goal['last']} epochs the goal "
                 "judges", fontsize=9)
    fig.tight_layout()
    save(fig, Path(folder) / "goal_epochs.png")
    return ["goal_epochs.png"]
