"""`mnist-lab draw`: a Tk window to draw a digit with the mouse and see the model's guess.

The strokes go both onto the Tk canvas (what you see) and into a PIL image of the same size (what
the model sees, through the same preprocessing as image files).
"""
from __future__ import annotations

import tkinter as tk

from PIL import Image, ImageDraw

from .digitize import PAD as SIZE
from .digitize import PEN, classify, stroke
from .errors import LabError

BAR_W, BAR_H = 220, 16
HINT = "Draw a digit with the mouse"


class DrawApp:
    def __init__(self, root: tk.Tk, model):
        self.root, self.model = root, model
        self.image = Image.new("L", (SIZE, SIZE), 255)
        self.pen = ImageDraw.Draw(self.image)
        self.last = None
        self.strokes = 0

        left = tk.Frame(root)
        left.pack(side="left", padx=10, pady=10)
        self.canvas = tk.Canvas(left, width=SIZE, height=SIZE, bg="white", cursor="pencil",
                                highlightthickness=1, highlightbackground="#888")
        self.canvas.pack()
        tk.Button(left, text="Clear", command=self.clear).pack(fill="x", pady=(8, 0))

        right = tk.Frame(root)
        right.pack(side="left", padx=10, pady=10, anchor="n")
        self.guess = tk.Label(right, text=HINT, font=("Helvetica", 16), width=24, anchor="w")
        self.guess.pack(anchor="w", pady=(0, 8))
        self.bars = tk.Canvas(right, width=BAR_W + 60, height=10 * (BAR_H + 6), highlightthickness=0)
        self.bars.pack(anchor="w")
        self.canvas.bind("<ButtonPress-1>", self.start)
        self.canvas.bind("<B1-Motion>", self.move)
        self.canvas.bind("<ButtonRelease-1>", self.release)
        self.show([0.0] * 10)

    def start(self, event):
        self.last = (event.x, event.y)
        self.move(event)

    def move(self, event):
        x0, y0 = self.last or (event.x, event.y)
        self.canvas.create_line(x0, y0, event.x, event.y, width=PEN, capstyle="round", smooth=True)
        stroke(self.pen, [(x0, y0), (event.x, event.y)])  # round joints, as the canvas draws them
        self.last = (event.x, event.y)

    def release(self, event):
        self.last = None
        self.strokes += 1
        self.predict()

    def predict(self):
        try:
            digit, conf, probs = classify(self.model, self.image)
        except LabError:  # nothing drawn (or only a speck): a hint, not a guess
            self.guess.config(text=HINT)
            self.show([0.0] * 10)
            return None
        self.guess.config(text=f"Prediction: {digit}  ({100 * conf:.1f}%)")
        self.show(probs, digit)
        return digit

    def show(self, probs, best=None):
        self.bars.delete("all")
        for d, p in enumerate(probs):
            y = d * (BAR_H + 6) + 2
            self.bars.create_text(10, y + BAR_H / 2, text=str(d), font=("Helvetica", 11))
            self.bars.create_rectangle(22, y, 22 + BAR_W, y + BAR_H, outline="#bbb")
            if p > 0:
                self.bars.create_rectangle(22, y, 22 + max(1, p * BAR_W), y + BAR_H, width=0,
                                           fill="#d9534f" if d == best else "#5b8def")
            self.bars.create_text(28 + BAR_W, y + BAR_H / 2, text=f"{100 * p:.0f}%", anchor="w",
                                  font=("Helvetica", 9))

    def clear(self):
        self.canvas.delete("all")
        self.image.paste(255, (0, 0, SIZE, SIZE))
        self.guess.config(text=HINT)
        self.show([0.0] * 10)


def run_app(model, title="mnist_lab"):
    try:
        root = tk.Tk()
    except tk.TclError as exc:
        raise LabError(f"cannot open a window ({exc}); run it on a desktop, or under Xvfb with DISPLAY set") from None
    root.title(title)
    DrawApp(root, model)
    root.mainloop()
