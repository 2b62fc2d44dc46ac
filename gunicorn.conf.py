"""gunicorn settings read from the project folder (`gunicorn wsgi:app`, `make serve`, the container).
Command-line options given as well win over these."""

# A worker is replaced after about this many requests: memory that decoding large photos leaves
# fragmented is given back (the jitter keeps workers from restarting together).
max_requests = 2000
max_requests_jitter = 200
# No control socket: several gunicorns on one host would share ~/.gunicorn/gunicorn.ctl.
control_socket_disable = True


def post_worker_init(worker):
    """Each worker, once started, marks as failed the analyses left behind by dead processes
    (a worker killed mid-analysis is replaced by one that cleans up after it)."""
    from webapp.analyses.pipeline import recover_interrupted

    with worker.wsgi.app_context():
        recover_interrupted()
