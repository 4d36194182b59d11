"""`mnist-lab report`: README.md and plots in the reports folder, from result files only.

The same result files always give the same report: no timestamps, sorted inputs, fixed formatting.
"""
from __future__ import annotations

import math
import os
import statistics
from collections import defaultdict
from pathlib import Path

from .blocks import layer_counts
from .config import recipe_hash
from .errors import LabError
from .io import atomic_write_bytes, atomic_write_text
from .iterations import EPOCHS, LR, STUDY
from .results import load_results

def _recipe(r) -> tuple:
    c = r.get("config", {})  # epochs planned: early-stopped seeds of one recipe stay one row
    return (r.get("epochs_planned", r["epochs"]), r["batch_size"], r["lr"], c.get("val_fraction", 0.0),
            c.get("scheduler", "step"))


def _group(r) -> tuple:
    """Runs that differ only in their seed: the same full recipe (network, settings, device, threads
    and vector instructions), or for files from before recipes were recorded, the same settings."""
    if isinstance(r.get("recipe"), dict):
        return _recipe(r) + (recipe_hash({k: v for k, v in r["recipe"].items() if k != "seed"}),)
    kind = r["device"].split(":")[0]
    return _recipe(r) + (kind, r.get("threads") if kind == "cpu" else None)


def _is_study_recipe(r) -> bool:
    return _recipe(r) == (EPOCHS.get(r["iteration"]), 64, LR.get(r["iteration"]), 0.0, "step")


def _mean_std(xs):
    m = statistics.fmean(xs)
    return m, (statistics.stdev(xs) if len(xs) > 1 else float("nan"))


def _pm(m, s, n, digits=2):
    return f"{m:.{digits}f} ± {s:.{digits}f} (n={n})" if n > 1 else f"{m:.{digits}f} (n=1)"


def summarize(results: list[dict]) -> list[dict]:
    """One row per (iteration, recipe): the means of its runs."""
    groups = defaultdict(list)
    for r in results:
        groups[(r["iteration"], _group(r))].append(r)
    rows = []
    for (it, recipe), runs in sorted(groups.items()):
        final = [r["final_test_acc"] for r in runs]
        best = [max(h["test_acc"] for h in r["history"]) for r in runs]
        train = [r["final_train_acc"] for r in runs]
        sec = [statistics.fmean(h["seconds"] for h in r["history"]) for r in runs]
        m, s = _mean_std(final)
        rows.append({
            "iteration": it, "name": runs[0]["name"], "runs": runs, "n": len(runs),
            "seeds": sorted(r["seed"] for r in runs), "params": runs[0]["params"],
            "layers": layer_counts(runs[0]["blocks"]), "epochs": recipe[0], "study_recipe": _is_study_recipe(runs[0]),
            "final_mean": m, "final_std": s, "best_mean": statistics.fmean(best),
            "train_mean": statistics.fmean(train), "sec_per_epoch": statistics.fmean(sec),
            "devices": sorted({r["device"] + (f" ({r['device_name']})" if r.get("device_name") else "") for r in runs}),
            "torch": sorted({r["torch"] for r in runs}), "threads": sorted({r.get("threads") for r in runs}),
            "wall_seconds": sum(r["wall_seconds"] for r in runs),
        })
    return rows


def _compare(rows_by_it, a, b, what) -> str | None:
    """One sentence: the difference of two iterations' mean final accuracy, judged against its standard error."""
    if a not in rows_by_it or b not in rows_by_it:
        return None
    ra, rb = rows_by_it[a], rows_by_it[b]
    d = ra["final_mean"] - rb["final_mean"]
    if ra["n"] < 2 or rb["n"] < 2:
        return f"- {what} (iteration {a} vs {b}): {d:+.2f} points (one run each: no spread to judge by)."
    se = math.sqrt(ra["final_std"] ** 2 / ra["n"] + rb["final_std"] ** 2 / rb["n"])
    verdict = ("larger than twice its standard error: a real difference" if abs(d) > 2 * se
               else "within twice its standard error: not distinguishable from seed noise")
    return f"- {what} (iteration {a} vs {b}): {d:+.2f} points (standard error {se:.2f}), {verdict}."


