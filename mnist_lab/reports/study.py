"""The page of a "study" series: the seven iterations side by side with their layer counts, what the
held-out numbers say of the study's claims, and its best iteration (whose checkpoint `predict` uses)."""
from __future__ import annotations

from pathlib import Path

from .. import paths
from ..errors import LabError
from ..iterations import EPOCHS, LR, STUDY
from ..results import load_results
from . import grid, plots, table
from .rows import MACHINE_COLUMNS, data_name, machine, settings_key, summarize
from .stats import pm, real, verdict

BUDGET = 20_000  # the study's parameter budget: "under 20K parameters"
LAYER_KINDS = ("total", "conv", "maxpool", "linear", "batchnorm", "dropout")  # COLUMNS' order


def is_study_recipe(r) -> bool:
    return settings_key(r) == (EPOCHS.get(r["iteration"]), 64, LR.get(r["iteration"]), 0.0, "step")


def study_rows(results) -> list[dict]:
    """rows.summarize, each row marked with whether it follows the study's own recipe."""
    return [dict(row, study_recipe=is_study_recipe(row["runs"][0])) for row in summarize(results)]


def _triple(row) -> tuple:
    return row["final_mean"], row["final_std"], row["n"]


def _compare(rows_by_it, a, b, what) -> str | None:
    """One sentence: the difference of two iterations' mean final accuracy, judged against its standard error."""
    if a not in rows_by_it or b not in rows_by_it:
        return None
    return f"- {what} (iteration {a} vs {b}): {verdict(_triple(rows_by_it[a]), _triple(rows_by_it[b]), 'points')}."


def _one_best(by_it) -> list[str]:
    """The study's question whether one network is best under its parameter budget, asked once: the highest
    mean there, the answer, and under it each other network of the budget against that one."""
    small = sorted((r for r in by_it.values() if r["params"] < BUDGET), key=lambda r: r["iteration"])
    best = max(small, key=lambda r: r["final_mean"], default=None)
    if best is None:
        return []
    others = [r for r in small if r is not best]
    close = [str(r["iteration"]) for r in others if not real(_triple(best), _triple(r))]
    top = (f"iteration {best['iteration']} has the highest held-out mean there ({best['final_mean']:.2f} %; the study "
           "named iteration 5)")
    if close:
        many = len(close) > 1
        answer = (f"Not one: {top}, but iteration{'s' if many else ''} {' and '.join([', '.join(close[:-1]), close[-1]] if many else close)} "
                  f"{'are' if many else 'is'} not distinguishable from it.")
    else:
        answer = f"Yes: {top}, ahead of every other one by more than twice the standard error." if others else \
            f"Only one network is under the budget: {top}."
    head = f"- **Is there one best network under {BUDGET:,} parameters?** {answer}"
    return [head] + [f"  - iteration {best['iteration']} vs {r['iteration']}: "
                     f"{verdict(_triple(best), _triple(r), 'points')}." for r in others]


# The study's questions of its networks: (a, b, question), each answered by a's mean minus b's.
QUESTIONS = [(5, 3, "Does BatchNorm help? Same network, BN after the first two convs"),
             (4, 3, "BatchNorm together with a wider last 1x1 conv"),
             (6, 5, "Does Dropout(0.5) before the head hurt?"),
             (7, 5, "Does dropout after every stage hurt?"),
             (7, 6, "Dropout after every stage against head-only dropout")]


def analysis(rows, mnist: bool = True) -> list[str]:
    """What the held-out numbers say of the study's questions; `mnist`: the runs were made on MNIST, whose
    training-data figures the study reports (on another data set they have nothing to be set beside)."""
    by_it = {r["iteration"]: r for r in rows if r["study_recipe"]}
    lines = [line for a, b, what in QUESTIONS if (line := _compare(by_it, a, b, what))] + _one_best(by_it)
    if not mnist:
        return lines
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


