# Voices: `make run` starts the whole platform with demo data, `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Apache Kafka's jars (Maven) and the document store (FerretDB, built with Go); git-ignored.
TOOLS := .tools
KAFKA_STAMP := $(TOOLS)/kafka/lib/.installed
FERRETDB := $(TOOLS)/bin/voices-ferretdb

.PHONY: run lint test test-unit test-e2e fault install servers browser-deps bench wipe clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(KAFKA_STAMP): deploy/kafka/pom.xml
	@command -v java >/dev/null && command -v mvn >/dev/null || \
		{ echo "Apache Kafka needs a JDK 17 and Maven: apt-get install openjdk-17-jdk-headless maven" >&2; exit 1; }
	rm -rf $(TOOLS)/kafka/lib
	mvn -B -q -f deploy/kafka/pom.xml dependency:copy-dependencies -DincludeScope=runtime \
		-DoutputDirectory=$(abspath $(TOOLS))/kafka/lib
	touch $@

$(FERRETDB): $(wildcard deploy/ferretdb/*.go) deploy/ferretdb/go.mod deploy/ferretdb/go.sum
	@command -v go >/dev/null || { echo "The document store is built with Go 1.24 or later: https://go.dev/doc/install" >&2; exit 1; }
	cd deploy/ferretdb && CGO_ENABLED=0 go build -trimpath -o $(abspath $(FERRETDB)) .

servers: $(KAFKA_STAMP) $(FERRETDB)

install: $(STAMP) servers

run: install
	$(PY) -m deploy.run

# Lint, format check, types and import boundaries (configured in pyproject.toml).
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(PY) -m tools.module_size

test: install browser-deps
	cd deploy/ferretdb && go test ./...
	$(PY) -m pytest -q

test-unit: $(STAMP)
	$(PY) -m pytest -q -m "not e2e and not integration and not browser"

test-e2e: install
	$(PY) -m pytest -q -m "e2e"

# The fault suite at a larger size than `make test` runs it (participants per scenario).
FAULT_SCALE ?= 60
fault: install
	VOICES_FAULT_SCALE=$(FAULT_SCALE) $(PY) -m pytest -q -m fault tests/fault

# The browser tests drive Debian's Chromium (never a downloaded browser build); the small CJK
# font lets Chinese pages and the language switcher render in screenshots.
# Root installs directly; anyone else goes through sudo.
SUDO := $(shell test "$$(id -u)" = 0 || echo sudo)

browser-deps:
	@test -x /usr/bin/chromium && test -f /usr/share/fonts/truetype/wqy/wqy-microhei.ttc || \
		{ $(SUDO) apt-get update && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium fonts-wqy-microhei; }

bench: install
	$(PY) -m benchmarks

# Deletes everything `make run` stored (VOICES_DATA_DIR, default ./var), after asking.
wipe: $(STAMP)
	$(PY) -m deploy.run --wipe

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .hypothesis .mypy_cache .ruff_cache .import_linter_cache .grimp_cache