def analysis(rows) -> list[str]:
    by_it = {r["iteration"]: r for r in rows if r["study_recipe"]}
    pairs = [(5, 3, "Does BatchNorm help? Same network, BN after the first two convs"),
             (4, 3, "BatchNorm together with a wider last 1x1 conv"),
             (6, 5, "Does Dropout(0.5) before the head hurt?"),
             (7, 5, "Does dropout after every stage hurt?"),
             (7, 6, "Dropout after every stage against head-only dropout")]
    small = sorted((r for r in by_it.values() if r["params"] < 20_000), key=lambda r: r["iteration"])
    best = max(small, key=lambda r: r["final_mean"]) if small else None
    if best:
        pairs += [(best["iteration"], r["iteration"], "Is there one best network under 20K parameters?")
                  for r in small if r is not best]
    lines = [line for a, b, what in pairs if (line := _compare(by_it, a, b, what))]
    if best:
        lines.append(f"- Highest mean under 20K parameters on held-out data: iteration {best['iteration']} "
                     f"({best['final_mean']:.2f}%); the study named iteration 5.")
    above = [i for i, r in sorted(by_it.items()) if i in STUDY and STUDY[i][2] > r["final_mean"]]
    below = [i for i, r in sorted(by_it.items()) if i in STUDY and STUDY[i][2] <= r["final_mean"]]
    if above or below:
        lines.append(f"- The study's figures, measured on its augmented training data, lie above our held-out means "
                     f"for iterations {above or 'none'} and at or below them for {below or 'none'}: they are not "
                     "test accuracies and cannot rank the networks.")
    return lines


def _best_row(rows):
    """The report's best iteration: highest mean final held-out accuracy under the study's recipe."""
    return max((r for r in rows if r["study_recipe"]), key=lambda r: r["final_mean"], default=None)


def _table(rows) -> list[str]:
    head = ("| It | Description | Key concepts | Params | Total layers | Conv | MaxPool | Linear | BatchNorm | "
            "Dropout | Epochs | **Held-out test acc, final epoch** (mean ± std, n) | Best epoch (picked on test, "
            "optimistic) | Final train acc (augmented) | s / epoch | Device, torch | Study's reported acc (measured on training data) |")
    out = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        desc, concepts, study = STUDY.get(r["iteration"], (r["name"], "", None))
        L = r["layers"]
        label = str(r["iteration"]) + ("" if r["study_recipe"] else "*")
        out.append(f"| {label} | {desc} | {concepts} | {r['params']:,} | {L['total']} | {L['conv']} | {L['maxpool']} | "
                   f"{L['linear']} | {L['batchnorm']} | {L['dropout']} | {r['epochs']} | "
                   f"**{_pm(r['final_mean'], r['final_std'], r['n'])}** | {r['best_mean']:.2f} | "
                   f"{r['train_mean']:.2f} | {r['sec_per_epoch']:.1f} | {_where(r)} | "
                   f"{'' if study is None else f'{study:.2f} (train data)'} |")
    return out


def _where(row) -> str:
    devices = ", ".join(d.split(" ")[0] for d in row["devices"])
    threads = ",".join(str(t) for t in row["threads"] if t)
    return f"{devices}{f' ({threads} thr)' if threads and 'cuda' not in devices else ''}, {', '.join(row['torch'])}"


def _savefig(fig, path: Path):
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})  # no version stamp: stable bytes
    atomic_write_bytes(path, buf.getvalue())


