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
# Installed when missing and we can (root + apt-get); otherwise those tests skip and say why. With
# I2EDIT_REQUIRE_SYSTEM_TESTS=1 (set by .ci/run) a package that cannot be installed stops here with an error,
# and the tests that need it fail instead of skipping.
DEB_PACKAGES := chromium:chromium postgresql:/usr/lib/postgresql
system-packages:
	@status=0; for pair in $(DEB_PACKAGES); do pkg=$${pair%%:*}; probe=$${pair#*:}; \
	  if command -v $$probe >/dev/null 2>&1 || [ -e "$$probe" ]; then continue; fi; \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get install -y -q $$pkg >/dev/null 2>&1 || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q $$pkg >/dev/null 2>&1)) \
	      && continue; problem="could not install $$pkg with apt-get"; \
	  else problem="$$pkg is missing and apt-get needs root"; fi; \
	  if [ -n "$$I2EDIT_REQUIRE_SYSTEM_TESTS" ] && [ "$$I2EDIT_REQUIRE_SYSTEM_TESTS" != 0 ]; then \
	    echo "error: $$problem, and I2EDIT_REQUIRE_SYSTEM_TESTS is set: the tests that need it must run" >&2; status=1; \
	  else echo "note: $$problem; the tests that need it will skip"; fi; done; exit $$status

test: $(STAMP) system-packages
	$(PY) -m pytest

# The chat server on the embedded defaults (SQLite in var/, the shipped dialogue model, the FFHQ weights when
# present, else the demo set); it prints the URL. Extra flags: make demo SERVE_ARGS="--port 8080".
demo: $(STAMP)
	$(VENV)/bin/i2edit serve $(SERVE_ARGS)
