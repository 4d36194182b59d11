"""The notebooks `make test` runs under nbval (tests/fast_notebooks.py): every series folder covered, and a notebook
changed against main always among them."""
import subprocess

import fast_notebooks
from conftest import ROOT


def test_the_declared_notebooks_cover_every_series_folder_with_notebooks():
    folders = {p.parent.name for p in ROOT.glob("notebooks/*/*.ipynb")}
    declared = [ROOT / p for p in fast_notebooks.DECLARED]
    assert all(p.is_file() for p in declared), "a declared notebook was renamed: name it in tests/fast_notebooks.py"
    assert {p.parent.name for p in declared} == folders


def test_a_changed_or_new_notebook_is_selected(tmp_path, monkeypatch):
    """In a throwaway repository with a main branch: a notebook edited on a branch, one edited in the working tree
    and an untracked one are each selected; an unchanged one is not."""
    repo = tmp_path / "repo"
    (repo / "notebooks" / "s").mkdir(parents=True)
    git = lambda *a: subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *a], cwd=repo, check=True,
                                    capture_output=True)
    for n in ("a", "b", "c"):
        (repo / "notebooks" / "s" / f"{n}.ipynb").write_text("{}")
    git("init", "-q", "-b", "main")
    git("add", ".")
    git("commit", "-qm", "x")
    git("checkout", "-qb", "topic")
    (repo / "notebooks" / "s" / "a.ipynb").write_text('{"a": 1}')
    git("commit", "-qam", "on the branch")
    (repo / "notebooks" / "s" / "b.ipynb").write_text('{"b": 1}')
    (repo / "notebooks" / "s" / "new.ipynb").write_text("{}")
    monkeypatch.setattr(fast_notebooks, "ROOT", repo)
    assert sorted(fast_notebooks.changed()) == ["notebooks/s/a.ipynb", "notebooks/s/b.ipynb", "notebooks/s/new.ipynb"]
    assert set(fast_notebooks.selected()) >= {"notebooks/s/a.ipynb", *fast_notebooks.DECLARED}
