# Two commands matter: `make run` (the whole pipeline locally) and `make test` (all tests).
# Both bootstrap everything they need: a virtualenv, the pinned Python packages, and the pinned
# JVM artifacts (Kafka, Elasticsearch, Flink connectors) fetched from Maven Central into a cache.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: run test unit integration fetch up status down bench compose-check clean

run: $(STAMP)
	$(BIN)/churnstream fetch
	$(BIN)/churnstream demo

test: $(STAMP)
	$(BIN)/churnstream fetch
	$(BIN)/python -m pytest

unit: $(STAMP)
	$(BIN)/python -m pytest -m unit

integration: $(STAMP)
	$(BIN)/python -m pytest -m "integration or slow"

fetch: $(STAMP)
	$(BIN)/churnstream fetch

up: $(STAMP)
	$(BIN)/churnstream stack up

status: $(STAMP)
	$(BIN)/churnstream stack status

down: $(STAMP)
	$(BIN)/churnstream stack down

bench: $(STAMP)
	$(BIN)/python -m bench

compose-check: $(STAMP)
	$(BIN)/python docker/validate.py

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed: run make with PYTHON=/path/to/python3.11")'
	@command -v java >/dev/null || { echo "Java 17+ is needed (e.g. apt-get install openjdk-17-jdk-headless)"; exit 1; }
	@command -v mvn >/dev/null || { echo "Maven is needed (e.g. apt-get install maven)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $@

clean:
	-$(BIN)/churnstream stack down
	rm -rf $(VENV) .run
