"""Each notebook declares, as the runner reads it, exactly the catalogued network and settings of its iteration."""
import nbformat
import pytest

from mnist_lab import Net, series
from mnist_lab.iterations import BLOCKS, EPOCHS, LR
from conftest import ROOT

NB = sorted((ROOT / "notebooks" / "study").glob("[0-9][0-9]_*.ipynb"))


def test_seven_notebooks():
    assert [int(p.name[:2]) for p in NB] == list(range(1, 8))


@pytest.mark.parametrize("path", NB, ids=lambda p: p.name)
def test_network_cell_and_defaults(path):
    nb = nbformat.read(path, 4)
    assert len([c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]) == 1
    own = series.own_recipe(path)  # what the runner records: the parameters cell, the one Net([...]) call
    ns, it = own["parameters"], int(path.name[:2])
    assert ns["iteration"] == it and ns["epochs"] == EPOCHS[it] and ns["lr"] == LR[it]
    assert ns["batch_size"] == 64 and ns["smoke"] is False
    assert own["blocks"] == BLOCKS[it]
    assert Net(own["blocks"]).blocks == BLOCKS[it]  # and it builds
