"""Each notebook's network cell declares exactly the catalogued network of its iteration."""
import re
from pathlib import Path

import nbformat
import pytest

import mnist_lab
from mnist_lab.iterations import BLOCKS, EPOCHS, LR

NB = sorted((Path(__file__).resolve().parents[1] / "notebooks" / "study").glob("[0-9][0-9]_*.ipynb"))


def test_seven_notebooks():
    assert [int(p.name[:2]) for p in NB] == list(range(1, 8))


@pytest.mark.parametrize("path", NB, ids=lambda p: p.name)
def test_network_cell_and_defaults(path):
    nb = nbformat.read(path, 4)
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1
    ns = {}
    exec(params[0].source, ns)
    it = int(path.name[:2])
    assert ns["iteration"] == it and ns["epochs"] == EPOCHS[it] and ns["lr"] == LR[it]
    assert ns["batch_size"] == 64 and ns["smoke"] is False
    net_cells = [c.source for c in nb.cells if c.cell_type == "code" and re.search(r"model = Net\(", c.source)]
    assert len(net_cells) == 1
    src = net_cells[0].replace("show.summary(model)", "")
    scope = {k: getattr(mnist_lab, k) for k in ("Net", "conv", "trans", "pool", "drop", "head")}
    exec(src, scope)
    assert scope["model"].blocks == BLOCKS[it]
