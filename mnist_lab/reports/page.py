"""One series' page, README.md with its figures, from its result files and the series.json it is given:
the study's page or a comparison's, its tiny runs, its notes and how its numbers were made.

The same result files always give the same page: no timestamps, sorted inputs, fixed formatting.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from .. import paths
from ..errors import LabError
from ..io import atomic_write_text
from ..results import load_results
from ..series import Series
from . import compare, grid, plots, reproduction, study
from .rows import defaults_of, notebooks_of, summarize


def bare(name: str) -> Series:
    """A series known only by its results folder's name: no series.json, so a plain comparison (a study
    when it is called so)."""
    return Series(name, Path(name), {}, report="study" if name == "study" else "compare")


def build(out_dir, spec: Series | None = None, data_dir=None, warn=None) -> Path:
    """Write <out_dir>/README.md and its plots from <out_dir>/results/*.json (out_dir: one series' folder).
    `spec`: the series the runs were made from (its series.json); None: `bare(out_dir.name)`."""
    out_dir = Path(out_dir)
    spec = spec or bare(out_dir.name)
    results = load_results(out_dir / "results", warn)
    if not results:
        raise LabError(f"no usable result files in {out_dir / 'results'}; run `mnist-lab run` first")
    full = [r for r in results if not r["smoke"]]
    smoke = [r for r in results if r["smoke"]]
    notebooks = notebooks_of(results)
    defaults = defaults_of(notebooks)
    notes = _notes(out_dir, spec)
    if spec.report == "study":
        md = ["# mnist_lab results: the study", ""]
        md += study.page(full, out_dir, data_dir, spec, defaults, notes, _made(full, out_dir)) if full else []
    elif full:
        md = compare.build(out_dir, spec, defaults, summarize(full), data_dir, _made(full, out_dir), notes, notebooks)
    else:
        md = [f"# {spec.title or spec.name}"]
    md += ["", *reproduction.section(full, out_dir, spec.name)] if full else []
    if smoke:
        md += ["", "## Tiny runs (smoke mode: code checks, not results)", "",
               "| It | Seed | Framework | Epochs | Test images | Final acc | Run (iteration, seed, recipe hash) |",
               "|---|---|---|---|---|---|---|"]
        md += [f"| {r['iteration']} | {r['seed']} | {r.get('framework', 'pytorch')} | {r['epochs']} | {r['test_size']:,} | "
               f"{r['final_test_acc']:.2f} | {r.get('run_id', Path(r['_path']).stem)} |" for r in smoke]
        md += [""] + [f"![{name}]({name})" for name in plots.study_curves(summarize(smoke), out_dir, prefix="tiny_")]
        if notebooks:
            md += ["", *grid.of(summarize(smoke), spec, defaults, heading="Tiny grid")]
    return atomic_write_text(out_dir / "README.md", "\n".join(md) + "\n")


def _notes(out_dir: Path, spec) -> list[str]:
    """The series' notes, and in the repository's reports/<series>/ also those about the committed results."""
    committed = Path(os.path.abspath(out_dir)) == paths.reports_dir() / spec.name
    return spec.notes + (spec.reports_notes if committed else [])


def _made(full, out_dir: Path) -> list[str]:
    """How the numbers were made: files, devices, versions, code commits, and the last run's command."""
    rows = summarize(full)
    seeds = sorted({r["seed"] for r in full})
    lines = [f"- {len(full)} result files in `results/`, each written by one executed notebook in `notebooks/` "
             f"(papermill runs of `notebooks/{out_dir.name}/` in the repository), seeds {seeds}.",
             f"- Devices: {', '.join(sorted({d for r in rows for d in r['devices']}))}; CPU threads per run: "
             f"{sorted({t for r in rows for t in r['threads'] if t is not None})}.",
             f"- Versions: torch {', '.join(sorted({v for r in rows for v in r['torch']}))}, "
             f"Python {', '.join(sorted({r.get('python', '?') for r in full}))}"
             + "".join(f", {k} {v}" for k, v in sorted({(k, v) for r in full for k, v in r.get("versions", {}).items()
                                                       if k != "keras_backend"})) + ".",
             f"- Code: commit(s) {', '.join(sorted({r.get('code', 'unknown') for r in full}))} (recorded by each run).",
             f"- Training time summed over runs: {sum(r['wall_seconds'] for r in full) / 60:.1f} min."]
    try:
        run = json.loads((out_dir / "run.json").read_text())
        skipped = f", {run['skipped']} skipped as already done" if run.get("skipped") else ""
        lines.append(f"- The last `mnist-lab run` into this folder: `{run['command']}`, {run['runs']} run(s) "
                     f"({run['runs_of_this_series']} of this series{skipped}, {run['failed']} failed), "
                     f"{run['workers']} worker(s) x {run['threads']} thread(s), wall time "
                     f"{run['wall_seconds'] / 60:.1f} min ({run['wall_seconds']:,.0f} s).")
    except (OSError, ValueError, KeyError, TypeError):
        pass
    lines.append(f"- Remake the runs with `mnist-lab run --series {out_dir.name} --seeds {' '.join(map(str, seeds))} "
                 "--threads 1 --workers 2 --out` the parent folder (`make reproduce` for `reports/`; on the CPU, equal "
                 "threads give equal numbers) and this page with `mnist-lab report --series "
                 f"{out_dir.name} --out` the parent folder; it reads only the result files, each named by its "
                 "notebook number, seed and a hash of its full recipe.")
    return lines
