"""A dense network trained in plain NumPy: forward pass, backward pass and minibatch SGD written out.

No autograd and no torch in the training loop: the images are turned into NumPy arrays once, before
it starts. The network comes from the same block list as a torch `Net` (flatten, dense blocks, a head
without dropout), so its parameter count is the torch network's, and after training its weights are
copied into that `Net`: the result file, the checkpoint, `predict` and the report then treat it like
any other run. tests/unit/test_numpy_mlp.py checks the gradients against finite differences and against
torch autograd on the same weights.
"""
from __future__ import annotations

import math
import time

import numpy as np

from ..errors import LabError
from .base import FitResult

_ACT = ("relu", "sigmoid", "tanh", "none")


class NumpyMLP:
    """Layers of (weight (out, in), bias (out,), activation); the last is the head (softmax)."""

    def __init__(self, blocks: list[dict], seed: int = 0, dtype=np.float32):
        self.dtype = dtype
        rng = np.random.default_rng(seed)
        self.layers = []
        for b in blocks:
            t = b.get("type")
            if t == "flatten":
                continue
            if t == "dense" and b.get("act", "relu") in _ACT:
                fin, fout, act, init = b["fin"], b["fout"], b.get("act", "relu"), b.get("init", "default")
            elif t == "head" and not b.get("dropout"):
                fin, fout, act, init = self.layers[-1][0].shape[0] if self.layers else 784, b.get("classes", 10), \
                    "softmax", "default"
            else:
                raise LabError(f"the NumPy trainer takes flatten(), dense(...) and head() without dropout; "
                               f"not {b}. Train this network with framework='pytorch'")
            if init == "he":  # Kaiming normal for ReLU, zero bias
                w, bias = rng.normal(0.0, math.sqrt(2.0 / fin), (fout, fin)), np.zeros(fout)
            else:  # torch's default for Linear: uniform in +-1/sqrt(fan_in), weights and bias
                bound = 1 / math.sqrt(fin)
                w, bias = rng.uniform(-bound, bound, (fout, fin)), rng.uniform(-bound, bound, fout)
            self.layers.append([w.astype(dtype), bias.astype(dtype), act])
        if not self.layers or self.layers[-1][2] != "softmax":
            raise LabError("a network's block list must end with head()")
        self.velocity = [[np.zeros_like(w), np.zeros_like(b)] for w, b, _ in self.layers]

    def num_params(self) -> int:
        return sum(w.size + b.size for w, b, _ in self.layers)

    # ---- forward and backward ---------------------------------------------------------------
    def forward(self, x: np.ndarray):
        """(log-probabilities, what backward needs)."""
        acts = [x]
        for w, b, act in self.layers[:-1]:
            acts.append(_activate(acts[-1] @ w.T + b, act))
        w, b, _ = self.layers[-1]
        logits = acts[-1] @ w.T + b
        logits = logits - logits.max(1, keepdims=True)
        logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
        return logp, acts

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray):
        """Mean cross-entropy over the batch, its gradients [(dW, db), ...], and the log-probabilities."""
        logp, acts = self.forward(x)
        n = len(y)
        loss = -logp[np.arange(n), y].mean()
        dz = np.exp(logp)  # softmax; d loss / d logits = (softmax - onehot) / n
        dz[np.arange(n), y] -= 1
        dz /= n
        grads = []
        for i in range(len(self.layers) - 1, -1, -1):
            w, _, _ = self.layers[i]
            grads.append((dz.T @ acts[i], dz.sum(0)))
            if i:
                # back through the previous layer's activation, from its output a = acts[i]
                dz = _activation_grad(dz @ w, acts[i], self.layers[i - 1][2])
        return loss, grads[::-1], logp

    def sgd_step(self, grads, lr: float, momentum: float = 0.0, weight_decay: float = 0.0):
        """torch.optim.SGD's update: g += wd * p; v = momentum * v + g; p -= lr * v."""
        for layer, vel, (dw, db) in zip(self.layers, self.velocity, grads):
            for k, g in enumerate((dw, db)):
                if weight_decay:
                    g = g + weight_decay * layer[k]
                if momentum:
                    vel[k] *= momentum
                    vel[k] += g
                    g = vel[k]
                layer[k] -= (lr * g).astype(self.dtype, copy=False)

    def evaluate(self, x: np.ndarray, y: np.ndarray, batch: int = 1000) -> dict:
        loss, correct = 0.0, 0
        for i in range(0, len(y), batch):
            logp, _ = self.forward(x[i:i + batch])
            loss -= float(logp[np.arange(len(logp)), y[i:i + batch]].sum())
            correct += int((logp.argmax(1) == y[i:i + batch]).sum())
        return {"loss": loss / len(y), "correct": correct, "total": len(y), "acc": 100 * correct / len(y)}

    def from_torch(self, net):
        """Take the weights of `net` (the torch Net of the same blocks); return self."""
        linears = self._linears(net)
        for layer, fc in zip(self.layers, linears):
            layer[0] = fc.weight.detach().cpu().numpy().astype(self.dtype)
            layer[1] = fc.bias.detach().cpu().numpy().astype(self.dtype)
        return self

    def _linears(self, net):
        linears = [m.fc for m in net if hasattr(m, "fc")]
        if len(linears) != len(self.layers):
            raise LabError("the torch network does not have this network's dense layers")
        return linears

    def to_torch(self, net):
        """Copy the weights into `net` (the torch Net of the same blocks); return it."""
        import torch

        linears = self._linears(net)
        with torch.no_grad():
            for fc, (w, b, _) in zip(linears, self.layers):
                fc.weight.copy_(torch.from_numpy(np.ascontiguousarray(w)))  # in the network's own dtype
                fc.bias.copy_(torch.from_numpy(np.ascontiguousarray(b)))
        return net


