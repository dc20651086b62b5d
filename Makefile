# One verb per intention; each calls the same `persona` CLI that users and CI call.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PERSONA := $(VENV)/bin/persona
UV := $(VENV)/bin/uv
# pip's configured find-links (a local CPU torch wheel) is passed to uv so no CUDA wheels are pulled.
export UV_FIND_LINKS ?= $(PIP_FIND_LINKS)
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: setup lock demo test test-unit serve bench lint prod-up prod-down clean

setup: $(VENV)/.installed  ## create .venv and install Persona with its dev tools (locked versions)

$(VENV)/.installed: pyproject.toml requirements.lock
	test -x $(PY) || python3.11 -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check "uv>=0.5"
	$(UV) pip sync --python $(PY) requirements.lock
	$(UV) pip install --python $(PY) --no-deps -e .
	touch $@

lock:  ## re-resolve requirements.lock from pyproject.toml
	$(UV) pip compile pyproject.toml --extra dev --python-version 3.11 -o requirements.lock

demo: setup  ## the whole loop on the embedded default profile
	$(PERSONA) demo

test: setup  ## all tests (integration ones need Redis/Postgres, as on CI)
	$(PY) -m pytest

test-unit: setup
	$(PY) -m pytest -m "not integration"

serve: setup
	$(PERSONA) serve

bench: setup  ## benchmark table (printed and written under bench/)
	$(PY) -m bench.run

lint: setup
	$(VENV)/bin/ruff check .

clean:
	rm -rf .persona
