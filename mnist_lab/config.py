"""One run's settings. Unknown or mistyped keys are rejected with a message that says what to do."""
from __future__ import annotations

import difflib
import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from . import paths
from .datasets import DATASETS
from .errors import LabError
from .frameworks import FRAMEWORKS, KERAS_BACKENDS

SMOKE_ENV = "MNIST_LAB_SMOKE"  # "1" turns every run into a smoke run (used by the notebook tests)
# "1": no frontend is attached (a papermill or nbval kernel), so nothing renders widgets: explore() and pad()
# build only the static display such a run keeps. Set by the runner and by the notebook tests.
BATCH_ENV = "MNIST_LAB_BATCH"
EXPECT_ENV = "MNIST_LAB_EXPECT_RUN"  # set by the runner: the run id it planned, which record() must match
RESULTS_ENV = "MNIST_LAB_RESULTS"  # where result files go, overriding results_dir (keeps test runs out of reports/)
STAGE_ENV = "MNIST_LAB_STAGE"  # set on a cluster worker: write the files here; the client puts them in results_dir
PLACE_ENV = "MNIST_LAB_PLACE"  # set by the runner: where the run belongs (JSON: notebook, variant), for its result file
SMOKE_TEST_SIZE = 1000  # held-out images a smoke run is scored on


