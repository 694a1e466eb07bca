"""Following one task, sans I/O: what happened goes in, what to do next comes out.

[`Follower`][cyberun.strategies.follow.Follower] is a state machine in the style of
h11's ``Connection``. It does no I/O and reads no clock: the driver tells
it what happened (a stream opened or was refused, bytes arrived, the stream
ended or stalled, a task snapshot or a result arrived, from whatever
source) together with the time ``now`` on the driver's monotonic clock, and
asks it for the next action (open the stream, read it, close it, GET the
task, GET the result, sleep, deliver events, finish). Every policy of
following lives here, once:

- **Delivery.** Every event the server sent reaches the caller once, in the
  server's order (progress that goes back, a status that returns to
  ``queued``, unknown event types included). The only events withheld are
  provable replays: an event whose *own* ``id:`` line repeats an id already
  delivered, or, right after a reconnect to a server that sends no ids, the
  leading events equal (type, and JSON data ignoring ``timestamp``) to the
  last delivered event of their type, up to the first that differs.
- **The deadline.** Past it, the next action is to finish with a timeout;
  no sleep outlasts it (every request carries it too, through the driver).
- **Liveness.** Keep-alives are not events: after ``liveness_interval``
  seconds without a real event, one GET of the task checks that it has not
  ended behind them.
- **Reconnects.** Full-jitter exponential backoff over the number of
  short-lived connections in a row, reset once a connection stayed up for
  ``healthy_after`` seconds; connects at least ``2 * reconnect_backoff``
  seconds apart; the server's ``retry:`` honoured as a floor, clamped to
  ``[retry_min, retry_max]``. An empty ``id:`` clears ``Last-Event-ID``; an id
  that cannot be sent (not latin-1, or longer than 1 KiB) is not sent.
- **Switch to polling** after ``max_failures`` connects in a row that gave
  no event, or at once when the answer is not ``text/event-stream``.
- **Only this task.** Status, progress and terminal events naming another
  task id are skipped with a warning.
- **The outcome.** Exactly one ``Finish``: completed (with the result, when
  asked for), failed, cancelled, an unknown status with ``completed_at``
  set, a timeout (saying whether the task had completed), stopped, or an
  error that following cannot get past (401, 404 ...).
"""

from __future__ import annotations

import logging
from collections import deque
from datetime import datetime
from typing import Any, Callable, Deque, Dict, List, Optional, Set, Tuple, Union

import attrs

from .._convert import decode_event
from ..errors import (
    APIError,
    CyberunError,
    DecodeError,
    SSELimitError,
    TransportError,
)
from ..models import (
    CancelledEvent,
    CompletedEvent,
    FailedEvent,
    StatusEvent,
    Task,
    TaskEvent,
    TaskResult,
)
from ..sse import DEFAULT_MAX_EVENT_SIZE, DEFAULT_MAX_LINE_SIZE, ServerSentEvent, SSEParser

__all__ = [
    "CloseStream",
    "Deliver",
    "Finish",
    "Follower",
    "GetResult",
    "GetTask",
    "OpenStream",
    "Outcome",
    "ReadStream",
    "Sleep",
    "StreamSettings",
]

logger: logging.Logger = logging.getLogger("cyberun")

#: The longest ``Last-Event-ID`` sent, in bytes; a longer id is not sent.
MAX_SENT_ID = 1024
#: How many delivered events are kept to recognise an id-less server replaying its history.
HISTORY = 1000
#: HTTP statuses with which a refused stream is worth connecting to again.
_TRANSIENT = frozenset({408, 425, 429, 500, 502, 503, 504})
_TERMINAL_TYPES = frozenset({"completed", "failed", "cancelled"})


