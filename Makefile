# The two commands a newcomer needs (see README.md):
#   make run    set up the virtualenv, migrate, create the admin user, serve Trio on TRIO_PORT
#   make test   set up the virtualenv and run the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.requirements-installed

# An empty variable means its default, as everywhere in Trio (`?=` would keep it empty).
TRIO_HOST := $(or $(TRIO_HOST),127.0.0.1)
TRIO_PORT := $(or $(TRIO_PORT),8000)
# Exported: gunicorn reads it too, and cannot start with an empty one.
export WEB_CONCURRENCY := $(or $(WEB_CONCURRENCY),1)

# With more than one worker, each listens on its own SO_REUSEPORT socket and the kernel spreads
# new connections evenly; on one shared socket, whichever worker woke first took most of a burst
# (bench/README.md). Not with one worker: a second `make run` on the same port should fail loudly.
REUSE_PORT := $(if $(filter-out 1,$(WEB_CONCURRENCY)),--reuse-port)

.PHONY: run test setup bench fakebackend demo clean

setup: $(STAMP)

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py ensure_admin
	$(BIN)/python manage.py rollup_votes
	exec $(BIN)/gunicorn trio_site.asgi:application -c python:trio_site.gunicorn_conf \
		--worker-class uvicorn_worker.UvicornWorker \
		--workers $(WEB_CONCURRENCY) $(REUSE_PORT) \
		--bind $(TRIO_HOST):$(TRIO_PORT)

test: $(STAMP)
	$(BIN)/python -m pytest

# A local OpenAI-compatible fake backend on :4000, for trying Trio without any LLM.
fakebackend: $(STAMP)
	$(BIN)/python manage.py fakebackend --port 4000 --latency 0.3

# Fake backend with three models of different quality + Trio + a few dozen questions.
demo: $(STAMP)
	$(BIN)/python scripts/demo.py

bench: $(STAMP)
	$(BIN)/python bench/concurrency.py

clean:
	rm -rf $(VENV) staticfiles trio-test.sqlite3*
