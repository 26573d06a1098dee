# Two commands do everything on a machine with Python 3 and make:
#   make demo   set up .venv, train the bundled example, run validate -> package -> launch headlessly
#   make test   set up .venv, train the bundled example, run the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install checkov peers example browser prometheus demo test lab lint docs dist clean

# uv installs the pinned set, and so fills its cache (~/.cache/uv, or $$UV_CACHE_DIR): the launch
# stage builds each Bento's clean environment from that cache, offline (docs/models.md).
# Bytecode is compiled here, once (uv does not by default, unlike pip): where
# PYTHONDONTWRITEBYTECODE is set, as in many containers and CI images, Python would otherwise
# compile scikit-learn, pandas, bentoml... from source in every process it starts.
$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c requirements.lock uv
	$(BIN)/uv pip install --python $(BIN)/python --quiet --compile-bytecode -c requirements.lock \
		-e ".[dev]"
	$(BIN)/python -m compileall -q workbench
	touch $@

install: $(STAMP)

# checkov checks the generated Kubernetes manifests (tests/test_deployment.py). It pins packaging<24
# and a dozen other old libraries, so it gets an environment of its own, installed exactly as
# requirements-checkov.lock pins it (no resolution against the index).
CHECKOV_STAMP := $(VENV)/checkov/.installed-stamp
$(CHECKOV_STAMP): requirements-checkov.lock $(STAMP)
	$(PYTHON) -m venv $(VENV)/checkov
	$(VENV)/checkov/bin/python -m pip install --quiet --no-deps -r requirements-checkov.lock
	touch $@

checkov: $(CHECKOV_STAMP)

# The servers benchmarks/peers.py compares the Bento with (MLServer, FastAPI, Starlette): MLServer
# pins its own fastapi, starlette and uvicorn, so they get an environment of their own, installed
# exactly as benchmarks/requirements-peers.lock pins it (from uv's cache once it has them).
PEERS_STAMP := $(VENV)/peers/.installed-stamp
$(PEERS_STAMP): benchmarks/requirements-peers.lock $(STAMP)
	$(BIN)/uv venv --quiet --python $(BIN)/python $(VENV)/peers
	$(BIN)/uv pip install --python $(VENV)/peers/bin/python --quiet --no-deps \
		-r benchmarks/requirements-peers.lock
	touch $@

peers: $(PEERS_STAMP)

models/model.joblib data/train.csv data/test.csv data/drifted.csv &: examples/breast_cancer.py $(STAMP)
	$(BIN)/python examples/breast_cancer.py

example: models/model.joblib

# Debian's chromium for the browser tests (tests/test_reports.py, tests/test_lab.py): never a
# downloaded browser.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	test -x /usr/bin/chromium || ($(SUDO) apt-get update && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium)

# Debian's Prometheus server and promtool for the observability tests (tests/test_interop.py:
# `promtool check rules` on each Bento's alerting rules, a real Prometheus scraping a served Bento).
# Where systemd runs, the package also enables a system Prometheus on :9090; the tests start
# their own, on a free loopback port.
prometheus:
	test -x /usr/bin/promtool -a -x /usr/bin/prometheus || ($(SUDO) apt-get update && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
		prometheus)

demo: example
	$(BIN)/workbench run --config workbench.yaml
	@echo "monitor: replaying data/drifted.csv (every measurement 15 % high) through the model"
	$(BIN)/workbench monitor --file data/drifted.csv --rate 2000 --out runs/monitor-demo; \
		test $$? -eq 1 && echo "drift caught: workbench monitor exited 1 (a retraining trigger)"

# lint: ruff, the layer contracts (import-linter, see pyproject.toml) and mypy (strict).
# Three test processes (pytest-xdist) on two cores, a file each: the tests spend about a third
# of their time waiting on servers and kernels (measured: 29 CPU-minutes in a 16-minute run;
# with two processes the same suite took 18 minutes).
PYTEST_ARGS ?= -n 3 --dist loadfile

test: example browser prometheus lint checkov
	BENTOML_DO_NOT_TRACK=True $(BIN)/python -m pytest $(PYTEST_ARGS)

# JupyterLab refuses to run as root without --allow-root (containers, CI machines run as root).
ROOT_ARGS := $(shell [ "$$(id -u)" = 0 ] && echo --allow-root)
LAB_ARGS ?=
lab: example
	$(BIN)/jupyter lab notebooks/ $(ROOT_ARGS) $(LAB_ARGS)

lint: install
	$(BIN)/ruff check workbench tests examples benchmarks
	$(BIN)/lint-imports
	$(BIN)/mypy

# The generated pages of docs/: configuration.md from the config's schema, bento.md from the guide
# every Bento carries (workbench/templates/bento/README.md). tests/test_manual.py checks them.
docs: install
	$(BIN)/python -m workbench.manual

# The wheel and sdist of the distribution `deployment-workbench` (import name and command: workbench).
dist: install
	$(BIN)/python -m build --outdir dist .

clean:
	rm -rf runs .workbench models data dist build
