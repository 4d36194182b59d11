"""Result files: one self-describing JSON per run (checkpoint.record writes them), read here without torch,
so that reports and the runner's bookkeeping stay light."""
from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

SCHEMA = 6  # 2: run_id and recipe; folders relative to the repository. 3: series, framework, restored_best.
           # 4: versions (of the framework that trained the run); device_name: the CPU's model name.
           # 5: notebook (its file, own parameters, own network, Target) and variant, where the runner made it
           # 6: checkpoint_bytes and checkpoint_sha256, so that a damaged checkpoint is never taken for a run


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


def digest(data: bytes) -> dict:
    """What a result file records of its checkpoint's bytes."""
    return {"checkpoint_bytes": len(data), "checkpoint_sha256": hashlib.sha256(data).hexdigest()}


def file_digest(path) -> dict:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return {"checkpoint_bytes": Path(path).stat().st_size, "checkpoint_sha256": h.hexdigest()}


def damage(pt, r: dict | None) -> str | None:
    """What is wrong with the bytes of checkpoint `pt`, or None: compared with the size and SHA-256 that its
    result file `r` records; without that record (no result file, or one older than schema 6) it must at least
    be a complete archive (torch.save writes a zip, whose directory sits at its end)."""
    pt = Path(pt)
    want_sha = (r or {}).get("checkpoint_sha256")
    if want_sha is None:
        return None if zipfile.is_zipfile(pt) else "cut short or overwritten: not a complete archive"
    size, want_size = pt.stat().st_size, r.get("checkpoint_bytes")
    if size != want_size:
        return f"{size:,} bytes, its result file records {want_size:,}"
    if file_digest(pt)["checkpoint_sha256"] != want_sha:
        return "its SHA-256 differs from the one its result file records"
    return None


def checkpoint_problem(result_path, r: dict) -> str | None:
    """Why the checkpoint of the result file `result_path` (read as `r`) cannot be trusted, or None."""
    pt = Path(result_path).with_name(r.get("checkpoint") or Path(result_path).with_suffix(".pt").name)
    if not pt.is_file():
        return "its checkpoint is missing"
    why = damage(pt, r)
    return f"its checkpoint {pt.name} is damaged ({why})" if why else None
