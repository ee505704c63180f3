"""Server-side batching of concurrent Predict requests, with TF Serving's batching parameters.

Concurrent requests for the same model version and signature are concatenated along axis 0,
run as one call, and the outputs are split back by each request's row count. Only requests
whose inputs have *identical inner shapes* (every dimension but the first) and dtypes share a
batch: padding id matrices to the widest request would be exact for ``history``/``candidates``
of the news signatures (``""`` is padding there) but is not something the server can know about
an arbitrary signature, so it never pads (TF Serving's ``pad_variable_length_inputs: false``,
its default). Clients that pad to fixed widths (the typed client does) batch fully.

A batch runs when it holds ``max_batch_size`` rows or its oldest request has waited
``batch_timeout_micros``. The default timeout is 0: a request runs as soon as a batch thread is
free, and requests that arrive while both threads are busy form the next batch, so batches
grow with load without adding latency when the server is idle (a 1 ms timeout added 1.7 ms to the
median latency at concurrency 1 on the 2-core machine, docs/benchmarks.md); at most ``max_enqueued_batches × max_batch_size`` rows wait at once,
beyond which a request is refused (RESOURCE_EXHAUSTED) instead of queueing without bound.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import Future

import numpy as np

Arrays = dict[str, np.ndarray]
RunFn = Callable[[Arrays], Arrays]


@dataclasses.dataclass(frozen=True)
class BatchingConfig:
    """TF Serving's ``--batching_parameters_file`` fields (same names and meaning).

    Attributes:
        max_batch_size: most rows (sum of requests' first dimensions) in one batch.
        batch_timeout_micros: longest a request waits for others to join its batch.
        max_enqueued_batches: queue bound, in batches of ``max_batch_size`` rows.
        num_batch_threads: batches run in parallel (the machine's cores).
    """

    max_batch_size: int = 32
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 64
    num_batch_threads: int = 2

    def validate(self) -> None:
        for field in dataclasses.fields(self):
            minimum = 0 if field.name == "batch_timeout_micros" else 1
            if getattr(self, field.name) < minimum:
                raise ValueError(f"batching: {field.name} must be >= {minimum}, got {getattr(self, field.name)}")


class QueueFull(RuntimeError):
    """The batching queue is at its bound (gRPC RESOURCE_EXHAUSTED)."""


@dataclasses.dataclass
class _Task:
    inputs: Arrays
    rows: int
    enqueued: float
    future: Future


@dataclasses.dataclass
class _Queue:
    run: RunFn
    tasks: list[_Task] = dataclasses.field(default_factory=list)
    rows: int = 0


class Batcher:
    """Groups tasks by key (servable, signature, inner shapes) and runs them in batches."""

    def __init__(self, config: BatchingConfig):
        config.validate()
        self.config = config
        self._timeout_s = config.batch_timeout_micros / 1e6
        self._max_rows = config.max_enqueued_batches * config.max_batch_size
        self._queues: dict[Hashable, _Queue] = {}
        self._rows = 0
        self._cv = threading.Condition()
        self._closed = False
        self._threads = [threading.Thread(target=self._work, name=f"batch-{i}", daemon=True)
                         for i in range(config.num_batch_threads)]
        for t in self._threads:
            t.start()

    @staticmethod
    def key(servable_key: Hashable, inputs: Arrays) -> Hashable:
        """Requests with equal keys can be concatenated without changing any result."""
        return servable_key, tuple(sorted((k, v.dtype.str, v.shape[1:]) for k, v in inputs.items()))

    def submit(self, key: Hashable, run: RunFn, inputs: Arrays, rows: int) -> Future:
        """Queues one request's inputs (all with first dimension `rows`); the future gets its outputs."""
        task = _Task(inputs, rows, time.monotonic(), Future())
        with self._cv:
            if self._closed:
                raise QueueFull("the server is shutting down")
            if self._rows and self._rows + rows > self._max_rows:  # an empty queue takes any request
                raise QueueFull(f"batching queue full ({self._rows} rows waiting, bound {self._max_rows})")
            queue = self._queues.setdefault(key, _Queue(run))
            queue.tasks.append(task)
            queue.rows += rows
            self._rows += rows
            self._cv.notify()
        return task.future

    def close(self) -> None:
        """Runs what is queued, then stops the batch threads."""
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        for t in self._threads:
            t.join()

    def _take(self) -> tuple[_Queue, list[_Task]] | None:
        """Waits for a batch that is full or timed out (or anything, when closing)."""
        with self._cv:
            while True:
                now = time.monotonic()
                wait = None
                for key, queue in list(self._queues.items()):
                    if not queue.tasks:
                        del self._queues[key]
                        continue
                    due = queue.tasks[0].enqueued + self._timeout_s
                    if queue.rows >= self.config.max_batch_size or due <= now or self._closed:
                        return queue, self._pop(queue)
                    wait = due - now if wait is None else min(wait, due - now)
                if self._closed:
                    return None
                self._cv.wait(wait)

    def _pop(self, queue: _Queue) -> list[_Task]:
        """Up to max_batch_size rows from the queue's head (a larger single request runs alone)."""
        taken, rows = [], 0
        while queue.tasks and (not taken or rows + queue.tasks[0].rows <= self.config.max_batch_size):
            task = queue.tasks.pop(0)
            taken.append(task)
            rows += task.rows
        queue.rows -= rows
        self._rows -= rows
        return taken

    def _work(self) -> None:
        while (batch := self._take()) is not None:
            queue, tasks = batch
            _run_batch(queue.run, tasks)


def _run_batch(run: RunFn, tasks: list[_Task]) -> None:
    """Runs the tasks as one call and splits the outputs back by rows.

    If the batched call fails, or an output is not batch-major (its first dimension is not the
    total rows), each task runs alone, so one bad request fails only itself."""
    live = [t for t in tasks if t.future.set_running_or_notify_cancel()]
    if len(live) > 1:
        total = sum(t.rows for t in live)
        try:
            outputs = run({k: np.concatenate([t.inputs[k] for t in live]) for k in live[0].inputs})
        except Exception:  # noqa: BLE001 — retried per task below, where the error is reported
            outputs = None
        if outputs is not None and all(np.ndim(v) > 0 and len(v) == total for v in outputs.values()):
            start = 0
            for t in live:
                t.future.set_result({k: v[start:start + t.rows] for k, v in outputs.items()})
                start += t.rows
            return
    for t in live:
        try:
            t.future.set_result(run(t.inputs))
        except Exception as err:  # noqa: BLE001 — delivered to the waiting request
            t.future.set_exception(err)
