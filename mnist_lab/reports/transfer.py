"""A series that reuses another's notebooks on another data set (series.json "reuse" and "set": {"dataset":
...}): does what the reused series found carry over? Its page gets this section, from result files alone:

- every comparison the reused series' page makes, judged on both data sets (difference, its standard error,
  real or noise, whether the sign agrees, and whether the effect itself differs between them);
- the networks ranked on both, with Spearman's rank correlation and its exact permutation p-value;
- a figure of held-out accuracy on one data set against the other, per network, with its parameters;
- a "steps" series' goal figures (lowest of the last epochs per seed) on both;
- the confusion matrices of the reused page's best network on both, with class names;
- "what transfers and what does not", in words no stronger than those verdicts.

The reused series' runs are its committed ones (reports/<reused>/results): the reference every remake of it
is held to as well.
"""
from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np

from .. import paths
from ..datasets import of_result
from ..results import load_results
from ..steps import check, goal_of
from . import plots, table
from .rows import data_name, defaults_of, notebooks_of, own_rows, summarize
from .stats import pm, real, standard_error, stats
from .study import QUESTIONS

EXACT_UP_TO = 8  # networks: above this, the permutation p-value is not computed (8! = 40,320 orders)
OUTCOMES = {  # (real on the reused data set, real on the new one, same sign) -> what the comparison does
    (True, True, True): "transfers", (True, True, False): "reverses",
    (True, False, None): "shown on the first only", (False, True, None): "shown on the second only",
    (False, False, None): "shown on neither"}


def comparisons(spec) -> list[tuple[int, int, str]]:
    """(a, b, question) of every comparison the reused series' page makes: for a study, each iteration
    against the one before and the study's questions; otherwise its series.json's comparisons of notebooks."""
    if spec.report == "study":
        its = sorted(spec.notebooks)
        asked = {(a, b): q for a, b, q in QUESTIONS}
        out = [(b, a, asked.pop((b, a), f"Iteration {b} against iteration {a}")) for a, b in zip(its, its[1:])]
        return out + [(a, b, q) for (a, b), q in asked.items()]
    return [(c["a"], c["b"], c["question"]) for c in spec.comparisons
            if isinstance(c["a"], int) and isinstance(c["b"], int)]


def _triple(row) -> tuple:
    return row["final_mean"], row["final_std"], row["n"]


def judged(a, b) -> dict:
    """The difference a - b of two (mean, std, n), its standard error and whether it is real (None: no spread)."""
    return {"d": a[0] - b[0], "se": standard_error(a, b) if a[2] > 1 or b[2] > 1 else float("nan"), "real": real(a, b)}


def outcome(first: dict, second: dict) -> str:
    """What a comparison does from one data set to the other (OUTCOMES), or why it cannot be said."""
    if first["real"] is None or second["real"] is None:
        return "no spread to judge by"
    same = (first["d"] > 0) == (second["d"] > 0) if first["real"] and second["real"] else None
    return OUTCOMES[(first["real"], second["real"], same)]


def ranks(values: list[float]) -> list[float]:
    """1 for the highest; ties share the mean of their places."""
    order = sorted(range(len(values)), key=lambda i: -values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def spearman(x: list[float], y: list[float]) -> float:
    """Spearman's rank correlation: Pearson's correlation of the ranks (ties averaged)."""
    rx, ry = ranks(x), ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    num = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    den = math.sqrt(sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry))
    return num / den if den else float("nan")


def permutation_p(x: list[float], y: list[float]) -> float | None:
    """The exact one-sided p-value of Spearman's rho: the share of all orders of `y` whose rho with `x` is at
    least the observed one (None above EXACT_UP_TO networks)."""
    rho = spearman(x, y)
    if len(x) > EXACT_UP_TO or len(x) < 3 or math.isnan(rho):  # nan: all of one side tied, no order at all
        return None
    orders = list(itertools.permutations(y))
    return sum(spearman(x, list(p)) >= rho - 1e-12 for p in orders) / len(orders)


