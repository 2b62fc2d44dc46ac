"""Who owns a job: the process that queued or runs it, named host:pid:start-time (the start
time tells a reused pid from the original), so a process that starts can tell which work a
dead one left behind."""
import logging
import os
import socket
import threading
from typing import Callable, Optional

import psutil

logger = logging.getLogger(__name__)

CELERY_OWNER = "celery"  # the `worker` of a run queued on the broker; "celery:<id>" while a worker runs it


def worker_id(pid: Optional[int] = None) -> str:
    """host:pid:start-time of a process (this one by default)."""
    process = psutil.Process(pid or os.getpid())
    return f"{socket.gethostname()}:{process.pid}:{int(process.create_time())}"


def process_state(worker: str) -> str:
    """"alive" or "dead" for a process of this host named by `worker_id` (with or without the
    "celery:" prefix); "unknown" for another host's, which this one cannot see."""
    ident = worker.removeprefix(f"{CELERY_OWNER}:")
    host, pid, _ = (ident.rsplit(":", 2) + ["", ""])[:3]
    if host != socket.gethostname():
        return "unknown"
    try:
        return "alive" if worker_id(int(pid)) == ident else "dead"
    except (ValueError, psutil.Error):
        return "dead"


def is_alive(worker: str) -> bool:
    """Whether the process may still run: not known to be dead (another host's is assumed alive)."""
    return process_state(worker) != "dead"


_stop_check: Optional[Callable[[], bool]] = None  # set by stop_when


def stop_when(check: Callable[[], bool]) -> None:
    """Tell `stopping` how to know that this process is stopping (gunicorn.conf.py: its worker is
    no longer `alive`, after `max_requests` or a SIGTERM)."""
    global _stop_check
    _stop_check = check


def stopping() -> bool:
    """Whether this process is on its way out: a request waiting for work (`?wait=true`) answers
    with what it has, so the process's graceful stop is not held by it."""
    return _stop_check is not None and _stop_check()


def yield_cpu(nice: int) -> None:
    """Run the calling thread (and the threads it starts from now on) at `nice`, unless it runs
    at that or lower already: detection, decoding and drawing are batch work, and the scheduler
    then serves requests first when both want the CPU (Linux gives each thread its own nice
    value). Never raises: where it cannot be changed, the thread keeps its priority."""
    if nice <= 0:
        return
    try:
        thread = threading.get_native_id()
        if os.getpriority(os.PRIO_PROCESS, thread) < nice:
            os.setpriority(os.PRIO_PROCESS, thread, min(19, nice))
    except (AttributeError, OSError) as exc:  # not Linux, or not allowed
        logger.debug("Could not lower this thread's priority: %s", exc)
