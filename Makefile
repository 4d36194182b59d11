# Two commands do everything: `make reproduce` (every series into runs/, compared with the committed reports/) and `make test` (the fast
# tier; `make test-all` runs every test, as CI does).
# Both create .venv and fetch MNIST first when needed.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
# Optional extras of pyproject.toml: "frameworks" (Keras on TensorFlow, PyTorch Lightning) by default;
# `make setup EXTRAS=` installs only what the PyTorch notebooks need.
EXTRAS  ?= frameworks
STAMP   := $(VENV)/.installed$(if $(EXTRAS),-$(EXTRAS),)
# Notebooks at once (default: one per core, as `mnist-lab run` does); one CPU thread each, which is part
# of the recipe that gives the committed numbers (float sums depend on the thread count).
WORKERS ?=
SEEDS   ?=
# empty: each series with the seeds of its committed results (its series.json "seeds": 0 1 2, and 0-4 for under8k
# and under8k_fashion)

.PHONY: setup data kernel lab reproduce publish report test test-all test-gpu-kit bench refresh-notebooks browser screenshots gpu-kit gpu-slim gpu-full

setup: $(STAMP) data kernel

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(if $(EXTRAS),$(BIN)/python -m pip install --quiet -e '.[$(EXTRAS)]',)
	touch $(STAMP)

data: $(STAMP)
	$(BIN)/mnist-lab data
	@$(BIN)/mnist-lab data --dataset fashion || echo "Fashion-MNIST not fetched (see above): only runs with dataset=fashion need it"

# The notebooks ask for the `mnist-lab` kernel: registered for this user, so a Jupyter installed anywhere
# lists it as "Python (mnist_lab)". One spec serves every checkout: it runs the .venv of the checkout the
# notebook lies in (mnist_lab/kernel_launch.py, copied into the spec's folder); the environment that
# registered it last only runs notebooks outside any checkout.
kernel: $(STAMP)
	@$(BIN)/python -m mnist_lab.kernel >/dev/null 2>&1 \
	  && echo "Jupyter kernel 'Python (mnist_lab)' registered" \
	  || echo "could not register the Jupyter kernel (no writable home folder?); use make lab"

# Jupyter Lab on notebooks/ with this checkout's environment. Run as root (a container), Jupyter refuses
# to start without --allow-root. More options: LAB_ARGS="--ip=0.0.0.0 --no-browser".
lab: setup
	$(BIN)/jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS) notebooks

# Every series (notebooks/<series>/) for each seed of its committed results, one notebook per core, into
# runs/ (ignored by git): its reports put each run beside the committed one it remakes (the reproduction
# section). `SERIES=study` runs one series; after an interruption the same command resumes.
reproduce: setup
	$(BIN)/mnist-lab run $(if $(SEEDS),--seeds $(SEEDS),--series-seeds) $(if $(WORKERS),--workers $(WORKERS),) --threads 1 $(if $(SERIES),--series $(SERIES),)

# For maintainers, after `make reproduce` has shown what would change: the runs of runs/ replace the
# committed runs they remake in reports/ (docs/results.md).
publish: setup
	$(BIN)/mnist-lab publish $(if $(SERIES),--series $(SERIES),)

report: data
	$(BIN)/mnist-lab report

bench: setup
	$(BIN)/mnist-lab bench

# The fast tier, on every core (pytest-xdist, one torch thread per worker): every module's unit and oracle tests, the
# fast integration and artefact tests, then under nbval (strict: it compares the stored outputs, and so also checks
# all that --nbval-lax would) one declared notebook per series folder and every notebook changed against main
# (tests/fast_notebooks.py), each as a smoke run, one notebook per worker. `make test-all` runs every notebook.
test: setup
	$(BIN)/python -m pytest -n auto --dist worksteal -m "not slow" tests
	$(BIN)/python -m pytest -n auto --dist loadscope --nbval $$($(BIN)/python tests/fast_notebooks.py)

# The browser test's tools (tests/integration/test_browser.py: JupyterLab driven by Playwright): Playwright from PyPI, and
# Debian's Chromium, installed as root with apt-get (Playwright's own browser download needs the internet and is
# not used). Where Chromium cannot be installed, that test is skipped with its reason.
browser: $(VENV)/.browser
	@command -v chromium >/dev/null || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
	  (apt-get install -y -qq chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)); } || \
	  echo "Chromium not available (install Debian's chromium as root): the browser test will be skipped"

$(VENV)/.browser: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[browser]'
	touch $@

# The README's pictures of the explorer and the pad, taken by the browser test.
screenshots: setup browser
	MNIST_LAB_SCREENSHOTS=docs/img $(BIN)/python -m pytest -s tests/integration/test_browser.py

# Every test (what CI runs), on every core: the fast tier and the slow one (bit-for-bit remakes, series-level runs, the
# Dask cluster, benchmarks, an installed copy, every committed checkpoint rescored, the drawing window under Xvfb, a
# virtual screen, and a study notebook run in JupyterLab in Chromium; where Xvfb or Chromium cannot be installed, that
# test is skipped with its reason), then the machine-bound tests again as on another CPU, then every notebook under
# nbval. The GPU kit's stand-in check is `make test-gpu-kit`.
test-all: setup browser
	@command -v Xvfb >/dev/null || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
	  (apt-get install -y -qq xvfb >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq xvfb >/dev/null)); } || \
	  echo "Xvfb not available: the drawing-window test will be skipped"
	$(BIN)/python -m pytest -n auto --dist worksteal -m "not gpu_kit" tests
	@echo "The machine-bound tests again as on another CPU (torch with no vector instructions): each skips its bit-for-bit check, naming what differs, and checks the rest"
	ATEN_CPU_CAPABILITY=default $(BIN)/python -m pytest -n auto tests/artefacts/test_committed_*.py tests/unit/test_augment.py -k "remake or plan_now or rotation_grid"
	$(BIN)/python -m pytest -n auto --dist loadscope --nbval notebooks

# Before carrying a GPU kit to a GPU machine (docs/gpu.md): the whole GPU check on the CPU in a stand-in of that
# machine's image (Python 3.12, torch 2.11; about 3.5 GB downloaded once into ~/.cache/mnist_lab), and the core unit
# tests under that torch.
test-gpu-kit: setup
	$(BIN)/python -m pytest -m gpu_kit tests

# After changing a network: re-record the outputs nbval checks (summary tables) in notebooks/.
refresh-notebooks: setup
	$(BIN)/python -m mnist_lab.nbrefresh notebooks

# A GPU machine that reaches no package index (docs/gpu.md): the kit of wheels and MNIST it needs, built here
# into .gpu-kit/; there, `bash mnist_lab/gpu/check.sh OUT` runs the GPU check in one call.
gpu-kit: data
	$(BIN)/python -m mnist_lab.gpu.kit

# What travels to such a machine with the kit must stay under 64 MiB: leave the committed checkpoints and executed
# notebooks out of the working tree (a sparse checkout; git still has them), and bring them back.
gpu-slim:
	git sparse-checkout set --no-cone '/*' '!/reports/*/results/*.pt' '!/reports/*/notebooks/'

gpu-full:
	git sparse-checkout disable
