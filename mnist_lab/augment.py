"""The study's augmentation, done in batches on the training device.

Per image, as the study's torchvision pipeline: with probability 0.1 CenterCrop(22) then Resize 28
(bilinear), always a rotation by an angle uniform in [-15, 15] degrees (nearest, fill 0), then
Normalize(0.1307, 0.3081). Here both steps run on the whole batch at once (the rotation is one
grid_sample), so a batch costs a few tensor ops, not 64 PIL calls.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

MEAN, STD = 0.1307, 0.3081
CROP, CROP_P, MAX_DEG = 22, 0.1, 15.0


def normalize(x: torch.Tensor) -> torch.Tensor:
    return (x - MEAN) / STD


def to_float(images_u8: torch.Tensor) -> torch.Tensor:
    """(B, 28, 28) uint8 -> (B, 1, 28, 28) float in [0, 1], as ToTensor."""
    return images_u8.unsqueeze(1).float().div_(255)


def center_crop_resize(x: torch.Tensor, size: int = CROP) -> torch.Tensor:
    h = x.shape[-1]
    top = int(round((h - size) / 2.0))  # torchvision's CenterCrop offset
    crop = x[..., top:top + size, top:top + size]
    return F.interpolate(crop, size=(h, h), mode="bilinear", align_corners=False)


def rotate(x: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    """Rotate each image counter-clockwise by its angle about the centre; nearest, fill 0."""
    a = degrees.to(x.dtype) * (math.pi / 180)
    cos, sin = torch.cos(a), torch.sin(a)
    zero = torch.zeros_like(a)
    # grid_sample maps output coords to input coords, so this is the inverse rotation.
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def augment(images_u8: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A training batch: uint8 (B, 28, 28) -> augmented, normalised float (B, 1, 28, 28)."""
    x = to_float(images_u8)
    b = x.shape[0]
    draws = torch.rand(b, 2, generator=generator, device=generator.device).to(x.device)
    cropped = draws[:, 0] < CROP_P
    # Crop-resize the whole batch and keep it where drawn: a where() needs no host sync on CUDA
    # (a nonzero() would), and costs little more than resizing the ~10% drawn.
    x = torch.where(cropped[:, None, None, None], center_crop_resize(x), x)
    angles = draws[:, 1] * (2 * MAX_DEG) - MAX_DEG
    return normalize(rotate(x, angles))


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