def section(spec, full: list[dict], out_dir: Path, reference: Path | None = None) -> list[str]:
    """The page's "Does it transfer?" section. `full`: this series' full runs; `reference`: the reused
    series' results folder (default: its committed one, reports/<reused>/results)."""
    # named as the repository names it: the same page wherever the committed folder is read from
    where = f"reports/{spec.reuses}/" if reference is None else f"{paths.portable(Path(reference).parent)}/"
    reference = Path(reference or paths.reports_dir() / spec.reuses / "results")
    base = [r for r in load_results(reference, warn=lambda _: None) if not r["smoke"]] if reference.is_dir() else []
    first, second = data_name(base), data_name(full)
    head = [f"## Does it transfer? {first} against {second}", ""]
    if not base:
        return head + [f"No full runs of {spec.reuses} in {where}results to compare with.", ""]
    a_rows = own_rows(summarize(base), defaults_of(notebooks_of(base)))
    b_rows = own_rows(summarize(full), defaults_of(notebooks_of(full), spec.settings))
    both = sorted(set(a_rows) & set(b_rows))
    if not both:
        return head + [f"No notebook has runs at its own recipe on both data sets yet.", ""]
    a_rows = {it: a_rows[it] for it in both}
    b_rows = {it: b_rows[it] for it in both}
    changed = ", ".join(f"{k} {v}" for k, v in sorted(spec.settings.items()))
    md = head + [
        f"Each notebook at its own recipe, unchanged but for {changed or 'nothing'}: held-out accuracy after the final "
        f"epoch, mean ± std over seeds. {first}: the committed runs of `{spec.reuses}` "
        f"({where}), seeds {_seeds(a_rows)}; {second}: this page's runs, seeds "
        f"{_seeds(b_rows)}. No run picks an epoch or stops on the test set. A difference counts as real when it is "
        "larger than twice its standard error. With 3 to 5 seeds a side that is a loose bar (the t distribution of so "
        "few runs has wide tails): among many comparisons with no effect at all, about one in ten would still be "
        "called real, so one \"real\" alone is weak evidence; \"noise\" means no difference was shown at these "
        "seeds, not that there is none.", ""]
    md += ["### The networks on both data sets", ""] + _ranking(a_rows, b_rows, first, second)
    scatter = _scatter(a_rows, b_rows, first, second, out_dir)
    md += ["", f"![{scatter}]({scatter})"]
    asked = comparisons(spec)
    results = []
    if asked:
        md += ["", "### The comparisons on both data sets", ""]
        md += [f"Each row: the reused series' comparison, its difference (first network minus second, points) "
               f"± its standard error, on {first} and on {second}. Same sign: in brackets where a side is noise (a "
               f"sign within noise says little). Effect differs: the {second} difference minus the {first} one, "
               "against the standard error of that difference; real there means the comparison comes out otherwise "
               "on the two data sets, not only that one side reached the bar.", ""]
        cells, missing = [], []
        for a, b, question in asked:
            if not all(i in a_rows for i in (a, b)):
                missing.append(f"{question} ({a} − {b})")
                continue
            x = judged(_triple(a_rows[a]), _triple(a_rows[b]))
            y = judged(_triple(b_rows[a]), _triple(b_rows[b]))
            what = outcome(x, y)
            gap = {"d": y["d"] - x["d"], "se": math.hypot(x["se"], y["se"])}
            gap["real"] = None if math.isnan(gap["se"]) or gap["se"] == 0 else abs(gap["d"]) > 2 * gap["se"]
            results.append((question, a, b, x, y, what, gap))
            cells.append([question, f"{a} − {b}", _cell(x), _cell(y), _sign(x, y), _cell(gap),
                          what.replace("the first", first).replace("the second", second)])
        md += table.markdown([("Question", None), ("Notebooks", None), (f"{first}: difference ± SE", None),
                              (f"{second}: difference ± SE", None), ("Same sign", None),
                              ("Effect differs (± SE)", None), ("Outcome", None)], cells, "All comparisons")
        if missing:
            md += ["", "Not run on both data sets yet: " + "; ".join(missing) + "."]
    if spec.report == "steps":
        md += ["", "### The goal's figures on both data sets", ""] + _goal(spec, a_rows, b_rows, first, second)
    md += ["", f"### Where the networks err: the network best on {first}", ""]
    md += _confusions(a_rows, b_rows, first, second, out_dir)
    md += ["", "### What transfers and what does not", ""] + _words(a_rows, b_rows, results, first, second)
    return md + [""]


def _seeds(rows: dict) -> str:
    seeds = sorted({s for row in rows.values() for s in row["seeds"]})
    return ", ".join(map(str, seeds))


def _sign(x: dict, y: dict) -> str:
    if x["d"] == 0 or y["d"] == 0:
        return "–"
    same = "yes" if (x["d"] > 0) == (y["d"] > 0) else "no"
    return same if x["real"] and y["real"] else f"({same})"


def _cell(j: dict) -> str:
    if j["real"] is None:
        return f"{j['d']:+.2f} (no spread)"
    return f"{j['d']:+.2f} ± {j['se']:.2f}, {'real' if j['real'] else 'noise'}"


