"""mnist_lab: small convolutional networks on MNIST, declared as data, trained fast, measured honestly."""
from importlib import import_module

__version__ = "0.1.0"

# Exported names and their modules. Resolved on first use, so that light commands such as
# `mnist-lab data` do not pay for importing torch.
_EXPORTS = {
    "Net": "blocks", "conv": "blocks", "drop": "blocks", "head": "blocks", "pool": "blocks", "trans": "blocks",
    "flatten": "blocks", "dense": "blocks", "bn": "blocks", "gap": "blocks", "numpy_mlp": None,
    "Config": "config", "MNISTData": "data", "portable": "paths", "LabError": "errors", "load_model": "results", "record": "results",
    "evaluate": "trainer", "fit": "trainer", "pick_device": "trainer", "predict": "trainer", "setup": "trainer",
    "show": None, "steps": None,
}
__all__ = list(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'mnist_lab' has no attribute {name!r}")
    module = import_module(f".{_EXPORTS[name] or name}", __name__)
    return module if _EXPORTS[name] is None else getattr(module, name)