@dataclass
class Config:
    iteration: int = 0          # the notebook's number in its series (the study: 1-7); 0 for an ad-hoc network
    name: str = ""              # short name for files and the report
    series: str = ""            # the series the notebook belongs to ("": none); names its folders
    seed: int = 0               # seeds weights, shuffling, augmentation and dropout
    epochs: int = 20            # full passes over the 60,000 training images
    batch_size: int = 64        # images per optimizer step
    lr: float = 0.002           # learning rate
    optimizer: str = "adam"     # "adam", "rmsprop" or "sgd"
    momentum: float = 0.0       # "sgd" and "rmsprop" momentum
    weight_decay: float = 0.0   # L2 penalty, added to the gradient by the optimizer (as torch's weight_decay)
    step_size: int = 15         # StepLR: multiply lr by gamma every this many epochs
    gamma: float = 0.1          # StepLR or ReduceLROnPlateau decay factor
    scheduler: str = "step"     # "step" (StepLR, the study's), "plateau" (ReduceLROnPlateau on val loss),
                                # "onecycle" (OneCycleLR up to lr and down, stepped every batch) or "none"
    pct_start: float = 0.3      # "onecycle": fraction of all steps spent raising the lr to its peak
    label_smoothing: float = 0.0  # training loss: cross-entropy against (1 - s) * one-hot + s / classes
    plateau_patience: int = 2   # "plateau": epochs without val-loss improvement before lr *= gamma
    val_fraction: float = 0.0   # fraction of the training set held out for validation (0 = none)
    patience: int = 0           # early stopping: epochs without val-loss improvement (0 = off)
    restore_best: bool = False  # end with the weights of the epoch with the lowest val loss (Keras' restore_best_weights)
    rotation: float = 15.0      # augmentation: rotate by a uniform angle in [-rotation, rotation] degrees (0: off)
    crop_p: float = 0.1         # augmentation: probability of CenterCrop(22) + resize to 28 (0: off)
    dataset: str = "mnist"      # "mnist" or "fashion" (Fashion-MNIST): the data set, a row of datasets.py
    framework: str = "pytorch"  # what trains the network: "pytorch", "keras", "lightning", or "numpy" (dense
                                # networks, plain NumPy); the same blocks, data, split and recipe in each
    keras_backend: str = "tensorflow"  # framework "keras": "tensorflow" (CPU), "torch" or "jax" (where installed)
    log_every: int = 0          # also print the batch loss every this many batches (0: only the progress bar)
    device: str = "auto"        # "auto" (CUDA if available, else CPU), "cpu", "cuda", "cuda:1"...
    threads: int = 0            # CPU threads for this run (0 = torch's default)
    channels_last: bool = True  # NHWC memory layout: faster convolutions on CPU
    data_dir: str = ""          # data folder, with MNIST/ and FashionMNIST/ ("": $MNIST_LAB_DATA, else data/)
    results_dir: str = ""       # result file and checkpoint ("": the repository's runs/results); relative
                                # folders are taken from the repository, not the working directory
    smoke: bool = False         # smoke run: few batches, 1,000 test images; never mixed with real results
    smoke_batches: int = 20     # batches per epoch in a smoke run
    smoke_epochs: int = 2       # at most this many epochs in a smoke run

    def __post_init__(self):
        for f in fields(self):
            value, want = getattr(self, f.name), f.type
            ok = {"int": isinstance(value, int) and not isinstance(value, bool),
                  "float": isinstance(value, (int, float)) and not isinstance(value, bool),
                  "str": isinstance(value, str),
                  "bool": isinstance(value, bool)}[want]
            if not ok:
                raise LabError(f"config key {f.name!r} must be {want}, got {type(value).__name__} {value!r}")
            if want == "float":
                setattr(self, f.name, float(value))
        for key, low, strict in RANGES:
            value = getattr(self, key)
            if not math.isfinite(value):
                raise LabError(f"{key} must be a finite number, got {value}")
            if value < low or (strict and value == low):
                raise LabError(f"{key} must be {'>' if strict else '>='} {low:g}, got {value:g}")
        if self.seed >= 2 ** 63:
            raise LabError(f"seed must be below 2**63, got {self.seed}")
        for key, allowed in CHOICES.items():
            if getattr(self, key) not in allowed:
                raise LabError(f"{key} must be one of {', '.join(map(repr, allowed))}, got {getattr(self, key)!r}")
        if not 0 <= self.crop_p <= 1:
            raise LabError(f"crop_p is a probability, in [0, 1]; got {self.crop_p}")
        if self.restore_best and not self.val_fraction:
            raise LabError("restore_best picks the epoch with the lowest validation loss: set val_fraction, e.g. 0.1")
        refused = FRAMEWORKS[self.framework].refuses(self)
        if refused:
            raise LabError(refused)
        if self.scheduler == "onecycle" and self.momentum:
            raise LabError("OneCycleLR cycles the momentum itself (SGD's and RMSprop's momentum, Adam's beta1: "
                           "0.95 -> 0.85 -> 0.95, torch's default): leave momentum at 0")
        if not 0 <= self.label_smoothing < 1:
            raise LabError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if not 0 < self.pct_start < 1:
            raise LabError(f"pct_start must be in (0, 1), got {self.pct_start}")
        if not 0 <= self.val_fraction < 1:
            raise LabError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.patience and not self.val_fraction:
            raise LabError("early stopping (patience > 0) needs a validation split: set val_fraction, e.g. 0.1")
        if self.scheduler == "plateau" and not self.val_fraction:
            raise LabError("scheduler 'plateau' watches the validation loss: set val_fraction, e.g. 0.1")
        if os.environ.get(SMOKE_ENV) == "1":
            self.smoke = True
        if os.environ.get(RESULTS_ENV):
            self.results_dir = os.environ[RESULTS_ENV]

    @property
    def data_path(self) -> Path:
        return paths.data_root(self.data_dir)

    @property
    def results_path(self) -> Path:
        if self.results_dir:
            return paths.resolve(self.results_dir)
        return paths.runs_dir() / self.series / "results" if self.series else paths.runs_dir() / "results"

    @classmethod
    def from_dict(cls, values: dict) -> "Config":
        known = [f.name for f in fields(cls)]
        for key in values:
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else f" Known keys: {', '.join(known)}."
                raise LabError(f"unknown config key {key!r}.{hint}")
        return cls(**values)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def write_path(self) -> Path:
        """Where record() writes: results_path, or on a cluster worker its staging folder (the record
        still names results_path, where the client puts the files)."""
        return Path(os.environ[STAGE_ENV]) if os.environ.get(STAGE_ENV) else self.results_path

    def portable_dict(self) -> dict:
        """to_dict with the folders as the run resolved them, relative to the repository."""
        return dict(self.to_dict(), data_dir=paths.portable(self.data_path),
                    results_dir=paths.portable(self.results_path))

    def recipe(self, blocks, device, cpu: str | None = None) -> dict:
        """Everything that changes this run's numbers: the network, the settings that reach the
        arithmetic, and where it runs (CPU float sums depend on the thread count and on the vector
        instructions torch picks; CUDA differs from both). Names and folders are left out.
        `cpu`: the vector instructions of the machine that will run it (default: this one's)."""
        import torch

        r = {k: v for k, v in self.to_dict().items() if k not in NOT_RECIPE}
        for key, default in OMITTED_AT_DEFAULT.items():  # settings added later: at their default, the
            if r[key] == default:                        # recipe (and so every earlier run's name) is unchanged
                del r[key]
        if self.smoke:  # a smoke run trains min(epochs, smoke_epochs) epochs: that is what counts
            r["epochs"] = self.run_epochs
            del r["smoke_epochs"]
        else:
            del r["smoke_batches"], r["smoke_epochs"]
        for name, framework in FRAMEWORKS.items():  # another framework's own settings are no part of it
            if name != self.framework:
                for key in framework.settings:
                    r.pop(key, None)
        if self.scheduler != "plateau":
            del r["plateau_patience"]
        if self.scheduler != "onecycle":
            del r["pct_start"]
        if self.scheduler in ("none", "onecycle"):  # neither reads StepLR's settings
            del r["step_size"], r["gamma"]
        kind = torch.device(device).type
        r["device"] = kind
        if kind == "cpu":
            r["threads"] = self.threads or torch.get_num_threads()
            r["cpu"] = cpu or torch.backends.cpu.get_cpu_capability()
        else:
            del r["threads"]
        r["blocks"] = blocks
        return r

    def run_id(self, blocks, device) -> str:
        """`it5_seed0_1a2b3c4d`: iteration, seed, and a hash of the full recipe, so that two recipes
        never share a file and resuming skips only a run with the same recipe."""
        return run_id(self.iteration, self.seed, self.smoke, self.recipe(blocks, device))

    @property
    def run_epochs(self) -> int:
        return min(self.epochs, self.smoke_epochs) if self.smoke else self.epochs



