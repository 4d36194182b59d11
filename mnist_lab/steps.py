"""A "steps" series: networks taken towards a goal (fewer parameters, a held-out accuracy kept in the last
epochs, a budget of epochs) one step per notebook, each with its Target, Result and Analysis.

The Target is prose the notebook states before it runs (its markdown cell that starts with **Target.**);
Result and Analysis state numbers, so they are generated: in the notebook from its own run (and the
previous step's run of the same seed, when its file is there), here; in the report from every seed, by
mnist_lab/reports/steps.py with the goal check defined here.
"""
from __future__ import annotations

from pathlib import Path

from . import series
from .blocks import receptive_field
from .config import NO_NUMBER, OMITTED_AT_DEFAULT, PER_RUN, Config, run_id
from .errors import LabError
from .machine import MACHINE_FIELDS
from .results import read_result
from .series import GOAL

# a recipe's keys that say where or how small a run is made, not what it trains: left out of "what changed"
_NOT_CHANGES = {*PER_RUN, *NO_NUMBER, *MACHINE_FIELDS, "smoke_batches", "smoke_epochs", "blocks"}


def goal_of(spec) -> dict:
    return dict(GOAL, **(getattr(spec, "goal", None) or {}))


def check(run: dict, goal: dict) -> dict:
    """One run against the goal: the held-out accuracy of its last `last` epochs, their lowest, whether
    each part of the goal holds, and the epoch from which the accuracy never again fell below it."""
    accs = [h["test_acc"] for h in run["history"]]
    last = accs[-goal["last"]:]
    stays = next((i + 1 for i in range(len(accs)) if all(a >= goal["acc"] for a in accs[i:])), None)
    out = {"last": last, "lowest": min(last), "params_ok": run["params"] < goal["params_below"],
           "epochs_ok": len(accs) <= goal["max_epochs"], "acc_ok": len(accs) >= goal["last"] and min(last) >= goal["acc"],
           "stays_from": stays, "final": accs[-1]}
    out["meets"] = out["params_ok"] and out["epochs_ok"] and out["acc_ok"]
    return out


def goal_line(goal: dict) -> str:
    return (f"fewer than {goal['params_below']:,} parameters, held-out test accuracy >= {goal['acc']:g} % in each of "
            f"the last {goal['last']} epochs, at most {goal['max_epochs']} epochs")


def _dropouts(blocks) -> str:
    rates = sorted({b.get("dropout", 0.0) for b in blocks if b["type"] == "conv"} |
                   {b["p"] for b in blocks if b["type"] == "drop"})
    return "/".join(f"{r:g}" for r in rates) or "none"


def changes(run: dict, before: dict) -> list[str]:
    """What a step changed against the one before: the settings of its recipe (those a setting such as
    OneCycleLR leaves unused are not in it), and the network."""
    def settings(r):  # a recipe leaves out settings at their later-added defaults: put those back
        recipe = r.get("recipe", r.get("config", {}))
        return {**OMITTED_AT_DEFAULT, **recipe}

    a, b = settings(run), settings(before)
    out = []
    for k in sorted(a):
        if k in _NOT_CHANGES or a[k] == b.get(k):
            continue
        out.append(f"{k} {b[k]} -> {a[k]}" if k in b else f"{k} {a[k]}")  # a setting its scheduler now reads
    if run["blocks"] != before["blocks"]:
        what = f"network {before['params']:,} -> {run['params']:,} parameters" if run["params"] != before["params"] \
            else f"another network of the same {run['params']:,} parameters"
        a, b = _dropouts(run["blocks"]), _dropouts(before["blocks"])
        out.append(what + (f", dropout {b} -> {a}" if a != b else ""))
    return out