def _plots(rows, folder: Path, prefix: str = "") -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(8, 5))
    for r in rows:
        n_ep = min(len(run["history"]) for run in r["runs"])
        ep = list(range(1, n_ep + 1))
        mean = [statistics.fmean(run["history"][e - 1]["test_acc"] for run in r["runs"]) for e in ep]
        # A one-epoch run is a single point: draw it large and on top, or the lines hide it.
        single = n_ep == 1
        ax.plot(ep, mean, marker="D" if single else "o", ms=8 if single else 3, zorder=3 if single else 2,
                label=f"it {r['iteration']} ({r['params']:,} params{', 1 epoch' if single else ''})")
    ax.set(xlabel="epoch", ylabel="held-out test accuracy (%)", title="Held-out test accuracy per epoch (mean over seeds)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    lo = min(min(statistics.fmean(run["history"][0]["test_acc"] for run in r["runs"]) for r in rows), 97)
    ax.set_ylim(max(lo - 0.5, 0), 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    _savefig(fig, folder / f"{prefix}test_acc_per_epoch.png")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 5))
    # A legend, not labels beside the points: iterations 3, 5, 6 and 7 lie within 50 parameters of
    # each other, and their labels would cover one another.
    for r in rows:
        ax.errorbar(r["params"], r["final_mean"], yerr=0 if r["n"] < 2 else r["final_std"], fmt="o", capsize=4,
                    label=f"it {r['iteration']}: {r['params']:,} params, {r['final_mean']:.2f}%")
    ax.legend(fontsize=8, loc="lower left")
    ax.set(xlabel="parameters", ylabel="final held-out test accuracy (%)",
           title="Parameters vs held-out accuracy (mean ± std over seeds)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    _savefig(fig, folder / f"{prefix}params_vs_acc.png")
    plt.close(fig)
    return [f"{prefix}test_acc_per_epoch.png", f"{prefix}params_vs_acc.png"]


def _best_views(best, folder: Path, data_dir) -> list[str]:
    """Confusion matrix (summed over seeds) and the misclassified digits of the best iteration's first seed."""
    import matplotlib.pyplot as plt
    import numpy as np

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
    fig.tight_layout()
    _savefig(fig, folder / "confusion_best.png")
    plt.close(fig)
    made = ["confusion_best.png"]
    try:
        from .data import load_split

        images, _ = load_split("test", data_dir)
    except LabError:
        return made  # no data here: the confusion matrix still stands
    from .show import digit_grid

    run = best["runs"][0]
    wrong = run["mistakes"]
    fig = digit_grid([images[idx].numpy() for idx, _, _ in wrong],
                     [f"{pred} (true {true})" for _, pred, true in wrong], cols=10, size=1.1, fontsize=7)
    fig.suptitle(f"Iteration {best['iteration']}, seed {run['seed']}: all {len(wrong)} misclassified test digits "
                 "(predicted, true)", fontsize=9)
    fig.tight_layout()
    _savefig(fig, folder / "mistakes_best.png")
    plt.close(fig)
    return made + ["mistakes_best.png"]


def spec_of(out_dir: Path):
    """The series a results folder belongs to (`<out>/<name>/`): notebooks/<name>/series.json when
    the repository has it, else a plain comparison of its notebooks."""
    from . import series
    from .paths import base

    folder = base() / "notebooks" / out_dir.name
    if series.numbered(folder):
        return series.load(folder)
    return series.Series(out_dir.name, folder, {}, report="study" if out_dir.name == "study" else "compare")


def _defaults(spec) -> dict[int, dict]:
    """Each notebook's parameters, and under "blocks" the network it declares with them."""
    from .runner import notebook_defaults, notebook_network

    out = {}
    for it, nb in spec.notebooks.items():
        d = notebook_defaults(nb)
        out[it] = dict(d, blocks=notebook_network(nb, d))
    return out


def build(out_dir, data_dir=None, warn=None) -> Path:
    """Write <out_dir>/README.md and its plots from <out_dir>/results/*.json (out_dir: one series' folder)."""
    out_dir = Path(out_dir)
    results = load_results(out_dir / "results", warn)
    if not results:
        raise LabError(f"no usable result files in {out_dir / 'results'}; run `mnist-lab run` first")
    full = [r for r in results if not r["smoke"]]
    smoke = [r for r in results if r["smoke"]]
    spec = spec_of(out_dir)
    if spec.report == "study":
        md = ["# mnist_lab results: the study", ""] + (_study(full, out_dir, data_dir, spec) if full else [])
    else:
        from . import compare

        md = compare.build(out_dir, spec, _defaults(spec), summarize(full), full, data_dir, _compare_plots,
                           _made(full, out_dir, spec), _notes(out_dir, spec)) if full else [f"# {spec.title or spec.name}"]
    if smoke:
        md += ["", "## Tiny runs (smoke mode: code checks, not results)", "",
               "| It | Seed | Framework | Epochs | Test images | Final acc | Run (iteration, seed, recipe hash) |",
               "|---|---|---|---|---|---|---|"]
        md += [f"| {r['iteration']} | {r['seed']} | {r.get('framework', 'pytorch')} | {r['epochs']} | {r['test_size']:,} | "
               f"{r['final_test_acc']:.2f} | {r.get('run_id', Path(r['_path']).stem)} |" for r in smoke]
        md += [""] + [f"![{name}]({name})" for name in _plots(summarize(smoke), out_dir, prefix="tiny_")]
        if spec.notebooks:
            from . import grid

            md += ["", *grid.of(summarize(smoke), spec, _defaults(spec), heading="Tiny grid")]
    return atomic_write_text(out_dir / "README.md", "\n".join(md) + "\n")


def _notes(out_dir: Path, spec) -> list[str]:
    """The series' notes, and in the repository's reports/<series>/ also those about the committed results."""
    from .paths import reports_dir

    committed = Path(os.path.abspath(out_dir)) == reports_dir() / spec.name
    return spec.notes + (spec.reports_notes if committed else [])


def _made(full, out_dir: Path, spec) -> list[str]:
    """How the numbers were made: files, devices, versions, code commits, and the last run's command."""
    import json

    rows = summarize(full)
    seeds = sorted({r["seed"] for r in full})
    lines = [f"- {len(full)} result files in `results/`, each written by one executed notebook in `notebooks/` "
             f"(papermill runs of `notebooks/{out_dir.name}/` in the repository), seeds {seeds}.",
             f"- Devices: {', '.join(sorted({d for r in rows for d in r['devices']}))}; CPU threads per run: "
             f"{sorted({t for r in rows for t in r['threads'] if t is not None})}.",
             f"- Versions: torch {', '.join(sorted({v for r in rows for v in r['torch']}))}, "
             f"Python {', '.join(sorted({r.get('python', '?') for r in full}))}"
             + "".join(f", {k} {v}" for k, v in sorted({(k, v) for r in full for k, v in r.get("versions", {}).items()
                                                       if k != "keras_backend"})) + ".",
             f"- Code: commit(s) {', '.join(sorted({r.get('code', 'unknown') for r in full}))} (recorded by each run).",
             f"- Training time summed over runs: {sum(r['wall_seconds'] for r in full) / 60:.1f} min."]
    try:
        run = json.loads((out_dir / "run.json").read_text())
        skipped = f", {run['skipped']} skipped as already done" if run.get("skipped") else ""
        lines.append(f"- The last `mnist-lab run` into this folder: `{run['command']}`, {run['runs']} run(s) "
                     f"({run['runs_of_this_series']} of this series{skipped}, {run['failed']} failed), "
                     f"{run['workers']} worker(s) x {run['threads']} thread(s), wall time "
                     f"{run['wall_seconds'] / 60:.1f} min ({run['wall_seconds']:,.0f} s).")
    except (OSError, ValueError, KeyError, TypeError):
        pass
    lines.append(f"- Remake the runs with `mnist-lab run --series {out_dir.name} --seeds {' '.join(map(str, seeds))} "
                 "--threads 1 --workers 2 --out` the parent folder (`make reproduce` for `reports/`; on the CPU, equal "
                 "threads give equal numbers) and this page with `mnist-lab report --series "
                 f"{out_dir.name} --out` the parent folder; it reads only the result files, each named by its "
                 "notebook number, seed and a hash of its full recipe.")
    return lines


def _study(full, out_dir: Path, data_dir, spec) -> list[str]:
    md = []
    if full:
        rows = summarize(full)
        best = _best_row(rows) or rows[0]
        md += ["Accuracy is measured on the **10,000 held-out MNIST test images**, un-augmented, after the final "
               "epoch, as mean ± sample standard deviation over seeds. The study's own figures were measured on "
               "its augmented training data and are shown only for reference.", ""]
        md += _table(rows)
        if any(not r["study_recipe"] for r in rows):
            md += ["", "\\* not the study's recipe (epochs, lr, batch size or validation settings changed)."]
        md += ["", "## What the held-out numbers say", ""] + analysis(rows)
        from . import grid

        others = grid.of(rows, spec, _defaults(spec))
        md += ["", *others] if others else []
        md += ["", "## Plots", ""]
        for name in _plots(rows, out_dir):
            md.append(f"![{name}]({name})")
        md += ["", f"## Best iteration: {best['iteration']}", ""]
        for name in _best_views(best, out_dir, data_dir):
            md.append(f"![{name}]({name})")
        notes = _notes(out_dir, spec)
        if notes:
            md += ["", "## Notes", ""] + [f"- {n}" for n in notes]
        md += ["", "## How these numbers were made", ""] + _made(full, out_dir, spec)
    return md


def best_checkpoint(out_dir=None) -> Path:
    """The checkpoint of the study report's best iteration (highest mean held-out accuracy, study recipe), lowest seed.

    The seed is not chosen by test accuracy: that would be selection on the test set. The default
    folder is the repository's reports/study/, whatever the working directory.
    """
    from .paths import reports_dir

    out_dir = out_dir or reports_dir() / "study"
    results = [r for r in load_results(Path(out_dir) / "results") if not r["smoke"]] \
        if (Path(out_dir) / "results").is_dir() else []
    best = _best_row(summarize(results)) if results else None
    if best is None:
        raise LabError(f"no full-run results in {Path(out_dir) / 'results'}: run `make reproduce` "
                       "(or `mnist-lab run`) first, or pass --checkpoint PATH")
    run = min(best["runs"], key=lambda r: r["seed"])
    return Path(run["_path"]).with_name(run["checkpoint"])


def _compare_plots(own: dict, sweeps, folder: Path, data_dir) -> list[str]:
    """A compare series' figures: training loss and held-out accuracy per epoch, time, final accuracy,
    each sweep, and sample predictions with right and wrong marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from .compare import describe

    made = []
    items = sorted(own.items())
    for key, name, ylabel, title, log in [
            ("train_loss", "train_loss.png", "training loss (mean per image)", "Training loss per epoch", True),
            ("test_acc", "test_acc_per_epoch.png", "held-out test accuracy (%)", "Held-out test accuracy per epoch",
             False)]:
        fig, ax = plt.subplots(figsize=(8, 5))
        for it, row in items:
            n_ep = min(len(run["history"]) for run in row["runs"])  # early stopping: the epochs every seed has
            ep = list(range(1, n_ep + 1))
            ax.plot(ep, [statistics.fmean(run["history"][e - 1][key] for run in row["runs"]) for e in ep],
                    marker="o", ms=3, label=f"{it} {row['name']}")
        ax.set(xlabel="epoch", ylabel=ylabel, title=f"{title} (mean over seeds)")
        if log:
            ax.set_yscale("log")
        else:
            ax.set_ylim(max(min(ax.get_ylim()[0], 97) - 0.5, 80), 100)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        _savefig(fig, folder / name)
        plt.close(fig)
        made.append(name)

    labels = [f"{it} {row['name']}" for it, row in items]
    desc = [describe(row) for _, row in items]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.5))
    a1.barh(labels, [d["total"][0] for d in desc], xerr=[0 if d["total"][2] < 2 else d["total"][1] for d in desc],
            capsize=3)
    a1.set(xlabel="seconds", title="Training time per run (mean ± std over seeds)")
    a2.barh(labels, [d["sec"][0] for d in desc], xerr=[0 if d["sec"][2] < 2 else d["sec"][1] for d in desc], capsize=3)
    a2.set(xlabel="seconds", title="Seconds per epoch (training + evaluation)")
    for ax in (a1, a2):
        ax.invert_yaxis()
        ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    _savefig(fig, folder / "time.png")
    plt.close(fig)
    made.append("time.png")

    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.barh(labels, [d["acc"][0] for d in desc], xerr=[0 if d["acc"][2] < 2 else d["acc"][1] for d in desc], capsize=3)
    for i, d in enumerate(desc):
        ax.text(d["acc"][0], i, f" {d['acc'][0]:.2f}", va="center", fontsize=8)
    ax.set_xlim(min(d["acc"][0] for d in desc) - 1, 100)
    ax.invert_yaxis()
    ax.set(xlabel="held-out test accuracy (%)", title="Final held-out accuracy (mean ± std over seeds)")
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    _savefig(fig, folder / "final_acc.png")
    plt.close(fig)
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
        a1.errorbar(xs, [x["acc"][0] for x in d], yerr=[0 if x["acc"][2] < 2 else x["acc"][1] for x in d],
                    marker="o", capsize=3)
        a2.plot(xs, [x["sec"][0] for x in d], marker="o")
        for ax, ylabel in ((a1, "held-out test accuracy (%)"), (a2, "seconds per epoch")):
            ax.set(xscale="log" if log else "linear", xlabel=key, ylabel=ylabel)
            ax.set_xticks(xs, [str(v) for v in values])
            ax.grid(alpha=0.3)
        fig.suptitle(f"Notebook {it} ({pairs[0][1]['name']}): the effect of {key} (mean ± std over seeds)")
        fig.tight_layout()
        name = f"sweep_{it}_{key}.png"
        _savefig(fig, folder / name)
        plt.close(fig)
        made.append(name)
        if not log:  # choices rather than amounts (frameworks): how each converges, epoch by epoch
            made.append(_convergence(it, key, pairs, folder, plt))
    return made + _samples(items, folder, data_dir)


def _convergence(it, key, pairs, folder: Path, plt) -> str:
    """Training loss and held-out accuracy per epoch, and accuracy against training time, for each value
    of a sweep (mean over seeds, up to the epochs every seed trained)."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for value, row in pairs:
        n_ep = min(len(run["history"]) for run in row["runs"])
        mean = {k: [statistics.fmean(run["history"][e][k] for run in row["runs"]) for e in range(n_ep)]
                for k in ("train_loss", "test_acc", "seconds")}
        ep = list(range(1, n_ep + 1))
        elapsed = [sum(mean["seconds"][:e]) for e in ep]
        axes[0].plot(ep, mean["train_loss"], marker="o", ms=3, label=str(value))
        axes[1].plot(ep, mean["test_acc"], marker="o", ms=3, label=str(value))
        axes[2].plot(elapsed, mean["test_acc"], marker="o", ms=3, label=str(value))
    axes[0].set(xlabel="epoch", ylabel="training loss (mean per image)", yscale="log", title="Training loss")
    axes[1].set(xlabel="epoch", ylabel="held-out test accuracy (%)", title="Held-out accuracy per epoch")
    axes[2].set(xlabel="seconds of training (evaluation included)", ylabel="held-out test accuracy (%)",
                title="Held-out accuracy against time")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, title=key)
    fig.suptitle(f"Notebook {it} ({pairs[0][1]['name']}): convergence by {key} (mean over seeds)")
    fig.tight_layout()
    name = f"converge_{it}_{key}.png"
    _savefig(fig, folder / name)
    plt.close(fig)
    return name