def _ranking(a_rows, b_rows, first, second) -> list[str]:
    its = sorted(a_rows)
    xa, xb = [a_rows[i]["final_mean"] for i in its], [b_rows[i]["final_mean"] for i in its]
    ra, rb = ranks(xa), ranks(xb)
    cells = [[str(it), a_rows[it]["name"], f"{a_rows[it]['params']:,}", pm(*_triple(a_rows[it])), f"{ra[k]:g}",
              pm(*_triple(b_rows[it])), f"{rb[k]:g}", f"{xb[k] - xa[k]:+.2f}"] for k, it in enumerate(its)]
    md = table.markdown([("#", None), ("Network", None), ("Params", "{} parameters"), (f"{first} (mean ± std, n)", None),
                         (f"Rank on {first}", None), (f"{second} (mean ± std, n)", None), (f"Rank on {second}", None),
                         (f"{second} − {first} (points)", None)], cells, "All networks")
    rho, p = spearman(xa, xb), permutation_p(xa, xb)
    md += ["", f"Spearman's rank correlation of the {len(its)} networks' means: ρ = {rho:+.2f}"
           + (f"; a random order of the {second} ranks reaches at least this in {p:.1%} of the {math.factorial(len(its)):,} "
              "orders (exact one-sided p-value)." if p is not None else ".")]
    return md


def _scatter(a_rows, b_rows, first, second, out_dir: Path) -> str:
    plt = plots._pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    for it in sorted(a_rows):
        a, b = a_rows[it], b_rows[it]
        ax.errorbar(a["final_mean"], b["final_mean"], xerr=np.nan_to_num(a["final_std"]),
                    yerr=np.nan_to_num(b["final_std"]), fmt="o", ms=5, capsize=3, color=plots.notebook_colour(it),
                    label=f"{it} {a['name']} ({a['params']:,} params)")
        # the number by the point, the name in the legend: close networks' names would overlap
        ax.annotate(str(it), (a["final_mean"], b["final_mean"]), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set(xlabel=f"{first}: held-out accuracy, final epoch (%)", ylabel=f"{second}: held-out accuracy, final epoch (%)",
           title=f"Each network on both data sets (mean ± std over seeds)")
    ax.margins(0.15)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    name = "transfer_accuracy.png"
    plots.save(fig, out_dir / name)
    return name


def _goal(spec, a_rows, b_rows, first, second) -> list[str]:
    goal = goal_of(spec)
    cells = []
    for it in sorted(a_rows):
        row = [str(it), a_rows[it]["name"], f"{a_rows[it]['params']:,}"]
        for rows in (a_rows, b_rows):
            cs = [check(r, goal) for r in rows[it]["runs"]]
            low = stats([c["lowest"] for c in cs])
            row += [f"{pm(*low)}; worst {min(c['lowest'] for c in cs):.2f}", f"{sum(c['meets'] for c in cs)} of {len(cs)}"]
        cells.append(row)
    md = [f"The lowest held-out accuracy of the last {goal['last']} epochs, per seed (the goal's figure; the goal, "
          f"{goal['acc']:g} %, was set for {first})."]
    return md + [""] + table.markdown(
        [("Step", None), ("Network", None), ("Params", "{} parameters"), (f"{first}: lowest of last {goal['last']}", None),
         (f"{first}: seeds meeting the goal", None), (f"{second}: lowest of last {goal['last']}", None),
         (f"{second}: seeds meeting the goal", None)], cells, "All steps")


def _confusion(row) -> np.ndarray:
    """The mean confusion counts per seed (rows: true class, columns: predicted)."""
    return np.mean([np.array(r["confusion"]) for r in row["runs"]], axis=0)


def _pairs(conf: np.ndarray, ds, k: int = 5) -> str:
    off = [(conf[t, p], t, p) for t in range(10) for p in range(10) if t != p]
    return "; ".join(f"{ds.label(t)} taken for {ds.label(p)} {n:.1f}" for n, t, p in sorted(off, reverse=True)[:k])


def _confusions(a_rows, b_rows, first, second, out_dir: Path) -> list[str]:
    # shown for the reused page's best network: nothing here is picked by the new data set's test set
    it = max(a_rows, key=lambda i: a_rows[i]["final_mean"])
    a, b = a_rows[it], b_rows[it]
    plt = plots._pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12.5, 5.8))
    for ax, row, name in zip(axes, (a, b), (first, second)):
        ds = of_result(row["runs"][0])
        conf = _confusion(row)
        ax.imshow(np.log1p(conf), cmap="Blues")
        for i in range(10):
            for j in range(10):
                ax.text(j, i, f"{conf[i, j]:.0f}", ha="center", va="center", fontsize=6.5,
                        color="white" if i == j else "black")
        labels = [ds.label(c) for c in range(10)]
        ax.set_xticks(range(10), labels, rotation=45, ha="right", fontsize=7)
        ax.set_yticks(range(10), labels, fontsize=7)
        ax.set(xlabel="predicted", ylabel="true",
               title=f"{name}: notebook {it} ({row['name']}), mean counts per seed (n={row['n']})")
        ax.title.set_fontsize(9)
    fig.tight_layout()
    plots.save(fig, out_dir / "transfer_confusion.png")
    md = [f"Notebook {it} ({b['name']}) has the highest {first} mean. Its confusion matrices on both data sets (mean "
          "count per seed over 10,000 test images; rows: true class):", "", "![transfer_confusion.png](transfer_confusion.png)", ""]
    for row, name in ((a, first), (b, second)):
        ds, conf = of_result(row["runs"][0]), _confusion(row)
        per_class = np.diag(conf) / conf.sum(axis=1) * 100
        worst = sorted(range(10), key=lambda c: per_class[c])[:3]
        md.append(f"- {name}: most confused, true taken for predicted, mean per seed: {_pairs(conf, ds)}. Lowest "
                  f"accuracy per class: " + ", ".join(f"{ds.label(c)} {per_class[c]:.1f} %" for c in worst) + ".")
    return md