@attrs.frozen
class StreamSettings:
    """How following behaves.

    Args:
        liveness_interval: seconds without a real event (keep-alives do not
            count) after which one GET checks the task is still running.
        max_failures: connects in a row that gave no event (refused, broken
            or closed at once) before switching to polling.
        reconnect_backoff: base delay before a reconnect, in seconds; also
            half the least time between two connects.
        reconnect_backoff_max: the cap on the backoff.
        healthy_after: seconds a connection must stay up for the backoff to
            start again from the base.
        retry_min: the least reconnection time taken from ``retry:`` (s).
        retry_max: the most reconnection time taken from ``retry:`` (s).
        max_line_size: the SSE parser's limit on one line, in bytes.
        max_event_size: the SSE parser's limit on one event, in bytes.
    """

    liveness_interval: float = 15.0
    max_failures: int = 3
    reconnect_backoff: float = 0.5
    reconnect_backoff_max: float = 30.0
    healthy_after: float = 60.0
    retry_min: float = 0.5
    retry_max: float = 60.0
    max_line_size: int = DEFAULT_MAX_LINE_SIZE
    max_event_size: int = DEFAULT_MAX_EVENT_SIZE


# --- actions: what the driver is asked to do ------------------------------------------------


@attrs.frozen
class Deliver:
    """Hand these events to the caller, in order."""

    events: List[TaskEvent]


@attrs.frozen
class OpenStream:
    """GET ``/tasks/{id}/events``, sending ``Last-Event-ID`` when it is not None."""

    last_event_id: Optional[str]


@attrs.frozen
class ReadStream:
    """Read the next chunk of the open stream (report it with ``received``/``ended``)."""


@attrs.frozen
class CloseStream:
    """Close the open stream (nothing is reported back)."""


@attrs.frozen
class GetTask:
    """GET ``/tasks/{id}`` (report it with ``task_seen``/``task_failed``)."""


@attrs.frozen
class GetResult:
    """GET ``/tasks/{id}/result`` (report it with ``result_seen``/``result_failed``)."""


@attrs.frozen
class Sleep:
    """Wait this many seconds (or until stopped), then ask again."""

    seconds: float


@attrs.frozen
class Outcome:
    """How following ended; [`settle`][cyberun.strategies.driver.settle] turns it into a value.

    Attributes:
        kind: ``"completed"``, ``"failed"``, ``"cancelled"``, ``"unknown"``
            (an unknown status with ``completed_at``), ``"timeout"``,
            ``"stopped"`` or ``"error"``.
        event: the terminal event delivered, when there was one.
        result: the result, for ``completed`` when it was fetched.
        task: the last task snapshot, when one was fetched.
        error: for ``error``, what ended following; for ``timeout``, the
            error at hand when the deadline passed, if any.
    """

    kind: str
    event: Optional[TaskEvent] = None
    result: Optional[TaskResult] = None
    task: Optional[Task] = None
    error: Optional[CyberunError] = None


@attrs.frozen
class Finish:
    """Following is over: this is the outcome. Every later call returns it again."""

    outcome: Outcome


Action = Union[Deliver, OpenStream, ReadStream, CloseStream, GetTask, GetResult, Sleep, Finish]

_READ = ReadStream()
_CLOSE = CloseStream()
_GET_TASK = GetTask()
_GET_RESULT = GetResult()


def _retryable(error: CyberunError) -> bool:
    """Whether trying again later may help (no answer, or a transient HTTP status)."""
    if isinstance(error, APIError):
        return error.status in _TRANSIENT
    return isinstance(error, (TransportError, DecodeError))


def sendable_id(value: str) -> bool:
    """Whether ``value`` can be sent as a ``Last-Event-ID`` header (latin-1, at most 1 KiB)."""
    try:
        encoded = value.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return len(encoded) <= MAX_SENT_ID and not any(c in encoded for c in b"\r\n\0")


def replay_key(event: TaskEvent) -> Tuple[str, Dict[str, Any]]:
    """What makes two events the same for the id-less replay rule: type and data, no timestamp."""
    kind = getattr(event, "event", "") or event.type
    return kind, {k: v for k, v in event.raw.items() if k != "timestamp"}


