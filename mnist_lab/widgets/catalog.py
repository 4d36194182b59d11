"""What the explorer shows, read from result files alone: run sets (a notebook's runs at one recipe, over
their seeds), their numbers per seed or as the mean over seeds, and the held-out digits behind each cell of a
confusion matrix. No widget here: the explorer draws these, and the tests check them without a frontend."""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path

from .. import paths
from ..datasets import of_result
from ..errors import LabError
from ..reports.rows import epochs_trained, summarize, where
from ..reports.stats import stats
from ..results import load_results

MEAN = None  # the seed value that stands for "the mean over seeds"


@dataclass
class RunSet:
    """One notebook's runs at one recipe (summarize's row), in one results folder."""
    folder: str  # the results folder as the explorer names it ("reports/study", "runs/study")
    runs: list[dict]  # result files (with "_path"), sorted by seed

    @property
    def first(self) -> dict:
        return self.runs[0]

    @property
    def iteration(self) -> int:
        return self.first["iteration"]

    @property
    def framework(self) -> str:
        return self.first.get("framework", "pytorch")

    @property
    def dataset(self):
        return of_result(self.first)

    @property
    def seeds(self) -> list[int]:
        return [r["seed"] for r in self.runs]

    @property
    def notebook(self) -> str:
        return f"{self.iteration:02d} {self.first['name']}"

    @property
    def recipe(self) -> str:
        """What tells this run set from others of its notebook and framework."""
        r = self.first
        planned = r.get("epochs_planned", r["epochs"])
        words = [f"{planned} epoch{'s' if planned != 1 else ''}", f"batch {r['batch_size']}", f"lr {r['lr']:g}"]
        if self.dataset.key != "mnist":
            words.insert(0, self.dataset.name)
        words += [f"{k}={v}" for k, v in sorted((r.get("variant") or {}).items())]  # a --set or --grid run
        if r["smoke"]:
            words.append(f"smoke run, {r['test_size']:,} test images")
        return ", ".join(words) + f" ({len(self.runs)} seed{'s' if len(self.runs) != 1 else ''})"

    def pick(self, seed) -> list[dict]:
        """The runs of `seed`, or all of them for MEAN."""
        if seed is MEAN:
            return self.runs
        mine = [r for r in self.runs if r["seed"] == seed]
        if not mine:
            raise LabError(f"{self.notebook} has no run with seed {seed}; its seeds are {self.seeds}")
        return mine

    def data_dir(self) -> str | None:
        """The data folder the runs recorded, where it is on this machine (else None: the default one)."""
        given = (self.first.get("config") or {}).get("data_dir")
        return str(paths.resolve(given)) if given and paths.resolve(given).is_dir() else None

    def epochs_trained(self, seed=MEAN) -> str:
        return epochs_trained(self.pick(seed))

    def accuracy(self, seed=MEAN) -> tuple[float, float, int]:
        """Final held-out accuracy: (mean, sample std, n) over the chosen runs."""
        return stats([r["final_test_acc"] for r in self.pick(seed)])

    def history(self, seed=MEAN) -> list[dict]:
        """Per-epoch numbers; for MEAN the mean over the seeds that reached each epoch, with "n" and the
        lowest and highest held-out accuracy ("test_acc_min", "test_acc_max") of that epoch."""
        runs = self.pick(seed)
        if len(runs) == 1:
            return runs[0]["history"]
        out = []
        for e in range(max(len(r["history"]) for r in runs)):
            rows = [r["history"][e] for r in runs if len(r["history"]) > e]
            row = {"epoch": rows[0]["epoch"], "n": len(rows)}
            for key in ("train_loss", "test_loss", "train_acc", "test_acc"):
                vals = [h[key] for h in rows if isinstance(h.get(key), (int, float))]
                if vals:
                    row[key] = statistics.fmean(vals)
            acc = [h["test_acc"] for h in rows]
            row["test_acc_min"], row["test_acc_max"] = min(acc), max(acc)
            out.append(row)
        return out

    def confusion(self, seed=MEAN) -> list[list[float]]:
        """Rows: true class, columns: predicted; for MEAN the mean count per seed."""
        runs = self.pick(seed)
        return [[statistics.fmean(r["confusion"][t][p] for r in runs) for p in range(10)] for t in range(10)]

    def test_size(self) -> int:
        return self.first["test_size"]

    def cell(self, true: int, pred: int, labels, seed=MEAN) -> list[tuple[int, int]]:
        """The held-out digits in confusion cell (true, pred): [(test index, in how many of the chosen runs)],
        most runs first. Off the diagonal they are the result files' own mistakes ([index, predicted, true]);
        on it, each run's digits of that class (`labels`: the test labels) less those it got wrong."""
        counts: dict[int, int] = {}
        for r in self.pick(seed):
            if true != pred:
                idx = [i for i, p, t in r["mistakes"] if t == true and p == pred]
            else:
                wrong = {i for i, _, t in r["mistakes"] if t == true}
                idx = [i for i in range(r["test_size"]) if int(labels[i]) == true and i not in wrong]
            for i in idx:
                counts[i] = counts.get(i, 0) + 1
        return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))

    def checkpoints(self, seed=MEAN) -> list[Path]:
        return [Path(r["_path"]).with_name(r["checkpoint"]) for r in self.pick(seed)]

    def where(self, seed=MEAN) -> str:
        """Where the chosen runs were made: each machine once, the framework's versions, the code's commit."""
        runs = self.pick(seed)
        versions = sorted({", ".join(f"{k} {v}" for k, v in (r.get("versions") or {"torch": r["torch"]}).items())
                           for r in runs})
        codes = sorted({r.get("code", "?") for r in runs})
        return f"{' / '.join(sorted({where(r) for r in runs}))}, {' / '.join(versions)}, code {' / '.join(codes)}"