# The table's columns (table.markdown): what names an iteration and what was measured always stay.
COLUMNS = [("It", None), ("Description", None), ("Key concepts", None), ("Params", "{} parameters"),
           ("Total layers", "{} layers"), ("Conv", "{} Conv"), ("MaxPool", "{} MaxPool"), ("Linear", "{} Linear"),
           ("BatchNorm", "{} BatchNorm"), ("Dropout", "{} Dropout"), ("Epochs", "{} epochs"),
           ("**Held-out test acc, final epoch** (mean ± std, n)", None),
           ("Best epoch (picked on test, optimistic)", None), ("Final train acc (augmented)", None),
           ("s / epoch", None), *MACHINE_COLUMNS, ("Study's reported acc (measured on training data)", None)]


def _table(rows, mnist: bool = True) -> list[str]:
    cells = []
    for r in rows:
        desc, concepts, study = STUDY.get(r["iteration"], (r["name"], "", None))
        L = r["layers"]
        label = str(r["iteration"]) + ("" if r["study_recipe"] else "*")
        cells.append([label, desc, concepts, f"{r['params']:,}", *(str(L[k]) for k in LAYER_KINDS), str(r["epochs"]),
                      f"**{pm(r['final_mean'], r['final_std'], r['n'])}**", f"{r['best_mean']:.2f}",
                      f"{r['train_mean']:.2f}", f"{r['sec_per_epoch']:.1f}", *machine(r["runs"]),
                      "" if study is None else f"{study:.2f} (train data)"])
    if not mnist:  # the study's figures are of MNIST
        return table.markdown(COLUMNS[:-1], [c[:-1] for c in cells], "All iterations")
    return table.markdown(COLUMNS, cells, "All iterations")


def page(full, out_dir: Path, data_dir, spec, defaults, notes, made) -> list[str]:
    rows = study_rows(full)
    best = _best_row(rows) or rows[0]
    name = data_name(full)
    mnist = name == "MNIST"
    md = [f"Accuracy is measured on the **10,000 held-out {name} test images**, un-augmented, after the final "
          "epoch, as mean ± sample standard deviation over seeds. "
          + ("The study's own figures were measured on its augmented training data and are shown only for reference."
             if mnist else f"The study's own figures are of MNIST, so none is shown beside these."), ""]
    md += _table(rows, mnist)
    if any(not r["study_recipe"] for r in rows):
        md += ["", "\\* not the study's recipe (epochs, lr, batch size or validation settings changed)."]
    md += ["", "## What the held-out numbers say", ""] + analysis(rows, mnist)
    others = grid.of(rows, spec, defaults)
    md += ["", *others] if others else []
    md += ["", "## Plots", ""]
    md += [f"![{name}]({name})" for name in plots.study_curves(rows, out_dir)]
    md += ["", f"## Best iteration: {best['iteration']}", ""]
    md += [f"![{name}]({name})" for name in plots.best_views(best, out_dir, data_dir)]
    if notes:
        md += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    return md + ["", "## How these numbers were made", ""] + made


def best_checkpoint(out_dir=None) -> Path:
    """The checkpoint of the study report's best iteration (highest mean held-out accuracy, study recipe), lowest seed.

    The seed is not chosen by test accuracy: that would be selection on the test set. The default
    folder is the repository's reports/study/, whatever the working directory.
    """
    out_dir = Path(out_dir or paths.reports_dir() / "study")
    results = [r for r in load_results(out_dir / "results") if not r["smoke"]] if (out_dir / "results").is_dir() else []
    best = _best_row(study_rows(results)) if results else None
    if best is None:
        raise LabError(f"no full-run results in {out_dir / 'results'}: restore the committed ones with "
                       f"`git checkout -- {paths.portable(out_dir)}`, or pass --checkpoint PATH")
    run = min(best["runs"], key=lambda r: r["seed"])
    return Path(run["_path"]).with_name(run["checkpoint"])
