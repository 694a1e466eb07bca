"""The stop signals and deadline of one wait, shared with the threads that stop it."""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Optional, Set

from ..transports._base import CancelToken, Response

__all__ = ["Control"]

logger: logging.Logger = logging.getLogger("cyberun")


class Control:
    """The stop signals and deadline of one wait or event stream.

    Thread-safe: `interrupt` may be called from any thread; it cancels the
    wait's requests, closes the response being read (which unblocks the
    read) and makes `stopped` true.

    Args:
        timeout: seconds until the deadline (monotonic clock), or None.
        stop: a user's ``threading.Event``; setting it stops following at
            the next opportunity (at once during waits and backoffs).
        clock: the monotonic clock (injectable for tests).
    """

    def __init__(
        self,
        timeout: Optional[float] = None,
        stop: Optional[threading.Event] = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clock = clock
        self.deadline: Optional[float] = None if timeout is None else clock() + timeout
        self.stop = stop
        #: Cancels the requests of this wait (``interrupt()`` fires it).
        self.token: CancelToken = CancelToken() if stop is None else _StopAwareToken(stop)
        self._interrupted = threading.Event()
        self._lock = threading.Lock()
        self._responses: Set[Response] = set()

    def remaining(self) -> Optional[float]:
        """Seconds left before the deadline, or None without one."""
        if self.deadline is None:
            return None
        return max(self.deadline - self.clock(), 0.0)

    @property
    def stopped(self) -> bool:
        """True once stopped by the user's event or an interrupt."""
        return self._interrupted.is_set() or (self.stop is not None and self.stop.is_set())

    def wait(self, seconds: float) -> None:
        """Wait up to ``seconds``, returning early once stopped (no exception)."""
        self._wait(seconds)

    def _wait(self, seconds: float) -> None:
        if seconds <= 0:
            return
        if self.stop is None:
            self._interrupted.wait(seconds)
            return
        # Wake on either event: poll the user's event in short slices while
        # waiting on ours, which interrupt() sets at once.
        end = time.monotonic() + seconds
        while not self.stopped:
            left = end - time.monotonic()
            if left <= 0:
                return
            if self.stop.wait(min(left, 0.05)):
                return

    def track(self, response: Response) -> None:
        """Remember the response being read, so that interrupt() can close it."""
        with self._lock:
            self._responses.add(response)
        if self._interrupted.is_set():
            response.close()

    def untrack(self, response: Response) -> None:
        """Forget a response once it is closed."""
        with self._lock:
            self._responses.discard(response)

    def interrupt(self) -> None:
        """Stop following from any thread: close what is being read, end waits."""
        self._interrupted.set()
        self.token.cancel()
        with self._lock:
            responses = list(self._responses)
        for response in responses:
            try:
                response.close()
            except Exception:  # pragma: no cover - closing must not raise
                logger.debug("closing an interrupted response failed", exc_info=True)


class _StopAwareToken(CancelToken):
    """A cancel token that also counts as cancelled once the user's stop event is set.

    Its ``wait`` (the pipeline's wait between retries) polls that event, so
    a stop ends a retry backoff as promptly as an interrupt does.
    """

    __slots__ = ("_stop",)

    #: Nothing fires this token when the user's event is set: transports look
    #: at it now and then while a read waits (see ``transports._sockets``).
    polled = True

    def __init__(self, stop: threading.Event) -> None:
        super().__init__()
        self._stop = stop

    @property
    def cancelled(self) -> bool:
        return self._stop.is_set() or super().cancelled

    def wait(self, timeout: Optional[float]) -> bool:
        end = None if timeout is None else time.monotonic() + timeout
        while not self.cancelled:
            left = 0.05 if end is None else min(0.05, end - time.monotonic())
            if left <= 0:
                return False
            super().wait(left)
        return True
