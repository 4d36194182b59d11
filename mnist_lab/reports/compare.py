"""The report of a "compare" series: its networks side by side, and the questions its series.json asks.

Each question names two notebooks; the report sets their held-out accuracy (and, when asked, their
seconds per epoch) side by side as mean ± std over seeds and judges the difference against its
standard error, in the study report's words. A sweep gets its own table and plot. Like the study's
report it reads result files only, and the same files always give the same page.
"""
from __future__ import annotations

import math
import statistics
from pathlib import Path

from .errors import LabError
from .io import atomic_write_text

SCHEDULES = {"none": "constant lr", "step": "StepLR({step_size}, {gamma:g})",
             "plateau": "ReduceLROnPlateau({gamma:g}, patience {plateau_patience})",
             "onecycle": "OneCycleLR(peak at {pct_start:g} of the steps; momentum 0.95-0.85-0.95)"}


def _stats(xs):
    m = statistics.fmean(xs)
    return m, (statistics.stdev(xs) if len(xs) > 1 else float("nan")), len(xs)


def verdict(a, b, unit: str, digits: int = 2) -> str:
    """`a` and `b` are (mean, std, n): their difference, its standard error and what it means."""
    d = a[0] - b[0]
    if a[2] < 2 or b[2] < 2:
        return f"{d:+.{digits}f} {unit} (one run each: no spread to judge by)"
    se = math.sqrt(a[1] ** 2 / a[2] + b[1] ** 2 / b[2])
    if se == 0:
        return f"{d:+.{digits}f} {unit} (no spread over seeds at all)"
    judged = ("larger than twice its standard error: a real difference" if abs(d) > 2 * se
              else "within twice its standard error: not distinguishable from seed noise")
    return f"{d:+.{digits}f} {unit} (standard error {se:.{digits}f}), {judged}"


def _pm(m, s, n, digits=2):
    return f"{m:.{digits}f} ± {s:.{digits}f} (n={n})" if n > 1 else f"{m:.{digits}f} (n=1)"


def describe(row) -> dict:
    """What the tables show about one row (a notebook at one recipe, over its seeds)."""
    runs = row["runs"]
    c = runs[0].get("config", {})
    per_epoch = [statistics.fmean(h["seconds"] for h in r["history"]) for r in runs]
    stopping = "early stop, val loss, patience {}".format(c["patience"]) if c.get("patience") else "fixed epochs"
    if c.get("restore_best"):
        stopping += ", best epoch restored"
    return {
        "acc": _stats([r["final_test_acc"] for r in runs]),
        "sec": _stats(per_epoch),
        "total": _stats([r["wall_seconds"] for r in runs]),
        "epochs": _stats([len(r["history"]) for r in runs]),
        "planned": runs[0].get("epochs_planned", runs[0]["epochs"]),
        "batch": runs[0]["batch_size"],
        "optimizer": f"{c.get('optimizer', 'adam')} {runs[0]['lr']:g}"
                     + (f", wd {c['weight_decay']:g}" if c.get("weight_decay") else ""),
        "schedule": SCHEDULES.get(c.get("scheduler", "step"), "?").format(**{**{"step_size": 15, "gamma": 0.1,
                                                                               "plateau_patience": 2, "pct_start": 0.3}, **c}),
        "stopping": stopping + (f", {100 * c['val_fraction']:.3g} % validation" if c.get("val_fraction") else ""),
        "augment": ", ".join(x for x in (f"rotation ±{c.get('rotation', 15.0):g}°" if c.get("rotation", 15.0) else "",
                                         f"crop p={c.get('crop_p', 0.1):g}" if c.get("crop_p", 0.1) else "") if x)
                   or "none",
        "framework": runs[0].get("framework", "pytorch"),
    }


# Set per run, not by the notebook's recipe.
_RUN_KEYS = ("iteration", "name", "series", "seed", "smoke", "threads", "device", "data_dir", "results_dir")


def _follows(row, defaults: dict, free=()) -> bool:
    """Whether a row's runs used the notebook's own settings (all but the keys in `free`) and, where the
    notebook's network is known (defaults["blocks"]), its own network: a parameter that shapes only the
    network (a width, a dropout rate) is not among the recorded settings."""
    c = row["runs"][0].get("config", {})
    if "blocks" in defaults and row["runs"][0]["blocks"] != defaults["blocks"]:
        return False
    return all(c.get(k) == v for k, v in defaults.items() if k in c and k not in _RUN_KEYS and k not in free)


def _most_runs(rows):
    return max(rows, key=lambda r: r["n"], default=None)  # the first of equals: rows come sorted


def own_rows(rows, spec, defaults) -> dict[int, dict]:
    """{notebook: its row at its own recipe}. Rows made with other settings (a `--set epochs=2` run in
    the same folder) do not count; of several (other thread counts), the one with the most seeds."""
    out = {}
    for it in sorted({r["iteration"] for r in rows}):
        mine = [r for r in rows if r["iteration"] == it and _follows(r, defaults.get(it, {}))]
        if mine:
            out[it] = _most_runs(mine)
    return out


