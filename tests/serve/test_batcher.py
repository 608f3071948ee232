"""The service's micro-batcher: answers, errors and shutdown."""

import threading

import pytest

from router_ml.serve.batcher import Batcher, Job


def _job(*prompts: str) -> Job:
    return Job(prompts=list(prompts), quality_target=None, metadata={})


@pytest.fixture
def thread_errors(monkeypatch):
    errors = []
    monkeypatch.setattr(threading, "excepthook", lambda args: errors.append(args.exc_value))
    return errors


def test_concurrent_jobs_share_a_batch_and_each_gets_its_own_answer(thread_errors):
    in_flight = [0]
    start = threading.Barrier(8)
    batcher = Batcher(lambda jobs: [job.prompts[0].upper() for job in jobs], lambda: in_flight[0], max_wait_s=0.2)
    answers = {}

    def ask(i: int) -> None:
        in_flight[0] += 1
        start.wait()
        answers[i] = batcher.submit(_job(f"p{i}"))

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    batcher.close()
    assert answers == {i: f"P{i}" for i in range(8)}
    assert batcher.jobs == 8 and batcher.batches < 8
    assert not thread_errors


def test_a_failing_batch_raises_in_every_waiting_request():
    def plan(jobs):
        raise ValueError("head exploded")

    batcher = Batcher(plan, lambda: 1)
    with pytest.raises(ValueError, match="head exploded"):
        batcher.submit(_job("a"))
    batcher.close()


def test_close_stops_the_planner_cleanly_and_later_jobs_are_still_answered(thread_errors):
    batcher = Batcher(lambda jobs: [len(job.prompts) for job in jobs], lambda: 1)
    assert batcher.submit(_job("a", "b")) == 2
    batcher.close()
    assert not batcher._thread.is_alive()
    assert batcher.submit(_job("c")) == 1
    assert not thread_errors


def test_requests_on_an_event_loop_await_their_batch_without_a_thread_each():
    import asyncio

    in_flight = [0]
    batcher = Batcher(lambda jobs: [job.prompts[0] * 2 for job in jobs], lambda: in_flight[0], max_wait_s=0.05)

    async def main():
        return await asyncio.gather(*(batcher.submit_async(_job(f"p{i}")) for i in range(10)))

    assert asyncio.run(main()) == [f"p{i}p{i}" for i in range(10)]
    assert batcher.jobs == 10 and batcher.batches < 10  # queued together, planned together
    failing = Batcher(lambda jobs: 1 / 0, lambda: 0)

    async def fails():
        return await failing.submit_async(_job("x"))

    with pytest.raises(ZeroDivisionError):
        asyncio.run(fails())
    batcher.close()
    failing.close()
