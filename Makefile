# One verb per intention; each calls the same `persona` CLI that users and CI call.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PERSONA := $(VENV)/bin/persona
UV := $(VENV)/bin/uv
# pip's configured find-links is passed to uv so no CUDA wheels are pulled
# (the CPU build of torch 2.13.0 in the lock file is found there).
export UV_FIND_LINKS ?= $(or $(PIP_FIND_LINKS),$(shell python3 -m pip config get global.find-links 2>/dev/null))
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
# Wheels downloaded (hash-pinned, never installed) for the real data they ship: see bench/realdata-wheels.txt.
# Outside the checkout so every clone shares one copy; `make clean` leaves it.
export REALDATA_WHEELS ?= $(HOME)/.cache/persona/wheels
ISLP_WHEEL := islp-0.6.0-py3-none-any.whl

.PHONY: setup browser lock serving-lock demo test test-unit mutate serve bench lint prod-up prod-down clean

setup: $(VENV)/.installed $(REALDATA_WHEELS)/$(ISLP_WHEEL)  ## create .venv and install Persona with its dev tools (locked versions); fetch the real-data wheels

$(VENV)/.installed: pyproject.toml requirements.lock
	test -x $(PY) || python3.11 -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check "uv>=0.5"
	@# compiled once here: feast, mlflow and torch import in a third of the time in every CLI process
	$(UV) pip sync --compile-bytecode --python $(PY) requirements.lock
	$(UV) pip install --python $(PY) --no-deps -e .
	touch $@

# Only downloaded when missing; pip checks the pinned hash.
$(REALDATA_WHEELS)/$(ISLP_WHEEL): bench/realdata-wheels.txt | $(VENV)/.installed
	$(PY) -m pip download --quiet --disable-pip-version-check --no-deps --require-hashes \
		-r bench/realdata-wheels.txt -d $(REALDATA_WHEELS)
	touch $@

browser:  ## headless Chromium (Debian packages) for the report-rendering test; fails if it cannot be installed
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
		apt-get update -qq && apt-get install -y -qq chromium chromium-driver; } || { \
		echo "error: could not install chromium (apt-get install chromium chromium-driver); the rendering test needs it" >&2; exit 1; }
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
		echo "error: chromium is still not on PATH after installing it" >&2; exit 1; }

lock:  ## re-resolve requirements.lock from pyproject.toml, then the Bento's serving lock from it
	$(UV) pip compile pyproject.toml --extra dev --python-version 3.11 -o requirements.lock
	$(MAKE) serving-lock

serving-lock:  ## the Bento's environment: serving/requirements.in resolved with requirements.lock as constraints
	$(UV) pip compile serving/requirements.in -c requirements.lock --python-version 3.11 --no-header -o serving/requirements.lock

demo: setup  ## the whole loop on the embedded default profile
	$(PERSONA) demo

# The production-profile tests mostly wait on servers and subprocesses, so they run in a second
# pytest beside the others (their output is printed after); coverage of both is combined.
test: setup browser  ## all tests (integration ones need Redis/Postgres; with CI=true a missing one fails, never skips); prints coverage
	@rm -f .coverage .coverage.*
	@log=$$(mktemp); \
	COVERAGE_FILE=.coverage.prod $(PY) -m pytest tests/prod --cov --cov-report= >"$$log" 2>&1 & prod=$$!; \
	COVERAGE_FILE=.coverage.rest $(PY) -m pytest tests/unit tests/integration --cov --cov-report=; rest=$$?; \
	wait $$prod; prodrc=$$?; \
	echo; echo "================ tests/prod (ran beside the tests above) ================"; cat "$$log"; rm -f "$$log"; \
	$(PY) -m coverage combine -q .coverage.prod .coverage.rest && $(PY) -m coverage report --skip-covered; \
	echo "tests: unit+integration exit $$rest, prod exit $$prodrc"; \
	test $$rest -eq 0 && test $$prodrc -eq 0

test-unit: setup
	$(PY) -m pytest -m "not integration"

mutate: setup  ## mutation testing of the decision modules (mutmut, minutes; not in CI); kill rates into the bench table
	$(PY) -m bench.run --only mutation

serve: setup
	$(PERSONA) serve

bench: setup  ## benchmark table (printed and written under bench/)
	$(PY) -m bench.run

lint: setup  ## ruff, the type checker and the layer contracts (import-linter), all clean
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

prod-up: setup  ## production profile: Postgres databases, Redis check, MLflow server
	PERSONA_PROFILE=prod $(PERSONA) prod up

prod-down:
	PERSONA_PROFILE=prod $(PERSONA) prod down

clean:
	rm -rf .persona
