"""Runs several at a time, their stages overlapped: the stream that runs `pipeline`'s stages in
threads, for the embedded thread executor and for each Celery worker process alike.

    submit(id) ─▶ [ids] ─▶ prepare ×T ─▶ [ready ≤ 2B] ─▶ detect ×1 ─▶ [drawn ≤ 2B] ─▶ render ×T
                                                                                     │
                                                 futures resolved ◀─ store ×1 ◀─ [done ≤ 2B]

[ids] is taken by priority (then first come): see priorities.py.
B is DETECT_BATCH, T is DETECT_THREADS. Only ids queue without bound: an upload stores the photo
as sent and passes its id; prepare reads and decodes it (and makes a new photo's thumbnail and
rendition), so pixels are held by a bounded number of jobs: the stage queues and threads. The
detect stage takes whatever is ready, up to B; it waits up to DETECT_BATCH_WAIT_MS for more only
while more is being prepared, so a single photo on an idle system starts at once. The store stage
writes each prediction's batch in one transaction (one INSERT of detections, one commit) once all
of it is drawn.
"""
import itertools
import logging
import os
import queue
import threading
import time
from concurrent.futures import Future
from typing import Optional

from flask import Flask

from webapp.detection.registry import get_detector
from webapp.extensions import db
from webapp.jobs import pipeline
from webapp.jobs.processes import yield_cpu
from webapp.vision.detector import ModelUnavailable, resolve_device

logger = logging.getLogger(__name__)

_STOP = object()
_LAST = float("inf")  # the priority of a stop: after every job queued before it


def batch_size(app: Flask, load: bool = False) -> int:
    """DETECT_BATCH, or when it is 0: 32 on a CUDA device; on the CPU, as many photos as the
    model predicts at once (its OpenVINO streams; else 1: a larger batch is no faster there, see
    bench/RESULTS.md). That is known once the model is loaded (`load` loads it; 1 when it cannot
    be); before, the most it can be: min(4, CPUs)."""
    if app.config["DETECT_BATCH"] > 0:
        return app.config["DETECT_BATCH"]
    detector = get_detector(app)
    if resolve_device(detector.settings.device).startswith("cuda"):
        return 32
    if load and not detector.loaded:
        try:
            detector.load()
        except ModelUnavailable:
            return 1
    return detector.lanes if detector.loaded else max(1, min(4, os.cpu_count() or 1))


