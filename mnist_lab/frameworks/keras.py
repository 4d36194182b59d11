"""A block list compiled to a Keras 3 model, trained by Keras' own `fit` with its own callbacks.

The Keras model has the torch `Net`'s layers in the same order, the same parameter count and, before
training, the same weights (copied from the `Net` the notebook built with its seed), so a framework
comparison measures the frameworks, not different initialisations. It reads the very batches the
PyTorch trainer would (same shuffling, same augmentation), the same validation split, and is scored on
the same held-out images. After training the weights go back into the `Net`: the result file and
checkpoint are made as for any run, and `mnist-lab predict` evaluates the checkpoint.

Layout: Keras works channels-last (N, H, W, C); a conv kernel is (kh, kw, in, out) and a dense kernel
(in, out). A dense layer after flattening a feature map sees its inputs in (h, w, c) order instead of
torch's (c, h, w), so its kernel rows are permuted on the way in and back.
"""
from __future__ import annotations

import importlib
import os
import sys
import time

import numpy as np
import torch
from tqdm import tqdm

from ..errors import LabError
from . import INSTALL, KERAS_BACKENDS
from .base import FitResult


def load(backend: str = "tensorflow"):
    """Import Keras on `backend`; a clear message when it (or the backend) is not installed."""
    if "keras" in sys.modules:
        keras = sys.modules["keras"]
        if keras.backend.backend() != backend:
            raise LabError(f"Keras is already loaded on the {keras.backend.backend()!r} backend in this process; "
                           f"restart the kernel to use keras_backend={backend!r}")
        return keras
    if backend not in KERAS_BACKENDS:
        raise LabError(f"keras_backend must be one of {', '.join(KERAS_BACKENDS)}, got {backend!r}")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter
    # torch's CUDA build imports triton lazily (torch._dynamo); importing it after TensorFlow crashes
    # the process (a segfault in triton's start-up), so it is imported first.
    if importlib.util.find_spec("triton") is not None:
        importlib.import_module("triton")
    os.environ["KERAS_BACKEND"] = backend
    try:
        importlib.import_module("tensorflow" if backend == "tensorflow" else backend)
        return importlib.import_module("keras")
    except ImportError as exc:
        if exc.name == "jax":
            raise LabError("keras_backend 'jax' needs JAX, not installed here: run `pip install jax` in this "
                           "environment") from None
        missing = "TensorFlow and Keras" if backend == "tensorflow" else f"Keras and {backend}"
        raise LabError(f"framework 'keras' (backend {backend!r}) needs {missing}, which are not installed here "
                       f"({exc.name or exc}): run `{INSTALL}`") from None


# ---- the model ---------------------------------------------------------------------------------
def build(blocks: list[dict], input_shape=(1, 28, 28), keras=None, weight_decay: float = 0.0):
    """(Keras model, links): `links` pairs each weighted torch layer (its state-dict prefix) with its
    Keras layer, in order, for copying weights either way.

    weight_decay: torch's (wd * w added to every gradient) as Keras users write it, an L2 penalty of
    wd / 2 * sum(w**2) on every weight: kernels, biases, BatchNorm's scale and shift."""
    keras = keras or load()
    L = keras.layers
    reg = keras.regularizers.L2(weight_decay / 2) if weight_decay else None
    dense_reg = {"kernel_regularizer": reg, "bias_regularizer": reg}
    bn_reg = {"gamma_regularizer": reg, "beta_regularizer": reg}
    c, h, w = input_shape
    x = inp = keras.Input((h, w, c))
    links = []  # (torch prefix, keras layer, kind, row permutation or None)
    pending = None  # a flattened feature map's (h, w, c), until the dense layer that reads it

    def add(layer, prefix=None, kind=None):
        nonlocal x, pending
        x = layer(x)
        if prefix is not None:
            links.append((prefix, layer, kind, _rows(pending) if kind == "dense" and pending else None))
            if kind == "dense":
                pending = None

    def flatten():
        nonlocal pending
        if len(x.shape) == 4:
            pending = tuple(x.shape[1:])
        add(L.Flatten())

    for i, b in enumerate(blocks[:-1]):
        t = b["type"]
        if t in ("conv", "trans"):
            bias = b.get("bias", True)
            if b.get("pad", 1) not in (0, 1):
                raise LabError(f"block {i} ({t}): Keras' Conv2D pads 'same' or 'valid', that is pad 1 or 0, "
                               f"not {b['pad']}")
            add(L.Conv2D(b["cout"], 3 if t == "conv" else 1, padding="valid" if b.get("pad", 1) == 0 else "same",
                         use_bias=bias, kernel_regularizer=reg, bias_regularizer=reg if bias else None),
                f"{i}.conv", "conv")
            if b.get("bn"):
                add(_bn(L, bn_reg), f"{i}.bn", "bn")
            add(L.ReLU())
            if b.get("dropout"):
                add(L.Dropout(b["dropout"]))
        elif t == "pool":
            add(L.MaxPooling2D(2))
        elif t == "gap":
            add(L.GlobalAveragePooling2D(keepdims=True))
        elif t == "drop":
            add(L.Dropout(b["p"]))
        elif t == "flatten":
            flatten()
        elif t == "dense":
            add(L.Dense(b["fout"], **dense_reg), f"{i}.fc", "dense")
            if b.get("act", "relu") != "none":
                add(L.Activation(b.get("act", "relu")))
        elif t == "bn":
            add(_bn(L, bn_reg), f"{i}", "bn")
        else:
            raise LabError(f"block {i} ({t}) has no Keras translation")
    spec = blocks[-1]
    if spec.get("conv1x1"):
        if spec.get("dropout"):
            add(L.Dropout(spec["dropout"]))
        add(L.Conv2D(spec.get("classes", 10), 1, **dense_reg), f"{len(blocks) - 1}.conv", "conv")
        flatten()
    else:
        flatten()
        if spec.get("dropout"):
            add(L.Dropout(spec["dropout"]))
        add(L.Dense(spec.get("classes", 10), **dense_reg), f"{len(blocks) - 1}.fc", "dense")
    add(L.Activation("log_softmax"))  # the torch Net's output: log-probabilities
    return keras.Model(inp, x), links


