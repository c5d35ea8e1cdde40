# The two commands: `make test` and `make demo`. Both create .venv and install what is missing first.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.i2edit-installed

.PHONY: test demo install chromium

install: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)

# Reinstall only when the package metadata changed (the install is editable: code changes need none).
$(STAMP): setup.cfg pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Browser tests drive Debian's chromium; install it when we can, else they skip with a reason.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get install -y -q chromium >/dev/null 2>&1 || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1)) \
	      || echo "note: could not install chromium with apt-get; browser tests will skip"; \
	  else echo "note: chromium is missing and apt-get needs root; browser tests will skip"; fi; }

test: $(STAMP) chromium
	$(PY) -m pytest

# The chat server on the embedded defaults (SQLite in var/, the shipped dialogue model, the FFHQ weights when
# present, else the demo set); it prints the URL. Extra flags: make demo SERVE_ARGS="--port 8080".
demo: $(STAMP)
	$(VENV)/bin/i2edit serve $(SERVE_ARGS)
