# The two commands: `make test` and `make demo`. Both create .venv and install what is missing first.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.i2edit-installed

.PHONY: test demo install system-packages

install: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)

# Reinstall only when the package metadata changed (the install is editable: code changes need none).
$(STAMP): setup.cfg pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Debian packages some tests use: chromium (the browser test) and postgresql (the PostgreSQL storage test).
# Installed when missing and we can (root + apt-get); otherwise those tests skip and say why.
DEB_PACKAGES := chromium:chromium postgresql:/usr/lib/postgresql
system-packages:
	@for pair in $(DEB_PACKAGES); do pkg=$${pair%%:*}; probe=$${pair#*:}; \
	  if command -v $$probe >/dev/null 2>&1 || [ -e "$$probe" ]; then continue; fi; \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get install -y -q $$pkg >/dev/null 2>&1 || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q $$pkg >/dev/null 2>&1)) \
	      || echo "note: could not install $$pkg with apt-get; the tests that need it will skip"; \
	  else echo "note: $$pkg is missing and apt-get needs root; the tests that need it will skip"; fi; done

test: $(STAMP) system-packages
	$(PY) -m pytest

# The chat server on the embedded defaults (SQLite in var/, the shipped dialogue model, the FFHQ weights when
# present, else the demo set); it prints the URL. Extra flags: make demo SERVE_ARGS="--port 8080".
demo: $(STAMP)
	$(VENV)/bin/i2edit serve $(SERVE_ARGS)
