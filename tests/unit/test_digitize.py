"""Preprocessing like MNIST's, `mnist-lab predict` on real digits, and the drawing window under Xvfb."""
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from mnist_lab.data import load_split
from mnist_lab.digitize import mnist_like
from mnist_lab.errors import LabError
from mnist_lab.reports import best_checkpoint
from conftest import ROOT



def centre_of_mass(a):
    ys, xs = np.mgrid[0:a.shape[0], 0:a.shape[1]]
    return (ys * a).sum() / a.sum(), (xs * a).sum() / a.sum()


def ink_box(a, level=0.15):
    r, c = np.nonzero(a > level)
    return r.max() - r.min() + 1, c.max() - c.min() + 1


def seven(size=(300, 200), at=(20, 30), scale=1.0, ink=0, paper=255, mode="L"):
    im = Image.new(mode, size, paper)
    d = ImageDraw.Draw(im)
    x, y = at
    s = scale
    d.line([(x, y), (x + 40 * s, y)], fill=ink, width=int(6 * s))
    d.line([(x + 40 * s, y), (x + 15 * s, y + 70 * s)], fill=ink, width=int(6 * s))
    return im


def test_small_off_centre_drawing_is_centred_and_scaled():
    a = mnist_like(seven(at=(200, 100), scale=0.6))
    assert a.shape == (28, 28) and a.max() == pytest.approx(1.0, abs=0.05)
    assert max(ink_box(a)) in (19, 20, 21)  # the longer side becomes 20 px
    cy, cx = centre_of_mass(a)
    assert abs(cy - 13.5) < 0.75 and abs(cx - 13.5) < 0.75
    h, w = ink_box(a)
    assert h > w  # the aspect ratio is kept (a tall 7 stays tall)


def test_dark_paper_is_not_inverted_but_light_paper_is():
    light = mnist_like(seven())
    dark = mnist_like(seven(ink=255, paper=0))
    assert np.abs(light - dark).mean() < 0.02
    assert light[0, 0] == 0 and dark[0, 0] == 0  # background is black, as in MNIST


def test_transparent_png_is_drawn_on_white():
    im = seven(mode="LA", ink=(0, 255), paper=(0, 0))  # black ink, transparent paper
    assert np.abs(mnist_like(im) - mnist_like(seven())).mean() < 0.02


def test_empty_image_is_refused():
    with pytest.raises(LabError, match="empty"):
        mnist_like(Image.new("L", (50, 50), 255))


def test_real_mnist_digit_is_almost_unchanged(mnist_root):
    """MNIST is already in this form: its digits come back the same size, at most a pixel's shift away."""
    images, _ = load_split("test", mnist_root)
    for i in range(20):
        x = images[i].numpy().astype(np.float32) / 255
        a = mnist_like(Image.fromarray(images[i].numpy()))
        assert ink_box(a) == ink_box(x)
        shifted = min(np.abs(np.roll(a, (dy, dx), (0, 1)) - x).mean() for dy in (-1, 0, 1) for dx in (-1, 0, 1))
        assert shifted < 0.01


def lab(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "mnist_lab", *args], cwd=cwd, capture_output=True, text=True)


def test_predict_gets_real_test_digits_right(mnist_root, tmp_path):
    images, labels = load_split("test", mnist_root)
    paths = []
    for i in range(40):  # saved as they would be photographed: dark ink on light paper, larger
        im = Image.fromarray(255 - images[i].numpy()).resize((112, 112), Image.BILINEAR)
        paths.append(str(tmp_path / f"digit{i}_{int(labels[i])}.png"))
        im.save(paths[-1])
    done = lab("predict", "--json", *paths)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert [r["path"] for r in rows] == paths
    right = sum(r["digit"] == int(labels[i]) for i, r in enumerate(rows))
    assert right >= 38, rows
    assert all(abs(sum(r["probabilities"]) - 1) < 1e-3 and 0 < r["confidence"] <= 1 for r in rows)


def test_predict_bad_files_get_a_message_and_the_rest_still_run(mnist_root, tmp_path):
    images, labels = load_split("test", mnist_root)
    good = tmp_path / "good.png"
    Image.fromarray(images[0].numpy()).save(good)
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    empty = tmp_path / "empty.png"
    Image.new("L", (40, 40), 255).save(empty)
    done = lab("predict", str(tmp_path / "missing.png"), str(text), str(empty), str(good))
    assert done.returncode == 1
    assert "missing.png: no such file" in done.stderr
    assert "notes.png: not a readable image" in done.stderr
    assert "empty.png" in done.stderr and "empty" in done.stderr
    assert "Traceback" not in done.stderr
    assert f"good.png: {int(labels[0])}" in done.stdout


