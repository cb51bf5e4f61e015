# The two set-up commands of the README. Each one installs what it needs
# (a virtualenv under .venv with the pinned packages) on a fresh machine with
# Python 3.11 and Java 17; Spark fetches the Delta jars on first use.
PYTHON ?= python3
VENV ?= .venv
# The virtualenv is made by uv: the one on PATH, else uv installed from PyPI
# into the venv by pip. On a cold cache it takes about as long as pip (the
# PySpark download dominates); on a warm one seconds instead of a minute.
# INSTALLER=pip uses pip alone (also the fallback when uv cannot be installed).
INSTALLER ?= uv
UV_VERSION ?= 0.13.9
UV_ON_PATH := $(shell command -v uv 2>/dev/null)
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

# Offline first: with everything in uv's cache that installs without the
# index. Online, uv revalidates each cached download, and where a proxy strips
# the cache headers it downloads and rebuilds PySpark's sdist (434 MB) again.
# Anything not cached yet makes the offline attempt fail before it installs.
uv_install = $(1) pip install --quiet --offline --python $(VENV)/bin/python -e ".[dev]" 2>/dev/null \
	|| $(1) pip install --quiet --python $(VENV)/bin/python -e ".[dev]"
pip_install = $(VENV)/bin/python -m pip install --quiet --upgrade pip \
	&& $(VENV)/bin/python -m pip install --quiet -e ".[dev]"

.PHONY: run test install lint typecheck wheel

$(STAMP): pyproject.toml
ifeq ($(INSTALLER),pip)
	$(PYTHON) -m venv $(VENV)
	$(pip_install)
else ifneq ($(UV_ON_PATH),)
	$(UV_ON_PATH) venv --quiet --allow-existing --python $(PYTHON) $(VENV)
	$(call uv_install,$(UV_ON_PATH))
else
	$(PYTHON) -m venv $(VENV)
	if $(VENV)/bin/python -m pip install --quiet --only-binary=:all: uv==$(UV_VERSION); then \
	  $(call uv_install,$(VENV)/bin/uv); else $(pip_install); fi
endif
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
