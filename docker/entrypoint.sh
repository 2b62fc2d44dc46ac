#!/bin/sh
# Container entry point: `web` applies migrations then serves with gunicorn (whose workers recover
# analyses interrupted by a restart, see gunicorn.conf.py); anything else runs as given.
set -eu
case "${1:-web}" in
  web)
    flask --app wsgi db upgrade
    exec gunicorn --bind "0.0.0.0:${PORT:-8000}" --workers "${WEB_CONCURRENCY:-2}" \
      --threads "${GUNICORN_THREADS:-4}" --access-logfile - wsgi:app
    ;;
  *)
    exec "$@"
    ;;
esac
