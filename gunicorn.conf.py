"""gunicorn settings read from the project folder (`gunicorn wsgi:app`, `make serve`, the container).
Command-line options given as well win over these."""
import threading

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
    warms a model already on disk, so the first photo does not wait for it. Requests waiting for
    runs (`?wait=true`) learn when the worker stops, and answer with what they have."""
    from webapp.jobs.lifecycle import start_process
    from webapp.jobs.processes import stop_when

    stop_when(lambda: not worker.alive)  # past max_requests, or told to stop: waiting requests answer
    start_process(worker.wsgi)
    worker.wsgi.wsgi_app = CloseUnreadBodies(worker.wsgi.wsgi_app)


# ---- a request answered without reading its body closes its connection ----
#
# An answer given before the body is read (401 for a forged credential, 413, a redirect) leaves
# the body on the connection. gunicorn answers `Connection: keep-alive`, then drains at most 64 KB
# and closes when there is more: a proxy that pools its connections to gunicorn (nginx's
# `keepalive`) sends the next request, someone else's, on a connection that is closing, and that
# client gets a 502. So such an answer says `Connection: close` (gunicorn's own flag on the
# request, set before the answer's headers go out) and no one reuses the connection.

_handling = threading.local()  # the gunicorn request this thread is serving (gthread: one per thread)


def pre_request(worker, req):
    _handling.request = req


class _CountingInput:
    """wsgi.input, counting what the app read of it and whether it read to the end."""

    def __init__(self, stream):
        self._stream, self.read_bytes, self.at_end = stream, 0, False

    def _seen(self, data: bytes, to_the_end: bool = False) -> bytes:
        self.read_bytes += len(data)
        self.at_end = self.at_end or to_the_end or not data
        return data

    def read(self, size=None):
        whole = size is None or size < 0
        return self._seen(self._stream.read() if whole else self._stream.read(size), to_the_end=whole)

    def readline(self, size=None):
        return self._seen(self._stream.readline() if size is None else self._stream.readline(size))

    def readlines(self, hint=None):
        return list(iter(self.readline, b""))

    def __iter__(self):
        return iter(self.readline, b"")


class CloseUnreadBodies:
    """WSGI middleware: after the app has answered, a request whose body it did not read to the
    end is marked to close (`Connection: close`)."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        body = _CountingInput(environ["wsgi.input"])
        environ["wsgi.input"] = body
        answer = self.app(environ, start_response)
        try:
            expected = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            expected = 0
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        request = getattr(_handling, "request", None)
        if request is not None and (body.read_bytes < expected or (chunked and not body.at_end)):
            request.must_close = True
        return answer


def worker_exit(server, worker):
    """A worker that stops finishes the runs it is detecting and leaves the queued ones pending
    (the next worker's start-up queues them again), rather than being torn down mid-prediction."""
    from webapp.jobs.lifecycle import stop_process

    if getattr(worker, "wsgi", None) is not None:
        stop_process(worker.wsgi, finish=False)
