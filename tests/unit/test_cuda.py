"""The CUDA path, on a GPU: `pytest -m cuda tests` (the GPU check runs them first). Without CUDA each test is
skipped, saying so; the rest of the suite never needs a GPU."""
import json

import pytest
import torch

from mnist_lab import Config, MNISTData, Net, fit, load_model, record, setup
from mnist_lab import augment as A
from mnist_lab.iterations import BLOCKS

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here (torch sees none)")]


def _cfg(mnist_root, tmp_path, device, **kw):
    base = dict(iteration=5, seed=0, epochs=2, smoke=True, smoke_batches=20, smoke_epochs=2, threads=1,
                data_dir=str(mnist_root), results_dir=str(tmp_path), device=device)
    return Config(**dict(base, **kw))


def _train(cfg, it=5):
    dev = setup(cfg)
    model = Net(BLOCKS[it])
    data = MNISTData.for_config(cfg, dev)
    return model, data, fit(model, data, cfg), dev


def _numbers(history):
    return [{k: v for k, v in e.items() if k != "seconds"} for e in history]


def test_the_network_gives_the_cpu_numbers_on_cuda_to_float_precision():
    torch.manual_seed(0)
    for it in sorted(BLOCKS):
        net = Net(BLOCKS[it]).eval()
        x = torch.randn(64, *net.input_shape)
        with torch.no_grad():
            cpu = net(x)
            gpu = net.to("cuda")(x.to("cuda")).cpu()
        assert torch.allclose(cpu, gpu, atol=1e-4, rtol=1e-4), f"iteration {it}: {(cpu - gpu).abs().max()}"


def test_the_batched_augmentation_draws_the_same_digits_on_cuda():
    """One generator per device: the same seed draws other numbers on CUDA, so compare the transforms given
    the same draws (the angles and the crops), which is what a run's augmentation is made of."""
    images = torch.randint(0, 256, (256, 28, 28), dtype=torch.uint8)
    angles = torch.rand(256, generator=torch.Generator().manual_seed(1)) * 30 - 15
    drawn = torch.rand(256, generator=torch.Generator().manual_seed(2)) < A.CROP_P
    cpu = A.rotate(A.crop_drawn(A.to_float(images), drawn), angles)
    gpu = A.rotate(A.crop_drawn(A.to_float(images.cuda()), drawn.cuda()), angles.cuda()).cpu()
    assert (cpu - gpu).abs().max() < 1e-4


def test_a_seeded_run_on_cuda_gives_the_same_numbers_twice(mnist_root, tmp_path):
    a = _train(_cfg(mnist_root, tmp_path, "cuda"))
    b = _train(_cfg(mnist_root, tmp_path, "cuda"))
    assert a[3].type == "cuda" and next(a[0].parameters()).is_cuda
    assert _numbers(a[2].history) == _numbers(b[2].history)


def test_a_cuda_run_learns_about_as_the_cpu_run_does(mnist_root, tmp_path):
    gpu = _train(_cfg(mnist_root, tmp_path, "cuda", smoke_batches=200))[2].history[-1]["test_acc"]
    cpu = _train(_cfg(mnist_root, tmp_path, "cpu", smoke_batches=200))[2].history[-1]["test_acc"]
    assert gpu > 90 and abs(gpu - cpu) < 3, (gpu, cpu)


def test_a_cuda_run_records_its_gpu_and_its_checkpoint_loads_on_the_cpu(mnist_root, tmp_path):
    cfg = _cfg(mnist_root, tmp_path, "cuda")
    model, data, res, dev = _train(cfg)
    path = record(cfg, model, res, data, dev)
    r = json.loads(path.read_text())
    assert r["device"].startswith("cuda") and r["recipe"]["device"] == "cuda"
    assert r["device_name"] == torch.cuda.get_device_name(0)
    assert path.stem != cfg.run_id(BLOCKS[5], torch.device("cpu"))  # a GPU run is its own recipe
    rebuilt = load_model(path.with_suffix(".pt"))  # on the CPU
    x = torch.randn(8, 1, 28, 28)
    model.eval()
    with torch.no_grad():
        assert torch.allclose(rebuilt(x), model(x.cuda()).cpu(), atol=1e-4)
