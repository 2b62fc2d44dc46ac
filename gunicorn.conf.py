"""gunicorn settings read from the project folder (`gunicorn wsgi:app`, `make serve`, the container).
Command-line options given as well win over these."""

# A worker is replaced after about this many requests: memory that decoding large photos leaves
# fragmented is given back (the jitter keeps workers from restarting together).
max_requests = 2000
max_requests_jitter = 200
# Request lines up to gunicorn's most (nginx in front refuses longer ones with a 414 of its own).
limit_request_line = 8190
# No control socket: several gunicorns on one host would share ~/.gunicorn/gunicorn.ctl.
control_socket_disable = True


def post_worker_init(worker):
    """Each worker, once started, does what every process does at its start
    (webapp/jobs/lifecycle.py): it queues again the runs left unfinished by dead processes of
    this host (a worker killed mid-analysis, or replaced after `max_requests`, is replaced by one
    that takes over its queue) and, where it detects itself (the thread executor), loads and
    warms a model already on disk, so the first photo does not wait for it."""
    from webapp.jobs.lifecycle import start_process

    start_process(worker.wsgi)


def worker_exit(server, worker):
    """A worker that stops finishes the runs it is detecting and leaves the queued ones pending
    (the next worker's start-up queues them again), rather than being torn down mid-prediction."""
    from webapp.jobs.lifecycle import stop_process

    if getattr(worker, "wsgi", None) is not None:
        stop_process(worker.wsgi, finish=False)
