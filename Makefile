# Voices: `make run` starts everything in embedded mode, `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test test-unit test-e2e install browser-deps bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(PY) -m deploy.run

test: $(STAMP) browser-deps
	$(PY) -m pytest -q

test-unit: $(STAMP)
	$(PY) -m pytest -q -m "not e2e and not integration and not browser"

test-e2e: $(STAMP)
	$(PY) -m pytest -q -m "e2e"

# The browser tests drive Debian's Chromium (never a downloaded browser build); the small CJK
# font lets Chinese pages and the language switcher render in screenshots.
# Root installs directly; anyone else goes through sudo.
SUDO := $(shell test "$$(id -u)" = 0 || echo sudo)

browser-deps:
	@test -x /usr/bin/chromium && test -f /usr/share/fonts/truetype/wqy/wqy-microhei.ttc || \
		{ $(SUDO) apt-get update && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium fonts-wqy-microhei; }

bench: $(STAMP)
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
