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
             "plateau": "ReduceLROnPlateau({gamma:g}, patience {plateau_patience})"}


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
                                                                               "plateau_patience": 2}, **c}),
        "stopping": stopping + (f", {100 * c['val_fraction']:.0f} % validation" if c.get("val_fraction") else ""),
        "augment": ", ".join(x for x in (f"rotation ±{c['rotation']:g}°" if c.get("rotation", 15) else "",
                                         f"crop p={c['crop_p']:g}" if c.get("crop_p", 0.1) else "") if x) or "none",
        "framework": runs[0].get("framework", "pytorch"),
    }


def own_rows(rows, spec, defaults) -> dict[int, dict]:
    """{notebook: its row at its own recipe}: the row whose swept keys hold the notebook's defaults."""
    out = {}
    for row in rows:
        it = row["iteration"]
        keys = [k for s in spec.sweeps if s["notebook"] == it for k in s["vary"]]
        c = row["runs"][0].get("config", {})
        if all(c.get(k) == defaults.get(it, {}).get(k) for k in keys) and it not in out:
            out[it] = row
    return out


def sweep_rows(rows, spec, defaults):
    """[(notebook, key, [(value, row), ...] sorted by value, the notebook's own value)] for each sweep."""
    out = []
    for s in spec.sweeps:
        for key in s["vary"]:
            mine = [r for r in rows if r["iteration"] == s["notebook"]]
            pairs = sorted(((r["runs"][0].get("config", {}).get(key), r) for r in mine), key=lambda p: p[0])
            out.append((s["notebook"], key, pairs, defaults.get(s["notebook"], {}).get(key)))
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


def questions(own, spec) -> list[str]:
    lines = []
    for q in spec.comparisons:
        a, b = own.get(q["a"]), own.get(q["b"])
        if a is None or b is None:
            lines.append(f"- {q['question']}: not answered, notebook {q['a'] if a is None else q['b']} has no results.")
            continue
        da, db = describe(a), describe(b)
        line = (f"- **{q['question']}** ({a['name']} {_pm(*da['acc'])} vs {b['name']} {_pm(*db['acc'])}): "
                f"held-out accuracy {verdict(da['acc'], db['acc'], 'points')}.")
        if q.get("time"):
            line += (f" Seconds per epoch {da['sec'][0]:.2f} ± {da['sec'][1]:.2f} vs {db['sec'][0]:.2f} ± "
                     f"{db['sec'][1]:.2f}: {verdict(da['sec'], db['sec'], 's')}"
                     f" ({db['sec'][0] / da['sec'][0]:.2f}x).")
        lines.append(line)
    return lines


def _sweep_section(sweeps) -> list[str]:
    md = []
    for it, key, pairs, own_value in sweeps:
        if len(pairs) < 2:
            continue
        md += [f"## Sweep: {key} of notebook {it} ({pairs[0][1]['name']})", "",
               f"| {key} | Held-out test acc (mean ± std, n) | s / epoch | Optimizer steps per epoch |", "|---|---|---|---|"]
        ref = next((row for v, row in pairs if v == own_value), None)
        for value, row in pairs:
            d = describe(row)
            steps = -(-row["runs"][0]["train_size"] // value) if key == "batch_size" else ""
            mark = " (the notebook's own)" if value == own_value else ""
            md.append(f"| {value}{mark} | {_pm(*d['acc'])} | "
                      f"{d['sec'][0]:.2f} | {steps} |")
        if ref is not None:
            md += [""] + [f"- {key} {value} against {own_value}: held-out accuracy "
                          f"{verdict(describe(row)['acc'], describe(ref)['acc'], 'points')}."
                          for value, row in pairs if row is not ref]
        md.append("")
    return md


def build(out_dir: Path, spec, defaults, rows, full, data_dir, plots, made) -> list[str]:
    """The page's lines; `rows` are report.summarize(full); `plots(own, sweeps, folder)` draws the figures."""
    own = own_rows(rows, spec, defaults)
    if not own:
        raise LabError(f"no results of the notebooks' own recipes in {out_dir / 'results'}")
    sweeps = sweep_rows(rows, spec, defaults)
    md = [f"# {spec.title or spec.name}", "",
          "Accuracy is measured on the **10,000 held-out MNIST test images**, un-augmented, with the weights each "
          "run ends with (the last epoch, or where the notebook restores it, the epoch with the lowest validation "
          "loss), as mean ± sample standard deviation over seeds. A difference counts as real when it is larger than "
          "twice its standard error. Times are measured while the series ran, with the thread count below.", "",
          "## The networks, each at its own recipe", ""]
    md += _table(own)
    md += ["", "## The documents' questions, answered on held-out data", ""] + questions(own, spec) + [""]
    md += _sweep_section(sweeps)
    md += ["## Plots", ""] + [f"![{name}]({name})" for name in plots(own, sweeps, out_dir, data_dir)]
    if spec.notes:
        md += ["", "## Notes", ""] + [f"- {n}" for n in spec.notes]
    md += ["", "## How these numbers were made", ""] + made
    return md
