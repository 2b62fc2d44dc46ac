#!/bin/sh
# The image's HEALTHCHECK, by what the container runs (PID 1, exec'd by entrypoint.sh):
# gunicorn -> GET /healthz answers 200; a Celery worker -> it answers a ping; anything else -> ok.
set -eu
case "$(tr '\0' ' ' < /proc/1/cmdline)" in
  *gunicorn*)
    exec python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), timeout=8)"
    ;;
  *celery*)
    # A ping from a bare Celery app with the broker's address and the worker's key separator, not
    # from the worker's own app (`-A webapp.worker` builds the Flask app and imports torch: 5 s of
    # CPU and 700 MB on every check; this takes about 1 s and 80 MB)
    exec python -c "
import os, socket, sys
from celery import Celery
from webapp.jobs.celery import PRIORITY_SEPARATOR
app = Celery(broker=os.environ.get('CELERY_BROKER_URL') or 'redis://127.0.0.1:6379/0',
             broker_transport_options={'sep': PRIORITY_SEPARATOR})
sys.exit(0 if app.control.ping(destination=['worker@' + socket.gethostname()], timeout=5) else 1)"
    ;;
  *)
    exit 0
    ;;
esac
