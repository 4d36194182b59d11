"""The report's grids: runs of a notebook at settings other than its own (`mnist-lab run --grid`, `--set`),
grouped per notebook, one line per combination, with the settings that differ as columns."""
from __future__ import annotations

from .rows import describe, follows, own_rows, settings, sweep_rows
from .stats import pm, verdict


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
        threads = len({t for r in extra + ([mine_row] if mine_row else []) for t in r["threads"]}) > 1
        cols = (keys or ["settings"]) + (["threads"] if threads else [])
        head = "| " + " | ".join(cols + ["Params", "Held-out test acc (mean ± std, n)", "s / epoch", "Seeds"]) + " |"
        md += [f"## {heading}: notebook {it} ({extra[0]['name']}) at other settings", "",
               f"{len(extra)} combination(s) besides the notebook's own recipe, each over its seeds, with the "
               "settings that differ from it as columns.", "", head, "|---" * (head.count("|") - 1) + "|"]

        def line(r, mark=""):
            s = settings(r)
            d = describe(r)
            cells = [_label(s.get(k, mine.get(k, ""))) for k in keys] or ["own" if mark else "other network"]
            cells[0] += mark if keys else ""
            return ("| " + " | ".join(cells
                                      + ([", ".join(map(str, r["threads"]))] if threads else [])
                                      + [f"{r['params']:,}", pm(*d["acc"]), f"{d['sec'][0]:.2f}",
                                         " ".join(map(str, r["seeds"]))]) + " |")
        if mine_row is not None:
            md.append(line(mine_row, " (own)"))
        order = sorted(extra, key=lambda r: [(type(v).__name__, v if v is not None else 0)
                                             for v in (settings(r).get(k) for k in keys)] + [r["threads"]])
        md += [line(r) for r in order]
        best = max(extra + ([mine_row] if mine_row else []), key=lambda r: describe(r)["acc"][0])
        what = ", ".join(f"{k} {_label(settings(best).get(k))}" for k in keys) or f"{best['params']:,} parameters"
        mark = " (the notebook's own)" if best is mine_row else ""
        md += ["", f"- Highest mean: {what}{mark}, {pm(*describe(best)['acc'])}."]
        if mine_row is not None and best is not mine_row:
            md.append(f"- Against the notebook's own recipe: held-out accuracy "
                      f"{verdict(describe(best)['acc'], describe(mine_row)['acc'], 'points')}.")
        md.append("")
    return md