def _bn(L, regularizers):
    # torch's BatchNorm defaults, so that both frameworks normalise alike (Keras': momentum 0.99, eps 1e-3)
    return L.BatchNormalization(momentum=0.9, epsilon=1e-5, **regularizers)


def _rows(hwc):
    """Keras row k of a dense kernel after Flatten of (h, w, c) is torch's input feature `order[k]`."""
    h, w, c = hwc
    return np.arange(c * h * w).reshape(c, h, w).transpose(1, 2, 0).reshape(-1)


def weights_to_keras(net, links):
    state = {k: v.detach().cpu().numpy() for k, v in net.state_dict().items()}
    for prefix, layer, kind, rows in links:
        W = state[f"{prefix}.weight"]
        if kind == "conv":  # a conv without bias (bias=False) has only its kernel
            layer.set_weights([W.transpose(2, 3, 1, 0)] + ([state[f"{prefix}.bias"]] if f"{prefix}.bias" in state else []))
        elif kind == "dense":
            layer.set_weights([W.T if rows is None else W.T[rows], state[f"{prefix}.bias"]])
        else:
            layer.set_weights([W, state[f"{prefix}.bias"], state[f"{prefix}.running_mean"],
                               state[f"{prefix}.running_var"]])


def weights_to_torch(links, net):
    state = net.state_dict()
    new = {}
    for prefix, layer, kind, rows in links:
        ws = [np.asarray(v) for v in layer.get_weights()]
        if kind == "conv":
            new[f"{prefix}.weight"] = ws[0].transpose(3, 2, 0, 1)
            if len(ws) > 1:
                new[f"{prefix}.bias"] = ws[1]
        elif kind == "dense":
            kernel = ws[0]
            if rows is not None:
                kernel = np.empty_like(kernel)
                kernel[rows] = ws[0]
            new[f"{prefix}.weight"], new[f"{prefix}.bias"] = kernel.T, ws[1]
        else:
            for name, v in zip(("weight", "bias", "running_mean", "running_var"), ws):
                new[f"{prefix}.{name}"] = v
    with torch.no_grad():
        for k, v in new.items():
            state[k].copy_(torch.from_numpy(np.ascontiguousarray(v)))
    return net


def count(model) -> tuple[int, int]:
    """(trainable, non-trainable) parameters: the torch Net's parameters and its BatchNorm buffers."""
    return (sum(int(np.prod(v.shape)) for v in model.trainable_weights),
            sum(int(np.prod(v.shape)) for v in model.non_trainable_weights))


# ---- training ----------------------------------------------------------------------------------
def _nhwc(x: torch.Tensor) -> np.ndarray:
    return x.permute(0, 2, 3, 1).contiguous().cpu().numpy()


def _arrays(batches):
    xs, ys = zip(*((_nhwc(x), y.cpu().numpy()) for x, y in batches))
    return np.concatenate(xs), np.concatenate(ys)


def optimizer(keras, cfg):
    """The recipe's optimizer with torch's constants (Keras' own epsilon is 1e-7, RMSprop's rho 0.9)."""
    if cfg.optimizer == "adam":
        return keras.optimizers.Adam(learning_rate=cfg.lr, beta_1=0.9, beta_2=0.999, epsilon=1e-8)
    if cfg.optimizer == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate=cfg.lr, rho=0.99, momentum=cfg.momentum, epsilon=1e-8)
    return keras.optimizers.SGD(learning_rate=cfg.lr, momentum=cfg.momentum)


