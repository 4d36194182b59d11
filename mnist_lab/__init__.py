"""mnist_lab: small convolutional networks on MNIST, declared as data, trained fast, measured honestly.

The core sits here (blocks, augment, data and fetch, config, results, series, paths); three wings build on
it: `frameworks/` trains, `runs/` executes notebook series, `reports/` writes pages from result files;
`widgets/` is what a notebook opens interactively (the run explorer, the drawing pad).
"""
from importlib import import_module

from . import guard as _guard

__version__ = "0.1.0"

# Exported names and their modules (None: the name is the module itself). Resolved on first use, so that
# light commands such as `mnist-lab data` do not pay for importing torch.
_EXPORTS = {
    "Net": "net", "conv": "blocks", "drop": "blocks", "head": "blocks", "pool": "blocks", "trans": "blocks",
    "flatten": "blocks", "dense": "blocks", "bn": "blocks", "gap": "blocks",
    "Config": "config", "MNISTData": "data", "portable": "paths", "LabError": "errors",
    "load_model": "checkpoint", "record": "checkpoint", "fit": "frameworks",
    "evaluate": "frameworks.pytorch", "pick_device": "frameworks.pytorch", "predict": "frameworks.pytorch",
    "setup": "frameworks.pytorch",
    "numpy_mlp": "frameworks.numpy_mlp", "show": None, "steps": None, "datasets": None, "fetch": None,
    "explore": "widgets.explorer", "pad": "widgets.drawpad",
}
__all__ = list(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'mnist_lab' has no attribute {name!r}")
    where = _EXPORTS[name] or name
    module = import_module(f".{where}", __name__)
    return module if where.rsplit(".", 1)[-1] == name else getattr(module, name)


# In a Jupyter kernel: stop, with one line, a notebook that runs another checkout's code or was given a
# parameter it does not have (guard.py); elsewhere this returns at once.
_guard.check()