def _words(a_rows, b_rows, results, first, second) -> list[str]:
    its = sorted(a_rows)
    gaps = [b_rows[i]["final_mean"] - a_rows[i]["final_mean"] for i in its]
    spread = {n: max(r[i]["final_mean"] for i in its) - min(r[i]["final_mean"] for i in its)
              for n, r in ((first, a_rows), (second, b_rows))}
    errors = {n: (100 - max(r[i]["final_mean"] for i in its), 100 - min(r[i]["final_mean"] for i in its))
              for n, r in ((first, a_rows), (second, b_rows))}
    md = [f"- **The level.** Every network's {second} mean lies {min(gaps):+.2f} to {max(gaps):+.2f} points from its "
          f"{first} mean: a held-out error of {errors[first][0]:.2f}-{errors[first][1]:.2f} % on {first} against "
          f"{errors[second][0]:.2f}-{errors[second][1]:.2f} % on {second}. From the lowest to the highest network the "
          f"means span {spread[first]:.2f} points on {first} and {spread[second]:.2f} on {second}; near a ceiling "
          "differences in points are compressed, so a difference of the same size means more there."]
    if results:
        groups: dict[str, list[str]] = {}
        for question, a, b, x, y, what, gap in results:
            differs = "; the effect differs between the data sets" if gap["real"] else ""
            groups.setdefault(what, []).append(f"{question} ({a} − {b}: {x['d']:+.2f} → {y['d']:+.2f}{differs})")
        order = ["transfers", "reverses", "shown on the first only", "shown on the second only", "shown on neither",
                 "no spread to judge by"]
        say = {"transfers": "Transfers (real on both data sets, in the same direction)",
               "reverses": "Reverses (real on both, in opposite directions)",
               "shown on the first only": f"Real on {first}, not shown on {second}",
               "shown on the second only": f"Not shown on {first}, real on {second}",
               "shown on neither": "Shown on neither data set",
               "no spread to judge by": "Not judged (one run, no spread)"}
        differ = sum(bool(gap["real"]) for *_, gap in results)
        md.append(f"- **The comparisons** ({len(results)}): "
                  + ", ".join(f"{len(groups[k])} {k.replace('the first', first).replace('the second', second)}"
                              for k in order if k in groups)
                  + f". In {differ} of them the effect itself differs between the data sets by more than twice its "
                  "standard error; a verdict that is real on one side only is not by itself a difference between "
                  "them.")
        md += [f"  - {say[k]}: " + "; ".join(groups[k]) + "." for k in order if k in groups]
    xa, xb = [a_rows[i]["final_mean"] for i in its], [b_rows[i]["final_mean"] for i in its]
    rho, p = spearman(xa, xb), permutation_p(xa, xb)
    ordered = sorted(its, key=lambda i: -a_rows[i]["final_mean"])
    apart = sum(bool(real(_triple(a_rows[i]), _triple(a_rows[j]))) for i, j in zip(ordered, ordered[1:]))
    if p is None:
        strength = f"ρ = {rho:+.2f} over {len(its)} networks (no exact p-value for so many or so few)"
    else:
        floor = f" (the smallest share {len(its)} networks allow is 1 in {math.factorial(len(its)):,})"
        strength = (f"ρ = {rho:+.2f}; a random order agrees at least as well in {p:.1%} of cases{floor}: "
                    + (f"the two orders agree more than chance would have them, which does not say that each pair "
                       f"keeps its order" if p < 0.05 else
                       f"these {len(its)} networks do not show that the order on {first} carries over to {second}"))
    epochs = sorted({a_rows[i]["epochs"] for i in its})
    longer = (f" The networks also train for different numbers of epochs ({', '.join(map(str, epochs))}), which alone "
              "orders them alike on both." if len(epochs) > 1 else "")
    md.append(f"- **The order of the networks.** {strength}. On {first}, {apart} of the {len(its) - 1} neighbouring "
              f"pairs in its order differ by more than twice their standard error, so its order is only as firm as "
              f"that.{longer}")
    return md
