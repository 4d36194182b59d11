"""The report of a "compare" series: its networks side by side, and the questions its series.json asks.

Each question names two notebooks; the report sets their held-out accuracy (and, when asked, their
seconds per epoch) side by side as mean ± std over seeds and judges the difference against its
standard error, in the study report's words. A sweep gets its own table and plot. Like the study's
report it reads result files only, and the same files always give the same page.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import LabError
from ..steps import goal_of
from . import grid, plots, steps, table
from .rows import MACHINE_COLUMNS, data_name, describe, machine, own_rows, sweep_rows
from .stats import pm, stats, verdict


# The networks' table (table.markdown): a column shared by every network is said once above it.
COLUMNS = [("#", None), ("Network", None), ("Params", "{} parameters"), ("Framework", "trained in {}"),
           ("Optimizer, lr", "optimizer {}"), ("Batch", "batch {}"), ("Schedule", "{}"), ("Stopping", "{}"),
           ("Augmentation", "augmentation: {}"), ("Epochs trained", "{} epochs trained"),
           ("**Held-out test acc** (mean ± std, n)", None), ("s / epoch", None), ("Training time / run (s)", None),
           *MACHINE_COLUMNS]


def _table(own) -> list[str]:
    cells = []
    for it, row in sorted(own.items()):
        d = describe(row)
        cells.append([str(it), row["name"], f"{row['params']:,}", d["framework"], d["optimizer"], str(d["batch"]),
                      d["schedule"], d["stopping"], d["augment"], f"{d['epochs']} of {d['planned']}",
                      f"**{pm(*d['acc'])}**", f"{d['sec'][0]:.2f}", f"{d['total'][0]:.0f}", *machine(row["runs"])])
    return table.markdown(COLUMNS, cells, "All networks")


def _side(side, own, sweeps):
    """(row, label) of a comparison's side: a notebook's own row, or one value of its sweep."""
    if isinstance(side, int):
        row = own.get(side)
        return row, (f"{row['name']}" + (f" ({describe(row)['framework']})" if "framework" in _swept(side, sweeps)
                                          else "")) if row else f"notebook {side}"
    (key, value), = ((k, v) for k, v in side.items() if k != "notebook")
    for it, k, pairs, _ in sweeps:
        if it == side["notebook"] and k == key:
            row = next((r for v, r in pairs if v == value), None)
            if row is not None:
                return row, f"{row['name']} ({value})" if key == "framework" else f"{row['name']} ({key} {value})"
    return None, f"notebook {side['notebook']} with {key} {value}"


def _swept(it, sweeps) -> set:
    return {k for i, k, pairs, _ in sweeps if i == it and len(pairs) > 1}


def questions(own, spec, sweeps=()) -> list[str]:
    lines = []
    for q in spec.comparisons:
        (a, la), (b, lb) = _side(q["a"], own, sweeps), _side(q["b"], own, sweeps)
        if a is None or b is None:
            lines.append(f"- {q['question']}: not answered, {la if a is None else lb} has no results.")
            continue
        da, db = describe(a), describe(b)
        line = (f"- **{q['question']}** ({la} {pm(*da['acc'])} vs {lb} {pm(*db['acc'])}): "
                f"held-out accuracy {verdict(da['acc'], db['acc'], 'points')}.")
        if q.get("time"):
            (fast, lf), (slow, ls) = sorted([(da, la), (db, lb)], key=lambda d: d[0]["sec"][0])
            line += (f" Seconds per epoch {pm(*da['sec'])} vs {pm(*db['sec'])}: {verdict(da['sec'], db['sec'], 's')};"
                     f" {ls} takes {slow['sec'][0] / fast['sec'][0]:.2f}x as long per epoch as {lf}.")
        lines.append(line)
    return lines


def to_target(row, target: float):
    """Seconds of training (cumulative, evaluation included) until the held-out accuracy first reaches
    `target`: (mean, std, n) over the seeds that reach it, and how many seeds do not."""
    times, missed = [], 0
    for run in row["runs"]:
        t = 0.0
        for h in run["history"]:
            t += h["seconds"]
            if h["test_acc"] >= target:
                times.append(t)
                break
        else:
            missed += 1
    return (stats(times) if times else None), missed


def _sweep_table(key, pairs, own_value, target) -> list[str]:
    """One sweep's table: a row per value, with the machine its runs were made on where values differ in it."""
    steps = key == "batch_size"  # a batch size also sets the optimizer steps per epoch
    columns = [(key, None), ("Held-out test acc (mean ± std, n)", None), ("s / epoch (mean ± std)", None),
               ("Optimizer steps per epoch", None) if steps else ("Epochs trained", "{} epochs trained")]
    columns += [(f"Time to {target:g} % held-out (s)", None)] if target is not None else []
    cells = []
    for value, row in pairs:
        d = describe(row)
        mark = " (the notebook's own)" if value == own_value else ""
        line = [f"{value}{mark}", pm(*d["acc"]), pm(*d["sec"]),
                str(-(-row["runs"][0]["train_size"] // value)) if steps else f"{d['epochs']} of {d['planned']}"]
        if target is not None:
            reached, missed = to_target(row, target)
            line.append((pm(*reached, digits=1) if reached else "never")
                        + (f", not reached by {missed} of {len(row['runs'])} seeds" if missed and reached else ""))
        cells.append(line + machine(row["runs"]))
    return table.markdown(columns + MACHINE_COLUMNS, cells, "All values")


def _sweep_section(sweeps, spec=None) -> list[str]:
    md = []
    targets = {s["notebook"]: s["target"] for s in (spec.sweeps if spec else []) if "target" in s}
    for it, key, pairs, own_value in sweeps:
        if len(pairs) < 2:
            continue
        md += [f"## Sweep: {key} of notebook {it} ({pairs[0][1]['name']})", ""]
        md += _sweep_table(key, pairs, own_value, targets.get(it))
        ref = next((row for v, row in pairs if v == own_value), None)
        if key == "batch_size":
            md += ["", "Every batch size trains with the notebook's own learning rate and number of epochs, so a larger "
                   "batch also means fewer optimizer steps per epoch: the sweep measures the two together."]
        if ref is not None:
            md += [""] + [f"- {key} {value} against {own_value}: held-out accuracy "
                          f"{verdict(describe(row)['acc'], describe(ref)['acc'], 'points')}."
                          for value, row in pairs if row is not ref]
        md.append("")
    return md


def build(out_dir: Path, spec, defaults, rows, data_dir, made, notes, notebooks) -> list[str]:
    """The page's lines; `rows` are rows.summarize of the full runs, `notebooks` what they recorded of their
    notebooks (rows.notebooks_of)."""
    own = own_rows(rows, defaults)
    sweeps = sweep_rows(rows, spec, defaults)
    others = grid.section(rows, defaults, own, [r for _, _, pairs, _ in sweeps for _, r in pairs])
    md = [f"# {spec.title or spec.name}", "",
          f"Accuracy is measured on the **10,000 held-out {data_name(r for row in rows for r in row['runs'])} test "
          "images**, un-augmented, with the weights each "
          "run ends with (the last epoch, or where the notebook restores it, the epoch with the lowest validation "
          "loss), as mean ± sample standard deviation over seeds. A difference counts as real when it is larger than "
          "twice its standard error. Times are measured while the series ran, with the thread count below.", ""]
    if not own:  # only runs at other settings (a --grid that leaves out the notebooks' own values)
        if not others:
            raise LabError(f"no results of the notebooks' own recipes in {out_dir / 'results'}")
        return md + others + ["## How these numbers were made", ""] + made
    md += ["## The networks, each at its own recipe", ""]
    md += _table(own)
    if spec.report == "steps":
        md += [""] + steps.section(own, spec, notebooks, sweeps)
        md += [f"![{name}]({name})" for name in plots.goal_epochs(own, goal_of(spec), out_dir)] + [""]
    heading = "The steps compared" if spec.report == "steps" else "The documents' questions"
    md += ["", f"## {heading}, answered on held-out data", ""] + questions(own, spec, sweeps) + [""]
    md += _sweep_section(sweeps, spec)
    md += others
    md += ["## Plots", ""] + [f"![{name}]({name})" for name in plots.compare_figures(own, sweeps, out_dir, data_dir)]
    if notes:
        md += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    md += ["", "## How these numbers were made", ""] + made
    return md
