"""The notebooks `make test` runs under nbval: one declared notebook per series folder, plus every notebook that
differs from main (committed on this branch or not yet committed). `make test-all`, what CI runs, runs them all.

    python tests/fast_notebooks.py          # prints their paths, one per line

Each declared notebook stands for its folder: it is the one that exercises most of what the folder's others do
(the study's explorer and pad, in every study notebook; the NumPy trainer, only in baselines 05; early stopping
on a validation split with ReduceLROnPlateau and restore-best in frameworks 05; OneCycleLR in under8k 03).
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DECLARED = ("notebooks/study/01_baseline.ipynb", "notebooks/baselines/05_numpy_mlp.ipynb",
            "notebooks/frameworks/05_dnn.ipynb", "notebooks/under8k/03_onecycle.ipynb")


def _git(*args: str) -> list[str]:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
    return done.stdout.split() if done.returncode == 0 else []


def changed() -> list[str]:
    """Notebooks that differ from main: since the branch left it, and in the working tree (untracked ones too)."""
    base = next((b for b in ("main", "origin/main") if _git("rev-parse", "--verify", "--quiet", b)), None)
    names = _git("diff", "--name-only", f"{base}...HEAD", "--", "notebooks") if base else []
    names += _git("diff", "--name-only", "HEAD", "--", "notebooks")
    names += _git("ls-files", "--others", "--exclude-standard", "--", "notebooks")
    return [n for n in names if n.endswith(".ipynb") and (ROOT / n).is_file()]


def selected() -> list[str]:
    return sorted(set(DECLARED) | set(changed()))


if __name__ == "__main__":
    sys.stdout.write("".join(f"{p}\n" for p in selected()))
