"""A "steps" series: networks taken towards a goal (fewer parameters, a held-out accuracy kept in the last
epochs, a budget of epochs) one step per notebook, each with its Target, Result and Analysis.

The Target is prose the notebook states before it runs (its markdown cell that starts with **Target.**);
Result and Analysis state numbers, so they are generated: in the notebook from its own run (and the
previous step's run of the same seed, when its file is there), in the report from every seed.
"""
from __future__ import annotations

import json
from pathlib import Path


GOAL = {"params_below": 8000, "acc": 99.4, "last": 3, "max_epochs": 15, "smallest_at": 99.3}
# smallest_at: the report also names the smallest network (a step, or a run of a sweep) whose mean
# held-out accuracy over its seeds is at least this
TARGET_MARK = "**Target.**"
# config keys that say how a run is made, not what it trains: left out of "what changed"
_NOT_RECIPE = ("iteration", "name", "series", "seed", "device", "threads", "data_dir", "results_dir", "smoke",
               "smoke_batches", "smoke_epochs", "log_every", "channels_last")


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


def _changes(run: dict, before: dict) -> list[str]:
    """What a step changed against the one before: the settings of its recipe (those a setting such as
    OneCycleLR leaves unused are not in it), and the network."""
    from .config import OMITTED_AT_DEFAULT

    def settings(r):  # a recipe leaves out settings at their later-added defaults: put those back
        recipe = r.get("recipe", r.get("config", {}))
        return {**OMITTED_AT_DEFAULT, **recipe}

    a, b = settings(run), settings(before)
    out = []
    for k in sorted(a):
        if k in _NOT_RECIPE + ("blocks", "cpu") or a[k] == b.get(k):
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
               f"{'; '.join(_changes(run, before)) or 'the same recipe'}.",
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
    device and threads, tiny or not ("" for the first notebook)."""
    from . import runner
    from .config import Config, run_id

    nb = spec.notebooks.get(run["iteration"] - 1)
    if nb is None:
        return ""
    params = runner.notebook_defaults(nb)
    c = run.get("config", {})
    params.update(seed=run["seed"], smoke=run["smoke"], threads=run.get("threads") or 0, device=run["device"])
    for key in ("smoke_batches", "smoke_epochs"):  # a tiny run compares with the same kind of tiny run
        if key in c:
            params[key] = c[key]
    cfg = Config.from_dict({k: v for k, v in params.items() if k in runner.CONFIG_KEYS})
    return run_id(cfg.iteration, cfg.seed, cfg.smoke, cfg.recipe(runner.notebook_network(nb, params), run["device"]))


def notebook_md(path) -> str:
    """Result and Analysis of the run recorded at `path`, for its notebook to display."""
    from . import series
    from .paths import base
    from .results import read_result

    path = Path(path)
    run, why = read_result(path)
    if run is None:
        return f"(no result to describe: {path} is {why})"
    folder = base() / "notebooks" / run.get("series", "")
    spec = series.load(folder) if run.get("series") and series.numbered(folder) else None
    before_id = previous_id(spec, run) if spec else ""
    before = read_result(path.parent / f"{before_id}.json")[0] if before_id else None
    return result_md(run, goal_of(spec) if spec else dict(GOAL), before, before_id)


def target_text(notebook: Path) -> str:
    """The notebook's Target: its markdown paragraph that starts with **Target.**"""
    try:
        cells = json.loads(Path(notebook).read_text())["cells"]
    except (OSError, ValueError, KeyError):
        return ""
    for cell in cells:
        if cell.get("cell_type") == "markdown":
            for para in "".join(cell["source"]).split("\n\n"):
                if para.startswith(TARGET_MARK):
                    return para[len(TARGET_MARK):].strip()
    return ""


def rf_table(blocks) -> list[str]:
    from .blocks import receptive_field  # here: reading a series file needs no torch

    rows = receptive_field(blocks)
    out = ["| layer | k | s | p | n (output size) | j (jump) | r (receptive field) |", "|---|---|---|---|---|---|---|"]
    return out + [f"| {r['layer']} | {r['k']} | {r['s']} | {r['p']} | {r['n']} | {r['j']} | {r['r']} |" for r in rows]


