"""<out>/README.md: one line per series folder that has a report."""
from __future__ import annotations

from pathlib import Path

from ..io import atomic_write_text
from ..results import load_results
from .rows import summarize
from .stats import pm


def index(out, specs: dict) -> Path | None:
    """`specs`: {series name: Series} for the titles (a folder without one gets none)."""
    out = Path(out)
    found = sorted(d for d in out.iterdir() if (d / "README.md").is_file() and (d / "results").is_dir()) \
        if out.is_dir() else []
    if not found:
        return None
    md = ["# mnist_lab results", "",
          "One folder per series of notebooks (`notebooks/<series>/`): its result files, executed notebooks, "
          "report and plots. Every accuracy is measured on the 10,000 held-out test images.", "",
          "| Series | What it is | Full runs | Best network on held-out data (mean ± std over seeds) |", "|---|---|---|---|"]
    for d in found:
        spec = specs.get(d.name)
        full = [r for r in load_results(d / "results", warn=lambda _: None) if not r["smoke"]]
        rows = summarize(full) if full else []
        best = max(rows, key=lambda r: r["final_mean"], default=None)
        md.append(f"| [{d.name}]({d.name}/README.md) | {(spec.title if spec else '') or ''} | {len(full)} | "
                  + (f"{best['iteration']} {best['name']}: {pm(best['final_mean'], best['final_std'], best['n'])} "
                     f"({best['params']:,} params)" if best else "") + " |")
    return atomic_write_text(out / "README.md", "\n".join(md) + "\n")
