#!/bin/sh
# Container entry point; the first argument is the role:
#   web     gunicorn on $PORT (default 8000); applies migrations first unless MIGRATE=0
#           (each gunicorn worker recovers interrupted in-process analyses, see gunicorn.conf.py)
#   worker  the Celery detection worker (needs the inference image: TORCH=cpu or cuda)
#   migrate apply the database migrations, then exit
# Anything else runs as given.
set -eu
case "${1:-web}" in
  web)
    if [ "${MIGRATE:-1}" = "1" ]; then flask --app wsgi db upgrade; fi
    exec gunicorn --bind "0.0.0.0:${PORT:-8000}" --workers "${WEB_CONCURRENCY:-2}" \
      --threads "${GUNICORN_THREADS:-8}" --access-logfile - wsgi:app
    ;;
  worker)
    # One process, one model; its tasks go through the batched stream (DETECT_BATCH, DETECT_THREADS).
    exec celery -A webapp.worker worker -Q detect --hostname "worker@%h" --loglevel "${LOG_LEVEL:-INFO}"
    ;;
  migrate)
    exec flask --app wsgi db upgrade
    ;;
  *)
    exec "$@"
    ;;
esac
