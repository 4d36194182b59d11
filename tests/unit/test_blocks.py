"""Blocks and the seven networks: exact parameter counts, summaries, shapes, gradients."""
import io
from contextlib import redirect_stdout

import pytest
import torch
from torchsummary import summary

from mnist_lab import Net, conv, head, pool, trans
from mnist_lab.blocks import layer_counts
from mnist_lab.iterations import BLOCKS, PARAMS

IT = sorted(BLOCKS)


def hand_count(it):
    """Independent count from the ITERATIONS.md table: conv k*k*cin*cout + cout, BN 2*c, linear."""
    c3 = lambda a, b: 9 * a * b + b
    c1 = lambda a, b: a * b + b
    bn = lambda c: 2 * c
    lin = lambda c: c * 49 * 10 + 10
    return {
        1: c3(1, 16) + c3(16, 32) + c1(32, 16) + c3(16, 32) + c1(32, 32) + lin(32),
        2: c3(1, 8) + c3(8, 16) + c1(16, 8) + c3(8, 16) + c1(16, 16) + c3(16, 32) + c1(32, 32) + lin(32),
        3: c3(1, 8) + c3(8, 16) + c1(16, 8) + c3(8, 32) + c1(32, 28) + lin(28),
        4: c3(1, 8) + bn(8) + c3(8, 16) + bn(16) + c1(16, 8) + c3(8, 32) + c1(32, 32) + lin(32),
        5: c3(1, 8) + bn(8) + c3(8, 16) + bn(16) + c1(16, 8) + c3(8, 32) + c1(32, 28) + lin(28),
    }.get(it, None)


@pytest.mark.parametrize("it", IT)
def test_exact_parameter_count(it):
    expected = {1: 26_714, 2: 24_210, 3: 18_374, 4: 20_514, 5: 18_422, 6: 18_422, 7: 18_422}[it]
    assert PARAMS[it] == expected
    assert Net(BLOCKS[it]).num_params() == expected
    if hand_count(it) is not None:
        assert hand_count(it) == expected


@pytest.mark.parametrize("it", IT)
def test_torchsummary_total_matches(it):
    buf = io.StringIO()
    with redirect_stdout(buf):
        summary(Net(BLOCKS[it]), (1, 28, 28), device="cpu")
    assert f"Total params: {PARAMS[it]:,}" in buf.getvalue()


@pytest.mark.parametrize("it", IT)
def test_forward_shape_and_every_parameter_gets_a_gradient(it):
    torch.manual_seed(0)
    net = Net(BLOCKS[it])
    x = torch.randn(4, 1, 28, 28)
    out = net(x)
    assert out.shape == (4, 10)
    assert torch.allclose(out.exp().sum(1), torch.ones(4), atol=1e-5)  # log_softmax
    out[:, 3].sum().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_layer_counts_match_the_study_table():
    # Total / conv / maxpool / linear / BN / dropout columns of the study's README
    study = {1: (8, 5, 2, 1, 0, 0), 2: (10, 7, 2, 1, 0, 0), 3: (8, 5, 2, 1, 0, 0), 4: (10, 5, 2, 1, 2, 0),
             5: (10, 5, 2, 1, 2, 0), 6: (11, 5, 2, 1, 2, 1), 7: (14, 5, 2, 1, 2, 4)}
    for it, row in study.items():
        c = layer_counts(BLOCKS[it])
        assert (c["total"], c["conv"], c["maxpool"], c["linear"], c["batchnorm"], c["dropout"]) == row, it


def test_flatten_size_is_computed():
    net = Net([conv(1, 4), pool(), trans(4, 3), head()])
    assert net[-1].fc.in_features == 3 * 14 * 14


def test_stable_child_names():
    net = Net(BLOCKS[7])
    keys = set(net.state_dict())
    assert {"0.conv.weight", "0.bn.running_mean", "7.conv.weight", "9.fc.weight"} <= keys


def test_bad_block_lists_are_rejected():
    with pytest.raises(ValueError, match="must end with head"):
        Net([conv(1, 8), pool()])
    with pytest.raises(ValueError, match="unknown block type"):
        Net([{"type": "lstm"}, head()])


@pytest.mark.parametrize("it", [1, 7])
def test_channels_last_training_gives_the_same_gradients(it):
    """The trainer's channels-last layout changes only the memory order, not the gradients."""
    torch.manual_seed(0)
    plain = Net(BLOCKS[it]).eval()  # eval: dropout off, BN on running stats, so both see the same function
    fast = Net(BLOCKS[it]).eval()
    fast.load_state_dict(plain.state_dict())
    fast.to(memory_format=torch.channels_last)
    x = torch.randn(8, 1, 28, 28)
    for net, inp in ((plain, x), (fast, x.contiguous(memory_format=torch.channels_last))):
        net(inp)[:, 3].sum().backward()
    for (name, p), q in zip(plain.named_parameters(), fast.parameters()):
        assert torch.allclose(p.grad, q.grad, rtol=1e-5, atol=1e-6), name

