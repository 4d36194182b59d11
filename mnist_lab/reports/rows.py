"""Rows: a notebook's runs at one recipe, over their seeds, and what a page says of each. Which notebook a
run belongs to, and whether it ran at the notebook's own recipe, is read from its result file (the runner
records the notebook's own parameters and network in it), never from the notebook as it is now."""
from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict

from ..blocks import layer_counts
from ..config import NO_NUMBER, PER_RUN, recipe_hash
from ..datasets import of_result
from .stats import stats

SCHEDULES = {"none": "constant lr", "step": "StepLR({step_size}, {gamma:g})",
             "plateau": "ReduceLROnPlateau({gamma:g}, patience {plateau_patience})",
             "onecycle": "OneCycleLR(peak at {pct_start:g} of the steps; momentum 0.95-0.85-0.95)"}
# Settings that do not make a run another recipe of its notebook: set per run, changing no number, or
# where it ran (a run on CUDA is still the notebook's own recipe).
NOT_OWN = {*PER_RUN, *NO_NUMBER, "device"}
NOT_CPU = "–"  # the CPU-threads cell of a GPU run
# The columns every table gives where its runs were made, with how the line above a table says the value
# all its rows share (table.markdown): float sums depend on each, so rows made apart must look apart.
MACHINE_COLUMNS = [("Machine", "{}"),
                   ("CPU threads", lambda v: "" if v == NOT_CPU else f"{v} CPU thread{'' if v == '1' else 's'} per run"),
                   ("torch", "torch {}")]


def data_name(runs) -> str:
    """The data set(s) the runs were made on, as pages name them ("MNIST", "Fashion-MNIST")."""
    return " / ".join(sorted({of_result(r).name for r in runs})) or "MNIST"


def settings_key(r) -> tuple:
    """What a row's runs share in every case: planned epochs, batch, lr, validation split, scheduler."""
    c = r.get("config", {})  # epochs planned: early-stopped seeds of one recipe stay one row
    return (r.get("epochs_planned", r["epochs"]), r["batch_size"], r["lr"], c.get("val_fraction", 0.0),
            c.get("scheduler", "step"))


def _group(r) -> tuple:
    """Runs that differ only in their seed: the same full recipe (network, settings, device, threads
    and vector instructions), or for files from before recipes were recorded, the same settings."""
    if isinstance(r.get("recipe"), dict):
        return settings_key(r) + (recipe_hash({k: v for k, v in r["recipe"].items() if k != "seed"}),)
    kind = r["device"].split(":")[0]
    return settings_key(r) + (kind, r.get("threads") if kind == "cpu" else None)


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
        m, s, _ = stats(final)
        rows.append({
            "iteration": it, "name": runs[0]["name"], "runs": runs, "n": len(runs),
            "seeds": sorted(r["seed"] for r in runs), "params": runs[0]["params"],
            "layers": layer_counts(runs[0]["blocks"]), "epochs": recipe[0],
            "final_mean": m, "final_std": s, "best_mean": statistics.fmean(best),
            "train_mean": statistics.fmean(train), "sec_per_epoch": statistics.fmean(sec),
            "devices": sorted({r["device"] + (f" ({r['device_name']})" if r.get("device_name") else "") for r in runs}),
            "torch": sorted({r["torch"] for r in runs}), "threads": sorted({r.get("threads") for r in runs}),
            "wall_seconds": sum(r["wall_seconds"] for r in runs),
        })
    return rows


def where(run) -> str:
    """The machine of one run: its CPU model (the architecture in files made before models were recorded)
    and vector instructions, or its GPU."""
    recipe = run["recipe"] if isinstance(run.get("recipe"), dict) else {}
    if str(recipe.get("device") or run["device"]).split(":")[0] == "cpu":
        return ", ".join(x for x in (f"CPU {run.get('device_name') or '?'}", recipe.get("cpu")) if x)
    return f"GPU {run.get('device_name') or run['device']}"