def result_md(run: dict, goal: dict = GOAL, before: dict | None = None, before_id: str = "") -> str:
    """The notebook's Result and Analysis for its own run (one seed), as Markdown. `before`: the previous
    step's run of the same seed (its own recipe), `before_id` its run name (looked for, when not found)."""
    c = check(run, goal)
    last = ", ".join(f"{a:.2f}" for a in c["last"])
    md = ["### Result", "",
          f"- {run['params']:,} parameters ({'under' if c['params_ok'] else 'not under'} {goal['params_below']:,}), "
          f"{len(run['history'])} epochs, seed {run['seed']}.",
          f"- Held-out test accuracy in the last {min(goal['last'], len(run['history']))} epochs: {last} % (lowest "
          f"{c['lowest']:.2f} %); final {c['final']:.2f} %.",
          f"- At or above {goal['acc']:g} % from epoch {c['stays_from']} on." if c["stays_from"] else
          f"- Not at or above {goal['acc']:g} % in the last epoch.",
          f"- Goal ({goal_line(goal)}): **{'met' if c['meets'] else 'not met'}** by this seed.", "",
          "### Analysis", ""]
    if before is not None:
        b = check(before, goal)
        md += [f"- Against the previous step ({before['name']}, run {before['run_id']}): "
               f"{'; '.join(changes(run, before)) or 'the same recipe'}.",
               f"- Final held-out accuracy {c['final'] - b['final']:+.2f} points, lowest of the last {goal['last']} "
               f"{c['lowest'] - b['lowest']:+.2f} points ({b['lowest']:.2f} -> {c['lowest']:.2f} %)."]
    elif run["iteration"] == 1 or not before_id:
        md.append("- The first step: nothing before it to compare with.")
    else:
        md.append(f"- The previous step's run of this seed at its own recipe ({before_id}) is not in this results "
                  "folder (yet): run that notebook, or the series, to compare.")
    gap = goal["acc"] - c["lowest"]
    where = "At" if abs(gap) < 0.005 else "Short of" if gap > 0 else "Above"
    md.append(f"- {where} the goal's accuracy{'' if where == 'At' else f' by {abs(gap):.2f} points'} in its worst "
              f"last epoch. One seed is an anecdote: the series' report judges the steps over all seeds.")
    return "\n".join(md)


def previous_id(spec, run: dict) -> str:
    """The run name the previous notebook of `spec` gives this run's seed at its own recipe, on the same
    device and threads, smoke or not ("" for the first notebook)."""
    nb = spec.notebooks.get(run["iteration"] - 1)
    if nb is None:
        return ""
    params = series.notebook_defaults(nb)
    c = run.get("config", {})
    params.update(spec.settings, seed=run["seed"], smoke=run["smoke"], threads=run.get("threads") or 0,
                  device=run["device"])
    for key in ("smoke_batches", "smoke_epochs"):  # a smoke run compares with the same kind of smoke run
        if key in c:
            params[key] = c[key]
    cfg = Config.from_dict({k: v for k, v in params.items() if k in Config.__dataclass_fields__})
    return run_id(cfg.iteration, cfg.seed, cfg.smoke, cfg.recipe(series.notebook_network(nb, params), run["device"]))


def notebook_md(path) -> str:
    """Result and Analysis of the run recorded at `path`, for its notebook to display."""
    path = Path(path)
    run, why = read_result(path)
    if run is None:
        return f"(no result to describe: {path} is {why})"
    try:
        spec = series.named(run.get("series", ""))
    except LabError:
        spec = None
    before_id = previous_id(spec, run) if spec else ""
    before = read_result(path.parent / f"{before_id}.json")[0] if before_id else None
    return result_md(run, goal_of(spec) if spec else dict(GOAL), before, before_id)


def rf_table(blocks) -> list[str]:
    rows = receptive_field(blocks)
    out = ["| layer | k | s | p | n (output size) | j (jump) | r (receptive field) |", "|---|---|---|---|---|---|---|"]
    return out + [f"| {r['layer']} | {r['k']} | {r['s']} | {r['p']} | {r['n']} | {r['j']} | {r['r']} |" for r in rows]


