"""One series' page, README.md with its figures, from its result files and the series.json it is given:
the study's page or a comparison's, its smoke runs, its notes and how its numbers were made.

The same result files always give the same page: no timestamps, sorted inputs, fixed formatting.
"""
from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

from .. import paths
from ..errors import LabError
from ..io import atomic_write_text
from ..results import load_results
from ..series import Series
from . import compare, grid, plots, reproduction, study, table, transfer
from .rows import MACHINE_COLUMNS, NOT_OWN, defaults_of, machine, notebooks_of, summarize, where

# How a command run in the repository's root folder names the committed results (paths.reports_dir()).
COMMITTED_OUT = "reports"
# A smoke run's settings the table shows in columns of their own.
SMOKE_SHOWN = {"framework", "epochs"}


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
    defaults = defaults_of(notebooks, spec.settings)
    notes = _notes(out_dir, spec)
    if spec.report == "study":
        md = [f"# {spec.title}" if spec.reuses else "# mnist_lab results: the study", ""]
        md += study.page(full, out_dir, data_dir, spec, defaults, notes, _made(full, out_dir)) if full else []
    elif full:
        md = compare.build(out_dir, spec, defaults, summarize(full), data_dir, _made(full, out_dir), notes, notebooks)
    else:
        md = [f"# {spec.title or spec.name}"]
    if spec.reuses and full:  # before the notes and how the numbers were made
        at = next((i for i, line in enumerate(md) if line in ("## Notes", "## How these numbers were made")), len(md))
        md[at:at] = transfer.section(spec, full, out_dir)
    md += ["", *reproduction.section(full, out_dir, spec.name)] if full else []
    if smoke:
        md += ["", "## Smoke runs (quick code checks, not results)", "", *_smoke_table(smoke)]
        md += [""] + [f"![{name}]({name})" for name in plots.study_curves(summarize(smoke), out_dir, prefix="smoke_")]
        if notebooks:
            md += ["", *grid.of(summarize(smoke), spec, defaults, heading="Smoke grid")]
    return atomic_write_text(out_dir / "README.md", "\n".join(md) + "\n")


def _smoke_table(smoke) -> list[str]:
    """One line per smoke run, with the settings where runs of one notebook differ in them (other notebooks
    differ in many: their number tells them apart), and the machine where runs differ in it: two lines never
    look alike while their runs were made apart."""
    own = [{k: v for k, v in r.get("config", {}).items() if k not in NOT_OWN} for r in smoke]
    keys = sorted({k for r, c in zip(smoke, own) for k in c if k not in SMOKE_SHOWN and
                   len({repr(o.get(k)) for q, o in zip(smoke, own) if q["iteration"] == r["iteration"]}) > 1})
    columns = [("It", None), ("Seed", None), ("Framework", "trained in {}"), ("Params", "{} parameters"),
               ("Epochs", "{} epochs"), ("Test images", "{} test images"), *((k, None) for k in keys),
               ("Final acc", None), *MACHINE_COLUMNS, ("Run (iteration, seed, recipe hash)", None)]
    cells = [[str(r["iteration"]), str(r["seed"]), r.get("framework", "pytorch"), f"{r['params']:,}", str(r["epochs"]),
              f"{r['test_size']:,}", *(str(c.get(k, "")) for k in keys), f"{r['final_test_acc']:.2f}", *machine([r]),
              r.get("run_id", Path(r["_path"]).stem)] for r, c in zip(smoke, own)]
    return table.markdown(columns, cells, "All smoke runs")


def _notes(out_dir: Path, spec) -> list[str]:
    """The series' notes, and in the repository's reports/<series>/ also those about the committed results."""
    return spec.notes + (spec.reports_notes if _committed(out_dir) else [])


def _committed(out_dir: Path) -> bool:
    """Whether out_dir is the repository's reports/<series>/."""
    return Path(os.path.abspath(out_dir)) == paths.reports_dir() / out_dir.name


def _made(full, out_dir: Path) -> list[str]:
    """How the numbers were made: files, devices, versions, code commits, and the last run's command."""
    rows = summarize(full)
    seeds = sorted({r["seed"] for r in full})
    lines = [f"- {len(full)} result files in `results/`, each written by one executed notebook in `notebooks/` "
             f"(papermill runs of `notebooks/{out_dir.name}/` in the repository), seeds {seeds}.",
             f"- Machines: {' / '.join(sorted({where(r) for r in full}))}; CPU threads per run: "
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
    lines.append(_remake(full, out_dir))
    return lines


def _remake(full, out_dir: Path) -> str:
    """The commands that remake the runs and this page, each to be pasted as it is in the repository's root
    folder: the output folder named relative to it when inside it (paths.portable), else in full."""
    name = out_dir.name
    seeds = " ".join(map(str, sorted({r["seed"] for r in full})))
    threads = sorted({r["threads"] for r in full if where(r).startswith("CPU") and r.get("threads")})
    run = f"mnist-lab run --series {name} --seeds {seeds}" + (f" --threads {threads[0]}" if len(threads) == 1 else "")
    mixed = (f" (the runs used {', '.join(map(str, threads))} CPU threads: give each its own --threads)"
             if len(threads) > 1 else "")
    if _committed(out_dir):  # remade beside these, not over them: a run already here counts as done
        out = COMMITTED_OUT
        runs = (f"`{run}`{mixed} (into `{paths.portable(paths.runs_dir())}/`, whose page then sets each run beside "
                "the committed one it remakes; `make reproduce` does so for every series)")
    else:
        out = shlex.quote(paths.portable(out_dir.parent))  # a folder with a space in its name: one argument
        runs = f"`{run} --out {out}`{mixed} (a run whose result file is already there counts as done)"
    return (f"- Remake the runs with {runs} and this page with `mnist-lab report --series {name} --out {out}`, "
            "from the repository's root folder. On the CPU, the same CPU model, vector instructions and threads give "
            "the same numbers. The page reads only the result files, each named by its notebook number, seed and a "
            "hash of its full recipe.")
