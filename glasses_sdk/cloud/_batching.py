"""Dynamic batching: concurrent requests for one model share one model call.

The first item to arrive opens a batch; the batch closes when it holds
``max_batch_size`` items or ``max_wait_ms`` has passed, whichever comes first, and runs
as one call on the work queue (one queue slot, one thread hand-off), until the latest
of its items' deadlines; an item whose own deadline has passed by then gets its 504.
With ``batching = false`` the server skips the batcher and each request is one call.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from glasses_sdk._exceptions import DeadlineExceededError
from glasses_sdk.cloud._limits import Deadline, WorkQueue
from glasses_sdk.cloud._metrics import Metrics

__all__ = ["Batcher"]

In = TypeVar("In")
Out = TypeVar("Out")


@dataclass
class _Item(Generic[In, Out]):
    value: In
    deadline: Deadline
    future: asyncio.Future[Out]


class Batcher(Generic[In, Out]):
    """Collects items into batches for ``run_batch(items, deadline) -> outputs``."""

    def __init__(
        self,
        run_batch: Callable[[Sequence[In], Deadline], list[Out]],
        queue: WorkQueue,
        *,
        task: str,
        max_batch_size: int,
        max_wait_ms: float,
        metrics: Metrics | None = None,
    ) -> None:
        """``run_batch`` runs on a model thread and returns one output per item."""
        self._run_batch = run_batch
        self._queue = queue
        self.task = task
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_ms / 1000.0
        self._metrics = metrics
        self._pending: list[_Item[In, Out]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, value: In, deadline: Deadline) -> Out:
        """Add one item and wait for its output (errors of its batch are raised here)."""
        loop = asyncio.get_running_loop()
        item: _Item[In, Out] = _Item(value, deadline, loop.create_future())
        self._pending.append(item)
        if len(self._pending) >= self.max_batch_size:
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_later(self.max_wait_s, self._flush)
        return await item.future

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending = self._pending, []
        if batch:
            task = asyncio.get_running_loop().create_task(self._run(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[_Item[In, Out]]) -> None:
        # The batch runs until its latest item's deadline; an item whose own deadline
        # passed gets its 504 alone, so that one hurried client cannot fail the others.
        times = [i.deadline.at_s for i in batch]
        deadline = Deadline(None if None in times else max(t for t in times if t is not None))
        values = [i.value for i in batch]

        def call(d: Deadline) -> tuple[list[Out], float]:
            start = time.perf_counter()
            outputs = self._run_batch(values, d)
            return outputs, time.perf_counter() - start

        try:
            outputs, seconds = await self._queue.run(call, deadline, self.task)
        except Exception as exc:
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(exc)
            return
        if self._metrics is not None:
            self._metrics.batch_size.labels(self.task).observe(len(batch))
            self._metrics.model_latency.labels(self.task).observe(seconds)
        for item, output in zip(batch, outputs, strict=True):
            if item.future.done():
                continue
            if item.deadline.expired():
                item.future.set_exception(
                    DeadlineExceededError(f"the request's deadline passed during {self.task}")
                )
            else:
                item.future.set_result(output)
