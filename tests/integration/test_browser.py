"""The notebooks in the Jupyter a user opens: JupyterLab on 127.0.0.1, driven by Playwright in Debian's Chromium.

One study notebook is run through the UI in smoke mode with the kernel "Python (mnist_lab)"; then its summary
table, figures and explorer must have rendered, a click on a confusion-matrix cell must show its digits, and a
stroke drawn on the pad must bring a prediction. `make browser` installs Playwright (PyPI) and Chromium
(Debian); without them the test is skipped, saying so. Screenshots go to a temporary folder (their paths are
printed); with MNIST_LAB_SCREENSHOTS=<folder> (`make screenshots`) they are also copied there, as the
README's are.
"""
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import ROOT

NOTEBOOK = ROOT / "notebooks" / "study" / "01_baseline.ipynb"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
RUN_LIMIT_MS = 300_000  # the whole notebook in smoke mode: about half a minute here; generous for a loaded machine

pytestmark = pytest.mark.slow


def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.skip("Chromium is not installed: `make browser` installs Debian's chromium (as root, with apt-get)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(tmp_path, mnist_root):
    """JupyterLab with its own token, folders and kernel spec, on a copy of the notebook with no outputs."""
    pytest.importorskip("playwright", reason="Playwright is not installed: run `make browser`")
    work, jupyter = tmp_path / "work", tmp_path / "jupyter"
    work.mkdir()
    nb = json.loads(NOTEBOOK.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    (work / NOTEBOOK.name).write_text(json.dumps(nb))
    token = secrets.token_hex(16)
    env = dict(os.environ, JUPYTER_DATA_DIR=str(jupyter / "data"), JUPYTER_CONFIG_DIR=str(jupyter / "config"),
               JUPYTER_RUNTIME_DIR=str(jupyter / "runtime"), IPYTHONDIR=str(jupyter / "ipython"),
               MNIST_LAB_SMOKE="1", MNIST_LAB_RESULTS=str(tmp_path / "results"), MNIST_LAB_DATA=str(mnist_root),
               JUPYTER_PLATFORM_DIRS="1")
    # The kernel spec as `make kernel` registers it, but into this server's own data folder: the notebook lies
    # in no checkout, so the spec's fallback (this environment) runs it, whatever other checkouts registered.
    subprocess.run([sys.executable, "-m", "mnist_lab.kernel"], env=env, check=True, capture_output=True)
    # No news pop-up over the page (it would ask, once, whether to fetch announcements).
    (jupyter / "config" / "labconfig").mkdir(parents=True)
    (jupyter / "config" / "labconfig" / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}))
    port = free_port()
    log = open(tmp_path / "jupyterlab.log", "w")
    cmd = [str(Path(sys.executable).with_name("jupyter")), "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work}", "--ServerApp.port_retries=0",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    server = subprocess.Popen(cmd, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            if server.poll() is not None:
                pytest.fail(f"JupyterLab exited: {(tmp_path / 'jupyterlab.log').read_text()[-2000:]}")
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("JupyterLab did not answer within a minute")
        yield url, token, tmp_path
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        log.close()


def test_a_study_notebook_run_in_jupyterlab_shows_its_results_explorer_and_pad(lab, tmp_path, capsys):
    from playwright.sync_api import expect, sync_playwright

    url, token, _ = lab
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium(), headless=True, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1300, "height": 2000})
        try:
            page.goto(f"{url}/lab/tree/{NOTEBOOK.name}?token={token}")
            notebook = page.locator(".jp-NotebookPanel")
            expect(notebook).to_be_visible(timeout=60_000)
            # the kernel the notebook asks for, by its display name, ready
            expect(page.locator(".jp-NotebookPanel-toolbar").get_by_text("Python (mnist_lab)")).to_be_visible(
                timeout=60_000)
            expect(page.locator(".jp-NotebookPanel-toolbar .jp-Notebook-ExecutionIndicator[data-status='idle']")
                   ).to_have_count(1, timeout=120_000)
            page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
            page.locator(".lm-Menu-itemLabel").get_by_text("Run All Cells", exact=True).click()

            explorer = page.locator(".mnist-explorer")
            expect(explorer).to_be_visible(timeout=RUN_LIMIT_MS)
            outputs = page.locator(".jp-OutputArea-output")
            assert page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']").count() == 0
            # the summary table (torchsummary's), the figures (digits, curves, mistakes), the explorer's numbers
            expect(outputs.filter(has_text="Total params")).to_have_count(1)
            assert page.locator(".jp-OutputArea-output img").count() >= 3
            expect(explorer.locator(".mnist-summary")).to_contain_text("held-out test accuracy")
            expect(explorer.locator(".mnist-cm-cell")).to_have_count(100)
            # the run's choices are there to change: a committed series replaces the run's numbers
            results = explorer.locator("select").first
            expect(results).to_be_visible()
            results.select_option("reports/study")
            expect(explorer.locator(".mnist-summary")).to_contain_text("(3 seeds)")
            mine = next(o for o in results.locator("option").all_inner_texts() if o.replace("\xa0", " ").startswith("…/"))
            results.select_option(mine)  # back to this run's own folder (ipywidgets writes spaces as \xa0)
            expect(explorer.locator(".mnist-summary")).to_contain_text("smoke run")

            # a click on the largest off-diagonal cell shows its digits, each with the model's probabilities
            counts = {}
            for t in range(10):
                for p in range(10):
                    if t != p:
                        text = explorer.locator(f".mnist-cm-{t}-{p}").inner_text().strip()
                        counts[(t, p)] = float(text or 0)
            (t, p), n = max(counts.items(), key=lambda kv: kv[1])
            assert n > 0, "a smoke run makes mistakes: no off-diagonal cell to click"
            explorer.locator(f".mnist-cm-{t}-{p}").click()
            digits = explorer.locator(".mnist-digits .mnist-digit")
            expect(digits).to_have_count(min(int(n), 40), timeout=60_000)
            expect(digits.first).to_contain_text(f"true {t}, predicted {p}")
            expect(digits.first.locator("img")).to_be_visible()
            # the README's picture: the study's committed runs of notebook 05, over their seeds, cell (4, 9)
            results.select_option("reports/study")
            explorer.locator("select").nth(1).select_option(label="05 bn_below_20k")
            expect(explorer.locator(".mnist-summary")).to_contain_text("05 bn_below_20k")
            explorer.locator(".mnist-cm-4-9").click()
            expect(explorer.locator(".mnist-digits")).to_contain_text("in 3 of 3 runs", timeout=60_000)
            explorer.screenshot(path=shots / "explorer.png")

            # strokes on the pad: a prediction appears after each
            canvas = page.locator(".mnist-pad-canvas")
            canvas.scroll_into_view_if_needed()
            guess = page.locator(".mnist-pad-guess")
            expect(guess).to_contain_text("Draw a digit")
            box = canvas.bounding_box()

            def stroke(x0, y0, x1, y1):
                at = lambda fx, fy: (box["x"] + box["width"] * fx, box["y"] + box["height"] * fy)
                page.mouse.move(*at(x0, y0))
                page.mouse.down()
                for k in range(1, 21):
                    page.mouse.move(*at(x0 + (x1 - x0) * k / 20, y0 + (y1 - y0) * k / 20))
                page.mouse.up()

            stroke(0.28, 0.22, 0.72, 0.22)  # a 7: the bar, then the stem
            expect(guess).to_contain_text("Prediction:", timeout=30_000)
            first = guess.inner_text()
            stroke(0.72, 0.22, 0.45, 0.82)
            expect(guess).not_to_have_text(first, timeout=30_000)
            # the study's best model, chosen on the pad's list, reads the drawing as a 7
            model = page.locator(".mnist-pad-box select")
            best = next(o for o in model.locator("option").all_inner_texts() if "the study's best" in o.replace("\xa0", " "))
            model.select_option(label=best)
            expect(page.locator(".mnist-pad-model")).to_contain_text("the study's best")
            expect(guess).to_contain_text("Prediction: 7", timeout=30_000)
            page.locator(".mnist-pad-box").screenshot(path=shots / "pad.png")
            page.locator(".mnist-pad-clear").click()  # clear, and draw again
            expect(guess).to_contain_text("Draw a digit", timeout=30_000)
            stroke(0.5, 0.15, 0.48, 0.85)
            expect(guess).to_contain_text("Prediction:", timeout=30_000)
        finally:
            page.screenshot(path=shots / "page.png", full_page=False)
            browser.close()
    with capsys.disabled():  # the paths are printed whatever pytest captures
        print()
        for shot in sorted(shots.iterdir()):
            print(f"screenshot: {shot}")
        keep = os.environ.get("MNIST_LAB_SCREENSHOTS")
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            for name in ("explorer.png", "pad.png"):
                shutil.copy(shots / name, Path(keep) / name)
                print(f"copied to {Path(keep) / name}")
