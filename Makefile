# The two commands of the README. Both install everything first (bin/setup: idempotent, cached).
PY := .cache/venv/bin
.PHONY: run test setup lint

run: setup
	$(PY)/feedlab run smoke

test: setup lint
	$(PY)/pytest -m "unit or stack" --durations=15
	$(PY)/pytest -m campaign --durations=0

setup:
	bin/setup

lint:
	$(PY)/ruff check .
	$(PY)/mypy harness targets workloads chaos reports bench tests
