"""The emulator's clock: real time scaled down, or a manual clock the test advances.

Emulated durations (how long a task runs, when a URL expires, webhook retry
spacing) are in emulated seconds. Transport-level durations (a stall, a slow
drip, keep-alive spacing) are real seconds: they exist to test networking.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Callable, Optional

__all__ = ["Clock", "ManualClock", "ScaledClock"]


class Clock:
    """Emulated time in seconds since the emulator started, with waiting."""

    def __init__(self) -> None:
        self.condition: threading.Condition = threading.Condition()

    def now(self) -> float:
        """Emulated seconds since start."""
        raise NotImplementedError

    def real_seconds(self, emulated: float) -> Optional[float]:
        """How many real seconds an emulated span takes (None: only when advanced)."""
        raise NotImplementedError

    def real_elapsed(self, emulated: float) -> float:
        """Real seconds from the clock's start to the emulated instant ``emulated``.

        Timestamps the emulator writes are wall-clock: the clock's start plus
        this. A manual clock's seconds are its own wall-clock seconds.
        """
        return emulated

    def wait_until(
        self, when: float, *, interrupted: Callable[[], bool], max_real: Optional[float] = None
    ) -> bool:
        """Block until emulated time reaches ``when``.

        Returns early (False) when ``interrupted()`` becomes true, which is
        checked whenever the condition is notified, or after ``max_real``
        real seconds.
        """
        deadline = None if max_real is None else time.monotonic() + max_real
        with self.condition:
            while True:
                if interrupted():
                    return False
                if self.now() >= when:
                    return True
                wait = self.real_seconds(when - self.now())
                if wait is not None and math.isinf(wait):
                    wait = None  # "forever": until notified
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    wait = left if wait is None else min(wait, left)
                self.condition.wait(wait)

    def notify(self) -> None:
        """Wake every waiter (something changed: a cancel, a fault, shutdown)."""
        with self.condition:
            self.condition.notify_all()


class ScaledClock(Clock):
    """Real time, scaled: with ``time_scale=0.01`` one emulated second lasts 10 ms."""

    def __init__(self, time_scale: float = 1.0) -> None:
        super().__init__()
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self.time_scale = time_scale
        self._start = time.monotonic()

    def now(self) -> float:
        """Emulated seconds since start."""
        return (time.monotonic() - self._start) / self.time_scale

    def real_seconds(self, emulated: float) -> Optional[float]:
        """Real seconds an emulated span takes."""
        return max(emulated, 0.0) * self.time_scale

    def real_elapsed(self, emulated: float) -> float:
        """Real seconds from the clock's start to an emulated instant."""
        return emulated * self.time_scale


class ManualClock(Clock):
    """A clock that moves only when the test calls ``advance``."""

    def __init__(self) -> None:
        super().__init__()
        self._now = 0.0

    def now(self) -> float:
        """Emulated seconds since start."""
        return self._now

    def real_seconds(self, emulated: float) -> Optional[float]:
        """None: only [`advance`][cyberun.testing.ManualClock.advance] moves this clock."""
        return None

    def advance(self, seconds: float) -> None:
        """Move emulated time forward and wake everything waiting on it."""
        if seconds < 0:
            raise ValueError("a clock only moves forward")
        with self.condition:
            self._now += seconds
            self.condition.notify_all()
