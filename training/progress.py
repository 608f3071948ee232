"""What a person watching a long command sees: a line as each stage starts, stamped with the
time so far, and at the end where the time went.

    clock = StageClock(log)
    clock.start("embedding", "embedding 1,920 training prompts")   # [0:03] embedding 1,920 training prompts
    ...
    clock.start("head selection", "choosing the head: 9 candidates")  # ends "embedding", starts the next
    clock.stop()
    log(clock.summary())   # time: 1:27 in all: embedding 0:12 (14%), head selection 1:15 (86%)

Lines go through the caller's `log` (stderr in the CLI, nothing in tests); bars (tqdm) are
the stages' own business and appear only when the caller asks for them. Deliberately not
here: timing inside a stage.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def clock_text(seconds: float) -> str:
    """0:07, 1:27, 1:02:03; under ten seconds with a tenth (3.2 s), so short stages are not all 0:00."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class StageClock:
    """Seconds per named stage, one stage running at a time; a stage started twice adds up."""

    def __init__(self, log: Callable[[str], None] = print, clock: Callable[[], float] = time.perf_counter) -> None:
        self.log = log
        self._clock = clock
        self._began = clock()
        self._current: str | None = None
        self._since = 0.0
        self.seconds: dict[str, float] = {}

    def elapsed(self) -> float:
        return self._clock() - self._began

    def start(self, name: str, what: str | None = None) -> None:
        """End the running stage (if any) and start `name`, with a line saying what it does."""
        self.stop()
        self._current, self._since = name, self._clock()
        self.seconds.setdefault(name, 0.0)
        self.log(f"[{clock_text(self.elapsed()).rjust(7)}] {what or name}")

    def stop(self) -> None:
        if self._current is not None:
            self.seconds[self._current] += self._clock() - self._since
            self._current = None

    def done(self) -> dict[str, float]:
        """Seconds of the stages that have ended (not the one running)."""
        return {name: s for name, s in self.seconds.items() if name != self._current}

    def summary(self) -> str:
        """One line: the total and each stage's share, in the order they ran."""
        self.stop()
        total = self.elapsed()
        parts = [f"{name} {clock_text(s)}" + (f" ({s / total:.0%})" if total > 0 and s / total >= 0.01 else "")
                 for name, s in self.seconds.items()]
        return f"time: {clock_text(total)} in all: " + ", ".join(parts)
