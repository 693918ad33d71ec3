# Kaleem engine — the commands a newcomer needs. Everything the tests need is set up here.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DATA   ?= .kaleem
MODELS ?= $(DATA)/models
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)

.PHONY: setup tools run test lint typecheck check bench-ttfr clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

$(MODELS)/.verified: $(STAMP)
	$(BIN)/python -m models build --models-dir $(MODELS)
	@touch $@

# promtool/amtool check the alerting assets, nginx fronts the gateways in the tests,
# shellcheck lints deploy/*.sh and chromium runs the console/widget browser tests (Playwright
# drives Debian's build; no browser is downloaded). Idempotent: a no-op when all five are
# already on PATH; root or sudo otherwise.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
tools:
	@command -v promtool >/dev/null && command -v amtool >/dev/null && command -v nginx >/dev/null \
	  && command -v shellcheck >/dev/null && command -v chromium >/dev/null \
	  || ($(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y \
	      --no-install-recommends prometheus prometheus-alertmanager nginx shellcheck chromium)

setup: $(STAMP) $(MODELS)/.verified tools  ## venv + project + verified ONNX models + SRE tools

# Local development points channels at fakes on loopback: private provider addresses allowed.
run: $(STAMP) $(MODELS)/.verified  ## start the engine on embedded defaults with the demo store
	KALEEM_ALLOW_PRIVATE_API_BASE=1 KALEEM_MODELS_DIR=$(MODELS) $(BIN)/kaleem serve --demo --data-dir $(DATA)

test: setup  ## the import contracts, then the whole suite (unit, integration on real Redis/Ray/Serve/models, end-to-end)
	$(BIN)/lint-imports
	KALEEM_TEST_MODELS_DIR=$(abspath $(MODELS)) RAY_AUTH_MODE=disabled $(BIN)/pytest -q

lint:
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

typecheck:
	$(BIN)/mypy engine actors serve_apps models connectors observability

check: lint typecheck test

bench-ttfr: setup  ## TTFR benchmark (prints JSON)
	KALEEM_ALLOW_PRIVATE_API_BASE=1 KALEEM_MODELS_DIR=$(MODELS) RAY_AUTH_MODE=disabled $(BIN)/python bench/ttfr.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
