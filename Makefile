# The two set-up commands of the README:
#   make demo   makes .venv, installs everything, runs the demo on built-in data
#   make test   makes .venv, installs everything, runs ruff and the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.signvision-installed

.PHONY: demo test install fashion-mnist clean

install: $(STAMP)

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/signvision demo

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest -q

# Optional system data: Debian's Fashion-MNIST (70,000 images) for `signvision demo --source fashion-mnist`
# and the scale benchmarks. Needs root (or sudo).
fashion-mnist:
	test -d /usr/share/datasets/fashion-mnist || { apt-get update -qq && apt-get install -y dataset-fashion-mnist; }

clean:
	rm -rf $(VENV) signvision-demo
