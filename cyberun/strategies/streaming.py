"""Following a task over its Server-Sent Events stream.

One GET of ``/tasks/{id}/events``; each event reaches the caller as soon as
its blank line is parsed. Keep-alive comments keep the connection alive but
do not prove the task is: after ``liveness_interval`` seconds without a real
event, one GET of the task checks that it has not ended behind a stream of
keep-alives. A drop or stall is answered with a GET of the task (a terminal
state reached meanwhile is never missed) and a reconnect with backoff,
honouring ``retry:`` and sending ``Last-Event-ID``. When the server gives
ids, even a task that ended while disconnected is reconnected to once more,
so that its replay delivers every missed event and the real terminal event;
only if that fails does the GET's view of the end stand in for it. After
``max_failures`` failed connects in a row, or an answer that is not an event
stream, following switches to polling and says so in a log record.

This loop owns the stream's retries; the API layer's retry policy is not
applied to the stream request, so the two never stack.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Callable, Generator, Iterator, List, Optional

import attrs

from .._convert import decode_event
from ..api import Endpoints
from ..errors import (
    APIError,
    DecodeError,
    SSELimitError,
    TransportError,
)
from ..models import Task, TaskEvent
from ..retry import RetryPolicy
from ..sse import DEFAULT_MAX_EVENT_SIZE, DEFAULT_MAX_LINE_SIZE, ServerSentEvent, SSEParser
from ..transports._base import Response, Timeout
from ._common import Control, Progression, confirm_events

__all__ = ["StreamSettings", "follow_stream"]

logger: logging.Logger = logging.getLogger("cyberun")

_RNG = random.Random()


@attrs.frozen
class StreamSettings:
    """How the streaming strategy behaves.

    Args:
        liveness_interval: seconds without a real event (keep-alives do not
            count) after which one GET checks the task is still running.
        max_failures: failed connects in a row before switching to polling.
        reconnect_backoff: base delay before a reconnect, in seconds.
        reconnect_backoff_max: the cap on that delay.
        max_line_size: the SSE parser's limit on one line, in bytes.
        max_event_size: the SSE parser's limit on one event, in bytes.
    """

    liveness_interval: float = 15.0
    max_failures: int = 3
    reconnect_backoff: float = 0.5
    reconnect_backoff_max: float = 10.0
    max_line_size: int = DEFAULT_MAX_LINE_SIZE
    max_event_size: int = DEFAULT_MAX_EVENT_SIZE


class FallBackToPolling(Exception):
    """Internal: the stream cannot be used; poll instead."""


def follow_stream(
    api: Endpoints,
    task_id: str,
    *,
    control: Control,
    progression: Progression,
    settings: StreamSettings,
    timeout: Timeout,
    poll: Callable[[], Iterator[TaskEvent]],
    random_source: Callable[[], float] = _RNG.random,
) -> Iterator[TaskEvent]:
    """Yield the task's events until the terminal one, streaming and reconnecting.

    Falls back to ``poll()`` when streaming keeps failing.
    """
    follower = _StreamFollower(
        api, task_id, control, progression, settings, timeout, random_source
    )
    try:
        yield from follower.run()
    except FallBackToPolling as reason:
        logger.warning("following task %s by polling instead of streaming: %s", task_id, reason)
        yield from poll()


class _StreamFollower:
    def __init__(
        self,
        api: Endpoints,
        task_id: str,
        control: Control,
        progression: Progression,
        settings: StreamSettings,
        timeout: Timeout,
        random_source: Callable[[], float],
    ) -> None:
        self.api = api
        self.task_id = task_id
        self.control = control
        self.progression = progression
        self.settings = settings
        self.timeout = timeout
        self.random = random_source
        self.last_event_id: Optional[str] = None
        self.server_retry: Optional[float] = None  # seconds, from retry:
        self.uses_ids = False
        self.failures = 0
        self.connections = 0
        self.delivered_last = False  # whether the last connection delivered an event

    # -- the loop -------------------------------------------------------------------------

    def run(self) -> Iterator[TaskEvent]:
        ended: Optional[Task] = None  # the task as a GET saw it once it had ended
        while True:
            self.control.check()
            if self.connections:
                self.control.sleep(self._reconnect_delay())
            outcome = yield from self._one_connection()
            if outcome == "terminal":
                return
            if ended is not None:
                # The replay below did not bring the terminal event: the GET's
                # view of the end is all there is.
                yield from confirm_events(ended, self.progression, statuses=False)
                return
            # The stream ended, dropped or stalled before a terminal event:
            # check the task once, so a terminal state reached meanwhile is
            # never missed.
            task = self.api.get_task(self.task_id)
            if task.task_status is not None and task.task_status.is_terminal:
                if self.uses_ids and self.delivered_last:
                    # The server replays from Last-Event-ID: one more connect
                    # delivers every missed event and the real terminal one.
                    ended = task
                    continue
                yield from confirm_events(task, self.progression, statuses=not self.uses_ids)
                return
            if not self.uses_ids:
                yield from confirm_events(task, self.progression, statuses=True)

    def _reconnect_delay(self) -> float:
        """Backoff after failures; the server's retry: (if any) as a floor."""
        floor = self.server_retry or 0.0
        if not self.failures:
            return floor
        exponential = min(
            self.settings.reconnect_backoff_max,
            self.settings.reconnect_backoff * 2.0 ** max(self.failures - 1, 0),
        )
        return max(self.random() * exponential, floor)

    def _open(self) -> Response:
        remaining = self.control.remaining()
        read = self.timeout.read
        if remaining is not None:
            read = remaining if read is None else min(read, remaining)
            read = max(read, 0.05)
        self.connections += 1
        return self.api.open_events(
            self.task_id,
            last_event_id=self.last_event_id,
            timeout=self.timeout.replace(read=read),
            retry=RetryPolicy.never(),
        )

    def _one_connection(self) -> Generator[TaskEvent, None, str]:
        """Follow one connection; return "terminal" or the reason it ended."""
        try:
            response = self._open()
        except APIError as exc:
            if exc.status not in (429, 500, 502, 503, 504):
                raise  # 401, 404 ...: reconnecting cannot help
            self._failed(f"HTTP {exc.status}")
            return "failed"
        except TransportError as exc:
            self._failed(type(exc).__name__)
            return "failed"
        content_type = response.headers.get("content-type", "")
        if content_type.split(";")[0].strip().lower() != "text/event-stream":
            response.close()
            raise FallBackToPolling(
                f"the server answered {content_type or 'no content type'!r}, not text/event-stream"
            )
        self.control.track(response)
        try:
            return (yield from self._read(response))
        finally:
            self.control.untrack(response)
            response.close()

    def _read(self, response: Response) -> Generator[TaskEvent, None, str]:
        parser = SSEParser(
            max_line_size=self.settings.max_line_size, max_event_size=self.settings.max_event_size
        )
        last_real_event = time.monotonic()
        delivered_any = False
        self.delivered_last = False
        try:
            for chunk in response.iter_bytes():
                try:
                    raw_events = parser.feed(chunk)
                    if parser.last_event_id:
                        self.last_event_id = parser.last_event_id
                except SSELimitError as exc:
                    raw_events = exc.events
                    for event in self._deliver(raw_events, parser):
                        yield event
                        if event.is_terminal:
                            return "terminal"
                    logger.warning(
                        "task %s: dropping a broken event stream: %s", self.task_id, exc
                    )
                    self._failed("SSE limit")
                    return "failed"
                if raw_events:
                    if not delivered_any:
                        delivered_any = self.delivered_last = True
                        self.failures = 0  # a healthy connection resets the count
                    last_real_event = time.monotonic()
                    for event in self._deliver(raw_events, parser):
                        yield event
                        if event.is_terminal:
                            return "terminal"
                elif time.monotonic() - last_real_event >= self.settings.liveness_interval:
                    # Bytes (keep-alives) but no event for a while: is the task
                    # still running? A finished task must not hang the caller.
                    if (yield from self._confirm()):
                        return "terminal"
                    last_real_event = time.monotonic()
                self.control.check()
        except TransportError as exc:
            self.control.check()  # an interrupt closed the response: stop, do not retry
            logger.info("task %s: event stream broke (%s); reconnecting", self.task_id, exc)
            if not delivered_any:
                self._failed(type(exc).__name__)
            return "dropped"
        self.control.check()
        if not delivered_any:
            self._failed("closed without an event")
        return "closed"

    def _deliver(
        self, raw_events: List[ServerSentEvent], parser: SSEParser
    ) -> Iterator[TaskEvent]:
        if parser.retry is not None:
            self.server_retry = parser.retry / 1000.0
        for raw in raw_events:
            if raw.id:
                self.uses_ids = True
            try:
                event = decode_event(raw)
            except DecodeError as exc:
                # A broken event may have been the one that mattered: the
                # next confirmation GET (at the latest) restores the state.
                logger.warning(
                    "task %s: skipping an undecodable %r event: %s", self.task_id, raw.event, exc
                )
                continue
            if self.progression.admit(event):
                yield event

    def _confirm(self) -> Generator[TaskEvent, None, bool]:
        """GET the task; emit what changed; True once a terminal event was emitted."""
        task = self.api.get_task(self.task_id)
        for event in confirm_events(task, self.progression, statuses=not self.uses_ids):
            yield event
            if event.is_terminal:
                return True
        return False

    def _failed(self, reason: str) -> None:
        self.failures += 1
        logger.info(
            "task %s: event stream failed (%s), %d in a row", self.task_id, reason, self.failures
        )
        if self.failures >= self.settings.max_failures:
            raise FallBackToPolling(f"{self.failures} failed connects in a row (last: {reason})")