def test_default_checkpoint_is_the_reports_best_model():
    path = best_checkpoint(ROOT / "reports" / "study")
    assert path.exists() and "_smoke" not in path.name
    assert best_checkpoint() == path  # the repository's reports/, from any working directory


def test_predict_works_from_any_folder_and_reads_a_folder_of_images(mnist_root, tmp_path):
    images, labels = load_split("test", mnist_root)
    folder = tmp_path / "digits"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(images[i].numpy()).save(folder / f"d{i}.png")
    (folder / "notes.txt").write_text("not an image, and not picked up")
    done = lab("predict", "--json", "digits", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert [Path(r["path"]).name for r in rows] == ["d0.png", "d1.png", "d2.png"]
    assert [r["digit"] for r in rows] == [int(y) for y in labels[:3]]
    (tmp_path / "empty").mkdir()
    none = lab("predict", "empty", cwd=tmp_path)
    assert none.returncode == 1 and "empty: a folder with no image files" in none.stderr


def test_an_oversized_image_is_refused_and_the_rest_go_on(mnist_root, tmp_path):
    images, labels = load_split("test", mnist_root)
    huge = tmp_path / "huge.png"
    Image.new("L", (8000, 6000), 255).save(huge)  # 48 megapixels: a compressed file of a few kB
    good = tmp_path / "good.png"
    Image.fromarray(images[0].numpy()).save(good)
    done = lab("predict", str(huge), str(good))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "huge.png: image is 8000x6000 pixels, over the 40 megapixel limit" in done.stderr
    assert f"good.png: {int(labels[0])}" in done.stdout


def test_a_bad_checkpoint_gets_our_message(tmp_path):
    import torch

    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x80\x02not a checkpoint at all" * 10)
    pickled = tmp_path / "object.pt"
    torch.save({"model": Path("x")}, pickled)  # a pickle that weights_only refuses to load
    (tmp_path / "a.png").write_bytes(b"")
    for ck, why in [(garbage, "is not a mnist_lab checkpoint"), (pickled, "is not a mnist_lab checkpoint"),
                    (tmp_path, "is a folder; pass the .pt file"), (tmp_path / "nope.pt", "not found")]:
        done = lab("predict", "--checkpoint", str(ck), str(tmp_path / "a.png"))
        assert done.returncode == 2 and why in done.stderr, done.stderr
        assert "Traceback" not in done.stderr and "weights_only" not in done.stderr


@pytest.fixture
def display():
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (make test installs Debian's xvfb where it can)")
    disp = f":{90 + os.getpid() % 100}"
    proc = subprocess.Popen(["Xvfb", disp, "-screen", "0", "800x600x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    old = os.environ.get("DISPLAY")
    os.environ["DISPLAY"] = disp
    yield disp
    proc.terminate()
    proc.wait()
    if old is None:
        os.environ.pop("DISPLAY", None)
    else:
        os.environ["DISPLAY"] = old


@pytest.mark.slow
def test_draw_window_recognises_a_drawn_stroke(display, tmp_path):
    tk = pytest.importorskip("tkinter", reason="this Python has no Tk (Debian: apt-get install python3-tk)")

    from PIL import ImageGrab

    from mnist_lab.draw import HINT, DrawApp
    from mnist_lab.checkpoint import load_model

    root = tk.Tk()
    app = DrawApp(root, load_model(best_checkpoint(ROOT / "reports" / "study")))
    root.update()
    assert app.guess.cget("text") == HINT  # empty canvas: a hint, not a guess
    c = app.canvas
    # a "1": one vertical stroke, sent through Tk's own event queue to the canvas bindings
    c.event_generate("<ButtonPress-1>", x=140, y=50)
    for y in range(50, 231, 10):
        c.event_generate("<B1-Motion>", x=140 + (y - 50) // 30, y=y)
    c.event_generate("<ButtonRelease-1>", x=146, y=230)
    root.update()
    assert app.strokes == 1 and app.guess.cget("text").startswith("Prediction: 1")
    assert len(app.bars.find_all()) > 30  # ten labelled bars
    x, y = root.winfo_rootx(), root.winfo_rooty()
    shot = ImageGrab.grab(bbox=(x, y, x + root.winfo_width(), y + root.winfo_height()), xdisplay=display)
    shot.save(tmp_path / "draw.png")
    ink = np.asarray(shot.convert("L"))[10:290, 10:290]
    assert (ink < 60).sum() > 500  # the stroke is on screen
    app.clear()
    root.update()
    assert app.guess.cget("text") == HINT
    root.destroy()
