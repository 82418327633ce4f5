# Two commands on a fresh machine: `make run` and `make test`. Both install what they need.
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
CATALOG ?= examples/catalog
ARGS    ?=

.PHONY: run test bench lint deps sysdeps test-sysdeps clean

$(STAMP): pyproject.toml
	@scripts/bootstrap-venv.sh $(VENV)
	@touch $(STAMP)

deps: sysdeps $(STAMP)

# PostgreSQL's server binaries live under /usr/lib/postgresql/<version>/bin (not on PATH).
sysdeps:
	@scripts/ensure-debian-packages.sh redis-server:redis-server redis-benchmark:redis-tools \
		'/usr/lib/postgresql/*/bin/initdb:postgresql'

# Kamailio's http_client module (tests/interop/test_kamailio.py) is a file, not a command.
test-sysdeps:
	@scripts/ensure-debian-packages.sh redis-server:redis-server redis-benchmark:redis-tools \
		tshark:tshark sipp:sip-tester sipsak:sipsak kamailio:kamailio \
		'/usr/lib/*/kamailio/modules/http_client.so:kamailio-utils-modules' \
		'/usr/lib/postgresql/*/bin/initdb:postgresql'

run: deps
	$(VENV)/bin/ocs up --catalog $(CATALOG) $(ARGS)

test: test-sysdeps $(STAMP)
	$(PY) -m pytest $(ARGS)

bench: deps
	$(PY) -m benchmarks.run_all

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
