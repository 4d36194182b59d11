"""Reports written from result files alone: statistics (stats.py), figures (plots.py), and the pages: a study
(study.py), a comparison of notebooks (compare.py) with its steps (steps.py) and grids (grid.py), the index
(index.py). Nothing here imports torch, runs a notebook or reads one."""

from .index import index
from .page import bare, build
from .study import best_checkpoint

__all__ = ["bare", "best_checkpoint", "build", "index"]
