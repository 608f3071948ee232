"""training.progress: stage lines stamped with the time so far, and where the time went."""

from router_ml.training.progress import StageClock, clock_text


class FakeTime:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_each_stage_gets_a_stamped_line_and_the_summary_adds_up():
    lines, time = [], FakeTime()
    clock = StageClock(lines.append, clock=time)
    clock.start("embedding", "embedding 1,920 prompts")
    time.now += 12.0
    clock.start("head selection", "choosing the head")
    time.now += 75.0
    assert clock.done() == {"embedding": 12.0}  # the running stage is not done
    clock.start("embedding")  # a stage run twice adds up
    time.now += 3.0
    clock.stop()
    assert lines == ["[  0.0 s] embedding 1,920 prompts", "[   0:12] choosing the head", "[   1:27] embedding"]
    assert clock.seconds == {"embedding": 15.0, "head selection": 75.0}
    assert clock.summary() == "time: 1:30 in all: embedding 0:15 (17%), head selection 1:15 (83%)"


def test_clock_text():
    assert [clock_text(s) for s in (0.04, 9.94, 10, 61.4, 3723)] == ["0.0 s", "9.9 s", "0:10", "1:01", "1:02:03"]