def sweep_rows(rows, spec, defaults):
    """[(notebook, key, [(value, row), ...] sorted by value, the notebook's own value)] for each sweep:
    one row per value, made with the notebook's own settings but for the swept key."""
    out = []
    for s in spec.sweeps:
        it = s["notebook"]
        for key, values in s["vary"].items():
            own = defaults.get(it, {}).get(key)
            pairs = []
            for value in sorted({*values, own} - {None}, key=lambda v: (str(type(v)), v)):
                mine = [r for r in rows if r["iteration"] == it and _follows(r, defaults.get(it, {}), (key,))
                        and r["runs"][0].get("config", {}).get(key) == value]
                if mine:
                    pairs.append((value, _most_runs(mine)))
            out.append((it, key, pairs, own))
    return out


def _table(own) -> list[str]:
    head = ("| # | Network | Params | Framework | Optimizer, lr | Batch | Schedule | Stopping | Augmentation | "
            "Epochs trained (of max) | **Held-out test acc** (mean ± std, n) | s / epoch | Training time / run (s) |")
    out = [head, "|" + "---|" * (head.count("|") - 1)]
    for it, row in sorted(own.items()):
        d = describe(row)
        out.append(f"| {it} | {row['name']} | {row['params']:,} | {d['framework']} | {d['optimizer']} | {d['batch']} | "
                   f"{d['schedule']} | {d['stopping']} | {d['augment']} | {d['epochs'][0]:.1f} ({d['planned']}) | "
                   f"**{_pm(*d['acc'])}** | {d['sec'][0]:.2f} | {d['total'][0]:.0f} |")
    return out


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
        line = (f"- **{q['question']}** ({la} {_pm(*da['acc'])} vs {lb} {_pm(*db['acc'])}): "
                f"held-out accuracy {verdict(da['acc'], db['acc'], 'points')}.")
        if q.get("time"):
            (fast, lf), (slow, ls) = sorted([(da, la), (db, lb)], key=lambda d: d[0]["sec"][0])
            line += (f" Seconds per epoch {_pm(*da['sec'])} vs {_pm(*db['sec'])}: {verdict(da['sec'], db['sec'], 's')};"
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
    return (_stats(times) if times else None), missed


def _sweep_section(sweeps, spec=None) -> list[str]:
    md = []
    targets = {s["notebook"]: s["target"] for s in (spec.sweeps if spec else []) if "target" in s}
    for it, key, pairs, own_value in sweeps:
        if len(pairs) < 2:
            continue
        target = targets.get(it)
        extra = {"batch_size": "Optimizer steps per epoch"}.get(key, "Epochs trained")
        cols = f"| {key} | Held-out test acc (mean ± std, n) | s / epoch (mean ± std) | {extra} |"
        if target is not None:
            cols += f" Time to {target:g} % held-out (s) |"
        md += [f"## Sweep: {key} of notebook {it} ({pairs[0][1]['name']})", "", cols, "|---" * (cols.count("|") - 1) + "|"]
        ref = next((row for v, row in pairs if v == own_value), None)
        for value, row in pairs:
            d = describe(row)
            third = -(-row["runs"][0]["train_size"] // value) if key == "batch_size" else f"{d['epochs'][0]:.1f}"
            mark = " (the notebook's own)" if value == own_value else ""
            line = f"| {value}{mark} | {_pm(*d['acc'])} | {_pm(*d['sec'])} | {third} |"
            if target is not None:
                reached, missed = to_target(row, target)
                line += (f" {_pm(*reached, digits=1)}" if reached else " never") + \
                        (f", not reached by {missed} of {len(row['runs'])} seeds |" if missed and reached else " |")
            md.append(line)
        if key == "batch_size":
            md += ["", "Every batch size trains with the notebook's own learning rate and number of epochs, so a larger "
                   "batch also means fewer optimizer steps (last column): the sweep measures the two together."]
        if ref is not None:
            md += [""] + [f"- {key} {value} against {own_value}: held-out accuracy "
                          f"{verdict(describe(row)['acc'], describe(ref)['acc'], 'points')}."
                          for value, row in pairs if row is not ref]
        md.append("")
    return md


def build(out_dir: Path, spec, defaults, rows, full, data_dir, plots, made, notes) -> list[str]:
    """The page's lines; `rows` are report.summarize(full); `plots(own, sweeps, folder)` draws the figures."""
    from . import grid

    own = own_rows(rows, spec, defaults)
    sweeps = sweep_rows(rows, spec, defaults)
    others = grid.section(rows, defaults, own, [r for _, _, pairs, _ in sweeps for _, r in pairs])
    md = [f"# {spec.title or spec.name}", "",
          "Accuracy is measured on the **10,000 held-out MNIST test images**, un-augmented, with the weights each "
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
        from . import steps
        from .report import _savefig

        md += [""] + steps.section(own, spec, verdict, _pm, sweeps)
        md += [f"![{name}]({name})" for name in steps.plot(own, spec, out_dir, _savefig)] + [""]
    heading = "The steps compared" if spec.report == "steps" else "The documents' questions"
    md += ["", f"## {heading}, answered on held-out data", ""] + questions(own, spec, sweeps) + [""]
    md += _sweep_section(sweeps, spec)
    md += others
    md += ["## Plots", ""] + [f"![{name}]({name})" for name in plots(own, sweeps, out_dir, data_dir)]
    if notes:
        md += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    md += ["", "## How these numbers were made", ""] + made
    return md
