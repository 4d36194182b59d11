"""The `mnist-lab` Jupyter kernel's launcher: a notebook runs the code of the checkout it lies in.

One kernel spec serves every checkout of a user (a spec is looked up by name, and there is one
~/.local/share/jupyter/kernels/mnist-lab). So the spec cannot name a checkout's Python: it runs this
file, copied into the spec's own folder (no checkout holds it, so deleting one breaks no other), with
the Python of whatever Jupyter starts it. Jupyter starts a kernel in the notebook's folder (papermill:
its --cwd, else its own working directory), so the folder it starts in tells the checkout: the nearest
one above it with a .venv runs the kernel. Outside any checkout, or in one with no .venv yet, the
environment that registered the spec runs it; mnist_lab's import then stops a notebook whose checkout
is not the one that code comes from (mnist_lab.kernel.guard).

Only the standard library, and nothing newer than Python 3.8: it runs under any Jupyter's Python.
"""
import os
import sys
from pathlib import Path

PYTHON_FLAG = "--python="  # the spec's own argument: the fallback environment's Python


def checkout_of(folder):
    """The mnist_lab checkout that holds `folder` (the nearest one above it), or None."""
    for d in [Path(folder).resolve(), *Path(folder).resolve().parents]:
        if (d / "pyproject.toml").is_file() and (d / "mnist_lab").is_dir() and (d / "notebooks").is_dir():
            return d
    return None


def venv_python(prefix):
    """The Python of the environment at `prefix`, if it is there."""
    for name in ("bin/python", "Scripts/python.exe"):
        if os.access(prefix / name, os.X_OK):
            return prefix / name
    return None


def fallback(given):
    """The environment that registered the spec: named in its argv by `make kernel` (a spec in the user's
    folder), else the one the spec was installed into (pip put it in <prefix>/share/jupyter/kernels/)."""
    if given:
        return Path(given) if os.access(given, os.X_OK) else None
    spec = Path(__file__).resolve().parent
    if spec.parent.name == "kernels" and spec.parents[1].name == "jupyter" and spec.parents[2].name == "share":
        return venv_python(spec.parents[3])
    return None


def choose(cwd, given):
    """(the Python to run the kernel with, or None; the one line to print when it is None)."""
    checkout = checkout_of(cwd)
    python = (venv_python(checkout / ".venv") if checkout else None) or fallback(given)
    if python:
        return python, ""
    gone = f"{given}, which registered this kernel, is gone" if given else "no environment registered this kernel"
    if checkout:
        return None, f"mnist-lab kernel: {checkout} has no .venv and {gone}: run `make setup` in {checkout}"
    return None, (f"mnist-lab kernel: {cwd} lies in no mnist_lab checkout and {gone}: run `make setup` in the "
                  "notebook's checkout, and start papermill there or give it --cwd")


def main(argv):
    given = next((a[len(PYTHON_FLAG):] for a in argv if a.startswith(PYTHON_FLAG)), "")
    rest = [a for a in argv if not a.startswith(PYTHON_FLAG)]  # -f CONNECTION_FILE and Jupyter's extras
    python, why = choose(Path.cwd(), given)
    if python is None:
        print(why, file=sys.stderr, flush=True)
        sys.exit(1)
    # -Xfrozen_modules=off as ipykernel's own spec asks (its debugger); older Pythons ignore an unknown -X.
    os.execv(str(python), [str(python), "-Xfrozen_modules=off", "-m", "ipykernel_launcher", *rest])


if __name__ == "__main__":
    main(sys.argv[1:])