def section(own: dict, spec, verdict, pm, sweeps=()) -> list[str]:
    """The report's steps: the goal, a table of the steps side by side, then per step its Target, Result
    (over every seed) and Analysis (against the step before, judged against the seed noise)."""
    from .compare import _stats  # (mean, std, n), as the comparisons judge them

    goal = goal_of(spec)
    if not own:
        return ["## The goal, step by step", "", "No run at the notebooks' own recipes here.", ""]
    md = ["## The goal, step by step", "", f"Goal: {goal_line(goal)}, for every seed. No run selects an epoch or "
          "stops on the test set: its accuracy is measured after every epoch for this report only (how the recipes "
          "were chosen: see the notes).", "",
          "| Step | Network | Params | Epochs | Held-out, final epoch (mean ± std, n) | Held-out, lowest of the last "
          f"{goal['last']} (mean over seeds; worst seed) | Seeds meeting the goal | s / epoch |", "|---|---|---|---|---|---|---|---|"]
    checks = {it: [check(r, goal) for r in row["runs"]] for it, row in own.items()}
    for it, row in sorted(own.items()):
        cs = checks[it]
        lows = _stats([c["lowest"] for c in cs])
        md.append(f"| {it} | {row['name']} | {row['params']:,} | {len(row['runs'][0]['history'])} | "
                  f"{pm(*_stats([c['final'] for c in cs]))} | {lows[0]:.2f}; {min(c['lowest'] for c in cs):.2f} | "
                  f"{sum(c['meets'] for c in cs)} of {len(cs)} | {row['sec_per_epoch']:.1f} |")
    prev = None
    for it, row in sorted(own.items()):
        cs, runs = checks[it], row["runs"]
        finals, lows = _stats([c["final"] for c in cs]), _stats([c["lowest"] for c in cs])
        meets = sum(c["meets"] for c in cs)
        stays = [c["stays_from"] for c in cs]
        per_seed = ", ".join(f"{c['lowest']:.2f}" for c in cs)
        md += ["", f"### Step {it}: {row['name']}", "", f"**Target.** {target_text(spec.notebooks[it]) or '(not stated)'}",
               "", "**Result.**", "",
               f"- {row['params']:,} parameters, {len(runs[0]['history'])} epochs, seeds {row['seeds']}.",
               f"- Held-out test accuracy after the final epoch {pm(*finals)}; lowest of the last {goal['last']} epochs "
               f"per seed: {per_seed} %.",
               f"- Goal met by {meets} of {len(cs)} seeds"
               + (f"; held at or above {goal['acc']:g} % from epoch {', '.join(str(s) if s else '-' for s in stays)} "
                  "(per seed, '-': not in the last epoch)." if any(stays) else f"; no seed ends at or above {goal['acc']:g} %.")]
        md += ["", "**Analysis.**", ""]
        if prev is not None:
            p_it, p_row, p_cs = prev
            changed = _changes(runs[0], p_row["runs"][0])
            md += [f"- Against step {p_it}: {'; '.join(changed) or 'the same recipe'}.",
                   f"- Final-epoch held-out accuracy {verdict(finals, _stats([c['final'] for c in p_cs]), 'points')}.",
                   f"- Lowest of the last {goal['last']} epochs {verdict(lows, _stats([c['lowest'] for c in p_cs]), 'points')}."]
        short = [f"seed {r['seed']} ({c['lowest']:.2f} %)" for r, c in zip(runs, cs) if not c["acc_ok"]]
        if not cs[0]["params_ok"]:
            md.append(f"- {row['params']:,} parameters: not under {goal['params_below']:,}.")
        md.append(f"- Every seed holds {goal['acc']:g} % in its last {goal['last']} epochs." if not short else
                  f"- Below {goal['acc']:g} % in one of the last {goal['last']} epochs: {', '.join(short)}.")
        table = rf_table(runs[0]["blocks"])
        if prev is not None and table == rf_table(prev[1]["runs"][0]["blocks"]):
            md += ["", f"Receptive field: as step {prev[0]} (the same layers, kernels, strides and padding)."]
        else:
            md += ["", "Receptive field (n_out = (n_in + 2p - k) / s + 1, j_out = j_in * s, r_out = r_in + (k - 1) * j_in):",
                   ""] + table
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


def plot(own: dict, spec, folder: Path, savefig) -> list[str]:
    """goal_epochs.png: held-out accuracy per epoch of every seed of every step, the goal's line and its
    last epochs marked, zoomed to where the goal is decided."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    goal = goal_of(spec)
    its = sorted(own)
    if not its:
        return []
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
        ax.set_ylim(goal["acc"] - 1.0, min(100.0, goal["acc"] + 0.4))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("held-out test accuracy (%)")
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"every seed, every epoch; dashed: {goal['acc']:g} %, shaded: the last {goal['last']} epochs the goal "
                 "judges", fontsize=9)
    fig.tight_layout()
    savefig(fig, Path(folder) / "goal_epochs.png")
    plt.close(fig)
    return ["goal_epochs.png"]