def _samples(items, folder: Path, data_dir) -> list[str]:
    """Twelve held-out digits that some network gets wrong, as each network (first seed) labels them:
    green when right, red when wrong. Read from the result files' mistakes, no model is rerun."""
    import matplotlib.pyplot as plt

    try:
        from .data import load_split

        images, labels = load_split("test", data_dir)
    except LabError:
        return []  # no data here: the other figures still stand
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
            ax.imshow(images[idx].numpy(), cmap="gray_r")
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
    _savefig(fig, folder / "samples.png")
    plt.close(fig)
    return ["samples.png"]


def index(out) -> Path | None:
    """<out>/README.md: one line per series folder that has a report."""
    out = Path(out)
    found = sorted(d for d in out.iterdir() if (d / "README.md").is_file() and (d / "results").is_dir()) \
        if out.is_dir() else []
    if not found:
        return None
    md = ["# mnist_lab results", "",
          "One folder per series of notebooks (`notebooks/<series>/`): its result files, executed notebooks, "
          "report and plots. Every accuracy is measured on the 10,000 held-out test images.", "",
          "| Series | What it is | Full runs | Best network on held-out data (mean ± std over seeds) |", "|---|---|---|---|"]
    for d in found:
        spec = spec_of(d)
        full = [r for r in load_results(d / "results", warn=lambda _: None) if not r["smoke"]]
        rows = summarize(full) if full else []
        best = max(rows, key=lambda r: r["final_mean"], default=None)
        md.append(f"| [{d.name}]({d.name}/README.md) | {spec.title or ''} | {len(full)} | "
                  + (f"{best['iteration']} {best['name']}: {_pm(best['final_mean'], best['final_std'], best['n'])} "
                     f"({best['params']:,} params)" if best else "") + " |")
    return atomic_write_text(out / "README.md", "\n".join(md) + "\n")
