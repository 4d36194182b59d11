"""mnist_lab: small convolutional networks on MNIST, declared as data, trained fast, measured honestly."""
from .blocks import Net, conv, drop, head, pool, trans
from .config import Config
from .data import MNISTData
from .errors import LabError
from .results import load_model, record
from .trainer import evaluate, fit, pick_device, predict, setup

__all__ = ["Net", "conv", "drop", "head", "pool", "trans", "Config", "MNISTData", "LabError",
           "load_model", "record", "evaluate", "fit", "pick_device", "predict", "setup"]
__version__ = "0.1.0"
