"""The study's augmentation, done in batches on the training device.

Per image, as the study's torchvision pipeline: with probability 0.1 CenterCrop(22) then Resize 28
(bilinear), always a rotation by an angle uniform in [-15, 15] degrees (nearest, fill 0), then
Normalize(0.1307, 0.3081) (another data set's own mean and std: datasets.py). Here both steps run on the batch (the crop on the images drawn for it,
the rotation as one grid_sample), so a batch costs a few tensor ops, not 64 PIL calls.
"""
from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from .datasets import MNIST

MEAN, STD = MNIST.mean, MNIST.std  # the default; a run on another data set passes its own
CROP, CROP_P, MAX_DEG = 22, 0.1, 15.0


def normalize(x: torch.Tensor, mean: float = MEAN, std: float = STD) -> torch.Tensor:
    return (x - mean) / std


def to_float(images_u8: torch.Tensor) -> torch.Tensor:
    """(B, 28, 28) uint8 -> (B, 1, 28, 28) float in [0, 1], as ToTensor."""
    return images_u8.unsqueeze(1).float().div_(255)


def center_crop_resize(x: torch.Tensor, size: int = CROP) -> torch.Tensor:
    h = x.shape[-1]
    top = int(round((h - size) / 2.0))  # torchvision's CenterCrop offset
    crop = x[..., top:top + size, top:top + size]
    return F.interpolate(crop, size=(h, h), mode="bilinear", align_corners=False)


@functools.lru_cache(maxsize=8)
def _centres(size: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """affine_grid's own pixel centres (align_corners=False), taken once from its identity grid."""
    eye = torch.eye(2, 3, dtype=dtype, device=device)[None]
    return F.affine_grid(eye, [1, 1, size, size], align_corners=False)[0, 0, :, 0]


def _grid(degrees: torch.Tensor, size: int) -> torch.Tensor:
    """affine_grid for rotations about the centre, elementwise instead of a batched matmul.

    F.affine_grid multiplies each image's (H*W, 3) base grid by its 2x3 matrix with bmm, which at
    28x28 costs more than the grid_sample itself on the CPU. The translation column is 0, so each
    coordinate is x*a + y*b; computed as two products and a sum it equals affine_grid's output
    bitwise (tests/unit/test_augment.py compares them).
    """
    a = degrees * (math.pi / 180)
    cos, sin = torch.cos(a), torch.sin(a)
    base = _centres(size, degrees.dtype, degrees.device)
    x, y = base[None, None, :, None], base[None, :, None, None]
    # grid_sample maps output coords to input coords, so this is the inverse rotation:
    # (x', y') = (x cos - y sin, x sin + y cos), written straight into the (N, H, W, 2) layout.
    return x * torch.stack([cos, sin], 1)[:, None, None] + y * torch.stack([-sin, cos], 1)[:, None, None]


def rotate(x: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    """Rotate each image counter-clockwise by its angle about the centre; nearest, fill 0."""
    grid = _grid(degrees.to(x.dtype), x.shape[-1])
    return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def crop_drawn(x: torch.Tensor, drawn: torch.Tensor, whole_batch: bool | None = None) -> torch.Tensor:
    """Crop-resize the images where `drawn` is True. Both ways give the same bits.

    On CUDA (whole_batch): resize the whole batch and keep the drawn ones with where(), which
    needs no host sync (a nonzero() would). On the CPU: resize only the ~10% drawn.
    """
    if x.is_cuda if whole_batch is None else whole_batch:
        return torch.where(drawn[:, None, None, None], center_crop_resize(x), x)
    idx = drawn.nonzero().squeeze(1)
    return x.index_copy(0, idx, center_crop_resize(x[idx])) if len(idx) else x


def augment(images_u8: torch.Tensor, generator: torch.Generator, max_deg: float = MAX_DEG,
            crop_p: float = CROP_P, mean: float = MEAN, std: float = STD) -> torch.Tensor:
    """A training batch: uint8 (B, 28, 28) -> augmented, normalised float (B, 1, 28, 28).

    The defaults are the study's; other series set their own (RandomRotation(10) alone is
    max_deg=10, crop_p=0). Both numbers per image are drawn whichever step is off, so switching
    one off leaves the other's draws as they were. With both off, Batches does not call this at all."""
    x = to_float(images_u8)
    b = x.shape[0]
    draws = torch.rand(b, 2, generator=generator, device=generator.device).to(x.device)
    if crop_p:
        x = crop_drawn(x, draws[:, 0] < crop_p)
    if max_deg:
        x = rotate(x, draws[:, 1] * (2 * max_deg) - max_deg)
    return normalize(x, mean, std)


def reference_transform():
    """The study's own per-image PIL pipeline (for the benchmark and the oracle test)."""
    from torchvision import transforms as T

    return T.Compose([
        T.RandomApply([T.CenterCrop(CROP)], p=CROP_P),
        T.Resize((28, 28)),
        T.RandomRotation((-MAX_DEG, MAX_DEG), fill=0),
        T.ToTensor(),
        T.Normalize((MEAN,), (STD,)),
    ])


def test_transform():
    from torchvision import transforms as T

    return T.Compose([T.ToTensor(), T.Normalize((MEAN,), (STD,))])
