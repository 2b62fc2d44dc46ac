# syntax=docker/dockerfile:1
# Spotter's production image. One Dockerfile, three flavours by the TORCH build argument:
#   TORCH=none  web tier only (ANALYSIS_EXECUTOR=celery): no PyTorch at all; roles web, migrate
#   TORCH=cpu   (default) everything, with PyTorch's CPU build: roles web, worker, migrate
#   TORCH=cuda  everything, with the CUDA build of PyTorch (PyPI's default), for GPU workers
# The entry point's first argument picks the role (docker/entrypoint.sh): web, worker, migrate.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: a virtual environment with every wheel installed, nothing else ----
FROM ${PYTHON_IMAGE} AS build
ARG TORCH=cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /build
COPY requirements.txt requirements-worker.txt ./
RUN python -m venv /venv
RUN set -eu; \
    case "$TORCH" in \
      none) /venv/bin/pip install -r requirements.txt ;; \
      cpu)  /venv/bin/pip install --index-url https://download.pytorch.org/whl/cpu \
              --extra-index-url https://pypi.org/simple -r requirements-worker.txt ;; \
      cuda) /venv/bin/pip install -r requirements-worker.txt ;; \
      *)    echo "TORCH must be none, cpu or cuda, not $TORCH" >&2; exit 1 ;; \
    esac

# ---- runtime: the environment, the code, a non-root user; no compilers, no caches ----
FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/venv/bin:$PATH \
    YOLO_AUTOINSTALL=false YOLO_CONFIG_DIR=/tmp/ultralytics \
    INSTANCE_PATH=/data/instance UPLOAD_DIR=/data/uploads MODELS_DIR=/data/models

# OpenCV needs these shared libraries. Not version-pinned: they come from the base image's
# Debian release, whose security updates a rebuild should pick up.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
 && rm -rf /var/lib/apt/lists/*

COPY --from=build /venv /venv
WORKDIR /app
COPY webapp ./webapp
COPY migrations ./migrations
COPY templates ./templates
COPY static ./static
COPY wsgi.py gunicorn.conf.py ./
COPY docker/entrypoint.sh docker/healthcheck.sh /usr/local/bin/

RUN useradd --create-home --uid 10001 app && mkdir -p /data && chown app /data
USER 10001
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s CMD ["healthcheck.sh"]
ENTRYPOINT ["entrypoint.sh"]
CMD ["web"]
