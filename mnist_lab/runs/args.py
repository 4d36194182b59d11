"""A run's arguments checked without torch: --set and --grid values, notebook numbers, and every planned
run's settings (by building the Config its notebook will build), so that a mistyped command gets its message
at once, before torch is imported (seconds)."""
from __future__ import annotations

import difflib
import itertools
from dataclasses import dataclass
from pathlib import Path

from ..config import NO_NUMBER, PER_RUN, Config
from ..errors import LabError
from ..frameworks import missing
from ..paths import portable
from ..series import changed, notebook_defaults

CONFIG_KEYS = frozenset(Config.__dataclass_fields__)


def parse_overrides(pairs: list[str], known: dict[str, str]) -> dict:
    """'key=value' strings -> typed values, checked against the notebooks' parameters."""
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise LabError(f"override {pair!r} must look like key=value, e.g. epochs=2")
        key, raw = pair.split("=", 1)
        if key in out:
            raise LabError(f"parameter {key!r} is given twice in --set; keep one")
        if key not in known:
            close = difflib.get_close_matches(key, list(known), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise LabError(f"unknown notebook parameter {key!r}.{hint} Known: {', '.join(known)}")
        kind = known[key]
        try:
            if kind == "int":
                value = int(raw)
            elif kind == "float":
                value = float(raw)
            elif kind == "bool":
                if raw.lower() not in ("true", "false", "1", "0"):
                    raise ValueError(raw)
                value = raw.lower() in ("true", "1")
            else:
                value = raw
        except ValueError:
            raise LabError(f"parameter {key!r} takes {'an' if kind == 'int' else 'a'} {kind}, got {raw!r}") from None
        out[key] = value
    for key in out:
        if key in PER_RUN:
            raise LabError(f"{key!r} is set by the runner; use {PER_RUN[key]} instead")
    return out


def check_iterations(notebooks: dict[int, Path], iterations) -> list[int]:
    missing = sorted(set(iterations) - set(notebooks))
    if missing:
        raise LabError(f"no notebook for iteration(s) {missing}; have {sorted(notebooks)}")
    return list(dict.fromkeys(iterations))  # a repeated iteration would be the same run twice


def parse_grid(entries: list[str], known: dict[str, str]) -> list[dict]:
    """'key=v1,v2' strings -> every combination of their values as {key: value}, typed and checked as
    --set checks one value."""
    axes: dict[str, list] = {}
    for entry in entries:
        key, sep, raw = entry.partition("=")
        if not sep or not raw:
            raise LabError(f"--grid {entry!r} must look like key=v1,v2, e.g. lr=0.001,0.002")
        if key in axes:
            raise LabError(f"parameter {key!r} is given twice in --grid; list all its values once: {key}=v1,v2")
        values = [parse_overrides([f"{key}={v.strip()}"], known)[key] for v in raw.split(",")]
        if key in NO_NUMBER:  # every combination would be one run
            raise LabError(f"--grid over {key!r}: it does not change a run's numbers; set it with --set {key}=...")
        if key not in CONFIG_KEYS:  # the report tells a grid's runs apart by their recorded settings
            raise LabError(f"--grid over {key!r}: it shapes only the network, which a run's settings do not record; "
                           f"grid a run setting (lr, batch_size, epochs, ...), or run each {key} with --set {key}=...")
        axes[key] = list(dict.fromkeys(values))
    return [dict(zip(axes, combo)) for combo in itertools.product(*axes.values())]


@dataclass
class Planned:
    """One run as its notebook will see it, before its recipe (which needs torch) is known."""
    series: str
    iteration: int
    notebook: Path
    params: dict   # what papermill injects
    values: dict   # the notebook's parameters with them
    cfg: Config
    variant: dict  # where it belongs: its sweep's or grid's settings and what --set changed


def configs(series, iterations, seeds, out: Path, overrides: dict, smoke: bool, threads: int, data_dir: Path,
            grid: list[dict] | None = None):
    """Every run of the plan (see plan.plan) as a Planned, each checked by building its Config."""
    for s in series:
        folder = out / s.name
        for it in iterations or sorted(s.notebooks):
            nb = s.notebooks[it]
            defaults = notebook_defaults(nb)
            # A key given with --set replaces that key's sweep: one run with the value asked for.
            variants = [dict(t) for t in dict.fromkeys(
                tuple((k, v) for k, v in variant.items() if k not in overrides)
                for variant in (grid if grid is not None else s.variants(it)))]
            foreign = sorted({*s.settings, *overrides, *(k for v in variants for k in v)} - set(defaults))
            if foreign:  # it would run with a recipe other than the one planned, and fail at its end
                raise LabError(f"{s.name}/{nb.name} takes no parameter {', '.join(map(repr, foreign))}; pick the "
                               "notebooks that do with --series (and --iterations)")
            for variant in variants:
                for seed in seeds if seeds is not None else (s.seeds or [0]):
                    params = dict(s.settings, **overrides, **variant, series=s.name, seed=seed, smoke=smoke, threads=threads,
                                  data_dir=portable(data_dir), results_dir=portable(folder / "results"))
                    values = dict(defaults, **params)
                    try:  # the notebook's other parameters (a dropout rate, a width) shape only its network
                        cfg = Config.from_dict({k: v for k, v in values.items() if k in CONFIG_KEYS})
                    except LabError as exc:
                        raise LabError(f"{s.name}/{nb.name}{f' {variant}' if variant else ''}: {exc}") from None
                    absent = missing(cfg)
                    if absent:
                        raise LabError(f"{s.name}/{nb.name}{f' {variant}' if variant else ''}: {absent}")
                    yield Planned(s.name, it, nb, params, values, cfg,
                                  dict(variant, **changed(overrides, defaults, s.settings)))
