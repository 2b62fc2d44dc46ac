"""Scheduling work off the request. The scheduler knows nothing of what it runs: the caller hands
it a function registered with `@background` (or `@remote`), and its arguments.

`ANALYSIS_EXECUTOR` picks how: "thread" (a batched stream of threads in each web process, the
embedded default), "sync" (inside the request; for tests and one-off scripts) or "celery" (a
Celery task on the broker, run by `celery -A webapp.worker worker`; only the arguments travel).
Nothing outside this package calls Celery.
"""
import ast
import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any, Callable, Optional

from celery import current_task, shared_task
from celery.exceptions import TimeoutError as CeleryTimeout
from flask import Flask, current_app
from kombu.exceptions import OperationalError

from webapp.config import ConfigurationError
from webapp.errors import Refused
from webapp.extensions import db
from webapp.jobs.processes import CELERY_OWNER, stopping, worker_id

logger = logging.getLogger(__name__)

EXTENSION_KEY = "jobs"
EXECUTORS = ("thread", "sync", "celery")
PING_CACHE_SECONDS = 5.0
# Publishing to an unreachable broker fails after about a second instead of hanging the upload.
PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.3, "interval_max": 0.5}

ANSWER_SLICE_SECONDS = 0.5  # a caller waiting for a worker's answer looks this often whether its process stops


class QueueUnavailable(Refused):
    """The broker cannot be reached: nothing was queued."""

    kind = Refused.UNAVAILABLE


class NoAnswer(Refused):
    """A remote call was queued, but no worker answered in time."""

    kind = Refused.UNAVAILABLE


def background(name: str, stream: Optional[Callable[[Flask], Any]] = None):
    """Register a function as a background job, also the Celery task called `name` (on the
    `detect` queue, Celery's default here). Task names travel in broker messages: keep them.

    `stream`, when given, builds (once per app and process) what runs this function's jobs
    several at a time: an object with `submit(*args, redelivered=..., priority=...) ->
    Future` and `close()`. The thread executor submits to it, and so does each Celery task,
    which then waits for its job's Future (so the task is acknowledged once its work is done)."""
    def register(fn: Callable) -> Callable:
        fn.stream_factory = stream
        if stream is None:
            fn.celery_task = shared_task(name=name)(fn)
        else:
            def through_stream(*args):
                get_runner().stream(fn).submit(*args, redelivered=redelivered()).result()

            fn.celery_task = shared_task(name=name)(through_stream)
        return fn

    return register


def remote(name: str, queue: str):
    """Register a function that a web process calls on a Celery worker and waits for
    (`JobRunner.call`): its answer comes back through the result backend."""
    def register(fn: Callable) -> Callable:
        fn.celery_task = shared_task(name=name, ignore_result=False, acks_late=False)(fn)
        fn.queue = queue
        return fn

    return register


def redelivered() -> bool:
    """Whether the running Celery task is a redelivery (its first worker died or timed out)."""
    task = current_task
    return bool(task and task.request and (task.request.delivery_info or {}).get("redelivered"))


