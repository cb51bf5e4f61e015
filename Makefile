# The two set-up commands of the README. Each one installs what it needs
# (a virtualenv under .venv with the pinned packages) on a fresh machine with
# Python 3.11 and Java 17; Spark fetches the Delta jars on first use.
PYTHON ?= python3
VENV ?= .venv
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: run test install lint typecheck wheel

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e ".[dev]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/patronage run $(ARGS)

# The bundle's artifact build (databricks.yml) runs this, so `databricks bundle
# deploy` works from a fresh clone whatever python3 is first on PATH.
wheel: $(STAMP)
	$(VENV)/bin/python -m build --wheel

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests

typecheck: $(STAMP)
	$(VENV)/bin/mypy

test: lint typecheck
	$(VENV)/bin/pytest $(ARGS)
