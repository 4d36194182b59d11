"""The data sets a run can train on: one row each, holding all that differs between them.

A run names its data set by key (the recipe setting `dataset`, "mnist" by default and then left out of the
recipe, so that no run recorded before the setting existed is renamed). Loading (data.py), fetching and
verifying (fetch.py), the trainers, result files, reports, `predict`, `draw` and the explorer read this table;
adding a data set is one row here and, where torchvision's download is not enough, its fetch in fetch.py.
"""
from __future__ import annotations

from dataclasses import dataclass

from .errors import LabError


@dataclass(frozen=True)
class Dataset:
    key: str                     # the recipe's value: "mnist", "fashion"
    name: str                    # as pages and result files name it
    folder: str                  # torchvision's folder under the data root: <root>/<folder>/raw/
    files: dict                  # the four uncompressed IDX files: name -> (bytes, SHA-256)
    mean: float                  # the training set's pixel mean and std, pixels scaled to [0, 1]: the
    std: float                   # normalisation constants (checked against the files when they are fetched)
    classes: tuple               # class names, by label
    train_per_class: tuple       # images per class, checked when the files are fetched
    test_per_class: tuple
    debian: str = ""             # a Debian package that ships the gzipped files, and where it puts them
    debian_dir: str = ""
    shape: tuple = (1, 28, 28)   # one input: channels, height, width

    def label(self, c: int) -> str:
        """Class `c` as a page shows it: the digit itself for MNIST, "7 Sneaker" for Fashion-MNIST."""
        name = self.classes[c]
        return name if name == str(c) else f"{c} {name}"


MNIST = Dataset(
    key="mnist", name="MNIST", folder="MNIST",
    files={
        "train-images-idx3-ubyte": (47_040_016, "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
        "train-labels-idx1-ubyte": (60_008, "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
        "t10k-images-idx3-ubyte": (7_840_016, "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
        "t10k-labels-idx1-ubyte": (10_008, "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
    },
    mean=0.1307, std=0.3081,
    classes=tuple(str(d) for d in range(10)),
    train_per_class=(5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949),
    test_per_class=(980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009),
)

FASHION = Dataset(
    key="fashion", name="Fashion-MNIST", folder="FashionMNIST",
    files={
        "train-images-idx3-ubyte": (47_040_016, "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
        "train-labels-idx1-ubyte": (60_008, "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
        "t10k-images-idx3-ubyte": (7_840_016, "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
        "t10k-labels-idx1-ubyte": (10_008, "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
    },
    mean=0.2860, std=0.3530,
    classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
             "Ankle boot"),
    train_per_class=(6000,) * 10,
    test_per_class=(1000,) * 10,
    debian="dataset-fashion-mnist", debian_dir="/usr/share/datasets/fashion-mnist",
)

DATASETS = {d.key: d for d in (MNIST, FASHION)}


def get(key: str) -> Dataset:
    """The data set of a recipe's `dataset` key; a LabError naming the known ones for any other."""
    try:
        return DATASETS[key]
    except (KeyError, TypeError):
        raise LabError(f"unknown dataset {key!r}; known: {', '.join(map(repr, DATASETS))}") from None


def of_result(r: dict) -> Dataset:
    """The data set a result file's run used (files from before the setting say "MNIST", or nothing)."""
    key = (r.get("config") or {}).get("dataset")
    if key in DATASETS:
        return DATASETS[key]
    by_name = {d.name: d for d in DATASETS.values()}
    return by_name.get(r.get("dataset"), MNIST)
