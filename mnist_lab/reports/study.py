"""The page of a "study" series: the seven iterations side by side with their layer counts, what the
held-out numbers say of the study's claims, and its best iteration (whose checkpoint `predict` uses)."""
from __future__ import annotations

from pathlib import Path

from .. import paths
from ..errors import LabError
from ..iterations import EPOCHS, LR, STUDY
from ..results import load_results
from . import grid, plots
from .rows import settings_key, summarize
from .stats import pm, verdict


def is_study_recipe(r) -> bool:
    return settings_key(r) == (EPOCHS.get(r["iteration"]), 64, LR.get(r["iteration"]), 0.0, "step")


def study_rows(results) -> list[dict]:
    """rows.summarize, each row marked with whether it follows the study's own recipe."""
    return [dict(row, study_recipe=is_study_recipe(row["runs"][0])) for row in summarize(results)]


def _compare(rows_by_it, a, b, what) -> str | None:
    """One sentence: the difference of two iterations' mean final accuracy, judged against its standard error."""
    if a not in rows_by_it or b not in rows_by_it:
        return None
    ra, rb = rows_by_it[a], rows_by_it[b]
    judged = verdict((ra["final_mean"], ra["final_std"], ra["n"]), (rb["final_mean"], rb["final_std"], rb["n"]),
                     "points")
    return f"- {what} (iteration {a} vs {b}): {judged}."


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
                   f"**{pm(r['final_mean'], r['final_std'], r['n'])}** | {r['best_mean']:.2f} | "
                   f"{r['train_mean']:.2f} | {r['sec_per_epoch']:.1f} | {_where(r)} | "
                   f"{'' if study is None else f'{study:.2f} (train data)'} |")
    return out


def _where(row) -> str:
    devices = ", ".join(d.split(" ")[0] for d in row["devices"])
    threads = ",".join(str(t) for t in row["threads"] if t)
    return f"{devices}{f' ({threads} thr)' if threads and 'cuda' not in devices else ''}, {', '.join(row['torch'])}"


def page(full, out_dir: Path, data_dir, spec, defaults, notes, made) -> list[str]:
    rows = study_rows(full)
    best = _best_row(rows) or rows[0]
    md = ["Accuracy is measured on the **10,000 held-out MNIST test images**, un-augmented, after the final "
          "epoch, as mean ± sample standard deviation over seeds. The study's own figures were measured on "
          "its augmented training data and are shown only for reference.", ""]
    md += _table(rows)
    if any(not r["study_recipe"] for r in rows):
        md += ["", "\\* not the study's recipe (epochs, lr, batch size or validation settings changed)."]
    md += ["", "## What the held-out numbers say", ""] + analysis(rows)
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
        raise LabError(f"no full-run results in {out_dir / 'results'}: run `make reproduce` "
                       "(or `mnist-lab run`) first, or pass --checkpoint PATH")
    run = min(best["runs"], key=lambda r: r["seed"])
    return Path(run["_path"]).with_name(run["checkpoint"])
