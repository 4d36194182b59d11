"""Replacing committed results with new runs: the maintainers' explicit step after `make reproduce` (runs into
runs/, whose report compares them with reports/) has shown what would change. Each published run replaces
the committed run it remakes (the same notebook, seed and method, made on any machine), so no table ever
shows one run twice; committed runs it does not remake stay."""
from __future__ import annotations

from pathlib import Path

from ..errors import LabError
from ..io import atomic_write_bytes
from ..machine import same_run
from ..paths import shown
from ..results import checkpoint_problem, load_results


def executed_notebook(result_path: Path) -> Path | None:
    """The executed notebook that made the result file `result_path`, in the series' notebooks/ folder."""
    tail = result_path.stem.split("_", 1)[1]  # it5_seed0_1a2b3c4d -> seed0_1a2b3c4d
    found = sorted((result_path.parent.parent / "notebooks").glob(f"*_{tail}.ipynb"))
    return found[0] if found else None


def files_of(r: dict) -> list[Path]:
    path = Path(r["_path"])
    nb = executed_notebook(path)
    return [path, path.with_name(r["checkpoint"])] + ([nb] if nb else [])


def publish(source: Path, target: Path, names: list[str], log=print) -> dict[str, int]:
    """Copy each series' full runs from `source`/<series> into `target`/<series>; {series: runs published}.
    Every run must have its three files, sound, before anything is copied."""
    plan = {}
    for name in names:
        runs = [dict(r, series=r.get("series") or name) for r in load_results(source / name / "results")
                if not r["smoke"]] if (source / name / "results").is_dir() else []
        if not runs:
            raise LabError(f"no full runs of series {name!r} in {shown(source / name / 'results')}: run "
                           f"`mnist-lab run --series {name} --series-seeds` (or `make reproduce`) first")
        for r in runs:
            why = checkpoint_problem(Path(r["_path"]), r) or (
                None if executed_notebook(Path(r["_path"])) else "its executed notebook is missing")
            if why:
                raise LabError(f"{shown(r['_path'])}: {why}; run the same `mnist-lab run` again to redo it, "
                               "then publish")
        plan[name] = runs
    done = {}
    for name, runs in plan.items():
        committed = {same_run(dict(c, series=c.get("series") or name)): c
                     for c in load_results(target / name / "results", warn=lambda _: None)} \
            if (target / name / "results").is_dir() else {}
        for r in runs:
            old = committed.get(same_run(r))
            if old and old["run_id"] != r["run_id"]:
                for path in files_of(old):
                    path.unlink(missing_ok=True)
            for path in files_of(r):
                atomic_write_bytes(target / name / path.parent.name / path.name, path.read_bytes())
        if (source / name / "run.json").is_file():
            atomic_write_bytes(target / name / "run.json", (source / name / "run.json").read_bytes())
        log(f"{name}: {len(runs)} run(s) published into {shown(target / name)}")
        done[name] = len(runs)
    return done
