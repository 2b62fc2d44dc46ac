# syntax=docker/dockerfile:1
# Spotter's production image. One Dockerfile, three flavours by the TORCH build argument:
#   TORCH=none  web tier only (ANALYSIS_EXECUTOR=celery): no PyTorch at all; roles web, migrate
#   TORCH=cpu   (default) everything, with PyTorch's CPU build: roles web, worker, migrate
#   TORCH=cuda  everything, with the CUDA build of PyTorch (PyPI's default), for GPU workers
# The entry point's first argument picks the role (docker/entrypoint.sh): web, worker, migrate.
#
# Layer order: what changes least comes first. The runtime stage's settings, user and folders come
# before the environment, and the code is one COPY after it (.dockerignore lets in only what the
# app runs), so a change of code rebuilds one layer and reuses the environment's.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: a virtual environment with every wheel installed, nothing else ----
FROM ${PYTHON_IMAGE} AS build
ARG TORCH=cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /build
COPY requirements.txt requirements-worker.txt requirements-ultralytics.txt ./
RUN python -m venv /venv
# Ultralytics comes without its dependencies (requirements-ultralytics.txt says why); pip and
# setuptools leave the environment at the end: nothing installs anything at run time.
RUN set -eu; \
    case "$TORCH" in \
      none) /venv/bin/pip install -r requirements.txt ;; \
      cpu)  /venv/bin/pip install --index-url https://download.pytorch.org/whl/cpu \
              --extra-index-url https://pypi.org/simple -r requirements-worker.txt \
            && /venv/bin/pip install --no-deps -r requirements-ultralytics.txt ;; \
      cuda) /venv/bin/pip install -r requirements-worker.txt \
            && /venv/bin/pip install --no-deps -r requirements-ultralytics.txt ;; \
      *)    echo "TORCH must be none, cpu or cuda, not $TORCH" >&2; exit 1 ;; \
    esac; \
    /venv/bin/pip uninstall --yes --quiet pip setuptools

# ---- runtime: the environment, the code, a non-root user; no compilers, no caches, no pip ----
FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/venv/bin:/app/docker:$PATH FLASK_APP=wsgi \
    YOLO_AUTOINSTALL=false YOLO_CONFIG_DIR=/tmp/ultralytics \
    INSTANCE_PATH=/data/instance UPLOAD_DIR=/data/uploads MODELS_DIR=/data/models
RUN useradd --create-home --uid 10001 app && mkdir -p /data /app && chown app /data
WORKDIR /app
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s CMD ["healthcheck.sh"]
ENTRYPOINT ["entrypoint.sh"]
CMD ["web"]
USER 10001

# Owned by root (COPY's default): the app's user can read and run them, not change them.
COPY --from=build /venv /venv
# webapp/, migrations/, templates/, static/, wsgi.py, gunicorn.conf.py and docker/*.sh (.dockerignore)
COPY . /app/
