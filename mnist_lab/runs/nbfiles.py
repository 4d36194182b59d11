"""Executed notebooks as they are kept: progress bars as their final state, widgets as their static stand-ins,
paths relative to the repository.

A progress bar redraws its line with carriage returns many times a second; the kernel sends each
redraw as a stream message and papermill stores them all. A terminal would show only the last
state of each line, so that is what is kept.

A widget (the explorer, the pad) lives only as long as its kernel: in a kept notebook its view would show an
error in JupyterLab ("model not found") and nothing on a notebook viewer, and its saved state weighs hundreds
of kilobytes. Each widget output keeps its static stand-in (the explorer's figure, a line of text) instead.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..io import atomic_write_text


def final_text(text: str) -> str:
    """What a terminal shows after printing `text`: for each line, what follows its last carriage return."""
    return "\n".join(next((p for p in reversed(line.split("\r")) if p), "") for line in text.split("\n"))


def _text(output) -> str:
    t = output.get("text", "")
    return "".join(t) if isinstance(t, list) else t


def compact_outputs(outputs: list) -> list:
    """Merge runs of the same stream (stdout or stderr) and keep each line's final state."""
    merged = []
    for o in outputs:
        if o.get("output_type") == "stream" and merged and merged[-1].get("output_type") == "stream" \
                and merged[-1].get("name") == o.get("name"):
            merged[-1]["text"] = _text(merged[-1]) + _text(o)
        else:
            merged.append(dict(o, text=_text(o)) if o.get("output_type") == "stream" else o)
    for o in merged:
        if o.get("output_type") == "stream":
            o["text"] = final_text(o["text"]).splitlines(keepends=True)
    return merged


WIDGET = "application/vnd.jupyter.widget-view+json"


def static_outputs(outputs: list) -> list:
    """Outputs with each widget's view dropped, what else it offered kept (a figure, text)."""
    out = []
    for o in outputs:
        data = o.get("data")
        if isinstance(data, dict) and WIDGET in data:
            o = dict(o, data={k: v for k, v in data.items() if k != WIDGET})
            if not o["data"]:
                continue
        out.append(o)
    return out


def compact(src, dest, output_path: str) -> Path:
    """Write notebook `src` to `dest` atomically, with compacted streams and `output_path` recorded."""
    return compact_text(Path(src).read_text(), dest, output_path)


def compact_text(text: str, dest, output_path: str) -> Path:
    """compact() of a notebook's JSON text."""
    nb = json.loads(text)
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code":
            cell["outputs"] = static_outputs(compact_outputs(cell.get("outputs", [])))
    nb.get("metadata", {}).pop("widgets", None)  # the widgets' state: no kernel backs it any more
    meta = nb.get("metadata", {}).get("papermill")
    if isinstance(meta, dict):
        meta["output_path"] = output_path
    return atomic_write_text(dest, json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
