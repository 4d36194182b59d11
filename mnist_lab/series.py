"""A series: one folder of numbered notebooks under notebooks/, and optionally its `series.json`.

The folder's name is the series' name; its runs, executed notebooks and report go to
`<out>/<name>/`. `series.json` says what the series is and what its report compares:

    {"title": "...", "report": "study" | "compare" | "steps",
     "sweeps": [{"notebook": 4, "vary": {"batch_size": [32, 128, 512, 2048]}}],
     "comparisons": [{"question": "CNN vs MLP", "a": 3, "b": 4}, ...]}

A sweep adds runs of one notebook with one parameter changed (each its own recipe and file); a
comparison names two notebooks (their own recipes), or a notebook and one of its sweep's runs
({"notebook": 1, "framework": "keras"}), whose held-out means the report sets side by side. A sweep's
"target" (a held-out accuracy in %) adds the time each run took to first reach it.
A "steps" series (mnist_lab/steps.py) also states its "goal" ({"params_below": 8000, "acc": 99.4,
"last": 3, "max_epochs": 15}); its report adds each step's Target, Result and Analysis.
"seeds" are those of its committed results (what `make reproduce` runs).
A series may hold no notebooks of its own and run another's with some settings changed, e.g. the study on
Fashion-MNIST: {"reuse": "study", "set": {"dataset": "fashion"}} (its report, comparisons, goal and seeds are
the other series' unless it gives its own). Its runs are the notebooks' own recipes there: the settings do not
make them variants, and its report sets them beside the reused series' committed ones.
"notes" go into every report of the series, "reports_notes" (how the committed results were made)
only into the repository's reports/<name>/README.md.
"""
from __future__ import annotations

import ast
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from . import blocks
from . import paths
from .config import NO_NUMBER, PER_RUN, Config
from .errors import LabError

NOTEBOOK = re.compile(r"^(\d+)_.*\.ipynb$")
MANIFEST = "series.json"
# A "steps" series' goal, unless its series.json says otherwise. smallest_at: the report also names the
# smallest network (a step, or a run of a sweep) whose mean held-out accuracy over its seeds is at least this.
GOAL = {"params_below": 8000, "acc": 99.4, "last": 3, "max_epochs": 15, "smallest_at": 99.3}
BLOCK_NAMES = ("conv", "trans", "pool", "drop", "head", "flatten", "dense", "bn", "gap")  # what a Net([...]) may use
TARGET_MARK = "**Target.**"


@dataclass
class Series:
    name: str
    folder: Path
    notebooks: dict[int, Path]
    title: str = ""
    report: str = "compare"
    sweeps: list[dict] = field(default_factory=list)
    comparisons: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)          # shown in every report of this series
    reports_notes: list[str] = field(default_factory=list)  # about the committed results: in reports/ only
    goal: dict = field(default_factory=dict)  # "steps" series: what the steps aim for (see mnist_lab/steps.py)
    seeds: list[int] = field(default_factory=list)  # the seeds of its committed results (`run --series-seeds`)
    reuses: str = ""  # the series whose notebooks it runs ("": its own)
    settings: dict = field(default_factory=dict)  # what it sets in every run of those notebooks ("set")

    def variants(self, iteration: int) -> list[dict]:
        """The overrides of each run of notebook `iteration`: its own recipe ({}) first, then its sweeps."""
        out = [{}]
        for sweep in self.sweeps:
            if sweep["notebook"] == iteration:
                for key, values in sweep["vary"].items():
                    out += [{key: v} for v in values]
        return out


    def side_ok(self, side) -> bool:
        """A comparison's side: a notebook at its own recipe (N), or one run of a sweep ({"notebook": N,
        "framework": "keras"})."""
        if isinstance(side, int):
            return side in self.notebooks
        if not isinstance(side, dict) or len(side) != 2 or side.get("notebook") not in self.notebooks:
            return False
        (key, value), = ((k, v) for k, v in side.items() if k != "notebook")
        return any(sw["notebook"] == side["notebook"] and value in sw["vary"].get(key, []) for sw in self.sweeps)


def numbered(folder: Path) -> dict[int, Path]:
    return {int(m.group(1)): folder / n for n in sorted(os.listdir(folder)) if (m := NOTEBOOK.match(n))} \
        if folder.is_dir() else {}


def reused(folder) -> str:
    """The series a folder's series.json reuses ("": none, or no readable series.json)."""
    try:
        name = json.loads((Path(folder) / MANIFEST).read_text()).get("reuse", "")
    except (OSError, ValueError, AttributeError):
        return ""
    return name if isinstance(name, str) else ""


def is_series(folder) -> bool:
    """Whether a folder is a series: numbered notebooks of its own, or a series.json that reuses another's."""
    return bool(numbered(folder)) or bool(reused(folder))


def named(name: str) -> Series | None:
    """The repository's series of that name (None: no such folder under notebooks/)."""
    folder = paths.base() / "notebooks" / name
    return load(folder) if name and is_series(folder) else None


