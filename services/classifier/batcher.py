"""Dynamic batching: concurrent requests are gathered into one ONNX Runtime run.

A batch closes when it holds `max_batch_size` rows or `max_wait_s` after its
first request arrived, whichever comes first, and at once when no other
request is on its way: requests still being decoded are `announce()`d, and
waiting for more makes sense only while some are (a lone request would
otherwise pay the whole window for nothing). The queue is bounded
(`QueueFull` instead of unbounded memory) and each request has a deadline
(`InferenceTimeout`); a request that gave up is skipped, never run. The
session runs on one dedicated thread, so the event loop keeps accepting and
preprocessing requests while a batch computes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from services.classifier.metrics import WorkerMetrics


class BatcherError(RuntimeError):
    """Base of the batcher's refusals."""


class QueueFull(BatcherError):
    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"classifier queue is full; retry in {retry_after_s} s")
        self.retry_after_s = retry_after_s


class InferenceTimeout(BatcherError):
    pass


class InferenceFailed(BatcherError):
    pass


@dataclass
class _Job:
    rows: np.ndarray
    future: asyncio.Future[np.ndarray]
    queued_at: float = field(default_factory=time.perf_counter)


class DynamicBatcher:
    def __init__(
        self,
        run: Callable[[np.ndarray], np.ndarray],
        metrics: WorkerMetrics,
        *,
        max_batch_size: int,
        max_wait_s: float,
        max_queue: int,
        timeout_s: float,
    ) -> None:
        self._run = run
        self._metrics = metrics
        self._max_batch_size = max_batch_size
        self._max_wait_s = max_wait_s
        self._max_queue = max_queue
        self._timeout_s = timeout_s
        self._pending: deque[_Job] = deque()
        self._pending_rows = 0
        self._arrived = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="onnxruntime")
        self._task: asyncio.Task[None] | None = None
        self._announced = 0
        self.last_success: float | None = None  # monotonic time of the last request answered

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        self._task = asyncio.create_task(self._serve(), name="dynamic-batcher")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for job in self._pending:
            if not job.future.done():
                job.future.set_exception(InferenceFailed("worker is shutting down"))
        self._executor.shutdown(wait=True)

    @contextlib.contextmanager
    def announce(self) -> Iterator[None]:
        """Mark a request that is being prepared and will be submitted soon."""
        self._announced += 1
        try:
            yield
        finally:
            self._announced -= 1
            self._arrived.set()  # the collector re-checks whether anything is still on its way

    async def submit(self, rows: np.ndarray) -> np.ndarray:
        """Raw outputs for `rows` (a batch of one or more preprocessed images)."""
        started = time.perf_counter()
        try:
            outputs = await self._queued(rows)
        except BatcherError:
            self._metrics.statistics.request_done(time.perf_counter() - started, ok=False)
            raise
        self._metrics.statistics.request_done(time.perf_counter() - started, ok=True)
        self.last_success = time.monotonic()
        return outputs

    async def _queued(self, rows: np.ndarray) -> np.ndarray:
        if len(self._pending) >= self._max_queue:
            self._metrics.rejected.labels("queue_full").inc()
            raise QueueFull(retry_after_s=max(1, round(self._max_wait_s + self._timeout_s / 10)))
        job = _Job(rows, asyncio.get_running_loop().create_future())
        self._pending.append(job)
        self._pending_rows += len(rows)
        self._metrics.queue_depth.set(len(self._pending))
        self._arrived.set()
        try:
            return await asyncio.wait_for(asyncio.shield(job.future), self._timeout_s)
        except TimeoutError:
            job.future.cancel()  # the collector skips it
            self._metrics.rejected.labels("timeout").inc()
            raise InferenceTimeout(f"no result within {self._timeout_s:g} s") from None

    async def _wait_for_arrival(self, timeout_s: float | None) -> None:
        self._arrived.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._arrived.wait(), timeout_s)

    async def _collect(self) -> list[_Job]:
        while not self._pending:
            await self._wait_for_arrival(None)
        deadline = time.monotonic() + self._max_wait_s
        while (
            self._announced > 0 and self._pending_rows < self._max_batch_size and (remaining := deadline - time.monotonic()) > 0
        ):
            await self._wait_for_arrival(remaining)
        jobs = [self._pending.popleft()]
        rows = len(jobs[0].rows)
        while self._pending and rows + len(self._pending[0].rows) <= self._max_batch_size:
            jobs.append(self._pending.popleft())
            rows += len(jobs[-1].rows)
        self._pending_rows -= rows
        self._metrics.queue_depth.set(len(self._pending))
        return [job for job in jobs if not job.future.done()]

    def _timed_run(self, batch: np.ndarray) -> tuple[np.ndarray, float]:
        started = time.perf_counter()
        outputs = self._run(batch)
        return outputs, time.perf_counter() - started

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = await self._collect()
            if not jobs:
                continue
            batch = np.concatenate([job.rows for job in jobs]) if len(jobs) > 1 else jobs[0].rows
            started = time.perf_counter()
            try:
                outputs, seconds = await loop.run_in_executor(self._executor, self._timed_run, batch)
            except Exception as error:  # noqa: BLE001 - one bad batch must not stop the worker
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(InferenceFailed(f"ONNX Runtime failed: {error}"))
                continue
            self._metrics.record_run(len(batch), [started - job.queued_at for job in jobs], seconds)
            offsets = np.cumsum([len(job.rows) for job in jobs])[:-1]
            for job, result in zip(jobs, np.split(outputs, offsets), strict=True):
                if not job.future.done():
                    job.future.set_result(result)
