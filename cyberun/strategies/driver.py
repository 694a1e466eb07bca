"""The synchronous driver: the short loop that performs a follower's actions.

The [`Follower`][cyberun.strategies.follow.Follower] decides; this loop does the
I/O through the endpoint layer (whose every request carries the wait's
deadline and cancel token), reads the clock, sleeps, and hands events to
the caller. [`settle`][cyberun.strategies.driver.settle] is the one place that
turns an outcome into a return value or an exception, for ``wait``,
``events``, task handles, batches and the command line.

An asyncio driver would be the same loop with ``await`` on the requests,
the reads and the sleeps, over the same follower.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Callable, Generator, Iterator, Optional

from ..api import Endpoints
from ..errors import (
    CyberunError,
    TaskCancelled,
    TaskFailed,
    UnknownTaskStatus,
    WaitStopped,
    WaitTimeout,
)
from ..models import CompletedEvent, FailedEvent, TaskEvent, TaskResult
from ..retry import RetryPolicy
from ..transports._base import Response, Timeout
from ._common import Control
from .follow import (
    CloseStream,
    Deliver,
    Finish,
    Follower,
    GetResult,
    GetTask,
    OpenStream,
    Outcome,
    ReadStream,
    Sleep,
)

__all__ = ["cancel_quietly", "drive", "follow_events", "settle"]

logger: logging.Logger = logging.getLogger("cyberun")

_NEVER = RetryPolicy.never()
_RNG = random.Random()
#: Seconds a cancel sent because the deadline passed may take beyond it.
CANCEL_GRACE = 0.4


def drive(
    follower: Follower,
    api: Endpoints,
    control: Control,
    *,
    timeout: Timeout,
    clock: Callable[[], float] = time.monotonic,
) -> Generator[TaskEvent, None, Outcome]:
    """Perform ``follower``'s actions until it finishes; yield its events, return its outcome.

    ``api`` should be scoped to the wait's deadline and cancel token, so that
    no request outlasts the wait. Closing the generator closes the stream.
    """
    task_id = follower.task_id
    response: Optional[Response] = None
    chunks: Optional[Iterator[bytes]] = None

    def close() -> None:
        nonlocal response, chunks
        if response is not None:
            control.untrack(response)
            response.close()
        response = chunks = None

    try:
        while True:
            if control.stopped:
                follower.stop()
            action = follower.next_action(clock())
            kind = type(action)
            if kind is Deliver:
                yield from action.events  # type: ignore[union-attr]
            elif kind is ReadStream:
                assert chunks is not None
                try:
                    chunk = next(chunks)
                except StopIteration:
                    close()
                    follower.ended(clock())
                except CyberunError as exc:
                    close()
                    follower.ended(clock(), exc)
                else:
                    follower.received(clock(), chunk)
            elif kind is GetTask:
                try:
                    task = api.get_task(task_id)
                except CyberunError as exc:
                    follower.task_failed(clock(), exc)
                else:
                    follower.task_seen(clock(), task)
            elif kind is Sleep:
                control.wait(action.seconds)  # type: ignore[union-attr]
            elif kind is OpenStream:
                try:
                    response = api.open_events(
                        task_id,
                        last_event_id=action.last_event_id,  # type: ignore[union-attr]
                        timeout=timeout,
                        retry=_NEVER,
                    )
                except CyberunError as exc:
                    follower.refused(clock(), exc)
                else:
                    control.track(response)
                    chunks = response.iter_bytes()
                    follower.opened(clock(), response.headers.get("content-type", ""))
            elif kind is CloseStream:
                close()
            elif kind is GetResult:
                try:
                    result = api.get_result(task_id)
                except CyberunError as exc:
                    follower.result_failed(clock(), exc)
                else:
                    follower.result_seen(clock(), result)
            else:
                assert isinstance(action, Finish)
                return action.outcome
    finally:
        close()


def follow_events(
    follower: Follower,
    api: Endpoints,
    control: Control,
    *,
    timeout: Timeout,
    wait_timeout: Optional[float],
) -> Iterator[TaskEvent]:
    """The events of one task for ``Client.events``: ends after the terminal one, or raises."""
    outcome = yield from drive(follower, api, control, timeout=timeout)
    if outcome.kind in ("completed", "failed", "cancelled", "stopped"):
        return
    settle(outcome, follower.task_id, wait_timeout)


def cancel_quietly(api: Endpoints, task_id: str) -> Optional[CyberunError]:
    """Cancel a task whose wait timed out, within a short grace; return the error, if any."""
    try:
        api.scoped(deadline=time.monotonic() + CANCEL_GRACE).cancel_task(task_id)
    except CyberunError as exc:
        logger.warning("cancelling task %s after its wait timed out failed: %s", task_id, exc)
        return exc
    return None


def settle(
    outcome: Outcome,
    task_id: str,
    timeout: Optional[float],
    *,
    cancel_requested: bool = False,
    cancel_error: Optional[CyberunError] = None,
) -> TaskResult:
    """The result of a followed task, or the exception that says why there is none.

    Raises:
        TaskFailed: the task failed (``error`` holds the server's message).
        TaskCancelled: the task was cancelled.
        UnknownTaskStatus: the task ended in a status this SDK does not know.
        WaitTimeout: the deadline passed (``cancel_error`` when a cancel failed).
        WaitStopped: the caller stopped the wait.
        CyberunError: what following could not get past (401, 404 ...).
    """
    kind = outcome.kind
    task = outcome.task
    if kind == "completed" and outcome.result is not None:
        return outcome.result
    if kind == "failed":
        event = outcome.event
        error = event.error if isinstance(event, FailedEvent) else ""
        raise TaskFailed(
            f"task {task_id} failed: {error or 'no error message'}",
            task_id=task_id,
            task=task,
            error=error,
        )
    if kind == "cancelled":
        raise TaskCancelled(f"task {task_id} was cancelled", task_id=task_id, task=task)
    if kind == "unknown":
        status = str(task.task_status) if task is not None else ""
        raise UnknownTaskStatus(
            f"task {task_id} ended in status {status!r}, which this version of the SDK does "
            "not know (the server is newer): upgrade cyberun",
            task_id=task_id,
            task=task,
            status=status,
        )
    if kind == "timeout":
        raise WaitTimeout(
            _timeout_message(outcome, task_id, timeout, cancel_requested, cancel_error),
            task_id=task_id,
            task=task,
            cancel_error=cancel_error,
        )
    if kind == "stopped":
        raise WaitStopped(
            f"stopped waiting for task {task_id}; it keeps running on the server",
            task_id=task_id,
            task=task,
        )
    assert outcome.error is not None, outcome
    raise outcome.error


def _timeout_message(
    outcome: Outcome,
    task_id: str,
    timeout: Optional[float],
    cancel_requested: bool,
    cancel_error: Optional[CyberunError],
) -> str:
    if isinstance(outcome.event, CompletedEvent):
        return (
            f"task {task_id} completed, but its result could not be fetched within "
            f"{timeout}s; call client.get_result({task_id!r})"
        )
    waited = f"task {task_id} did not finish within {timeout}s"
    if cancel_requested and cancel_error is None:
        return f"{waited}; it was cancelled"
    if cancel_requested:
        return (
            f"{waited}; cancelling it failed ({cancel_error}), so it may still be running on "
            "the server (cancel it with client.cancel)"
        )
    return f"{waited}; it is still running on the server (wait on it again, or cancel it)"


def random_source() -> Callable[[], float]:
    """The jitter source followers use."""
    return _RNG.random
