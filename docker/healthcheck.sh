#!/bin/sh
# The image's HEALTHCHECK, by what the container runs (PID 1, exec'd by entrypoint.sh):
# gunicorn -> GET /healthz answers 200; a Celery worker -> it answers a ping; anything else -> ok.
set -eu
case "$(tr '\0' ' ' < /proc/1/cmdline)" in
  *gunicorn*)
    exec python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), timeout=8)"
    ;;
  *celery*)
    exec celery -A webapp.worker inspect ping --destination "worker@$(hostname)" --timeout 5
    ;;
  *)
    exit 0
    ;;
esac