# The two lists every part of the lab reads; nothing else lists keys of this kind.
# Set by the runner for each run (not by the notebook), with the command-line flag that sets each.
PER_RUN = {"iteration": "--iterations", "seed": "--seeds", "series": "--series", "smoke": "--smoke",
           "threads": "--threads", "data_dir": "--data", "results_dir": "--out"}
# Settings that change no number of a run: names, folders, logging.
NO_NUMBER = ("name", "series", "data_dir", "results_dir", "log_every")
# Left out of a recipe: those, and the device as asked for ("auto"), which the recipe records as resolved.
NOT_RECIPE = NO_NUMBER + ("device",)
# Settings added after runs were first recorded: left out of the recipe at these defaults.
OMITTED_AT_DEFAULT = {"optimizer": "adam", "momentum": 0.0, "weight_decay": 0.0, "restore_best": False,
                      "rotation": 15.0, "crop_p": 0.1, "framework": "pytorch", "keras_backend": "tensorflow",
                      "label_smoothing": 0.0, "dataset": "mnist"}
CHOICES = {"scheduler": ("step", "plateau", "onecycle", "none"), "optimizer": ("adam", "rmsprop", "sgd"),
           "framework": tuple(FRAMEWORKS), "keras_backend": KERAS_BACKENDS, "dataset": tuple(DATASETS)}

# (key, lowest value, whether the lowest itself is refused)
RANGES = [("iteration", 0, False), ("seed", 0, False), ("epochs", 1, False), ("batch_size", 1, False),
          ("lr", 0, True), ("step_size", 1, False), ("gamma", 0, True), ("plateau_patience", 0, False),
          ("patience", 0, False), ("threads", 0, False),
          ("momentum", 0, False), ("weight_decay", 0, False), ("rotation", 0, False), ("log_every", 0, False), ("smoke_batches", 1, False), ("smoke_epochs", 1, False)]


def recipe_hash(recipe: dict) -> str:
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:8]


def run_id(iteration: int, seed: int, smoke: bool, recipe: dict) -> str:
    return f"it{iteration}_seed{seed}{'_smoke' if smoke else ''}_{recipe_hash(recipe)}"
