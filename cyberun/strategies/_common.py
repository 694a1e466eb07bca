"""What the following strategies share: deadlines, stopping, event bookkeeping."""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Dict, Iterable, List, Optional, Set, Tuple

from ..errors import CyberunError
from ..models import (
    CancelledEvent,
    CompletedEvent,
    FailedEvent,
    ProgressEvent,
    StatusEvent,
    Task,
    TaskEvent,
    TaskStatus,
)
from ..transports._base import CancelToken, Response

__all__ = [
    "Control",
    "DeadlineReached",
    "Progression",
    "Stopped",
    "status_event_for",
    "terminal_event_for",
]

logger: logging.Logger = logging.getLogger("cyberun")


class Stopped(CyberunError):
    """Internal: following was stopped (a stop event, a closed stream or client)."""


class DeadlineReached(CyberunError):
    """Internal: the wait's deadline passed."""


class Control:
    """The stop signals and deadline of one wait or event stream.

    Thread-safe: `interrupt` may be called from any thread; it closes
    the response being read (which unblocks the read) and makes the next
    check raise `Stopped`.

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

    def check(self) -> None:
        """Raise Stopped or DeadlineReached if following must end now."""
        if self.stopped:
            raise Stopped("stopped")
        if self.deadline is not None and self.clock() >= self.deadline:
            raise DeadlineReached("deadline reached")

    def sleep(self, seconds: float) -> None:
        """Wait, ending early (with an exception) on a stop or the deadline."""
        self.check()
        remaining = self.remaining()
        if remaining is not None and seconds >= remaining:
            self._wait(remaining)
            self.check()
            raise DeadlineReached("deadline reached")  # pragma: no cover - check() raised
        self._wait(seconds)
        self.check()

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


_RANK: Dict[str, int] = {
    "pending": 0,
    "waiting": 1,
    "provisioning": 2,
    "queued": 3,
    "running": 4,
}


class Progression:
    """Which events the caller should see, so that nothing repeats or goes backwards.

    Events with a stream id are delivered exactly once each, in the order the
    server sent them. Events without ids (no ids from the server, or states
    confirmed with a GET) only pass when they move forward: a status later in
    the lifecycle, more progress. The terminal event passes once.
    """

    def __init__(self) -> None:
        self.status: Optional[TaskStatus] = None
        self.progress: Optional[Tuple[float, int]] = None
        self.terminal: bool = False
        self.ids: Set[str] = set()

    def admit(self, event: TaskEvent) -> bool:
        """True when ``event`` should reach the caller (and record it)."""
        if self.terminal:
            return False
        if event.event_id:
            if event.event_id in self.ids:
                return False
            self.ids.add(event.event_id)
            self._record(event)
            return True
        if isinstance(event, StatusEvent):
            if self.status is not None:
                old, new = _RANK.get(str(self.status)), _RANK.get(str(event.status))
                if event.status == self.status or (
                    old is not None and new is not None and new < old
                ):
                    return False
        elif isinstance(event, ProgressEvent):
            key = _progress_key(event)
            if self.progress is not None and key <= self.progress:
                return False
        self._record(event)
        return True

    def _record(self, event: TaskEvent) -> None:
        if isinstance(event, StatusEvent):
            self.status = event.status
        elif isinstance(event, ProgressEvent):
            self.progress = _progress_key(event)
        elif event.is_terminal:
            self.terminal = True


def _progress_key(event: ProgressEvent) -> Tuple[float, int]:
    return (event.progress if event.progress is not None else -1.0, event.step_current or 0)


def status_event_for(task: Task) -> Optional[StatusEvent]:
    """A status event describing ``task`` (None if it has no status)."""
    if task.task_status is None:
        return None
    return StatusEvent(task_id=task.id, status=task.task_status, timestamp=None)


def terminal_event_for(task: Task) -> Optional[TaskEvent]:
    """The terminal event a stream would have sent for a finished ``task``, else None."""
    status = task.task_status
    if status is None or not status.is_terminal:
        return None
    if status == "completed":
        return CompletedEvent(task_id=task.id, completed_at=task.completed_at, output=None)
    if status == "failed":
        return FailedEvent(task_id=task.id, error=task.task_error)
    return CancelledEvent(task_id=task.id)


def confirm_events(task: Task, progression: Progression, *, statuses: bool) -> List[TaskEvent]:
    """Events to emit after checking the task with a GET (terminal, and status if asked)."""
    events: List[TaskEvent] = []
    if statuses:
        status = status_event_for(task)
        if status is not None and not status.status.is_terminal and progression.admit(status):
            events.append(status)
    terminal = terminal_event_for(task)
    if terminal is not None and progression.admit(terminal):
        events.append(terminal)
    return events


def first(events: Iterable[TaskEvent]) -> Optional[TaskEvent]:
    """The first event of an iterable, or None."""
    return next(iter(events), None)