@dataclass
class Catalog:
    """Every run set found in some results folders, by folder, notebook, framework and recipe."""
    sets: list[RunSet] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # one line per unusable result file

    @classmethod
    def load(cls, folders=None, only=None) -> "Catalog":
        """`folders`: results folders (or one); by default every series' committed results
        (reports/<series>/results) and your own runs (runs/<series>/results). `only`: one of `folders`, the
        one read, named as among them all (a static display of one run set needs no other)."""
        if folders is None:
            folders = default_folders()
        elif isinstance(folders, (str, Path)):
            folders = [folders]
        cat, read = cls(), []
        for folder, name in named(folders):
            if only is not None and folder != Path(only):
                continue
            read.append(folder)
            if not folder.is_dir():
                raise LabError(f"no results folder {paths.shown(folder)}: run a notebook of the series first "
                               "(its record cell writes there), or give explore() another folder")
            runs = load_results(folder, warn=cat.skipped.append)
            for row in summarize(runs):
                cat.sets.append(RunSet(name, sorted(row["runs"], key=lambda r: r["seed"])))
        if not cat.sets:
            why = f"; skipped: {' | '.join(cat.skipped)}" if cat.skipped else ""
            raise LabError(f"no usable result files in {', '.join(paths.shown(f) for f in read)}{why}: run a "
                           "notebook first (its record cell writes one), or give explore() another folder")
        return cat

    def folders(self) -> list[str]:
        return list(dict.fromkeys(s.folder for s in self.sets))

    def notebooks(self, folder) -> list[str]:
        return sorted({s.notebook for s in self.sets if s.folder == folder})

    def frameworks(self, folder, notebook) -> list[str]:
        return sorted({s.framework for s in self.sets if s.folder == folder and s.notebook == notebook})

    def recipes(self, folder, notebook, framework) -> list[RunSet]:
        """Most seeds first, then full runs before smoke runs, then by epochs, batch and lr as numbers."""
        mine = [s for s in self.sets if (s.folder, s.notebook, s.framework) == (folder, notebook, framework)]
        return sorted(mine, key=lambda s: (-len(s.runs), s.first["smoke"], s.first.get("epochs_planned", 0),
                                           s.first["batch_size"], s.first["lr"], s.recipe))

    def first(self) -> tuple[RunSet, object]:
        """What the explorer opens on without a run to start from: the first folder, notebook, framework and
        recipe, as the mean over its seeds (MEAN) where it has several."""
        folder = self.folders()[0]
        notebook = self.notebooks(folder)[0]
        rs = self.recipes(folder, notebook, self.frameworks(folder, notebook)[0])[0]
        return rs, MEAN if len(rs.seeds) > 1 else rs.seeds[0]

    def find(self, result_path) -> tuple[RunSet, int]:
        """The run set holding the result file `result_path`, and its seed."""
        want = Path(result_path).resolve()
        for s in self.sets:
            for r in s.runs:
                if Path(r["_path"]).resolve() == want:
                    return s, r["seed"]
        why = next((line for line in self.skipped if Path(result_path).name in line), "no such file")
        raise LabError(f"{paths.shown(result_path)} is not a usable result file: {why}")


def name_of(folder: Path) -> str:
    """A results folder as the explorer lists it: <reports|runs>/<series> inside the repository, else its last
    two folder names (a notebook's MNIST_LAB_RESULTS, a temporary folder)."""
    shown = paths.portable(folder)
    if Path(shown).is_absolute():
        shown = "…/" + "/".join(Path(shown).parts[-2:])
    return shown[:-len("/results")] if shown.endswith("/results") else shown


def named(folders) -> list[tuple[Path, str]]:
    """Each results folder with the name the explorer lists it by; of two that end alike, the later one's is
    marked (')."""
    out, taken = [], set()
    for folder in map(Path, folders):
        name = name_of(folder)
        while name in taken:
            name += "'"
        taken.add(name)
        out.append((folder, name))
    return out


def default_folders() -> list[Path]:
    found = []
    for top in (paths.reports_dir(), paths.runs_dir()):
        # the study first: what explore() opens on; runs/results holds runs of no series (Config's default)
        found += sorted((p for p in [*top.glob("*/results"), top / "results"] if p.is_dir() and any(p.glob("*.json"))),
                        key=lambda p: (p.parent.name != "study", p.parent.name))
    if not found:
        raise LabError("no result files in reports/*/results or runs/*/results: restore the committed ones "
                       "with `git checkout -- reports`, or run a notebook first")
    return found
