"""The report of a "steps" series: the goal, the steps side by side, and each step's Target, Result and
Analysis over every seed (the goal check itself is mnist_lab/steps.py, which the notebooks use too)."""
from __future__ import annotations

from ..steps import changes, check, goal_line, goal_of, rf_table
from . import table
from .rows import MACHINE_COLUMNS, epochs_trained, machine
from .stats import pm, stats, verdict


def section(own: dict, spec, notebooks: dict, sweeps=()) -> list[str]:
    """The report's steps: the goal, a table of the steps side by side, then per step its Target (as its
    runs recorded it), Result (over every seed) and Analysis (against the step before, judged against the
    seed noise)."""
    goal = goal_of(spec)
    if not own:
        return ["## The goal, step by step", "", "No run at the notebooks' own recipes here.", ""]
    md = ["## The goal, step by step", "", f"Goal: {goal_line(goal)}, for every seed. No run selects an epoch or "
          "stops on the test set: its accuracy is measured after every epoch for this report only (how the recipes "
          "were chosen: see the notes).", ""]
    checks = {it: [check(r, goal) for r in row["runs"]] for it, row in own.items()}
    columns = [("Step", None), ("Network", None), ("Params", "{} parameters"), ("Epochs", "{} epochs"),
               ("Held-out, final epoch (mean ± std, n)", None),
               (f"Held-out, lowest of the last {goal['last']} (mean over seeds; worst seed)", None),
               ("Seeds meeting the goal", None), ("s / epoch", None), *MACHINE_COLUMNS]
    cells = []
    for it, row in sorted(own.items()):
        cs = checks[it]
        lows = stats([c["lowest"] for c in cs])
        cells.append([str(it), row["name"], f"{row['params']:,}", epochs_trained(row["runs"]),
                      pm(*stats([c["final"] for c in cs])), f"{lows[0]:.2f}; {min(c['lowest'] for c in cs):.2f}",
                      f"{sum(c['meets'] for c in cs)} of {len(cs)}", f"{row['sec_per_epoch']:.1f}", *machine(row["runs"])])
    md += table.markdown(columns, cells, "All steps")
    prev = None
    for it, row in sorted(own.items()):
        cs, runs = checks[it], row["runs"]
        finals, lows = stats([c["final"] for c in cs]), stats([c["lowest"] for c in cs])
        meets = sum(c["meets"] for c in cs)
        stays = [c["stays_from"] for c in cs]
        per_seed = ", ".join(f"{c['lowest']:.2f}" for c in cs)
        md += ["", f"### Step {it}: {row['name']}", "", f"**Target.** {notebooks.get(it, {}).get('target') or '(not stated)'}",
               "", "**Result.**", "",
               f"- {row['params']:,} parameters, {epochs_trained(runs)} epochs, seeds {row['seeds']}.",
               f"- Held-out test accuracy after the final epoch {pm(*finals)}; lowest of the last {goal['last']} epochs "
               f"per seed: {per_seed} %.",
               f"- Goal met by {meets} of {len(cs)} seeds"
               + (f"; held at or above {goal['acc']:g} % from epoch {', '.join(str(s) if s else '-' for s in stays)} "
                  "(per seed, '-': not in the last epoch)." if any(stays) else f"; no seed ends at or above {goal['acc']:g} %.")]
        md += ["", "**Analysis.**", ""]
        if prev is not None:
            p_it, p_row, p_cs = prev
            changed = changes(runs[0], p_row["runs"][0])
            md += [f"- Against step {p_it}: {'; '.join(changed) or 'the same recipe'}.",
                   f"- Final-epoch held-out accuracy {verdict(finals, stats([c['final'] for c in p_cs]), 'points')}.",
                   f"- Lowest of the last {goal['last']} epochs {verdict(lows, stats([c['lowest'] for c in p_cs]), 'points')}."]
        short = [f"seed {r['seed']} ({c['lowest']:.2f} %)" for r, c in zip(runs, cs) if not c["acc_ok"]]
        if not cs[0]["params_ok"]:
            md.append(f"- {row['params']:,} parameters: not under {goal['params_below']:,}.")
        md.append(f"- Every seed holds {goal['acc']:g} % in its last {goal['last']} epochs." if not short else
                  f"- Below {goal['acc']:g} % in one of the last {goal['last']} epochs: {', '.join(short)}.")
        rf = rf_table(runs[0]["blocks"])
        if prev is not None and rf == rf_table(prev[1]["runs"][0]["blocks"]):
            md += ["", f"Receptive field: as step {prev[0]} (the same layers, kernels, strides and padding)."]
        else:
            md += ["", "Receptive field (n_out = (n_in + 2p - k) / s + 1, j_out = j_in * s, r_out = r_in + (k - 1) * j_in):",
                   ""] + rf
        prev = (it, row, cs)
    under = [(it, row) for it, row in own.items() if row["params"] < goal["params_below"]]
    md += ["", "### The best, and the smallest", ""]
    if under:
        it, row = max(under, key=lambda x: x[1]["final_mean"])
        md.append(f"- Highest mean under {goal['params_below']:,} parameters among the steps: step {it} "
                  f"({row['name']}, {row['params']:,} parameters), {pm(row['final_mean'], row['final_std'], row['n'])} %.")
    rows = [(f"step {it} ({row['name']})", row) for it, row in own.items()]
    rows += [(f"step {it} with {key} {value}", row) for it, key, pairs, _ in sweeps for value, row in pairs
             if row is not own.get(it)]
    good = [(label, row) for label, row in rows if row["final_mean"] >= goal["smallest_at"]]
    if good:
        label, row = min(good, key=lambda x: (x[1]["params"], -x[1]["final_mean"]))
        md.append(f"- Smallest network run here with a mean of at least {goal['smallest_at']:g} % over its seeds: {label}, "
                  f"{row['params']:,} parameters, {pm(row['final_mean'], row['final_std'], row['n'])} %.")
    else:
        md.append(f"- No network here keeps a mean of {goal['smallest_at']:g} % over its seeds.")
    return md + [""]
