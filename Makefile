# The two commands of the README: `make demo` (the main job) and `make test`.
# Both run the idempotent set-up first.
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test lint doctor bench fuzz wheel docs clean

setup:
	@bash scripts/setup.sh

doctor: setup
	@$(VENV)/bin/rlmpc doctor

demo: doctor
	@$(VENV)/bin/rlmpc demo

lint: setup
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/mypy

test: doctor lint
	@$(PY) -m pytest

bench: setup
	@$(PY) bench/mpc_core.py
	@$(PY) bench/learning.py
	@$(PY) bench/mcu_solver.py
	@$(PY) bench/rti_warm_start.py
	@$(PY) bench/hil.py

# the documentation site in build/site, strict (a warning or a broken link fails); executes the tutorials
docs: setup
	@NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --clean --config-file mkdocs.yml

# the sdist and the wheel (built from the sdist) in dist/; the wheel carries everything a command needs
wheel: setup
	@$(PY) -m build --outdir dist .

fuzz: setup
	@bash firmware_templates/protocol/fuzz/run_fuzz.sh 1000000

clean:
	rm -rf build dist runs .pytest_cache .mypy_cache .ruff_cache
