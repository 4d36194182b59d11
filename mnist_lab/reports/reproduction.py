"""The reproduction section of a series' page: each run of an output folder beside the committed run it
remakes (the same series, notebook, seed and method, on any machine), and per notebook whether the new
mean lies within seed noise of the committed one. It is what `make reproduce` answers: do I get what the
repository got?"""
from __future__ import annotations

import os
from pathlib import Path

from .. import paths
from ..machine import described, same_run
from ..results import file_digest, load_results
from .stats import noise_verdict, stats


def section(full: list[dict], out_dir: Path, series: str) -> list[str]:
    """Markdown lines ([] for the committed folder itself, or when no run here remakes a committed one)."""
    committed_dir = paths.reports_dir() / series
    if Path(os.path.abspath(out_dir)) == committed_dir or not (committed_dir / "results").is_dir():
        return []
    theirs = [dict(r, series=r.get("series") or series)
              for r in load_results(committed_dir / "results", warn=lambda _: None) if not r["smoke"]]
    by_key = {same_run(r): r for r in theirs}
    # a file without a recipe (written by hand, or by a version before recipes) remakes nothing it can be matched to
    mine = [r for r in full if isinstance(r.get("recipe"), dict)]
    pairs = [(by_key[k], r) for r in mine if (k := same_run(dict(r, series=r.get("series") or series))) in by_key]
    if not pairs:
        return []
    same = sum(identical(c, r) for c, r in pairs)
    md = ["## Reproduction: these runs beside the committed ones", "",
          f"{len(pairs)} run(s) here remake a committed run of `reports/{series}/` (the same notebook, seed and "
          f"recipe apart from the machine); {same} of them bit for bit. Committed on "
          f"{'; '.join(sorted({described(c) for c, _ in pairs}))}; here on "
          f"{'; '.join(sorted({described(r) for _, r in pairs}))}. Held-out accuracy after the final epoch, %.", "",
          "| Notebook | Seed | Committed | Here | Difference | Bit for bit |", "|---|---|---|---|---|---|"]
    for c, r in sorted(pairs, key=lambda p: (_label(p[1]), p[1]["seed"])):
        md.append(f"| {_label(r)} | {r['seed']} | {c['final_test_acc']:.2f} | {r['final_test_acc']:.2f} | "
                  f"{r['final_test_acc'] - c['final_test_acc']:+.2f} | {'yes' if identical(c, r) else 'no'} |")
    md += ["", "Per notebook, the mean here against the committed mean over all its committed seeds (a "
           "difference counts as seed noise while it is within twice its standard error; with one run here, "
           "its spread is taken to be the committed runs'):", ""]
    for label, group in _by_notebook(pairs).items():
        committed = [c["final_test_acc"] for c in theirs if _method(c) == _method(group[0])]
        here = [r["final_test_acc"] for r in group]
        md.append(f"- {label}: {noise_verdict(stats(here), stats(committed))}")
    return md + [""]


def identical(a: dict, b: dict) -> bool:
    """Whether two result files record the same numbers: every epoch's losses and accuracies, the confusion
    matrix, the mistakes and the checkpoint's bytes (times are no part of it)."""
    def numbers(r):
        return ([{k: v for k, v in row.items() if "second" not in k} for row in r["history"]],
                r["final_test_acc"], r["confusion"], r["mistakes"])
    return numbers(a) == numbers(b) and _sha(a) == _sha(b)


def _sha(r: dict) -> str | None:
    if r.get("checkpoint_sha256"):
        return r["checkpoint_sha256"]
    pt = Path(r["_path"]).with_name(r["checkpoint"])
    return file_digest(pt)["checkpoint_sha256"] if pt.is_file() else None


def _method(r: dict) -> tuple:
    """What a notebook's runs share over seeds: same_run's key of the run as if made with seed 0."""
    return same_run(dict(r, seed=0, recipe=dict(r["recipe"], seed=0)))


def _label(r: dict) -> str:
    variant = ", ".join(f"{k}={v}" for k, v in sorted((r.get("variant") or {}).items()))
    return f"{r['iteration']}{f' ({variant})' if variant else ''}"


def _by_notebook(pairs) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for _, r in sorted(pairs, key=lambda p: (p[1]["iteration"], _label(p[1]))):
        out.setdefault(_label(r), []).append(r)
    return out