def fit(net, data, cfg) -> FitResult:
    """Train `net`'s architecture in Keras on `data` with `cfg`; `net` ends with the trained weights."""
    keras = load(cfg.keras_backend)
    if cfg.keras_backend == "tensorflow":
        _threads(cfg.threads)
    keras.utils.set_random_seed(cfg.seed)  # dropout masks
    model, links = build(net.blocks, net.input_shape, keras, cfg.weight_decay)
    weights_to_keras(net, links)
    model.compile(optimizer=optimizer(keras, cfg),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),  # nll of log-probs
                  metrics=[keras.metrics.SparseCategoricalCrossentropy(from_logits=True, name="nll"),
                           keras.metrics.SparseCategoricalAccuracy(name="acc")])
    epochs = _Epochs(keras, data.train)
    val = _arrays(data.val) if data.val is not None else None
    history = _History(keras, model, data, cfg)
    callbacks = []
    if cfg.scheduler == "step":
        callbacks.append(keras.callbacks.LearningRateScheduler(
            lambda epoch: cfg.lr * cfg.gamma ** (epoch // cfg.step_size)))
    elif cfg.scheduler == "plateau":
        # torch lowers the rate after `patience` bad epochs have passed (the next bad one), Keras once
        # `patience` of them have: Keras' patience + 1 is torch's patience, the recipe's meaning.
        callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor="val_nll", factor=cfg.gamma,
                                                           patience=cfg.plateau_patience + 1))
    stop = None
    if cfg.patience or cfg.restore_best:
        # patience 0 with restore_best: never stop, but end with the best epoch's weights
        stop = keras.callbacks.EarlyStopping(monitor="val_nll", patience=cfg.patience or cfg.run_epochs + 1,
                                             restore_best_weights=cfg.restore_best)
        callbacks.append(stop)
    callbacks.append(history)  # last: each epoch's learning rate is read after the scheduler has set it
    start = time.perf_counter()
    # shuffle=False: Keras would reorder a PyDataset's batches each epoch; the order is the seeded one
    # the PyTorch trainer uses. The callbacks watch val_nll, the data loss: Keras' val_loss would add
    # the L2 penalty of weight_decay.
    model.fit(epochs, epochs=cfg.run_epochs, validation_data=val, validation_batch_size=1000,
              callbacks=callbacks, verbose=0, shuffle=False)
    result = history.result
    result.wall_seconds = time.perf_counter() - start
    result.best_by_val()
    if stop is not None:
        if stop.stopped_epoch > 0:
            result.stop(cfg.patience)
        if cfg.restore_best and stop.best_weights is not None:
            result.restore(stop.best_epoch + 1)
    weights_to_torch(links, net)
    return result


def _threads(n: int):
    import tensorflow as tf

    if not n:
        return
    try:  # possible only before TensorFlow runs its first operation in this process
        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        if tf.config.threading.get_intra_op_parallelism_threads() != n:
            raise LabError(f"TensorFlow already runs with {tf.config.threading.get_intra_op_parallelism_threads()} "
                           f"threads in this process; restart the kernel to use threads={n}") from None


def versions(cfg) -> dict:
    keras = load(cfg.keras_backend)
    v = {"keras": keras.__version__, "keras_backend": cfg.keras_backend}
    v[cfg.keras_backend] = importlib.import_module(cfg.keras_backend).__version__
    return v


def _Epochs(keras, batches):
    """The training batches as a Keras PyDataset. An epoch's batches are drawn all at once, when Keras
    first asks for one of them, from the same seeded generator as the PyTorch trainer's, so both see
    the same images in the same order with the same augmentation."""

    class Epochs(keras.utils.PyDataset):
        def __init__(self):
            super().__init__(workers=1, use_multiprocessing=False)
            self._epoch = None

        def __len__(self):
            return len(batches)

        def __getitem__(self, i):
            if self._epoch is None:
                self._epoch = [(_nhwc(x), y.cpu().numpy()) for x, y in batches]
            return self._epoch[i]

        def on_epoch_end(self):
            self._epoch = None

    return Epochs()


def _History(keras, model, data, cfg):
    """Keras callback: a progress bar per epoch, the held-out test set scored after each epoch (for the
    record only: nothing is chosen by it), one printed line and one history row per epoch."""
    test_x, test_y = _arrays(data.test)

    class History(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.result = FitResult()

        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()
            self.lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
            self.bar = tqdm(total=len(data.train), desc=f"epoch {epoch + 1}/{cfg.run_epochs}", mininterval=1.0,
                            ncols=100)

        def on_train_batch_end(self, batch, logs=None):
            self.bar.update(1)
            if batch % 50 == 0 or batch == len(data.train) - 1:
                self.bar.set_postfix_str(f"loss={float(logs['nll']):.4f} acc={100 * float(logs['acc']):.2f}%",
                                         refresh=False)

        def on_epoch_end(self, epoch, logs=None):
            self.bar.close()
            logp = np.concatenate([keras.ops.convert_to_numpy(self.model(test_x[i:i + 1000], training=False))
                                   for i in range(0, len(test_y), 1000)])
            correct = int((logp.argmax(1) == test_y).sum())
            test = {"loss": float(-logp[np.arange(len(test_y)), test_y].mean()), "correct": correct,
                    "total": len(test_y), "acc": 100 * correct / len(test_y)}
            val = None
            if "val_nll" in logs:
                val = {"loss": float(logs["val_nll"]), "acc": 100 * float(logs["val_acc"])}
            self.result.epoch(epoch + 1, self.lr, {"loss": float(logs["nll"]), "acc": 100 * float(logs["acc"])},
                              test, val, time.perf_counter() - self.t0)

    return History()

