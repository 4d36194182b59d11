"""Jupyter, used interactively: `explore()` opens a run explorer, `pad()` a drawing pad. Both need ipywidgets
(and the pad anywidget), which `make setup` installs with Jupyter; nothing else in mnist_lab imports them."""
from .explorer import Explorer, explore
from .drawpad import Pad, pad

__all__ = ["Explorer", "Pad", "explore", "pad"]
