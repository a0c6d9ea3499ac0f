# The README's two commands: `make run` and `make test`. Both install what is missing first.
DATA_DIR ?= $(CURDIR)/data
PORT ?= 6443
PY := .venv/bin/python

.PHONY: run test deps tools unit integration bench clean

deps:
	scripts/install-deps.sh python

tools:
	scripts/install-deps.sh tools

run: deps
	.venv/bin/kubeshim server --data-dir $(DATA_DIR) --port $(PORT) $(ARGS)

test: deps tools
	$(PY) -m pytest tests

unit: deps
	$(PY) -m pytest tests/unit

integration: deps tools
	$(PY) -m pytest tests/integration

bench: deps
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk >/dev/null)
	$(PY) bench/api.py

clean:
	rm -rf .venv .tools data
