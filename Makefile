# The two set-up commands of the README:
#   make demo   makes .venv, installs everything, runs the demo on built-in data
#   make test   makes .venv, installs everything, runs ruff and the test suite
# For contributors:
#   make test-fast   ruff and the unit tests on tiny data (no test marked slow): under 90 s on 2 cores
#   make docs        the documentation site into site/ (MkDocs, strict: a broken link or stale name fails)
# Both test targets run the tests in one process per core (pytest-xdist), each test module whole in one.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.signvision-installed

.PHONY: demo test test-fast docs install browser fashion-mnist clean

install: $(STAMP)

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/signvision demo

test: $(STAMP) browser
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest -q -n auto --dist loadscope

test-fast: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest -q -n auto --dist loadscope -m "not slow"

docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict

# Debian's Chromium, which the serve page test drives headless through Playwright (no browser download).
# Needs root (or sudo) the first time.
browser:
	command -v chromium >/dev/null || { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium; }

# Optional system data: Debian's Fashion-MNIST (70,000 images) for `signvision demo --source fashion-mnist`
# and the scale benchmarks. Needs root (or sudo).
fashion-mnist:
	test -d /usr/share/datasets/fashion-mnist || { apt-get update -qq && apt-get install -y dataset-fashion-mnist; }

clean:
	rm -rf $(VENV) signvision-demo site