def load(folder) -> Series:
    folder = Path(folder)
    other = reused(folder)
    if other:
        if other == folder.name or not numbered(folder.parent / other):
            raise LabError(f"{folder / MANIFEST}: \"reuse\" names {other!r}, which is no folder of numbered notebooks "
                           f"beside it (have {', '.join(sorted(d.name for d in folder.parent.iterdir() if numbered(d)))})")
        if numbered(folder):
            raise LabError(f"{folder} holds notebooks and reuses {other!r}: keep one of the two")
        base_series = load(folder.parent / other)
    notebooks = base_series.notebooks if other else numbered(folder)
    if not notebooks:
        raise LabError(f"no numbered notebooks (01_*.ipynb ...) in {folder}")
    s = Series(folder.name, folder, notebooks)
    manifest = folder / MANIFEST
    if manifest.exists():
        try:
            spec = json.loads(manifest.read_text())
            if other:  # what it does not say is the reused series'
                spec = {**{k: v for k, v in vars(base_series).items() if k not in ("name", "folder", "notebooks")
                           and k != "reports_notes"}, **spec}
                s.reuses = other
                s.settings = dict(spec.get("set", {}))
                for key, value in s.settings.items():
                    if key in PER_RUN or key not in Config.__dataclass_fields__ or \
                            not isinstance(value, (int, float, str, bool)):
                        raise ValueError(f"\"set\" {key!r}: set a run setting (a key of Config other than "
                                         f"{', '.join(PER_RUN)}) to one value")
            elif "set" in spec:
                raise ValueError('"set" changes the notebooks of a series it reuses: add "reuse": "<series>", or set '
                                 "the value in the notebooks' parameters")
            s.title = str(spec.get("title", ""))
            s.report = spec.get("report", "compare")
            s.sweeps = list(spec.get("sweeps", []))
            s.comparisons = list(spec.get("comparisons", []))
            s.notes = [str(n) for n in spec.get("notes", [])]
            s.reports_notes = [str(n) for n in spec.get("reports_notes", [])]
            s.goal = dict(spec.get("goal", {}))
            s.seeds = list(spec.get("seeds", []))
            if not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in s.seeds):
                raise ValueError(f"seeds must be a list of whole numbers >= 0, not {spec.get('seeds')!r}")
            for key, value in s.goal.items():
                whole = key in ("params_below", "last", "max_epochs")
                if key not in GOAL or not isinstance(value, int if whole else (int, float)) or isinstance(value, bool) \
                        or value <= 0:
                    raise ValueError(f"goal {key!r}: known keys {', '.join(GOAL)}, each a positive number "
                                     "(params_below, last and max_epochs whole numbers)")
            for sweep in s.sweeps:
                if sweep["notebook"] not in notebooks or not isinstance(sweep["vary"], dict):
                    raise ValueError(f"sweep {sweep} names no notebook of this series")
                for key, values in sweep["vary"].items():
                    if key in PER_RUN:
                        raise ValueError(f"sweep over {key!r}: the runner sets it (use --seeds, --series ...)")
                    if key not in Config.__dataclass_fields__:  # the report tells a sweep's runs apart by their settings
                        raise ValueError(f"sweep over {key!r}: sweep a run setting (a key of Config), or declare the "
                                         "other network in a notebook of its own")
                    if not isinstance(values, list) or not values or \
                            not all(isinstance(v, (int, float, str, bool)) for v in values):
                        raise ValueError(f"sweep over {key!r}: give a non-empty list of values, not {values!r}")
            for c in s.comparisons:
                if not c.get("question") or not all(s.side_ok(c[k]) for k in ("a", "b")):
                    raise ValueError(f"comparison {c} needs a question and two sides, each a notebook of this "
                                     "series or {\"notebook\": N, \"<swept key>\": <one of its values>}")
            for sweep in s.sweeps:
                if "target" in sweep and not isinstance(sweep["target"], (int, float)):
                    raise ValueError(f"sweep {sweep}: target is a held-out accuracy in %, e.g. 98.5")
            if s.report not in ("study", "compare", "steps"):
                raise ValueError(f"report must be 'study', 'compare' or 'steps', not {s.report!r}")
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise LabError(f"{manifest} is not a valid series file ({exc})") from None
    return s


def find(root) -> dict[str, Series]:
    """{name: Series} for every series under `root` (a notebooks folder); a folder that holds
    numbered notebooks itself is one series, named after it."""
    root = Path(root)
    if numbered(root):
        return {root.name: load(root)}
    found = {d.name: load(d) for d in sorted(root.iterdir()) if d.is_dir() and is_series(d)} if root.is_dir() else {}
    if not found:
        raise LabError(f"no series in {root}: expected folders of numbered notebooks (notebooks/study/01_*.ipynb ...); "
                       "run from the repository root or pass --notebooks DIR")
    return found


def pick(found: dict[str, Series], names) -> list[Series]:
    if not names:
        return list(found.values())
    unknown = [n for n in names if n not in found]
    if unknown:
        raise LabError(f"no series {', '.join(map(repr, unknown))}; have {', '.join(found)}")
    return [found[n] for n in dict.fromkeys(names)]


