"""The seven iterations of the reference study: what each changed, and what the study reported.

The notebooks declare their own networks; `BLOCKS` is the catalogue they are tested against and
what `bench` trains. `STUDY_ACC` is the study's "best test accuracy", which it measured on its
augmented TRAINING data: it is shown only under that label.
"""
from .blocks import conv, drop, head, pool, trans

BLOCKS = {
    1: [conv(1, 16), pool(), conv(16, 32), pool(), trans(32, 16), conv(16, 32), trans(32, 32), head()],
    2: [conv(1, 8), pool(), conv(8, 16), pool(), trans(16, 8), conv(8, 16), trans(16, 16),
        conv(16, 32), trans(32, 32), head()],
    3: [conv(1, 8), pool(), conv(8, 16), pool(), trans(16, 8), conv(8, 32), trans(32, 28), head()],
    4: [conv(1, 8, bn=True), pool(), conv(8, 16, bn=True), pool(), trans(16, 8), conv(8, 32),
        trans(32, 32), head()],
    5: [conv(1, 8, bn=True), pool(), conv(8, 16, bn=True), pool(), trans(16, 8), conv(8, 32),
        trans(32, 28), head()],
    6: [conv(1, 8, bn=True), pool(), conv(8, 16, bn=True), pool(), trans(16, 8), conv(8, 32),
        trans(32, 28), head(dropout=0.5)],
    7: [conv(1, 8, bn=True), pool(), drop(0.1), conv(8, 16, bn=True), pool(), drop(0.2), trans(16, 8),
        conv(8, 32, dropout=0.3), trans(32, 28), head(dropout=0.5)],
}

PARAMS = {1: 26_714, 2: 24_210, 3: 18_374, 4: 20_514, 5: 18_422, 6: 18_422, 7: 18_422}
EPOCHS = {1: 1, 2: 5, 3: 20, 4: 20, 5: 20, 6: 20, 7: 20}
LR = {1: 0.001, 2: 0.002, 3: 0.002, 4: 0.002, 5: 0.002, 6: 0.002, 7: 0.002}

# (description, key concepts, study's reported accuracy in % on training data)
STUDY = {
    1: ("Baseline", "MaxPool, fully connected, padding, ReLU, 1x1", 82.1),
    2: ("5 epochs and < 25K params", "Epoch and parameter tuning", 98.35),
    3: ("20 epochs and < 20K params", "Epoch and parameter tuning, fewer layers", 99.46),
    4: ("With Batch Normalization", "Batch Normalization", 99.58),
    5: ("Tuning below 20K", "Parameter optimisation", 99.55),
    6: ("Dropout at the last layer", "Dropout", 99.20),
    7: ("Dropout after each layer", "Dropout", 98.64),
}