class Follower:
    """The state machine that follows one task. Not thread-safe: one driver at a time.

    Args:
        task_id: the task.
        now: the driver's monotonic clock now.
        deadline: the time (on that clock) to give up at, or None.
        poll: start by polling instead of streaming.
        fetch_result: on ``completed``, ask for the result before finishing.
        settings: the policies' numbers.
        poll_interval: seconds between polls (jittered by up to 10%).
        random: a source of floats in ``[0, 1)`` (jitter; injectable for tests).
    """

    def __init__(
        self,
        task_id: str,
        *,
        now: float,
        deadline: Optional[float] = None,
        poll: bool = False,
        fetch_result: bool = True,
        settings: StreamSettings = StreamSettings(),
        poll_interval: float = 3.0,
        random: Callable[[], float],
    ) -> None:
        self.task_id: str = task_id
        self.deadline: Optional[float] = deadline
        self.settings: StreamSettings = settings
        self.poll_interval: float = poll_interval
        self.fetch_result: bool = fetch_result
        self._random = random
        self.polling: bool = poll
        self._outcome: Optional[Outcome] = None
        self._pending: Deque[TaskEvent] = deque()
        self._terminal: Optional[TaskEvent] = None
        self._task: Optional[Task] = None
        # What the caller has seen.
        self._delivered_ids: Set[str] = set()
        self._last_of_type: Dict[str, TaskEvent] = {}
        self._stamps: Dict[str, Optional[datetime]] = {}  # parsed timestamps, for decode_event
        self._history: List[TaskEvent] = []  # the first HISTORY events delivered
        self._status: Optional[str] = None  # the last status delivered
        self._delivered_any = False
        # The stream.
        self._parser: Optional[SSEParser] = None
        self._open = False  # a stream is open (or being read)
        self._close_wanted = False
        self._opened_at = 0.0
        self._last_open: Optional[float] = None
        self._last_real = 0.0
        self._events_here = 0  # events parsed on this connection
        self._absorbing = False  # right after an id-less reconnect: replays are withheld
        self._restating = False  # ... while the leading events restate the current state
        self._replayed = 0  # ... while they replay the history: how many matched so far
        self._restated: Set[str] = set()  # ... the types restated so far
        self._ids_seen = False  # the server gives events their own ids
        self._last_event_id = ""
        self._unsendable_logged = False
        self._retry: Optional[float] = None  # the server's retry:, clamped, in seconds
        self._short = 0  # short-lived connections in a row (the backoff's exponent)
        self._failures = 0  # connects in a row that gave no event (the switch to polling)
        self._not_before = now  # the next connect or poll, no earlier
        self._want_task = False
        self._want_result = False
        self._liveness = False  # the wanted GET is a liveness check of an open stream
        self._final: Optional[Task] = None  # the task ended: one last connect for its replay
        self._final_tried = False

    # -- inputs ---------------------------------------------------------------------------

    def stop(self) -> None:
        """The caller stopped following (a stop event, a closed client or stream)."""
        self._finish(Outcome("stopped", event=self._terminal, task=self._task))

    def opened(self, now: float, content_type: str) -> None:
        """The stream request was answered 2xx with this ``Content-Type``."""
        self._open = True
        self._opened_at = self._last_real = now
        self._events_here = 0
        if content_type.split(";")[0].strip().lower() != "text/event-stream":
            self._open = False
            self._close_wanted = True
            self._to_polling(
                f"the server answered {content_type or 'no content type'!r}, not text/event-stream"
            )
            self._not_before = now
            return
        self._parser = SSEParser(
            max_line_size=self.settings.max_line_size,
            max_event_size=self.settings.max_event_size,
        )
        self._absorbing = self._restating = self._delivered_any and not self._ids_seen
        self._replayed = 0
        self._restated.clear()

    def refused(self, now: float, error: CyberunError) -> None:
        """The stream request failed: no connection, or an HTTP error answer."""
        self._open = False
        if self._final is not None:
            self._deliver_built_terminal(self._final)
            return
        if not _retryable(error):
            if (
                isinstance(error, APIError)
                and error.status in (400, 413, 431)
                and self._last_event_id
            ):
                logger.warning(
                    "task %s: the server refused Last-Event-ID (HTTP %s); resuming without it",
                    self.task_id,
                    error.status,
                )
                self._last_event_id = ""
            else:
                self._finish(Outcome("error", task=self._task, error=error))
                return
        reason = f"HTTP {error.status}" if isinstance(error, APIError) else type(error).__name__
        self._connection_failed(now, reason, short=True)

    def received(self, now: float, data: bytes) -> None:
        """Bytes arrived on the open stream."""
        parser = self._parser
        if parser is None or self._terminal is not None:
            return
        broken: Optional[SSELimitError] = None
        before = parser.last_event_id
        try:
            raw_events = parser.feed(data)
        except SSELimitError as exc:
            raw_events, broken = exc.events, exc
        if parser.last_event_id != before:
            self._last_event_id = parser.last_event_id
        if parser.retry is not None:
            self._retry = min(
                max(parser.retry / 1000.0, self.settings.retry_min), self.settings.retry_max
            )
        if raw_events:
            self._last_real = now
            self._events_here += len(raw_events)
            for raw in raw_events:
                if self._admit(raw):
                    return  # the terminal event: the rest is not read
        elif not self._want_task and now - self._last_real >= self.settings.liveness_interval:
            # Keep-alives but no event for a while: is the task still running?
            # A finished task must not hang the caller.
            self._want_task = self._liveness = True
        if broken is not None:
            logger.warning("task %s: dropping a broken event stream: %s", self.task_id, broken)
            self._close_wanted = True
            self.ended(now, broken)

    def ended(self, now: float, error: Optional[CyberunError] = None) -> None:
        """The stream ended: closed by the server (``error`` None), broken or stalled."""
        if not self._open:
            return
        self._open = False
        self._parser = None
        if self._terminal is not None or self._outcome is not None:
            return
        if self._final is not None:
            # The last connect did not bring the terminal event: the GET's view stands.
            self._deliver_built_terminal(self._final)
            return
        reason = "closed" if error is None else type(error).__name__
        logger.info("task %s: event stream ended (%s); reconnecting", self.task_id, reason)
        short = now - self._opened_at < self.settings.healthy_after
        if self._events_here:
            self._failures = 0
            self._short = self._short + 1 if short else 0
            self._schedule_reconnect(now)
            self._want_task = True
            self._liveness = False
        else:
            self._connection_failed(now, f"{reason} without an event", short=short)

    def task_seen(self, now: float, task: Task) -> None:
        """A snapshot of the task arrived (from a GET, or from any other source)."""
        self._want_task = False
        liveness, self._liveness = self._liveness, False
        self._task = task
        if self._outcome is not None or self._terminal is not None:
            return
        status = task.task_status
        if status is not None and status.is_terminal:
            if not self.polling and not liveness and not self._final_tried:
                # The connection ended before the task did: the stream may
                # still hold the real terminal event (with its output), and a
                # server with ids replays what was missed. One more connect.
                self._final, self._final_tried = task, True
                if self._open:
                    self._close_wanted = True
                    self._open = False
                    self._parser = None
                self._not_before = now
                if self._last_open is not None:
                    self._not_before = max(
                        now, self._last_open + 2.0 * self.settings.reconnect_backoff
                    )
                return
            self._deliver_built_terminal(task)
            return
        if status is not None and not status.is_known and task.completed_at is not None:
            self._finish(Outcome("unknown", task=task))
            return
        if liveness:
            self._last_real = now
        elif (
            (self.polling or not self._ids_seen) and status is not None and status != self._status
        ):
            self._deliver(_built_status(task), None, confirm=False)
        if self.polling:
            self._not_before = now + self._poll_delay()

    def task_failed(self, now: float, error: CyberunError) -> None:
        """The GET of the task failed (after the API layer's own retries)."""
        self._want_task = False
        self._liveness = False
        if not _retryable(error):
            self._finish(Outcome("error", task=self._task, error=error))
            return
        logger.info("task %s: checking the task failed (%s); going on", self.task_id, error)
        if self.polling:
            self._not_before = now + self._poll_delay()

    def result_seen(self, now: float, result: TaskResult) -> None:
        """The result arrived."""
        self._want_result = False
        self._finish(Outcome("completed", event=self._terminal, result=result, task=self._task))

    def result_failed(self, now: float, error: CyberunError) -> None:
        """The GET of the result failed (after the API layer's own retries)."""
        self._want_result = False
        if self.deadline is not None and now >= self.deadline - 0.05:
            self._finish(Outcome("timeout", event=self._terminal, task=self._task, error=error))
        else:
            self._finish(Outcome("error", event=self._terminal, task=self._task, error=error))

    def stream(self, now: float) -> None:
        """Switch from polling to streaming (a batch's stream worker took the task)."""
        if self.polling and self._outcome is None and self._terminal is None:
            self.polling = False
            self._failures = 0
            self._not_before = now

    # -- output -----------------------------------------------------------------------------

    def next_action(self, now: float) -> Action:
        """What to do now."""
        if self._pending:
            events = list(self._pending)
            self._pending.clear()
            return Deliver(events)
        if self._close_wanted:
            self._close_wanted = False
            return _CLOSE
        if self._outcome is not None:
            if self._open:
                self._open = False
                return _CLOSE
            return Finish(self._outcome)
        if self.deadline is not None and now >= self.deadline:
            self._finish(Outcome("timeout", event=self._terminal, task=self._task))
            return self.next_action(now)
        if self._want_result:
            return _GET_RESULT
        if self._want_task:
            return _GET_TASK
        if self._open:
            return _READ
        wait = self._not_before - now
        if wait > 0:
            if self.deadline is not None:
                wait = min(wait, self.deadline - now)
            return Sleep(wait)
        if self.polling:
            self._want_task = True
            return _GET_TASK
        self._last_open = now
        self._open = True  # until opened() or refused() says otherwise
        self._parser = None
        return OpenStream(self._sent_id())

    @property
    def outcome(self) -> Optional[Outcome]:
        """The outcome once decided, else None."""
        return self._outcome

    # -- inside ---------------------------------------------------------------------------

    def _admit(self, raw: ServerSentEvent) -> bool:
        """Deliver ``raw`` unless it is withheld; True once it was the terminal event."""
        own = raw.own_id
        if own:
            self._ids_seen = True
            if own in self._delivered_ids:
                return False  # a provable replay: its own id was delivered
        try:
            event = decode_event(raw, self._stamps)
        except DecodeError as exc:
            logger.warning(
                "task %s: skipping an undecodable %r event: %s", self.task_id, raw.event, exc
            )
            if raw.event in _TERMINAL_TYPES:
                self._want_task = True  # the broken one may have been the end
            return False
        if event.task_id and event.task_id != self.task_id:
            logger.warning(
                "task %s: skipping a %r event about another task (%s)",
                self.task_id,
                raw.event,
                event.task_id,
            )
            return False
        if self._absorbing and self._withheld(raw.event, event):
            return False
        self._deliver(event, own, kind=raw.event)
        return event.is_terminal

    def _deliver(
        self, event: TaskEvent, own: Optional[str], *, confirm: bool = True, kind: str = ""
    ) -> None:
        self._pending.append(event)
        self._delivered_any = True
        if own:
            self._delivered_ids.add(own)
        self._last_of_type[kind or event.type] = event
        if confirm and len(self._history) < HISTORY:
            self._history.append(event)  # what the stream sent (not events built from GETs)
        if isinstance(event, StatusEvent):
            self._status = event.status
            if confirm and (not event.status.is_known or event.status.is_terminal):
                self._want_task = True  # a status this SDK does not know: has it ended?
        elif event.is_terminal:
            self._terminal = event
            self._want_task = self._liveness = False
            if self._open:
                self._close_wanted = True
                self._open = False
                self._parser = None
            if isinstance(event, CompletedEvent) and self.fetch_result:
                self._want_result = True
            else:
                kind = event.type
                self._finish(Outcome(kind, event=event, task=self._task))

    def _withheld(self, kind: str, event: TaskEvent) -> bool:
        """After an id-less reconnect: is ``event`` still part of the server's replay?

        Two shapes are provable: the current state restated (each leading
        event equal to the last delivered of its type), and the whole history
        replayed (the leading events equal to the delivered ones, in order).
        The first event that fits neither ends the replay.
        """
        key = replay_key(event)
        history = self._history
        replaying = False
        if self._replayed >= 0:
            index = self._replayed
            if index < len(history) and replay_key(history[index]) == key:
                self._replayed += 1
                replaying = True
            else:
                self._replayed = -1
        if self._restating:
            # Each type is restated once at most: a second equal event is news.
            previous = self._last_of_type.get(kind)
            self._restating = (
                kind not in self._restated and previous is not None and replay_key(previous) == key
            )
            self._restated.add(kind)
        if replaying:
            return True
        if self._restating:
            if len(history) < HISTORY:
                history.append(event)  # part of the server's history, seen in another form
            return True
        self._absorbing = False
        return False

    def _deliver_built_terminal(self, task: Task) -> None:
        self._final = None
        event = _built_terminal(task)
        if event is not None:
            self._deliver(event, None, confirm=False)

    def _finish(self, outcome: Outcome) -> None:
        if self._outcome is None:
            self._outcome = outcome
            self._want_task = self._want_result = False

    def _connection_failed(self, now: float, reason: str, *, short: bool) -> None:
        self._failures += 1
        self._short = self._short + 1 if short else 0
        logger.info(
            "task %s: event stream failed (%s), %d in a row", self.task_id, reason, self._failures
        )
        self._want_task = True  # confirm the state, so nothing terminal is missed
        if self._failures >= self.settings.max_failures:
            self._to_polling(f"{self._failures} failed connects in a row (last: {reason})")
            self._not_before = now
        else:
            self._schedule_reconnect(now)

    def _schedule_reconnect(self, now: float) -> None:
        settings = self.settings
        backoff = 0.0
        if self._short:
            ceiling = min(
                settings.reconnect_backoff_max,
                settings.reconnect_backoff * 2.0 ** min(self._short - 1, 30),
            )
            backoff = self._random() * ceiling
        delay = max(backoff, self._retry or 0.0)
        at = now + delay
        if self._last_open is not None:
            at = max(at, self._last_open + 2.0 * settings.reconnect_backoff)
        self._not_before = at

    def _to_polling(self, reason: str) -> None:
        logger.warning(
            "following task %s by polling instead of streaming: %s", self.task_id, reason
        )
        self.polling = True

    def _poll_delay(self) -> float:
        return self.poll_interval * (1.0 + (self._random() - 0.5) * 0.2)

    def _sent_id(self) -> Optional[str]:
        value = self._last_event_id
        if not value:
            return None
        if sendable_id(value):
            return value
        if not self._unsendable_logged:
            self._unsendable_logged = True
            logger.warning(
                "task %s: the server's event id cannot be sent back as Last-Event-ID "
                "(not latin-1, or longer than %d bytes); reconnecting without it",
                self.task_id,
                MAX_SENT_ID,
            )
        return None


def _built_status(task: Task) -> StatusEvent:
    status = task.task_status
    assert status is not None
    event = StatusEvent(task_id=task.id, status=status)
    object.__setattr__(event, "raw", {"task_id": task.id, "status": str(status)})
    return event


def _built_terminal(task: Task) -> Optional[TaskEvent]:
    """The terminal event a stream would have sent for a finished ``task``, else None."""
    status = task.task_status
    if status is None or not status.is_terminal:
        return None
    event: TaskEvent
    if status == "completed":
        event = CompletedEvent(task_id=task.id, completed_at=task.completed_at, output=None)
    elif status == "failed":
        event = FailedEvent(task_id=task.id, error=task.task_error)
    else:
        event = CancelledEvent(task_id=task.id)
    return event
