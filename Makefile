# Two commands do everything on a machine with Python 3 and make:
#   make demo   set up .venv, train the bundled example, run validate -> package -> launch headlessly
#   make test   set up .venv, train the bundled example, run the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install example browser demo test lab lint clean

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c requirements.lock -e ".[dev]"
	touch $@

install: $(STAMP)

models/model.joblib data/train.csv data/test.csv &: examples/breast_cancer.py $(STAMP)
	$(BIN)/python examples/breast_cancer.py

example: models/model.joblib

# Debian's chromium for the browser tests (tests/test_reports.py, tests/test_lab.py): never a
# downloaded browser.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	test -x /usr/bin/chromium || ($(SUDO) apt-get update && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium)

demo: example
	$(BIN)/workbench run --config workbench.yaml

# lint: ruff, the layer contracts (import-linter, see pyproject.toml) and mypy (strict).
test: example browser lint
	BENTOML_DO_NOT_TRACK=True $(BIN)/python -m pytest $(PYTEST_ARGS)

lab: example
	$(BIN)/jupyter lab notebooks/

lint: install
	$(BIN)/ruff check workbench tests examples benchmarks
	$(BIN)/lint-imports
	$(BIN)/mypy

clean:
	rm -rf runs .workbench models data
