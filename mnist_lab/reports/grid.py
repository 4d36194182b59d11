"""The report's grids: runs of a notebook at settings other than its own (`mnist-lab run --grid`, `--set`),
grouped per notebook, one line per combination, with the settings that differ as columns."""
from __future__ import annotations

from . import table
from .rows import MACHINE_COLUMNS, describe, follows, machine, own_rows, settings, sweep_rows
from .stats import pm, verdict


# The columns after the settings (table.markdown): the network's size, what was measured, the seeds and
# the machine; a combination run on another machine or thread count shows it.
COLUMNS = [("Params", "{} parameters"), ("Held-out test acc (mean ± std, n)", None), ("s / epoch", None),
           ("Seeds", "seeds {}"), *MACHINE_COLUMNS]


def _label(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def of(rows, spec, defaults: dict, heading: str = "Grid") -> list[str]:
    """section() for a page that reports its notebooks' own rows and its series' sweeps."""
    sweeps = [r for _, _, pairs, _ in sweep_rows(rows, spec, defaults) for _, r in pairs]
    return section(rows, defaults, own_rows(rows, defaults), sweeps, heading)


def section(rows, defaults: dict, own: dict, shown=(), heading: str = "Grid") -> list[str]:
    """Lines for the rows the page does not report yet (not a notebook's own row in `own`, nor in
    `shown`: its series' sweeps), per notebook: a table of their differing settings and held-out
    accuracy, next to the notebook's own row when there is one, and the best combination."""
    ids = {id(r) for r in [*own.values(), *shown]}
    md = []
    for it in sorted({r["iteration"] for r in rows}):
        # other settings or another network; the own recipe at another thread count is not a combination
        extra = [r for r in rows if r["iteration"] == it and id(r) not in ids and not follows(r, defaults.get(it, {}))]
        if not extra:
            continue
        mine_row = own.get(it)
        mine = defaults.get(it, {})
        found = [settings(r) for r in extra]
        # the settings that differ from the notebook's own, or among the combinations
        keys = sorted({k for st in found for k in st
                       if (k in mine and st[k] != mine[k]) or len({_label(x.get(k)) for x in found}) > 1})
        md += [f"## {heading}: notebook {it} ({extra[0]['name']}) at other settings", "",
               f"{len(extra)} combination(s) besides the notebook's own recipe, each over its seeds, with the "
               "settings that differ from it as columns.", ""]

        def cells(r, mark=""):
            s = settings(r)
            d = describe(r)
            named = [_label(s.get(k, mine.get(k, ""))) for k in keys] or ["own" if mark else "other network"]
            named[0] += mark if keys else ""
            return named + [f"{r['params']:,}", pm(*d["acc"]), f"{d['sec'][0]:.2f}", " ".join(map(str, r["seeds"])),
                            *machine(r["runs"])]
        order = sorted(extra, key=lambda r: [(type(v).__name__, v if v is not None else 0)
                                             for v in (settings(r).get(k) for k in keys)] + machine(r["runs"]))
        columns = [(k, None) for k in keys or ["settings"]] + COLUMNS
        md += table.markdown(columns, ([cells(mine_row, " (own)")] if mine_row is not None else [])
                             + [cells(r) for r in order], "All combinations")
        best = max(extra + ([mine_row] if mine_row else []), key=lambda r: describe(r)["acc"][0])
        what = ", ".join(f"{k} {_label(settings(best).get(k))}" for k in keys) or f"{best['params']:,} parameters"
        mark = " (the notebook's own)" if best is mine_row else ""
        md += ["", f"- Highest mean: {what}{mark}, {pm(*describe(best)['acc'])}."]
        if mine_row is not None and best is not mine_row:
            md.append(f"- Against the notebook's own recipe: held-out accuracy "
                      f"{verdict(describe(best)['acc'], describe(mine_row)['acc'], 'points')}.")
        md.append("")
    return md
