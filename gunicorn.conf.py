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
    """Each worker, once started, queues again the analyses left unfinished by dead processes
    of this host (a worker killed mid-analysis, or replaced after `max_requests`, is replaced by
    one that takes over its queue; see pipeline.recover_interrupted); where it detects
    itself (the thread executor) it loads and warms a model already on disk, so the first photo
    does not wait for it (a model still to be downloaded is fetched by the detection thread when
    the first photo comes)."""
    from pathlib import Path

    from webapp import detection
    from webapp.analyses.batching import batch_size
    from webapp.analyses.pipeline import recover_interrupted
    from webapp.vision.detector import ModelUnavailable

    from webapp.deepstack import sweep_temp

    with worker.wsgi.app_context():
        recover_interrupted(requeue=True)
        sweep_temp()
        if detection.runs_here():
            detector = detection.get_detector()
            if Path(detector.settings.model).exists():
                try:
                    detector.load()
                    detector.warm_up(batch_size(worker.wsgi, load=True))
                except ModelUnavailable as exc:
                    worker.log.error("Detection is unavailable: %s", exc)


def worker_exit(server, worker):
    """A worker that stops finishes the analyses it is detecting and leaves the queued ones
    pending (the next worker's start-up queues them again), rather than being torn down
    mid-prediction."""
    from webapp.jobs import get_runner

    if getattr(worker, "wsgi", None) is not None:
        get_runner(worker.wsgi).close(finish=False, timeout=20)
