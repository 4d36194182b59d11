"""The package's layout: a core and three wings (frameworks, runs, reports), imports that flow one way, reports
that need neither torch nor the notebooks, and an installed copy that holds every sub-package."""
import ast
import re
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mnist_lab.config import OMITTED_AT_DEFAULT
from conftest import ROOT

PACKAGE = ROOT / "mnist_lab"
WINGS = ("frameworks", "runs", "reports")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
    """{module: the mnist_lab modules it imports}, at any depth of its code (inside functions too)."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("mnist_lab")}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                if not base.startswith("mnist_lab"):
                    continue
                for alias in node.names:  # `from . import fetch` names a module, `from .config import X` a name
                    found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
        graph[name] = found - {name}
    return graph


def wing(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in WINGS else None


def test_the_import_graph_has_no_cycle():
    graph = imports()
    state, stack = {}, []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == "open":
                pytest.fail("import cycle: " + " -> ".join(stack[stack.index(n):] + [n]))
            if n not in state:
                visit(n)
        stack.pop()
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_the_wings_import_only_what_they_may():
    """runs and reports never import each other; frameworks import neither."""
    bad = [(m, n) for m, targets in imports().items() for n in targets
           if (wing(m), wing(n)) in {("runs", "reports"), ("reports", "runs"), ("frameworks", "runs"),
                                     ("frameworks", "reports")}]
    assert bad == []


def test_no_import_of_the_package_hides_inside_a_function_but_the_command_lines():
    """An import inside a function would hide a cycle from a reader; the command line imports each command's
    modules when it runs (so that `mnist-lab data` and `report` never load torch)."""
    hidden = []
    for path in PACKAGE.rglob("*.py"):
        if path.name in ("cli.py", "__main__.py"):
            continue
        for fn in (n for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))):
            for node in ast.walk(fn):
                if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("mnist_lab")):
                    hidden.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert hidden == []


def test_this_test_sees_a_cycle_and_a_forbidden_edge(monkeypatch):
    """The checks above can fail: fed a graph with a loop and a reports -> runs import, they say so."""
    fake = {"mnist_lab.a": {"mnist_lab.b"}, "mnist_lab.b": {"mnist_lab.a"},
            "mnist_lab.reports.page": {"mnist_lab.runs.plan"}}
    monkeypatch.setattr(sys.modules[__name__], "imports", lambda: fake)
    with pytest.raises(pytest.fail.Exception, match="mnist_lab.a -> mnist_lab.b -> mnist_lab.a"):
        test_the_import_graph_has_no_cycle()
    with pytest.raises(AssertionError):
        test_the_wings_import_only_what_they_may()


def test_reports_and_the_report_command_do_not_import_torch(tmp_path, mnist_root):
    shutil.copytree(ROOT / "reports" / "under8k" / "results", tmp_path / "under8k" / "results")
    code = ("import sys\nimport mnist_lab.reports\nassert 'torch' not in sys.modules, 'import mnist_lab.reports'\n"
            "from mnist_lab.cli import main\n"
            f"main(['report', '--out', {str(tmp_path)!r}, '--data', {str(mnist_root)!r}])\n"
            "assert 'torch' not in sys.modules, 'mnist-lab report'\n"
            "assert 'tensorflow' not in sys.modules and 'lightning' not in sys.modules\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "## The goal, step by step" in (tmp_path / "under8k" / "README.md").read_text()


@pytest.mark.slow  # the runner or the report command in a process of its own, on committed series
def test_a_series_from_a_folder_of_another_name_is_reported_with_its_own_series_json(tmp_path, mnist_root):
    """`run --notebooks DIR`: the report and the index read DIR's series.json (its title, its kind of page),
    not the repository's notebooks/<the same name>/, nor the notebooks as they are later."""
    mine = tmp_path / "my_series"
    mine.mkdir()
    shutil.copy(ROOT / "notebooks" / "study" / "01_baseline.ipynb", mine / "01_baseline.ipynb")
    (mine / "series.json").write_text(json.dumps({"title": "A series of my own", "report": "compare"}))
    done = subprocess.run([sys.executable, "-m", "mnist_lab", "run", "--notebooks", str(mine), "--smoke",
                           "--threads", "1", "--out", str(tmp_path / "out"), "--data", str(mnist_root)],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    page = (tmp_path / "out" / "my_series" / "README.md").read_text()
    assert page.startswith("# A series of my own\n") and "## Smoke runs" in page
    assert "| [my_series](my_series/README.md) | A series of my own |" in (tmp_path / "out" / "README.md").read_text()
    [result] = (tmp_path / "out" / "my_series" / "results").glob("*.json")
    r = json.loads(result.read_text())
    assert r["notebook"]["file"] == "01_baseline.ipynb" and r["variant"] == {} and r["schema"] == 6
    assert r["notebook"]["blocks"] == r["blocks"] and r["notebook"]["parameters"]["lr"] == r["lr"]
    shutil.rmtree(mine)  # the notebooks gone: the page is made again from the result files alone
    again = subprocess.run([sys.executable, "-m", "mnist_lab", "report", "--out", str(tmp_path / "out")],
                           cwd=ROOT, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert "## Smoke runs" in (tmp_path / "out" / "my_series" / "README.md").read_text()


@pytest.mark.parametrize("name", ["study", "baselines", "frameworks", "under8k"])
def test_the_migrations_gave_the_committed_files_their_place_and_digests_and_changed_nothing_else(tmp_path, name):
    """Stripped of what the migrations added, the committed files get it back from them, byte for byte; a
    second run changes nothing."""
    from mnist_lab.runs.migrate import digests, place

    results = tmp_path / name / "results"
    results.mkdir(parents=True)
    for p in (ROOT / "reports" / name / "results").glob("*.json"):
        r = json.loads(p.read_text())
        assert r["notebook"]["blocks"] == r["blocks"] and r["series"] == name, p.name
        del r["notebook"], r["variant"], r["checkpoint_bytes"], r["checkpoint_sha256"]
        (results / p.name).write_text(json.dumps(r, indent=2) + "\n")
        shutil.copy(p.with_suffix(".pt"), results / p.with_suffix(".pt").name)
    n = len(list(results.glob("*.json")))
    assert place(tmp_path, ROOT / "notebooks") == {name: n} and digests(tmp_path, log=None) == {name: n}
    for p in results.glob("*.json"):
        old = (ROOT / "reports" / name / "results" / p.name).read_text()
        new = json.loads(p.read_text())
        # a parameter the notebook gained since, at the value that leaves its recipe as it was (the study's and
        # under8k's `dataset`, "mnist"), is the notebook's now but was not when the file was placed
        params, before = new["notebook"]["parameters"], json.loads(old)["notebook"]["parameters"]
        for key in set(params) - set(before):
            assert key in OMITTED_AT_DEFAULT and params.pop(key) == OMITTED_AT_DEFAULT[key], (p.name, key)
        assert json.dumps(new, indent=2) + "\n" == old, p.name
    assert place(tmp_path, ROOT / "notebooks") == {name: 0} and digests(tmp_path, log=None) == {name: 0}


@pytest.mark.slow
def test_an_installed_copy_holds_every_sub_package(tmp_path):
    """`pip install .` (not editable) into a fresh environment: every module of the checkout is there, and the
    wings are found from another folder."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    source = tmp_path / "source"  # a copy: building leaves its build/ there, not in the checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source)
    shutil.copytree(PACKAGE, source / "mnist_lab", ignore=shutil.ignore_patterns("__pycache__"))
    done = subprocess.run([py, "-m", "pip", "install", "--quiet", "--no-deps", str(source)], cwd=tmp_path,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    # the wings are found there (the environment has no numpy or torch to import the reports with)
    code = ("import importlib.util, pathlib, mnist_lab, mnist_lab.frameworks, mnist_lab.runs\n"
            "assert importlib.util.find_spec('mnist_lab.reports').origin.startswith(str(pathlib.Path(mnist_lab.__file__).parent))\n"
            "print(pathlib.Path(mnist_lab.__file__).parent)")
    where = subprocess.run([py, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert where.returncode == 0, where.stderr[-2000:]
    installed = Path(where.stdout.strip())
    assert installed.is_relative_to(venv)
    mine = sorted(p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py"))
    assert sorted(p.relative_to(installed).as_posix() for p in installed.rglob("*.py")) == mine
    assert {"frameworks/base.py", "runs/plan.py", "reports/page.py"} <= set(mine)


def test_every_relative_link_in_the_readme_and_docs_resolves():
    """A link from the front door or the docs to a file or folder of the repository leads somewhere."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue  # a web address, or a heading on the same page
            if not (page.parent / target.split("#")[0]).exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert broken == [] and len(pages) > 5


def test_the_readme_is_a_front_door():
    assert len((ROOT / "README.md").read_text()) <= 12_000


@pytest.mark.slow  # the runner or the report command in a process of its own, on committed series
def test_the_index_keeps_the_titles_of_the_series_it_was_not_asked_to_report(tmp_path, mnist_root):
    for name in ("study", "under8k"):
        shutil.copytree(ROOT / "reports" / name / "results", tmp_path / name / "results")
    for name in ("study", "under8k"):  # the second report writes the index again, with both titles
        done = subprocess.run([sys.executable, "-m", "mnist_lab", "report", "--series", name, "--out", str(tmp_path),
                               "--data", str(mnist_root)], cwd=ROOT, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    index = (tmp_path / "README.md").read_text()
    for name in ("study", "under8k"):
        title = json.loads((ROOT / "notebooks" / name / "series.json").read_text())["title"]
        assert f"| [{name}]({name}/README.md) | {title} |" in index


def test_a_notebooks_figures_keep_its_backend():
    """show's digit grids draw with the notebook's backend: switching to Agg would hide every later figure."""
    code = ("import matplotlib\nmatplotlib.use('svg')\nimport numpy as np\nfrom mnist_lab import show\n"
            "show.digit_grid([np.zeros((28, 28))], ['0'])\nassert matplotlib.get_backend() == 'svg', matplotlib.get_backend()\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
