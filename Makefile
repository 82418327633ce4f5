# Two commands on a fresh machine: `make run` and `make test`. Both install what they need.
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
CATALOG ?= examples/catalog
ARGS    ?=

.PHONY: run test bench lint docs deps sysdeps test-sysdeps clean

$(STAMP): pyproject.toml
	@scripts/bootstrap-venv.sh $(VENV)
	@touch $(STAMP)

deps: sysdeps $(STAMP)

# PostgreSQL's server binaries live under /usr/lib/postgresql/<version>/bin (not on PATH).
# Settlement PDFs (WeasyPrint) need Pango and a font: DejaVu from Debian.
sysdeps:
	@scripts/ensure-debian-packages.sh redis-server:redis-server redis-benchmark:redis-tools \
		'/usr/lib/postgresql/*/bin/initdb:postgresql' \
		'/usr/lib/*/libpango-1.0.so.0:libpango-1.0-0' \
		'/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf:fonts-dejavu-core'

# Kamailio's http_client and ims_charging modules (tests/interop/test_kamailio*.py) are files,
# not commands; promtool (Debian package prometheus) checks deploy/prometheus/ in tests/deploy/;
# chromium: the dashboards' browser tests (Playwright drives Debian's build, never downloads one).
test-sysdeps:
	@scripts/ensure-debian-packages.sh redis-server:redis-server redis-benchmark:redis-tools \
		tshark:tshark sipp:sip-tester sipsak:sipsak kamailio:kamailio promtool:prometheus \
		chromium:chromium \
		freeDiameterd:freediameterd \
		'/usr/lib/*/kamailio/modules/http_client.so:kamailio-utils-modules' \
		'/usr/lib/*/kamailio/modules/ims_charging.so:kamailio-ims-modules' \
		'/usr/lib/postgresql/*/bin/initdb:postgresql' \
		'/usr/lib/*/libpango-1.0.so.0:libpango-1.0-0' \
		'/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf:fonts-dejavu-core'

run: deps
	$(VENV)/bin/ocs up --catalog $(CATALOG) $(ARGS)

test: test-sysdeps $(STAMP)
	$(PY) -m pytest $(ARGS)

bench: deps
	$(PY) -m benchmarks.run_all $(ARGS)

# The documentation site into site/ (--strict: broken links and pages missing from the nav fail).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) var site .pytest_cache .mypy_cache .ruff_cache
