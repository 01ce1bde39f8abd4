# Two commands: `make run` (everything, with demo data) and `make test` (the whole suite).
# Production: `make serve` (no demo data, no DEBUG, no embedded servers; see README "Production").
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt | sha1sum | cut -c1-12)
# Front-end packages (ECharts, WeUI, htmx) from the npm registry, exactly as package-lock.json says; npm ci
# empties node_modules first, so a changed lock leaves no stale stamp behind.
NODE_STAMP := node_modules/.installed-$(shell cat package-lock.json | sha1sum | cut -c1-12)
# Debian packages, each installed when the file it provides is missing: chromium (the browser tests, with
# Playwright), the WenQuanYi Zen Hei CJK font (Chinese in posters and screenshots), npm when there is none.
CHROMIUM := /usr/bin/chromium
CJK_FONT := /usr/share/fonts/truetype/wqy/wqy-zenhei.ttc

.PHONY: install debian-packages run serve test bench lint messages

$(STAMP): requirements.txt
	[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --disable-pip-version-check -q -r requirements.txt
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

debian-packages:
	@missing=""; \
	[ -x $(CHROMIUM) ] || missing="$$missing chromium"; \
	[ -f $(CJK_FONT) ] || missing="$$missing fonts-wqy-zenhei"; \
	command -v npm >/dev/null 2>&1 || missing="$$missing npm"; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
		echo "Installing Debian packages:$$missing"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -q && apt-get install -y -q --no-install-recommends$$missing; \
	else \
		echo "Missing Debian packages:$$missing. Run as root:" >&2; \
		echo "  sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends$$missing" >&2; \
	fi

$(NODE_STAMP): package.json package-lock.json | debian-packages
	npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

install: $(STAMP) $(NODE_STAMP) debian-packages

run: install
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) -m portal.run

serve: install
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) -m portal.run --production

test: install
	$(PY) -m pytest

bench: install
	$(PY) -m bench all --small

# Types: the settings are read in demo mode, and the database URL is parsed, never connected to
# (tests/test_types.py runs the same check in the suite). makemigrations reads the embedded database.
TYPECHECK_ENV := XIAOER_DEMO=1 DATABASE_URL=postgresql://typecheck@127.0.0.1:1/none

lint: install
	$(VENV)/bin/ruff check .
	$(TYPECHECK_ENV) $(VENV)/bin/mypy
	XIAOER_DEMO=1 $(PY) manage.py makemigrations --check --dry-run

messages: install
	$(PY) manage.py makemessages -l zh_Hans -l en --ignore=.venv --ignore=.run --ignore=bench --ignore=tests --ignore="wecom_sandbox/*"
	$(PY) manage.py compilemessages --ignore=.venv
