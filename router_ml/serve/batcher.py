"""Micro-batching: concurrent routing requests planned together in one embedding and head call.

Each request thread hands its (already validated) prompts to the batcher and waits. One
planner thread takes the first waiting request, then keeps collecting for at most
`max_wait_s` (2 ms by default) while more requests are known to be on their way (the
service counts the requests inside `route`), up to `max_prompts`, and plans them all with
one call: one embedding of every prompt, one head call, then each request's own target,
rules and cascade (router_ml.policy.cascade.make_plans). A lone request is not held back:
with nothing else in flight it is planned at once.

Why: the transformer backends embed a batch far faster per prompt than one prompt at a
time (ONNX: about ten times on short prompts), so under load the service does less work
per request instead of queueing more; for the static backend the gain is the fixed cost
of a call shared across requests.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Job:
    prompts: list[str]
    quality_target: float | None
    metadata: dict
    done: threading.Event = field(default_factory=threading.Event)
    result: object = None
    error: BaseException | None = None
    future: object = None  # submit_async: an asyncio future, resolved on its loop
    restrict: tuple | None = None  # (label, models): a request-level restriction (a catalog alias)
    size: int | None = None  # the whole request's characters, when the prompt is a part of it (rules' token counts)


class Batcher:
    """Plans jobs in batches with `plan_batch(jobs) -> [result per job]` on one thread."""

    def __init__(self, plan_batch: Callable[[list[Job]], list], in_flight: Callable[[], int],
                 max_wait_s: float = 0.002, max_prompts: int = 256) -> None:
        self.plan_batch = plan_batch
        self.in_flight = in_flight
        self.max_wait_s = max_wait_s
        self.max_prompts = max_prompts
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._stop = False
        self.batches = 0
        self.jobs = 0
        self._thread = threading.Thread(target=self._run, name="router-ml-batcher", daemon=True)
        self._thread.start()

    def submit(self, job: Job):
        """Plan `job` with whatever else is waiting; blocks until it is planned."""
        if self._stop:  # closing: no planner thread any more, plan it here
            return self.plan_batch([job])[0]
        self._queue.put(job)
        job.done.wait()
        if job.error is not None:
            raise job.error
        return job.result

    async def submit_async(self, job: Job):
        """`submit` for a request on an event loop: awaits the batch without holding a thread."""
        import asyncio

        loop = asyncio.get_running_loop()
        if self._stop:
            return self.plan_batch([job])[0]
        job.future = loop.create_future()
        self._queue.put(job)
        return await job.future

    def _collect(self) -> list[Job]:
        first = self._queue.get()
        if first is None:
            return []
        batch = [first]
        prompts = len(batch[0].prompts)
        deadline = time.monotonic() + self.max_wait_s
        while prompts < self.max_prompts:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or len(batch) >= self.in_flight():
                    break  # nothing else is on its way (or the wait is over)
                try:
                    job = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
            if job is None:
                self._queue.put(None)  # close(): stop after this batch
                break
            batch.append(job)
            prompts += len(job.prompts)
        return batch

    def _run(self) -> None:
        while not self._stop:
            batch = self._collect()
            if batch:
                self._plan(batch)
        while True:  # jobs that slipped in behind close()
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return
            if job is not None:
                self._plan([job])

    def _plan(self, batch: list[Job]) -> None:
        try:
            results = self.plan_batch(batch)
            for job, result in zip(batch, results):
                job.result = result
        except BaseException as exc:  # noqa: BLE001 - handed to every waiting request, none hangs
            for job in batch:
                job.error = exc
        self.batches += 1
        self.jobs += len(batch)
        waiting: dict = {}
        for job in batch:
            if job.future is None:
                job.done.set()
            else:
                waiting.setdefault(job.future.get_loop(), []).append(job)
        for loop, jobs in waiting.items():  # one wake-up per event loop for the whole batch
            try:
                loop.call_soon_threadsafe(_resolve, jobs)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                pass

    def close(self) -> None:
        self._stop = True
        self._queue.put(None)
        self._thread.join(timeout=5)


def _resolve(jobs: list[Job]) -> None:
    for job in jobs:
        if job.future.done():  # the request was cancelled (client gone)
            continue
        if job.error is not None:
            job.future.set_exception(job.error)
        else:
            job.future.set_result(job.result)
