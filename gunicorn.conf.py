"""gunicorn settings read from the project folder (`gunicorn wsgi:app`, `make serve`, the container).
Command-line options given as well win over these."""


def post_worker_init(worker):
    """Each worker, once started, marks as failed the analyses left behind by dead processes
    (a worker killed mid-analysis is replaced by one that cleans up after it)."""
    from webapp.analyses.pipeline import recover_interrupted

    with worker.wsgi.app_context():
        recover_interrupted()
