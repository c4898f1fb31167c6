# Run `make` or `make help` to list the targets.
.DEFAULT_GOAL := help
VENV ?= .venv
PY := $(VENV)/bin/python
export DVC_NO_ANALYTICS := 1

.PHONY: help setup validate test lint format typecheck schema check bench clean golden

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup: ## create .venv and install nebula with every extra
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -e '.[all]'

validate: ## validate the repository's own nebula.yaml
	$(VENV)/bin/nebula validate nebula.yaml

test: ## run the whole test suite
	$(PY) -m pytest

lint: ## ruff lint and format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: ## apply ruff fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

typecheck: ## mypy, strict, on nebula_compile
	$(VENV)/bin/mypy

schema: ## regenerate schemas/*.schema.json from the models
	$(VENV)/bin/nebula schema --out schemas/nebula.schema.json
	$(VENV)/bin/nebula schema --manifest --out schemas/manifest.schema.json

check: lint typecheck test ## everything CI runs

bench: ## run the benchmarks and write their figures into docs/benchmarks.md
	$(PY) bench/bench_validate.py
	$(PY) bench/bench_compile.py
	$(PY) bench/bench_plan.py
	$(PY) bench/bench_runtime.py  # needs wrk (apt-get install wrk)
	$(PY) bench/bench_ml.py

clean: ## remove caches and build output
	rm -rf build .pytest_cache .mypy_cache .ruff_cache .hypothesis bench/out
	find . -name __pycache__ -prune -exec rm -rf {} +

golden: ## accept the current compiler output as the expected golden files
	NEBULA_UPDATE_GOLDEN=1 $(PY) -m pytest tests/compile/test_golden.py -q
