"""Turn a drawing or a photo of one digit into an MNIST-like input, the way MNIST itself was made.

MNIST's digits are white on black, size-normalised so the longer side of the ink is 20 px (keeping
the aspect ratio), and placed in a 28x28 field so that their centre of mass sits at the centre.
One function serves the drawing window and image files, so both see the same preprocessing.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, UnidentifiedImageError

from .augment import normalize
from .datasets import MNIST, Dataset
from .errors import LabError

PAD, PEN = 280, 18  # a drawing surface of 280x280 pixels; the pen ~ MNIST's stroke width at 10x scale
INK = 0.15  # after inversion, pixels brighter than this count as ink when finding the digit's box
MAX_PIXELS = 40_000_000  # a photo of one digit needs far fewer; larger files are refused before decoding
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def to_gray(image: Image.Image) -> np.ndarray:
    """Grayscale float in [0, 1]; transparency is composited onto white paper."""
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(paper, rgba)
    return np.asarray(image.convert("L"), dtype=np.float32) / 255.0


def mnist_like(image: Image.Image) -> np.ndarray:
    """A 28x28 float array in [0, 1], white digit on black, centred by mass; LabError if there is no ink."""
    g = to_gray(image)
    border = np.concatenate([g[0], g[-1], g[:, 0], g[:, -1]])
    if np.median(border) > 0.5:  # light paper, dark strokes: invert to MNIST's white on black
        g, border = 1.0 - g, 1.0 - border
    paper = float(np.median(border))  # grey paper or a dim photo: its level becomes black
    if g.max() - paper < 0.2:
        g = np.zeros_like(g)
    else:
        g = np.clip((g - paper) / (g.max() - paper), 0, 1)
    rows, cols = np.nonzero(g > INK)
    if len(rows) == 0:
        raise LabError("the image is empty: no digit found (draw or photograph one dark digit on light paper, "
                       "or a light digit on a dark background)")
    crop = g[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    h, w = crop.shape
    scale = 20.0 / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    small = np.asarray(Image.fromarray((crop * 255).astype(np.uint8)).resize((nw, nh), Image.LANCZOS),
                       dtype=np.float32) / 255.0
    out = np.zeros((28, 28), np.float32)
    total = small.sum()
    ys, xs = np.mgrid[0:nh, 0:nw]
    cy, cx = (ys * small).sum() / total, (xs * small).sum() / total
    top, left = int(round(13.5 - cy)), int(round(13.5 - cx))  # centre of mass to the field's centre
    top, left = min(max(top, 0), 28 - nh), min(max(left, 0), 28 - nw)
    out[top:top + nh, left:left + nw] = small
    return out


def to_input(image: Image.Image, dataset: Dataset = MNIST) -> torch.Tensor:
    """(1, 1, 28, 28) tensor normalised with the constants of the data set a model was trained on."""
    return normalize(torch.from_numpy(mnist_like(image))[None, None], dataset.mean, dataset.std)


def stroke(pen: ImageDraw.ImageDraw, points, width: int = PEN) -> None:
    """Ink one stroke (a list of (x, y) points) black on the image behind `pen`: segments joined and ended
    round, as a browser canvas or Tk draws them, so that what the model sees is what the user saw."""
    pts = [(float(x), float(y)) for x, y in points]
    r = width / 2
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
        pen.line([(x0, y0), (x1, y1)], fill=0, width=width)
    for x, y in pts:
        pen.ellipse([x - r, y - r, x + r, y + r], fill=0)


def drawing(strokes, size: int = PAD, width: int = PEN) -> Image.Image:
    """The strokes of a drawing pad (lists of (x, y) points on a size x size surface), as an image of
    black ink on white paper, ready for `classify` (the drawing window and the notebook pad share it)."""
    image = Image.new("L", (size, size), 255)
    pen = ImageDraw.Draw(image)
    for points in strokes:
        stroke(pen, points, width)
    return image


def load_image(path) -> Image.Image:
    """Open an image file, with a clear message for the expected mistakes (the caller names the file)."""
    p = Path(path)
    if p.is_dir():
        raise LabError(f"a folder with no image files ({', '.join(IMAGE_SUFFIXES)})")
    if not p.is_file():
        raise LabError("no such file")
    try:
        with Image.open(p) as im:
            # The header gives the size: refuse a huge image before decoding it into memory.
            if im.width * im.height > MAX_PIXELS:
                raise LabError(f"image is {im.width}x{im.height} pixels, over the {MAX_PIXELS // 1_000_000} "
                               "megapixel limit; scale it down (one digit needs a few hundred pixels a side)")
            im.load()
            return im.copy()
    except Image.DecompressionBombError as exc:
        raise LabError(f"refused as too large to decode safely ({exc})") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise LabError(f"not a readable image (PNG or JPEG expected): {exc}") from None


def image_files(names) -> list[str]:
    """The names given, with each folder replaced by the image files in it (sorted)."""
    out = []
    for name in names:
        p = Path(name)
        if p.is_dir():
            found = sorted(str(f) for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            out += found or [name]  # an empty folder is reported by load_image
        else:
            out.append(name)
    return out


@torch.inference_mode()
def classify(model, image: Image.Image) -> tuple[int, float, list[float]]:
    """(digit, its probability, all ten probabilities)."""
    probs = model(to_input(image, getattr(model, "dataset", MNIST))).exp()[0]
    digit = int(probs.argmax())
    return digit, float(probs[digit]), [round(float(p), 6) for p in probs]
