# Two commands do everything: `make reproduce` (the whole series into reports/) and `make test`.
# Both create .venv and fetch MNIST first when needed.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
WORKERS ?= 2
SEEDS   ?= 0 1 2

.PHONY: setup data reproduce report test bench clean-smoke

setup: $(STAMP) data

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

data: $(STAMP)
	$(BIN)/mnist-lab data

# The study's full series (epochs 1, 5, 20 x5) for each seed, WORKERS notebooks at a time.
# Finished runs are skipped, so an interrupted series resumes; FORCE=1 redoes them.
reproduce: setup
	$(BIN)/mnist-lab run --seeds $(SEEDS) --workers $(WORKERS) $(if $(FORCE),--force,)

report: $(STAMP)
	$(BIN)/mnist-lab report

bench: setup
	$(BIN)/mnist-lab bench

test: setup
	$(BIN)/python -m pytest tests
	MNIST_LAB_SMOKE=1 MNIST_LAB_RESULTS=$$(mktemp -d) $(BIN)/python -m pytest --nbval-lax --nbval-current-env -p no:cacheprovider notebooks
