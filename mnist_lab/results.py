"""Result files: one self-describing JSON per run (checkpoint.record writes them), read here without torch,
so that reports and the runner's bookkeeping stay light."""
from __future__ import annotations

import json
from pathlib import Path

SCHEMA = 5  # 2: run_id and recipe; folders relative to the repository. 3: series, framework, restored_best.
           # 4: versions (of the framework that trained the run); device_name: the CPU's model name.
           # 5: notebook (its file, own parameters, own network, Target) and variant, where the runner made it


def code_version() -> str:
    """The git commit of the code that made a result ("+dirty" with uncommitted changes), if known."""
    import subprocess

    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty=+dirty", "--abbrev=12"], cwd=here,
                             capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


# What the report and the runner rely on in a result file: key -> accepted types.
_REQUIRED = {"iteration": int, "seed": int, "smoke": bool, "name": str, "params": int, "epochs": int,
             "batch_size": int, "lr": (int, float), "device": str, "blocks": list, "history": list,
             "final_test_acc": (int, float), "final_train_acc": (int, float), "wall_seconds": (int, float),
             "torch": str, "test_size": int, "confusion": list, "mistakes": list, "checkpoint": str}
_PER_EPOCH = {"epoch": int, "test_acc": (int, float), "train_acc": (int, float), "seconds": (int, float)}


def problem(r) -> str | None:
    """Why `r` is not a usable result file, or None."""
    if not isinstance(r, dict):
        return f"not a result file (a JSON {type(r).__name__}, not an object)"
    for key, kind in _REQUIRED.items():
        if key not in r:
            return f"no {key!r}"
        if not isinstance(r[key], kind) or (kind is int and isinstance(r[key], bool)):
            return f"{key!r} is {r[key]!r}"
    if not r["history"]:
        return "an empty history (the run recorded no epoch)"
    for row in r["history"]:
        bad = [k for k, kind in _PER_EPOCH.items() if not isinstance(row, dict) or not isinstance(row.get(k), kind)]
        if bad:
            return f"a history row without a number for {bad[0]!r}"
    return None


def read_result(path) -> tuple[dict | None, str | None]:
    """(result, None) for a usable result file, else (None, why not)."""
    try:
        r = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"unreadable ({type(exc).__name__}: {exc})"
    why = problem(r)
    return (None, why) if why else (r, None)


def load_results(folder, warn=None) -> list[dict]:
    """Every usable result file in `folder`, sorted by (iteration, seed, smoke). A file that is
    unreadable or lacks what the report needs is skipped with a one-line warning naming it."""
    import sys

    warn = warn or (lambda line: print(line, file=sys.stderr))
    out = []
    for p in sorted(Path(folder).glob("*.json")):
        r, why = read_result(p)
        if why:
            warn(f"warning: skipping {p}: {why}; delete it or re-run that notebook")
            continue
        r["_path"] = str(p)
        out.append(r)
    return sorted(out, key=lambda r: (r["iteration"], r["seed"], r["smoke"]))