def machine(runs) -> list[str]:
    """The MACHINE_COLUMNS cells of runs; runs of one row made on several machines name each."""
    def cell(values):
        return " / ".join(sorted(set(values)))
    cpu = [where(r).startswith("CPU") for r in runs]
    return [cell(where(r) for r in runs),
            cell(str(r.get("threads")) if on_cpu else NOT_CPU for r, on_cpu in zip(runs, cpu)),
            cell(str(r["torch"]) for r in runs)]


def epochs_trained(runs) -> str:
    """The epochs a row's seeds trained: a whole number where they agree, else their mean to one decimal
    (early stopping ends seeds apart)."""
    n = [len(r["history"]) for r in runs]
    return str(n[0]) if len(set(n)) == 1 else f"{statistics.fmean(n):.1f}"


def notebooks_of(results) -> dict[int, dict]:
    """{notebook number: what its runs recorded of their notebook (file, own parameters, own network,
    Target)}; where runs of one notebook disagree (it was edited between them), what most of them say."""
    seen = defaultdict(Counter)
    for r in results:
        if isinstance(r.get("notebook"), dict):
            seen[r["iteration"]][json.dumps(r["notebook"], sort_keys=True)] += 1
    return {it: json.loads(min(c.items(), key=lambda kv: (-kv[1], kv[0]))[0]) for it, c in sorted(seen.items())}


def defaults_of(notebooks: dict[int, dict], settings: dict | None = None) -> dict[int, dict]:
    """Each notebook's own parameters, and under "blocks" the network it declares with them; `settings`: what
    a series that reuses the notebooks sets in all of them (series.json "set"), their own recipe there."""
    return {it: dict(nb["parameters"], **{k: v for k, v in (settings or {}).items() if k in nb["parameters"]},
                     blocks=nb["blocks"]) for it, nb in notebooks.items()}


def describe(row) -> dict:
    """What the tables show about one row (a notebook at one recipe, over its seeds)."""
    runs = row["runs"]
    c = runs[0].get("config", {})
    per_epoch = [statistics.fmean(h["seconds"] for h in r["history"]) for r in runs]
    stopping = "early stop, val loss, patience {}".format(c["patience"]) if c.get("patience") else "fixed epochs"
    if c.get("restore_best"):
        stopping += ", best epoch restored"
    return {
        "acc": stats([r["final_test_acc"] for r in runs]),
        "sec": stats(per_epoch),
        "total": stats([r["wall_seconds"] for r in runs]),
        "epochs": epochs_trained(runs),
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


def settings(row) -> dict:
    """The settings a row's runs were made with, but those that do not make another recipe."""
    return {k: v for k, v in row["runs"][0].get("config", {}).items() if k not in NOT_OWN}


def follows(row, defaults: dict, free=()) -> bool:
    """Whether a row's runs used the notebook's own settings (all but the keys in `free`) and, where the
    notebook's network is known (defaults["blocks"]), its own network: a parameter that shapes only the
    network (a width, a dropout rate) is not among the recorded settings."""
    c = row["runs"][0].get("config", {})
    if "blocks" in defaults and row["runs"][0]["blocks"] != defaults["blocks"]:
        return False
    return all(c.get(k) == v for k, v in defaults.items() if k in c and k not in NOT_OWN and k not in free)


def _most_runs(rows):
    return max(rows, key=lambda r: r["n"], default=None)  # the first of equals: rows come sorted


def own_rows(rows, defaults) -> dict[int, dict]:
    """{notebook: its row at its own recipe}. Rows made with other settings (a `--set epochs=2` run in
    the same folder) do not count; of several (other thread counts), the one with the most seeds."""
    out = {}
    for it in sorted({r["iteration"] for r in rows}):
        mine = [r for r in rows if r["iteration"] == it and follows(r, defaults.get(it, {}))]
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
                mine = [r for r in rows if r["iteration"] == it and follows(r, defaults.get(it, {}), (key,))
                        and r["runs"][0].get("config", {}).get(key) == value]
                if mine:
                    pairs.append((value, _most_runs(mine)))
            out.append((it, key, pairs, own))
    return out