# ---- one notebook, read without running it -------------------------------------------------------
@dataclass(frozen=True)
class _Cell:
    source: str
    metadata: dict


def _code_cells(path: Path) -> list[_Cell]:
    """The notebook's code cells, read as the JSON an .ipynb file is: nbformat's import alone costs about 2 s
    (jsonschema compiles a URI grammar), paid by every kernel whose record() reads its notebook."""
    try:
        nb = json.loads(Path(path).read_text(encoding="utf-8"))
        if nb.get("nbformat") != 4:
            raise ValueError(f"nbformat {nb.get('nbformat')!r}, not 4")
        return [_Cell("".join(c["source"]) if isinstance(c["source"], list) else c["source"], c.get("metadata", {}))
                for c in nb["cells"] if c["cell_type"] == "code"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise LabError(f"{path} is not a readable notebook ({exc})") from None


def notebook_defaults(path: Path) -> dict:
    """The values of the notebook's `parameters` cell (flat literals, as the house style wants)."""
    cell = next((c for c in _code_cells(path) if "parameters" in c.metadata.get("tags", [])), None)
    if cell is None:
        raise LabError(f"{path.name} has no cell tagged 'parameters'")
    out = {}
    for node in ast.parse(cell.source).body:
        target = node.target if isinstance(node, ast.AnnAssign) else \
            node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else None
        if isinstance(target, ast.Name) and node.value is not None:
            try:
                out[target.id] = ast.literal_eval(node.value)
            except ValueError:
                raise LabError(f"{path.name}: parameter {target.id!r} is not a flat literal") from None
    return out


def notebook_parameters(path: Path) -> dict[str, str]:
    """{name: type name} of the notebook's `parameters` cell."""
    return {k: type(v).__name__ for k, v in notebook_defaults(path).items()}


def _net_calls(path: Path) -> list:
    found = []
    for cell in _code_cells(path):
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            continue
        found += [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
                  and n.func.id == "Net" and n.args]
    return found


def notebook_network_source(path: Path) -> str:
    """The source of the block list in the notebook's Net([...]) call ("" when there is none)."""
    found = _net_calls(path)
    return ast.unparse(found[0].args[0]) if len(found) == 1 else ""


def notebook_network(path: Path, params: dict) -> list[dict]:
    """The block list a notebook declares in its `Net([...])` call, read without running the notebook
    (the list is evaluated with the block constructors and the run's parameters, nothing else)."""
    names = {n: getattr(blocks, n) for n in BLOCK_NAMES}
    found = _net_calls(path)
    if len(found) != 1:
        raise LabError(f"{path.name} must declare its network in exactly one Net([...]) call; found {len(found)}")
    expr = ast.Expression(found[0].args[0])
    try:
        return eval(compile(expr, str(path), "eval"), {"__builtins__": {}}, dict(params, **names))
    except Exception as exc:
        raise LabError(f"{path.name}: its network could not be read ({type(exc).__name__}: {exc})") from None


def target_text(notebook: Path) -> str:
    """The notebook's Target: its markdown paragraph that starts with **Target.** ("" when it has none)."""
    try:
        cells = json.loads(Path(notebook).read_text())["cells"]
    except (OSError, ValueError, KeyError):
        return ""
    for cell in cells:
        if cell.get("cell_type") == "markdown":
            for para in "".join(cell["source"]).split("\n\n"):
                if para.startswith(TARGET_MARK):
                    return para[len(TARGET_MARK):].strip()
    return ""


def own_recipe(path: Path) -> dict:
    """What a result file records of its notebook, so that a report places the run without the notebook:
    its file, its own parameters, the network it declares with them and its Target (where it states one)."""
    params = notebook_defaults(path)
    out = {"file": path.name, "parameters": params, "blocks": notebook_network(path, params)}
    target = target_text(path)
    return dict(out, target=target) if target else out


def place_of(cfg) -> dict:
    """Where a run made outside `mnist-lab run` (in Jupyter, by papermill) belongs, for its result file: its
    notebook, found by its series and number in the repository's notebooks/, and as its variant the settings
    it changed from the notebook's own. {} for a run of no series' notebook."""
    try:
        spec = named(cfg.series)
    except LabError:
        return {}
    notebook = spec.notebooks.get(cfg.iteration) if spec else None
    if notebook is None:
        return {}
    own = own_recipe(notebook)
    return {"notebook": own, "variant": changed(cfg.to_dict(), own["parameters"], spec.settings)}


def changed(values: dict, own: dict, settings: dict | None = None) -> dict:
    """The settings of `values` that differ from a notebook's own parameters `own`, as its series runs it
    (`settings`: a reusing series' "set"): what makes a run a variant of its notebook. Those the runner sets
    per run, or that change no number, do not count."""
    fixed = {*PER_RUN, *NO_NUMBER, "device"}
    own = dict(own, **(settings or {}))
    return {k: v for k, v in values.items() if k in own and k not in fixed and v != own[k]}