class Stream:
    def __init__(self, app: Flask):
        config = app.config
        self.app = app
        self.batch = max(1, config["DETECT_BATCH"])  # until the detect thread knows (see _resolve_batch)
        self._batch_known = config["DETECT_BATCH"] > 0
        self.wait = max(0.0, config["DETECT_BATCH_WAIT_MS"] / 1000)
        self.threads = max(1, config["DETECT_THREADS"])
        # (priority, order, (id, redelivered, future)): lowest priority first, then first come
        self._ids: queue.PriorityQueue = queue.PriorityQueue()
        self._order = itertools.count()
        self._ready: queue.Queue = queue.Queue(maxsize=2 * self.batch)
        self._drawn: queue.Queue = queue.Queue(maxsize=2 * self.batch)
        self._done: queue.Queue = queue.Queue(maxsize=2 * self.batch)
        self._preparing = 0  # jobs taken off `_ids` and not yet `ready`
        self._holding = 0  # jobs holding decoded pixels, anywhere in the stream
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._started = False
        self._closed = False
        self.batches: list[int] = []  # sizes of the last predictions (for tests and benchmarks)

    # ---- what callers see ----

    def submit(self, run_id: int, redelivered: bool = False, priority: int = 0) -> Future:
        """Queue the run; the Future is resolved once it is stored (done or failed). Lower
        `priority` values are taken first (see priorities.py), each in the order queued."""
        if self._closed:
            raise RuntimeError("this stream is closed")
        self._start()
        future: Future = Future()
        self._ids.put((priority, next(self._order), (run_id, redelivered, future)))
        return future

    def held_images(self) -> int:
        """How many runs in the stream hold decoded pixels now."""
        return self._holding

    def pixel_bound(self) -> int:
        """The most runs that can hold decoded pixels at once (see the module's diagram)."""
        queues = self._ready.maxsize + self._drawn.maxsize
        return queues + 2 * self.threads + self.batch

    def close(self, timeout: Optional[float] = None, finish: bool = True) -> None:
        """Stop the threads once what was submitted is finished (`finish`), or once what they
        hold is: runs still queued then stay `pending` (start-up recovery marks them
        interrupted, retryable) and their Futures are resolved."""
        if self._closed:
            return
        self._closed = True
        if not self._started:
            return
        if not finish:
            while True:
                try:
                    item = self._ids.get_nowait()[2]
                except queue.Empty:
                    break
                if item is _STOP:
                    continue
                item[-1].set_result(None)
        for _ in range(self.threads):
            self._ids.put((_LAST, next(self._order), _STOP))
        for thread in self._threads:
            thread.join(timeout)

    # ---- the stages ----

    def _start(self) -> None:
        with self._lock:
            if self._started:
                return
            self._started = True
            self._live = {"prepare": self.threads, "render": self.threads}
            stages = [(self._prepare, self.threads), (self._detect, 1), (self._render, self.threads), (self._store, 1)]
            for target, count in stages:
                for i in range(count):
                    thread = threading.Thread(target=self._in_context, args=(target,), daemon=True,
                                              name=f"run-{target.__name__.strip('_')}-{i}")
                    thread.start()
                    self._threads.append(thread)

    def _in_context(self, stage) -> None:
        yield_cpu(self.app.config["DETECT_NICE"])  # requests first, where they share the CPU
        with self.app.app_context():
            try:
                stage()
            finally:
                db.session.remove()

    def _hold(self, change: int) -> None:
        with self._lock:
            self._holding += change

    def _prepare(self) -> None:
        while True:
            item = self._ids.get()[2]
            if item is _STOP:
                break
            run_id, redelivered, future = item
            with self._lock:
                self._preparing += 1
            self._hold(+1)  # read from storage now
            try:
                work = pipeline.prepare(run_id, redelivered)
            except Exception as exc:  # noqa: BLE001 - e.g. the database is down: resolve, never hang
                logger.exception("Could not start run %s", run_id)
                work = pipeline.Work(run_id, skipped=True)
                future.set_exception(exc)
            finally:
                db.session.remove()
            if work.image is None:
                self._hold(-1)
            if work.skipped:
                if not future.done():
                    future.set_result(None)
                with self._lock:
                    self._preparing -= 1
                continue
            self._ready.put((work, future))
            with self._lock:
                self._preparing -= 1
        self._stage_done("prepare", self._ready)

    def _stage_done(self, stage: str, downstream: queue.Queue) -> None:
        """A thread of `stage` stopped; the last one tells the next stage to stop."""
        with self._lock:
            self._live[stage] -= 1
            last = self._live[stage] == 0
        if last:
            downstream.put(_STOP)

    def _upstream_busy(self) -> bool:
        return self._preparing > 0 or not self._ids.empty()

    def _resolve_batch(self) -> None:
        """DETECT_BATCH=0 depends on the loaded model: load it here, in this stage's thread, not
        in the request that submitted the first photo; again later while it cannot be loaded."""
        if self._batch_known:
            return
        self.batch = batch_size(self.app, load=True)
        for stage_queue in (self._ready, self._drawn, self._done):
            stage_queue.maxsize = 2 * self.batch
        self._batch_known = get_detector(self.app).loaded

    def _detect(self) -> None:
        number = 0
        while True:
            first = self._ready.get()
            if first is _STOP:
                break
            self._resolve_batch()
            batch, stop = [first], False
            deadline = time.monotonic() + self.wait
            while len(batch) < self.batch:
                try:
                    item = self._ready.get_nowait()
                except queue.Empty:
                    left = deadline - time.monotonic()
                    if left <= 0 or not self._upstream_busy():
                        break
                    try:
                        item = self._ready.get(timeout=left)
                    except queue.Empty:
                        break
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)
            try:
                pipeline.detect([work for work, _ in batch])
            except Exception as exc:  # noqa: BLE001 - detect() fails jobs, not itself; belt and braces
                logger.exception("A batch of %d failed", len(batch))
                for work, _ in batch:
                    pipeline.failed(work, exc)
            self.batches = (self.batches + [len(batch)])[-1000:]
            logger.debug("Detected a batch of %d", len(batch))
            number += 1
            for item in batch:
                item[0].batch = (number, len(batch))
                self._drawn.put(item)
            if stop:
                break
        for _ in range(self.threads):
            self._drawn.put(_STOP)

    def _render(self) -> None:
        while True:
            item = self._drawn.get()
            if item is _STOP:
                break
            work, future = item
            held = work.image is not None
            pipeline.render(work)
            if held:
                self._hold(-1)
            self._done.put(item)
        self._stage_done("render", self._done)

    def _store(self) -> None:
        """Stores each prediction's batch as a whole, once all of it is drawn: one transaction."""
        waiting: dict[int, list] = {}
        while True:
            item = self._done.get()
            if item is _STOP:
                break
            number, size = item[0].batch
            waiting.setdefault(number, []).append(item)
            if len(waiting[number]) < size:
                continue
            batch = waiting.pop(number)
            try:
                pipeline.store([work for work, _ in batch])
                error = None
            except Exception as exc:  # noqa: BLE001 - the database went away: say so, never hang
                logger.exception("Could not store %d runs", len(batch))
                error = exc
            finally:
                db.session.remove()
            for _, future in batch:
                if error is None:
                    future.set_result(None)
                else:
                    future.set_exception(error)
