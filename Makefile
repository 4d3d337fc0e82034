PYTHON ?= python3

.PHONY: install demo test lint

install:
	$(PYTHON) -m pip install --quiet -e ".[test,dev]"

demo: install
	clip-lightning test --config configs/demo.yaml

test: install
	$(PYTHON) -m pytest

lint: install
	ruff check . && ruff format --check . && mypy
