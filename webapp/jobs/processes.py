"""Who owns a job: the process that queued or runs it, named host:pid:start-time (the start
time tells a reused pid from the original), so a process that starts can tell which work a
dead one left behind."""
import os
import socket
from typing import Optional

import psutil

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
