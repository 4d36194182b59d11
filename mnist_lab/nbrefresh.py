"""Refresh the outputs that nbval checks in the committed notebooks.

nbval (`--nbval-lax`) compares only cells marked `# NBVAL_CHECK_OUTPUT`: the network declaration
and its torchsummary table. This executes each notebook in smoke mode and stores those outputs alone,
so the committed notebooks stay small and clean. Run it after changing a network:
`python -m mnist_lab.nbrefresh notebooks` (every series) or a series folder.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat

from .series import find

MARK = "# NBVAL_CHECK_OUTPUT"


def refresh(path: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / path.name
        env = dict(os.environ, MNIST_LAB_SMOKE="1", MNIST_LAB_RESULTS=tmp)
        subprocess.run([sys.executable, "-m", "mnist_lab.runs.papermill_main", str(path), str(out), "--cwd", str(path.parent),
                        "-k", "python3", "--no-progress-bar"], check=True, env=env, capture_output=True)
        executed = nbformat.read(out, 4)
    nb = nbformat.read(path, 4)
    by_source = {c.source: c for c in executed.cells if c.cell_type == "code"}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        ran = by_source.get(cell.source)
        keep = cell.source.startswith(MARK) and ran is not None
        cell.outputs = ran.outputs if keep else []
        cell.execution_count = 1 if keep else None
        cell.metadata.pop("execution", None)
        cell.metadata.pop("papermill", None)
    nbformat.write(nb, path)


if __name__ == "__main__":
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "notebooks")
    for p in dict.fromkeys(nb for s in find(folder).values() for nb in s.notebooks.values()):  # a reused one once
        refresh(p)
        print(f"refreshed {p}")
