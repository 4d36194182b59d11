"""Where things live: the repository's data/, runs/ and reports/, whatever the working directory.

A notebook opened in Jupyter runs in notebooks/, papermill runs it wherever it was started, and the
command line runs wherever the user is. Default folders are therefore resolved from the repository
that holds this package (an editable install, as `make setup` makes), never from the working
directory; outside a checkout they fall back to the working directory.
"""
from __future__ import annotations

import os
from pathlib import Path

_PACKAGE_PARENT = Path(__file__).resolve().parent.parent
DATA_ENV = "MNIST_LAB_DATA"  # an MNIST folder to use instead of the repository's data/


def repo_root() -> Path | None:
    """The checkout this package lives in, or None for an installed copy."""
    root = _PACKAGE_PARENT
    return root if (root / "notebooks").is_dir() and (root / "pyproject.toml").is_file() else None


def base() -> Path:
    return repo_root() or Path.cwd()


def resolve(value) -> Path:
    """A folder given as a notebook parameter: absolute as it is, relative to the repository otherwise."""
    p = Path(value).expanduser()
    return p if p.is_absolute() else base() / p


def data_root(value: str | os.PathLike | None = None) -> Path:
    """The MNIST folder: `value` if given, else $MNIST_LAB_DATA, else the repository's data/."""
    if value:
        return resolve(value)
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser().resolve()
    return base() / "data"


def runs_dir() -> Path:
    """Interactive and ad-hoc runs go here (ignored by git)."""
    return base() / "runs"


def reports_dir() -> Path:
    """The committed canonical results: only `mnist-lab publish` or an explicit `--out reports` writes here."""
    return base() / "reports"


def _relative(path, root: Path | None) -> str:
    p = Path(os.path.abspath(Path(path).expanduser()))
    if root is not None and p.is_relative_to(root):
        return p.relative_to(root).as_posix() or "."
    return p.as_posix()


def portable(path) -> str:
    """`path` relative to the repository when it lies inside it (what result files and executed
    notebooks record, so they hold no machine's absolute paths), else absolute."""
    return _relative(path, repo_root())


def shown(path) -> str:
    """`path` as a message shows it: relative to the working directory when inside it, else absolute."""
    return _relative(path, Path.cwd())