def _activate(z, act):
    if act == "relu":
        return np.maximum(z, 0)
    if act == "sigmoid":
        return 1 / (1 + np.exp(-z))
    if act == "tanh":
        return np.tanh(z)
    return z


def _activation_grad(da, a, act):
    """d loss / d z from d loss / d a, where a = act(z) (each derivative written with the output a)."""
    if act == "relu":
        return da * (a > 0)
    if act == "sigmoid":
        return da * a * (1 - a)
    if act == "tanh":
        return da * (1 - a * a)
    return da


def arrays(batches, dtype=np.float32):
    """A split of MNISTData as NumPy: normalised flat images (N, 784) and labels (N,)."""
    x = batches.images.cpu().numpy().reshape(len(batches.images), -1).astype(dtype) / 255
    return ((x - batches.mean) / batches.std).astype(dtype), batches.labels.cpu().numpy()


def fit(net, data, cfg) -> FitResult:
    """`mnist_lab.fit` for framework "numpy": train `net`'s architecture in NumPy, starting from `net`'s own
    weights (as the other frameworks do); `net` ends with the trained weights."""
    if isinstance(net, NumpyMLP):  # the call before every framework shared fit(net, data, cfg)
        raise LabError("numpy_mlp.fit trains the torch Net (like every framework's fit); to train a NumpyMLP "
                       "you built yourself, call numpy_mlp.fit_mlp(mlp, data, cfg)")
    mlp = NumpyMLP(net.blocks, seed=cfg.seed).from_torch(net)
    result = fit_mlp(mlp, data, cfg)
    mlp.to_torch(net)
    return result


def versions(cfg) -> dict:
    return {"numpy": np.__version__}


def fit_mlp(model: NumpyMLP, data, cfg) -> FitResult:
    """Train with minibatch SGD (cfg.lr, momentum, weight_decay; StepLR per epoch when set) on `data`
    (an MNISTData, converted once); one history row per epoch, as every trainer writes them."""
    if cfg.framework != "numpy":  # Config checks what the NumPy trainer can do when framework is "numpy"
        raise LabError(f"this run's framework is {cfg.framework!r}: train it with mnist_lab.fit, or set "
                       "framework='numpy' (and device='cpu', optimizer='sgd', no augmentation)")
    return train(model, arrays(data.train, model.dtype), arrays(data.test, model.dtype),
                 arrays(data.val, model.dtype) if data.val is not None else None, cfg, data.train.max_batches)


def train(model: NumpyMLP, train_set, test_set, val, cfg, limit=None) -> FitResult:
    """The training loop proper, on NumPy arrays (x (N, 784), y (N,)) only."""
    (xtr, ytr), (xte, yte) = train_set, test_set
    rng = np.random.default_rng(cfg.seed)  # the shuffling order
    batch = cfg.batch_size
    steps = -(-len(ytr) // batch)
    steps = min(steps, limit) if limit else steps
    result, start = FitResult(), time.perf_counter()
    for epoch in range(1, cfg.run_epochs + 1):
        t0 = time.perf_counter()
        lr = cfg.lr * (cfg.gamma ** ((epoch - 1) // cfg.step_size) if cfg.scheduler == "step" else 1)
        order = rng.permutation(len(ytr))
        loss_sum, correct, seen = 0.0, 0, 0
        for i in range(steps):
            idx = order[i * batch:(i + 1) * batch]
            loss, grads, logp = model.loss_and_grads(xtr[idx], ytr[idx])
            model.sgd_step(grads, lr, cfg.momentum, cfg.weight_decay)
            loss_sum += float(loss) * len(idx)
            correct += int((logp.argmax(1) == ytr[idx]).sum())
            seen += len(idx)
            if cfg.log_every and (i + 1) % cfg.log_every == 0:
                print(f"  batch {i + 1}/{steps}  loss {float(loss):.4f}", flush=True)
        test = model.evaluate(xte, yte)
        val_scores = model.evaluate(*val) if val is not None else None
        result.epoch(epoch, lr, {"loss": loss_sum / seen, "acc": 100 * correct / seen}, test, val_scores,
                     time.perf_counter() - t0)
    result.wall_seconds = time.perf_counter() - start
    return result
