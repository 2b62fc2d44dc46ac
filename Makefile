# `make run`: set up and serve on http://127.0.0.1:5000 (SQLite, local files, in-process worker).
# `make test`: set up and run the whole test suite.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 5000
# Ultralytics never pip-installs at run time. It may download the default model (yolo11n.pt,
# into instance/models/) when `make run` finds none; tests and benchmarks stay offline.
export YOLO_AUTOINSTALL ?= false
OFFLINE := YOLO_OFFLINE=1

.PHONY: run test test-images serve migrate check-model bench lint clean

run: $(VENV)/.run-installed migrate
	$(BIN)/flask --app wsgi --debug recover-interrupted
	$(BIN)/flask --app wsgi run --debug --no-reload --host $(HOST) --port $(PORT)

# Two pytest-xdist workers (the tests keep their databases, Redis databases and ports apart);
# TEST_WORKERS=0 runs them in this one process. The 30 slowest tests are listed at the end (the suite's time in view).
TEST_WORKERS ?= 2
test: $(VENV)/.dev-installed
	$(OFFLINE) $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal --durations=30 $(PYTEST_ARGS)

# The container images built and run for real (tests/test_images.py): podman and buildah as root,
# with ../shared/containers' scripts (the base image made from Debian). .ci/run installs them.
# Skipped, with this line, where podman is not installed.
test-images: $(VENV)/.dev-installed
	@if ! command -v podman >/dev/null 2>&1 || ! command -v buildah >/dev/null 2>&1; then \
	  echo "make test-images: SKIPPED: podman and buildah are not installed (apt-get install podman buildah mmdebstrap runc; .ci/run does)"; \
	else \
	  $(OFFLINE) $(BIN)/python -m pytest --images -o timeout=3600 -p no:cacheprovider tests/test_images.py $(PYTEST_ARGS); \
	fi

# Production-style server (needs SECRET_KEY and JWT_SECRET_KEY); gunicorn.conf.py makes each
# worker recover analyses interrupted by a restart.
serve: $(VENV)/.run-installed migrate
	$(BIN)/gunicorn --bind $(HOST):$(PORT) --workers 2 --threads 8 wsgi:app

migrate: $(VENV)/.run-installed
	$(BIN)/flask --app wsgi --debug db upgrade

# Load the detection model and print its classes, or what is wrong and how to fix it.
check-model: $(VENV)/.run-installed
	$(BIN)/flask --app wsgi --debug check-model

# Style (ruff), the architecture's import contracts (import-linter: .importlinter), the Dockerfile.
lint: $(VENV)/.dev-installed
	$(BIN)/ruff check webapp tests bench migrations wsgi.py gunicorn.conf.py
	$(BIN)/lint-imports --no-cache
	$(BIN)/hadolint Dockerfile

bench: $(VENV)/.dev-installed
	$(OFFLINE) $(BIN)/python bench/throughput.py --mode both

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)

# Reinstall only when a requirements file changed (the stamp is older than it). `make run` detects
# in-process, so it installs the inference packages too (requirements-worker.txt), then Ultralytics
# without its dependencies (requirements-ultralytics.txt says why).
REQUIREMENTS := requirements.txt requirements-worker.txt requirements-ultralytics.txt
$(VENV)/.run-installed: $(REQUIREMENTS) | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements-worker.txt
	$(BIN)/python -m pip install --quiet --no-deps -r requirements-ultralytics.txt
	touch $@

$(VENV)/.dev-installed: $(REQUIREMENTS) requirements-dev.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -r requirements-ultralytics.txt
	touch $(VENV)/.run-installed $@

clean:
	rm -rf $(VENV) .pytest_cache
