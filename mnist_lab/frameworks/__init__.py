"""The frameworks a network can be trained in: one row each, and the lookups every caller uses.

A row says what the framework needs installed, where it runs and which recipes it refuses; its module
(`mnist_lab.frameworks.<module>`) trains: `fit(net, data, cfg) -> FitResult` and `versions(cfg) -> dict`,
with the contract of `base.py`. Nothing else branches on a framework's name: adding one is a module and
a row. This file imports nothing heavy (Config reads it), so a trainer is imported only when a run asks
for it.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from importlib import import_module
from typing import Callable

INSTALL = "pip install -e '.[frameworks]' (in the repository; `make setup` does it)"
KERAS_BACKENDS = ("tensorflow", "torch", "jax")


def _never(cfg) -> None:
    return None


def _numpy_refuses(cfg) -> str | None:
    limits = {"optimizer": lambda v: v == "sgd", "scheduler": lambda v: v in ("step", "none"),
              "patience": lambda v: v == 0, "restore_best": lambda v: not v, "rotation": lambda v: v == 0,
              "crop_p": lambda v: v == 0, "device": lambda v: v in ("auto", "cpu"), "label_smoothing": lambda v: v == 0}
    wrong = [f"{k}={getattr(cfg, k)!r}" for k, ok in limits.items() if not ok(getattr(cfg, k))]
    return (f"framework 'numpy' trains with minibatch SGD on the CPU, an optional StepLR, no early stopping and "
            f"no augmentation; not {', '.join(wrong)}") if wrong else None


def _keras_refuses(cfg) -> str | None:
    if cfg.scheduler == "onecycle" or cfg.label_smoothing:
        return ("framework 'keras' here trains with scheduler 'step', 'plateau' or 'none' and without label "
                "smoothing; use framework 'pytorch' or 'lightning' for this recipe")
    if cfg.keras_backend == "tensorflow" and cfg.device not in ("auto", "cpu"):
        return (f"framework 'keras' on TensorFlow runs on the CPU here (tensorflow-cpu), not device {cfg.device!r}: "
                "use device='cpu', or keras_backend='torch'")
    return None


@dataclass(frozen=True)
class Framework:
    module: str                                 # mnist_lab.frameworks.<module>
    needs: Callable = lambda cfg: ()            # the packages it imports, checked before a series starts
    cpu_only: Callable = lambda cfg: False      # trains on the CPU whatever device the recipe names
    refuses: Callable = _never                  # why a recipe cannot be trained in it (None: it can)
    settings: tuple = ()                        # Config keys only this framework reads (no other's recipe has them)


FRAMEWORKS = {
    "pytorch": Framework("pytorch"),
    "keras": Framework("keras", needs=lambda cfg: ("keras", cfg.keras_backend),
                       cpu_only=lambda cfg: cfg.keras_backend == "tensorflow",  # tensorflow-cpu
                       refuses=_keras_refuses, settings=("keras_backend",)),
    "lightning": Framework("lightning", needs=lambda cfg: ("lightning",)),
    "numpy": Framework("numpy_mlp", cpu_only=lambda cfg: True, refuses=_numpy_refuses),
}


def trainer(cfg):
    """The module that trains `cfg`'s framework (imported now: TensorFlow or Lightning only when asked)."""
    return import_module(f"{__name__}.{FRAMEWORKS[cfg.framework].module}")


def fit(net, data, cfg):
    """Train `net` on `data` (an MNISTData) with `cfg` in the framework `cfg.framework` names; print one line
    per epoch; return the FitResult. The net ends with the trained weights, whatever trained them."""
    return trainer(cfg).fit(net, data, cfg)


def versions(cfg) -> dict:
    """The versions of what trains the run, beside torch's (which every run records)."""
    return trainer(cfg).versions(cfg)


def missing(cfg) -> str | None:
    """A one-line message when the framework (or Keras' backend) this run needs is not installed."""
    absent = [m for m in FRAMEWORKS[cfg.framework].needs(cfg) if importlib.util.find_spec(m) is None]
    if absent == ["jax"]:  # an optional backend, not in the frameworks extra
        return "keras_backend 'jax' needs JAX, not installed here: run `pip install jax` in this environment"
    if absent:
        return f"framework {cfg.framework!r} needs {', '.join(absent)}, not installed here: run `{INSTALL}`"
    return None
