"""Run when mnist_lab is imported inside a Jupyter kernel: stop a notebook, with one line, that would run
another checkout's code or was handed a parameter it does not have.

Both are mistakes that otherwise pass silently: the notebook would train with the other checkout's code
and write into its runs/, or papermill would only warn about `-p tiny True` and train at full length.
The setup cell (the first code cell after papermill's injected one) imports mnist_lab before it reads any
parameter, so that is where a notebook stops.
"""
from __future__ import annotations

import ast
import difflib
import sys
from pathlib import Path

from .errors import LabError
from .kernel_launch import checkout_of
from .paths import repo_root

OWN = "# Parameters: flat literals only"  # how every notebook's `parameters` cell starts (the house template)
INJECTED = "# Parameters\n"               # how papermill's injected cell starts (its Python translator)
ALIASES = {"tiny": "smoke"}               # other names for a parameter, read as it with one printed line


def check():
    shell = _kernel_shell()
    if shell is None:
        return
    try:
        cwd = Path.cwd()
    except FileNotFoundError:  # the kernel's folder was deleted under it: no notebook folder to judge by
        cwd = None
    if cwd is not None:
        same_checkout(cwd, repo_root())
    parameters(shell.user_ns)


def _kernel_shell():
    """IPython's shell when this runs in a Jupyter kernel (it has a .kernel), else None. IPython is looked
    up, not imported: outside a kernel it is not loaded, and importing it would cost a second."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell if getattr(shell, "kernel", None) is not None else None


def same_checkout(cwd: Path, code: Path | None):
    """The kernel runs in the notebook's folder: if that lies in a checkout, it must be the one the code
    comes from. (An installed copy, `code` None, belongs to no checkout and is left alone.)"""
    here = checkout_of(cwd)
    if here is not None and code is not None and here != code.resolve():
        raise LabError(f"this notebook lies in the checkout {here} but its kernel runs the code of {code}: run `make "
                       f"setup` in {here} and pick the kernel 'Python (mnist_lab)', or open it with `make lab` there")


def _assigned(source: str) -> list[str]:
    try:
        body = ast.parse(source).body
    except SyntaxError:
        return []
    targets = [t for n in body if isinstance(n, ast.Assign) for t in n.targets] + \
              [n.target for n in body if isinstance(n, ast.AnnAssign)]
    return [t.id for t in targets if isinstance(t, ast.Name)]


def parameters(user_ns: dict):
    """Compare papermill's injected cell with the notebook's own parameters cell, which ran just before it
    (IPython's input history `In` holds both). Jupyter without papermill injects nothing: no check."""
    history = user_ns.get("In") or []
    pair = next(((history[i - 1], history[i]) for i in range(len(history) - 1, 0, -1)
                 if history[i].startswith(INJECTED) and history[i - 1].startswith(OWN)), None)
    if pair is None:
        return
    own, given = _assigned(pair[0]), _assigned(pair[1])
    for alias, name in ALIASES.items():
        if alias in given and name in own:
            if name in given:
                raise LabError(f"parameters {name!r} and {alias!r} (another name for it) both given: give only {name!r}")
            user_ns[name] = user_ns.pop(alias)
            given = [name if g == alias else g for g in given]
            print(f"parameter {alias!r} is read as {name!r} (the lab's name for it): {name}={user_ns[name]!r}")
    unknown = [g for g in given if g not in own]
    if unknown:
        close = [c for u in unknown for c in difflib.get_close_matches(u, own, n=1)]
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise LabError(f"this notebook has no parameter {', '.join(map(repr, unknown))}.{hint} "
                       f"Its parameters: {', '.join(own)}")
