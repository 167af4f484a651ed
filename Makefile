# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU wheel of PyTorch; the package itself accepts a range.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit postgres chromium redis bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/streamfit demo

# lint-imports: the layers and no import cycles, as [tool.importlinter] in pyproject.toml says.
lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/lint-imports

typecheck: $(STAMP)
	$(VENV)/bin/mypy

# Two test processes (pytest-xdist), one a core; the slowest tests are listed at the end: the
# suite should stay under ~15 minutes.
unit: $(STAMP) postgres chromium redis
	$(PY) -m pytest -q -n 2 --durations=25

# The job store's tests start a throwaway PostgreSQL server of their own: install Debian's
# when there is none (a no-op when there is one, or with STREAMFIT_TEST_POSTGRES=0).
postgres:
	@if [ "$${STREAMFIT_TEST_POSTGRES:-1}" != 0 ] && [ -z "$${STREAMFIT_PG_CTL:-}" ] \
	    && ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 && ! command -v pg_ctl >/dev/null; then \
	  sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	  $$sudo apt-get update && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y \
	    --no-install-recommends postgresql; \
	fi

# The dashboard's browser tests drive Debian's Chromium (Playwright cannot download one here).
chromium:
	@if [ "$${STREAMFIT_TEST_BROWSER:-1}" != 0 ] && ! command -v chromium >/dev/null; then \
	  sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	  $$sudo apt-get update && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y \
	    --no-install-recommends chromium; \
	fi

# The Redis Streams source's tests start a redis-server of their own on loopback.
redis:
	@if [ "$${STREAMFIT_TEST_REDIS:-1}" != 0 ] && ! command -v redis-server >/dev/null; then \
	  sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	  $$sudo apt-get update && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y \
	    --no-install-recommends redis-server; \
	fi

test: lint typecheck unit

bench: $(STAMP)
	$(PY) -m pip install -q -e ".[bench]"
	$(PY) benchmarks/linear_learner.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .import_linter_cache .grimp_cache
