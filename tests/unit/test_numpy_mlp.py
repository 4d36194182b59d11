"""The NumPy MLP: its gradients against finite differences and torch autograd, its SGD step against
torch's, its weights in the torch network, and a training loop that calls no torch at all."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mnist_lab import Config
from mnist_lab.blocks import dense, drop, flatten, head
from mnist_lab.net import Net
from mnist_lab.errors import LabError
from mnist_lab.frameworks.numpy_mlp import NumpyMLP, train

BLOCKS = {
    "relu": [flatten(), dense(784, 12, init="he"), head()],
    "sigmoid": [flatten(), dense(784, 9, act="sigmoid"), dense(9, 7, act="sigmoid"), head()],
    "tanh": [flatten(), dense(784, 6, act="tanh"), dense(6, 5, act="none"), head()],
}


def batch(n=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 784)), rng.integers(0, 10, n)


def loss_of(mlp, x, y):
    logp, _ = mlp.forward(x)
    return -logp[np.arange(len(y)), y].mean()


@pytest.mark.parametrize("kind", sorted(BLOCKS))
def test_gradients_equal_finite_differences(kind):
    mlp = NumpyMLP(BLOCKS[kind], seed=1, dtype=np.float64)
    x, y = batch()
    _, grads, _ = mlp.loss_and_grads(x, y)
    rng = np.random.default_rng(2)
    eps = 1e-6
    for layer, (dw, db) in zip(mlp.layers, grads):
        for k, g in ((0, dw), (1, db)):
            p = layer[k]
            for _ in range(6):  # a few random entries of every weight and bias
                i = tuple(rng.integers(0, s) for s in p.shape)
                old = p[i]
                p[i] = old + eps
                up = loss_of(mlp, x, y)
                p[i] = old - eps
                down = loss_of(mlp, x, y)
                p[i] = old
                assert g[i] == pytest.approx((up - down) / (2 * eps), rel=1e-5, abs=1e-9), (kind, k, i)


@pytest.mark.parametrize("kind", sorted(BLOCKS))
def test_gradients_equal_torch_autograd_on_the_same_weights(kind):
    mlp = NumpyMLP(BLOCKS[kind], seed=3, dtype=np.float64)
    x, y = batch(32, seed=4)
    loss, grads, _ = mlp.loss_and_grads(x, y)
    net = mlp.to_torch(Net(BLOCKS[kind]).double())
    out = net(torch.from_numpy(x).view(-1, 1, 28, 28))
    tloss = F.nll_loss(out, torch.from_numpy(y))
    tloss.backward()
    assert tloss.item() == pytest.approx(loss, rel=1e-12)
    linears = [m.fc for m in net if hasattr(m, "fc")]
    for fc, (dw, db) in zip(linears, grads):
        np.testing.assert_allclose(fc.weight.grad.numpy(), dw, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(fc.bias.grad.numpy(), db, rtol=1e-9, atol=1e-12)


def test_sgd_step_is_torchs_with_momentum_and_weight_decay():
    blocks = BLOCKS["relu"]
    mlp = NumpyMLP(blocks, seed=5, dtype=np.float64)
    net = mlp.to_torch(Net(blocks).double())
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3)
    for step in range(3):
        x, y = batch(8, seed=10 + step)
        _, grads, _ = mlp.loss_and_grads(x, y)
        mlp.sgd_step(grads, 0.05, momentum=0.9, weight_decay=1e-3)
        opt.zero_grad()
        F.nll_loss(net(torch.from_numpy(x).view(-1, 1, 28, 28)), torch.from_numpy(y)).backward()
        opt.step()
    for fc, (w, b, _) in zip([m.fc for m in net if hasattr(m, "fc")], mlp.layers):
        np.testing.assert_allclose(fc.weight.detach().numpy(), w, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(fc.bias.detach().numpy(), b, rtol=1e-9, atol=1e-12)


def test_parameter_count_and_initialisation_match_the_torch_network():
    blocks = [flatten(), dense(784, 128, init="he"), head()]
    mlp = NumpyMLP(blocks, seed=0)
    assert mlp.num_params() == Net(blocks).num_params() == 784 * 128 + 128 + 128 * 10 + 10
    w, b, _ = mlp.layers[0]
    assert w.std() == pytest.approx(np.sqrt(2 / 784), rel=0.02) and not b.any()  # He: N(0, 2/fan_in), zero bias
    w, b, _ = mlp.layers[1]
    assert np.abs(w).max() <= 1 / np.sqrt(128) and np.abs(b).max() <= 1 / np.sqrt(128)  # torch's default bound


def test_what_the_numpy_trainer_cannot_train_is_refused_with_a_way_out():
    with pytest.raises(LabError, match="framework='pytorch'"):
        NumpyMLP([flatten(), dense(784, 10), drop(0.2), head()])
    with pytest.raises(LabError, match="framework='pytorch'"):
        NumpyMLP([flatten(), dense(784, 10), head(dropout=0.5)])


def test_the_training_loop_calls_no_torch_and_is_deterministic():
    """Every torch function call made while `train` runs is counted: there must be none."""
    from torch.overrides import TorchFunctionMode

    class Count(TorchFunctionMode):
        calls = 0

        def __torch_function__(self, func, types, args=(), kwargs=None):
            Count.calls += 1
            return func(*args, **(kwargs or {}))

    rng = np.random.default_rng(0)
    x = rng.normal(size=(640, 784)).astype(np.float32)
    y = (x[:, :10].argmax(1)).astype(np.int64)  # learnable: the label is where the first ten features peak
    cfg = Config(seed=0, epochs=3, batch_size=32, lr=0.1, optimizer="sgd", scheduler="none", rotation=0.0,
                 crop_p=0.0, framework="numpy", device="cpu")
    runs = []
    for _ in range(2):
        mlp = NumpyMLP(BLOCKS["relu"], seed=0)
        with Count():
            result = train(mlp, (x, y), (x[:200], y[:200]), None, cfg)
        runs.append([{k: v for k, v in h.items() if k != "seconds"} for h in result.history])
    assert Count.calls == 0
    assert runs[0] == runs[1]  # same seed, same numbers
    assert runs[0][-1]["train_acc"] > runs[0][0]["train_acc"]