class JobRunner:
    def __init__(self, app: Flask):
        self.app = app
        self.mode = app.config["ANALYSIS_EXECUTOR"]
        if self.mode not in EXECUTORS:
            raise ConfigurationError(
                f"Configuration error: ANALYSIS_EXECUTOR must be one of {', '.join(EXECUTORS)}, "
                f"not {self.mode!r}."
            )
        self.celery = None
        if self.mode == "celery":
            from webapp.jobs.celery import celery_init_app  # Celery's app only where it is used

            self.celery = celery_init_app(app)
        self._executor: Optional[ThreadPoolExecutor] = None
        self._streams: dict[Callable, Any] = {}
        self._futures: set[Future] = set()
        self._lock = threading.Lock()
        self._ping_lock = threading.Lock()
        self._pinged_at, self._answering, self._pinging = float("-inf"), 0, False
        self._hosts: tuple[str, ...] = ()  # the host names of the workers that answered the last ping

    @property
    def in_process(self) -> bool:
        return self.mode != "celery"

    def queued_by(self) -> str:
        """Who owns work queued now: this process, or (Celery) the broker."""
        return worker_id() if self.in_process else CELERY_OWNER

    def running_as(self) -> str:
        """Who runs work started now, in this process."""
        return worker_id() if self.in_process else f"{CELERY_OWNER}:{worker_id()}"

    def submit(self, fn: Callable[..., Any], *args, priority: int = 0) -> Optional[Future]:
        """Run `fn(*args)` in an app context: now ("sync", returns None), on a worker thread
        (returns its Future), or as its Celery task (returns None; raises QueueUnavailable when
        the broker cannot be reached). `priority` (0 is the highest;
        see priorities.PRIORITIES) orders the jobs of a stream and the tasks on the broker:
        what waits longest within a priority runs first."""
        if self.mode == "celery":
            return self._publish(fn, args, priority)
        if self.mode == "sync":
            fn(*args)
            return None
        if getattr(fn, "stream_factory", None) is not None:
            future = self.stream(fn).submit(*args, priority=priority)
        else:
            with self._lock:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(
                        max_workers=self.app.config["DETECT_THREADS"], thread_name_prefix="job")
                future = self._executor.submit(self._run, fn, args)
        with self._lock:
            self._futures.add(future)
        future.add_done_callback(self._futures.discard)
        return future

    def call(self, fn: Callable[..., Any], *args, timeout: float) -> Any:
        """`fn(*args)`'s answer, from a Celery worker (a function registered with `@remote`),
        waited for at most `timeout` seconds; a message not taken by then expires. Raises
        QueueUnavailable (the broker is down) or NoAnswer."""
        try:
            pending = fn.celery_task.apply_async(args=args, queue=fn.queue, expires=timeout, retry=True,
                                                 retry_policy=PUBLISH_RETRY)
        except Exception as exc:  # noqa: BLE001 - the broker cannot be reached, however it says so
            raise QueueUnavailable("The detection queue cannot be reached right now. Please try again later.") \
                from exc
        deadline = time.monotonic() + timeout
        try:
            while True:  # in slices: a process that stops answers at once, not after `timeout`
                try:
                    return pending.get(timeout=max(0.01, min(ANSWER_SLICE_SECONDS, deadline - time.monotonic())),
                                       propagate=False)
                except CeleryTimeout:
                    if time.monotonic() < deadline and not stopping():
                        continue
                    raise
        except Exception as exc:  # noqa: BLE001 - celery's TimeoutError, or the result backend went away
            raise NoAnswer(f"No detection worker answered within {timeout:g} s. Please try again later.") from exc
        finally:
            pending.forget()

    def stream(self, fn: Callable[..., Any]):
        """This process's stream for a function registered with `background(stream=...)`."""
        with self._lock:
            if fn not in self._streams:
                self._streams[fn] = fn.stream_factory(self.app)
            return self._streams[fn]

    def close(self, finish: bool = True, timeout: Optional[float] = None) -> None:
        """Stop this process's streams and threads once their work is finished (`finish`), or
        once what they are doing now is (queued work then stays pending: see Stream.close)."""
        with self._lock:
            streams, self._streams = list(self._streams.values()), {}
            executor, self._executor = self._executor, None
        for stream in streams:
            stream.close(timeout=timeout, finish=finish)
        if executor is not None:
            executor.shutdown(wait=True)

    def _publish(self, fn: Callable[..., Any], args: tuple, priority: int = 0) -> None:
        try:
            fn.celery_task.apply_async(args=args, retry=True, retry_policy=PUBLISH_RETRY, priority=priority)
        except (OperationalError, ConnectionError, OSError) as exc:
            logger.error("Could not queue %s: %s", fn.__name__, exc)
            raise QueueUnavailable(str(exc)) from exc

    def check_broker(self) -> None:
        """Raise QueueUnavailable unless the broker answers (Celery mode; nothing otherwise)."""
        if self.celery is None:
            return
        try:
            with self.celery.connection_for_write() as connection:
                connection.ensure_connection(max_retries=1, interval_start=0, timeout=2)
        except (OperationalError, ConnectionError, OSError) as exc:
            raise QueueUnavailable(str(exc)) from exc

    def workers_answering(self, timeout: float = 1.0) -> int:
        """How many Celery workers answered a ping within `timeout` seconds. One ping at a time per
        process, its answer reused for PING_CACHE_SECONDS, so callers cannot pile pings up. A
        ping waits its whole timeout for answers, so only the first one is waited for here; later
        ones are sent from a thread while callers get the last answer (/healthz stays fast)."""
        if self.celery is None:
            return 0
        with self._ping_lock:
            if time.monotonic() - self._pinged_at <= PING_CACHE_SECONDS:
                return self._answering
            if self._pinged_at == float("-inf"):
                self._ping(timeout)
            elif not self._pinging:
                self._pinging = True
                threading.Thread(target=self._ping, args=(timeout,), daemon=True, name="worker-ping").start()
            return self._answering

    def answering_hosts(self) -> tuple[str, ...]:
        """The host names (`worker@HOST`) of the workers that answered the last ping."""
        return self._hosts

    def _ping(self, timeout: float) -> None:
        try:
            replies = self.celery.control.ping(timeout=timeout) or []
        except Exception:  # noqa: BLE001 - the broker went away: no worker can be reached
            logger.warning("Could not ping the workers", exc_info=True)
            replies = []
        self._hosts = tuple(name.partition("@")[2] for reply in replies for name in reply)
        self._answering, self._pinged_at, self._pinging = len(replies), time.monotonic(), False

    def waiting_count(self, keys: list[str]) -> Optional[int]:
        """Tasks waiting in these queues on the broker (not yet delivered to a worker)."""
        if self.celery is None:
            return None
        with self.celery.connection_for_write() as connection:
            client = connection.default_channel.client
            return sum(int(client.llen(key)) for key in keys)

    def unacknowledged_count(self) -> Optional[int]:
        """Tasks delivered to workers, live or dead, and not yet acknowledged."""
        if self.celery is None:
            return None
        with self.celery.connection_for_write() as connection:
            return int(connection.default_channel.client.hlen("unacked"))

    def held_by_workers(self, task: str, timeout: float = 1.0) -> Optional[set]:
        """The first arguments of the `task` tasks that the workers answering within `timeout`
        have fetched (reserved) or are running (active): what a live worker holds, unlike the
        broker's unacknowledged messages, which also count a dead worker's until the visibility
        timeout. None when the workers cannot be asked."""
        if self.celery is None:
            return None
        try:
            inspect = self.celery.control.inspect(timeout=timeout)
            replies = [inspect.reserved() or {}, inspect.active() or {}]
        except Exception:  # noqa: BLE001 - the broker went away
            logger.warning("Could not ask the workers what they hold", exc_info=True)
            return None
        held = set()
        for reply in replies:
            for requests in reply.values():
                for request in requests:
                    args = request.get("args")
                    if isinstance(args, str):  # a repr, as some Celery versions report it
                        args = ast.literal_eval(args)
                    if request.get("name") == task and args:
                        held.add(args[0])
        return held

    def _run(self, fn: Callable[..., Any], args: tuple) -> None:
        with self.app.app_context():
            try:
                fn(*args)
            except Exception:
                logger.exception("Background job %s failed", getattr(fn, "__name__", fn))
            finally:
                db.session.remove()

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Block until every job queued in this process has finished; False if `timeout` ran out."""
        _, not_done = wait(list(self._futures), timeout=timeout)
        return not not_done


def init_app(app: Flask) -> None:
    app.extensions[EXTENSION_KEY] = JobRunner(app)


def get_runner(app: Optional[Flask] = None) -> JobRunner:
    return (app or current_app).extensions[EXTENSION_KEY]
