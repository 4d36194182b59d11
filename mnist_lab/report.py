"""`mnist-lab report`: README.md and plots in the reports folder, from result files only.

The same result files always give the same report: no timestamps, sorted inputs, fixed formatting.
"""
from __future__ import annotations

import math
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
    c = r.get("config", {})
    return (r["epochs"], r["batch_size"], r["lr"], c.get("val_fraction", 0.0), c.get("scheduler", "step"))


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


def build(out_dir, data_dir=None, warn=None) -> Path:
    """Write <out_dir>/README.md and its plots from <out_dir>/results/*.json."""
    out_dir = Path(out_dir)
    results = load_results(out_dir / "results", warn)
    if not results:
        raise LabError(f"no usable result files in {out_dir / 'results'}; run `mnist-lab run` first")
    full = [r for r in results if not r["smoke"]]
    smoke = [r for r in results if r["smoke"]]
    md = ["# mnist_lab results", ""]
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
        md += ["", "## Plots", ""]
        for name in _plots(rows, out_dir):
            md.append(f"![{name}]({name})")
        md += ["", f"## Best iteration: {best['iteration']}", ""]
        for name in _best_views(best, out_dir, data_dir):
            md.append(f"![{name}]({name})")
        md += ["", "## How these numbers were made", ""]
        seeds = sorted({r["seed"] for r in full})
        md += [f"- {len(full)} result files in `results/`, each written by one executed notebook in `notebooks/` "
               f"(papermill runs of `../notebooks/`), seeds {seeds}.",
               f"- Devices: {', '.join(sorted({d for r in rows for d in r['devices']}))}; CPU threads per run: "
               f"{sorted({t for r in rows for t in r['threads'] if t is not None})}.",
               f"- Versions: torch {', '.join(sorted({v for r in rows for v in r['torch']}))}, "
               f"Python {', '.join(sorted({r.get('python', '?') for r in full}))}.",
               f"- Code: commit(s) {', '.join(sorted({r.get('code', 'unknown') for r in full}))} (recorded by each run).",
               f"- Training time summed over runs: {sum(r['wall_seconds'] for r in full) / 60:.1f} min.",
               "- Remake the runs with `mnist-lab run --seeds " + " ".join(map(str, seeds))
               + " --threads 1 --workers 2 --out` this folder (`make reproduce` for `reports/`; on the CPU, equal "
               "threads give equal numbers) and this page with `mnist-lab report --out` this folder; it reads only "
               "the result files, each named by its iteration, seed and a hash of its full recipe."]
    if smoke:
        md += ["", "## Tiny runs (smoke mode: code checks, not results)", "",
               "| It | Seed | Epochs | Test images | Final acc | Run (iteration, seed, recipe hash) |",
               "|---|---|---|---|---|---|"]
        md += [f"| {r['iteration']} | {r['seed']} | {r['epochs']} | {r['test_size']:,} | {r['final_test_acc']:.2f} | "
               f"{r.get('run_id', Path(r['_path']).stem)} |" for r in smoke]
        md += [""] + [f"![{name}]({name})" for name in _plots(summarize(smoke), out_dir, prefix="tiny_")]
    path = atomic_write_text(out_dir / "README.md", "\n".join(md) + "\n")
    return path


def best_checkpoint(out_dir=None) -> Path:
    """The checkpoint of the report's best iteration (highest mean held-out accuracy, study recipe), lowest seed.

    The seed is not chosen by test accuracy: that would be selection on the test set. The default
    folder is the repository's reports/, whatever the working directory.
    """
    from .paths import reports_dir

    out_dir = out_dir or reports_dir()
    results = [r for r in load_results(Path(out_dir) / "results") if not r["smoke"]] \
        if (Path(out_dir) / "results").is_dir() else []
    best = _best_row(summarize(results)) if results else None
    if best is None:
        raise LabError(f"no full-run results in {Path(out_dir) / 'results'}: run `make reproduce` "
                       "(or `mnist-lab run`) first, or pass --checkpoint PATH")
    run = min(best["runs"], key=lambda r: r["seed"])
    return Path(run["_path"]).with_name(run["checkpoint"])
