# ticketstream: `make run` brings the whole system up, `make test` installs what is missing and runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
INSTALLED := $(VENV)/.installed
KAFKA_JARS := .local/kafka/libs/.verified
# Debian's Chromium, for the dashboard's browser test (driven by Playwright, never a downloaded browser build).
CHROMIUM := /usr/bin/chromium

# `make run SCALE=2`: two processes each of intake, sla, assignment and notify (consumer groups share the work; replica 2
# on ports 8101-8103). Reporting stays one process: it writes through one chDB directory (with CLICKHOUSE_URL, a
# ClickHouse server, it could run several).
SCALE ?= 1
# `make run KAFKA_BROKERS=3`: a Kafka cluster of three KRaft nodes on 9092-9094 (every topic replicated on all three,
# min.insync.replicas 2), instead of one broker on 9092.
KAFKA_BROKERS ?= 1
export KAFKA_BROKERS
BOOTSTRAP_1 := 127.0.0.1:9092
BOOTSTRAP_3 := 127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094

# What the local system runs with; tests pick their own broker and data directories.
run demo kafka: export API_KEYS_FILE ?= $(CURDIR)/.local/api-keys.json
run demo kafka: export KAFKA_BOOTSTRAP_SERVERS ?= $(BOOTSTRAP_$(KAFKA_BROKERS))
run demo kafka: export CHDB_PATH ?= $(CURDIR)/.local/clickhouse
run demo: export NOTIFY_SECRETS_KEY_FILE ?= $(CURDIR)/.local/notify-secrets.key
run demo: export PRIVACY_MASTER_KEY_FILE ?= $(CURDIR)/.local/privacy-master.key
# Webhooks to this machine are allowed locally (a receiver you run yourself); production allows none by default.
run demo: export NOTIFY_ALLOWED_HOSTS ?= 127.0.0.1,localhost,::1
run demo: export MAIL_GATEWAY_PORT ?= 2526

.PHONY: install run demo test test-cluster fuzz bench schemas lock kafka mail clean

install: $(INSTALLED) $(KAFKA_JARS) $(CHROMIUM)

$(INSTALLED): requirements.lock requirements-runtime.lock pyproject.toml shared/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check uv==0.13.9
	$(UV) pip install --python $(PY) -q -r requirements.lock
	$(UV) pip install --python $(PY) -q --no-deps -e shared -e .
	touch $@

# The official Apache Kafka jars from Maven Central, resolved once into .local/kafka and checked against
# deploy/kafka/artifacts.sha256.
$(KAFKA_JARS): deploy/kafka/pom.xml deploy/kafka/artifacts.sha256 | $(INSTALLED)
	$(PY) -m deploy.kafka.launcher resolve

$(CHROMIUM):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null

.local/dev-keys.json: | $(INSTALLED)
	$(PY) -m ticketstream_shared.runtime.auth .local

.local/notify-secrets.key .local/privacy-master.key: | $(INSTALLED)
	$(PY) -m notify.sealing $@

run: install .local/dev-keys.json .local/notify-secrets.key .local/privacy-master.key
	@echo "ticketstream is starting; Ctrl-C stops everything. Data is kept under .local/."
	@echo "  intake      http://127.0.0.1:8001/docs   (requesters ask for help, and the desk sees its open work, at http://127.0.0.1:8001/tickets)"
	@echo "  sla         http://127.0.0.1:8002/docs"
	@echo "  assignment  http://127.0.0.1:8003/docs"
	@echo "  reporting   http://127.0.0.1:8004/docs   (dashboard: http://127.0.0.1:8004/dashboard)"
	@echo "  notify      http://127.0.0.1:8005/docs   (mail sent: .local/mail/*.eml, 'make mail'; mail to ticket: smtp://127.0.0.1:2526)"
	@case "$(SCALE)" in 1|2) ;; *) echo "SCALE must be 1 or 2, not '$(SCALE)'" >&2; exit 2 ;; esac
	@case "$(KAFKA_BROKERS)" in 1|3) ;; *) echo "KAFKA_BROKERS must be 1 or 3, not '$(KAFKA_BROKERS)'" >&2; exit 2 ;; esac
	@if [ "$(SCALE)" = 2 ]; then echo "  replica 2   intake :8101, sla :8102, assignment :8103, notify :8105 (reporting: one process)"; fi
	@echo "  kafka       $$KAFKA_BOOTSTRAP_SERVERS"
	@echo "  API keys    .local/dev-keys.json  (send 'Authorization: Bearer <key>'; /docs and /dashboard sign you in with one)"
	$(VENV)/bin/honcho -f deploy/Procfile -d . start -c intake=$(SCALE),sla=$(SCALE),assignment=$(SCALE),notify=$(SCALE) \
		kafka intake sla assignment reporting notify mail

demo: install .local/dev-keys.json .local/notify-secrets.key .local/privacy-master.key
	@echo "ticketstream with a simulated help-desk day; the dashboard: http://127.0.0.1:8004/dashboard"
	$(VENV)/bin/honcho -f deploy/Procfile -d . start

test: install
	$(VENV)/bin/ruff check shared services tests bench deploy
	$(VENV)/bin/mypy
	$(PY) -m pytest -m "not cluster" $(PYTEST_ARGS)

# The chaos test on a Kafka cluster of three brokers, one broker and then the controller leader killed under load
# (about 5 minutes on two cores; .ci/run runs it after `make test`).
test-cluster: install
	$(PY) -m pytest -m cluster $(PYTEST_ARGS)

# The fuzz tests alone, with FUZZ_EXAMPLES requests (or workflows) per API operation instead of `make test`'s 30 and
# no time limit per test (about 20 minutes on two cores at 1,000). What fails is kept in tests/hypothesis-examples.
FUZZ_EXAMPLES ?= 1000
fuzz: install
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m pytest --timeout=0 tests/integration/test_intake_fuzz.py \
		tests/integration/test_service_fuzz.py $(PYTEST_ARGS)

bench: install
	$(PY) -m bench

schemas: install
	$(PY) -m ticketstream_shared.contract.schema shared/schemas

# Two locks: requirements.lock (development and tests, what `make install` installs) and requirements-runtime.lock
# (what the image installs), the second resolved within the first so that every pin they share is the same.
lock: $(INSTALLED)
	$(UV) pip compile -q requirements.in -o requirements.lock --python-version 3.11
	$(UV) pip compile -q requirements-runtime.in -c requirements.lock -o requirements-runtime.lock --python-version 3.11

kafka: install
	$(VENV)/bin/honcho -f deploy/Procfile -d . start kafka

# What notify has mailed in `make run` (the local SMTP sink's .eml files, oldest first).
mail: install
	$(PY) -m deploy.mail_sink --list --dir .local/mail

clean:
	rm -rf .local $(VENV)
