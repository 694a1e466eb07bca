"""Following many tasks at once: the machinery behind ``Client.as_completed``.

Every task has its own [`Follower`][cyberun.strategies.follow.Follower]. At most
``max_streams`` of them stream at a time, each driven by one worker thread
with the same driver as ``Client.wait``; the others are polled by one more
thread, which feeds each follower the snapshot its GET returned (the
follower takes a snapshot from any source). A task that ends while polled is
reported without ever being streamed; a transient error on a poll is one
more input to its follower, never the end of the task. Each task is
reported once, with its real outcome. Ending the iteration early (or
abandoning the iterator) stops every thread and releases every connection.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from functools import partial
from typing import Callable, Dict, Iterator, List, Optional, Set, Tuple

import attrs

from ..api import Endpoints
from ..errors import CyberunError, WaitStopped
from ..models import Task, TaskEvent, TaskResult
from ..transports._base import Timeout
from ._common import Control
from .driver import CANCEL_GRACE, drive, random_source, settle
from .follow import Deliver, Finish, Follower, GetResult, Outcome, StreamSettings

__all__ = ["Batch", "Completion"]

logger: logging.Logger = logging.getLogger("cyberun")

#: on_event(task_id, event)
BatchEventCallback = Callable[[str, TaskEvent], None]


@attrs.frozen
class Completion:
    """One finished task from [`Client.as_completed`][cyberun.Client.as_completed].

    Attributes:
        task_id: the task's id.
        result: the result when it completed, else None.
        error: why there is no result (``TaskFailed``, ``TaskCancelled``,
            ``WaitTimeout``, ``WaitStopped`` or another
            [`CyberunError`][cyberun.CyberunError]), else None.
    """

    task_id: str
    result: Optional[TaskResult] = None
    error: Optional[Exception] = None

    @property
    def ok(self) -> bool:
        """True when the task completed."""
        return self.error is None

    def get(self) -> TaskResult:
        """The result, or raise the error."""
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


class Batch:
    """Stream workers plus one poller over one follower per task.

    Args:
        api: the endpoint layer (not scoped: the batch scopes it to ``control``).
        ids: the tasks, without repeats.
        control: the batch's stop signals and deadline (registered with the client).
        timeout: the batch's timeout in seconds (for messages).
        max_streams: streams (and streaming threads) at most; 0 polls all.
        poll: poll every task, stream none.
        settings: the followers' settings.
        poll_interval: seconds between two polls of the waiting tasks.
        request_timeout: the transport timeouts of stream requests.
        on_event: called as ``(task_id, event)`` with every event, from the
            thread that follows the task.
        cancel_on_timeout: cancel the unfinished tasks when the deadline passes.
    """

    def __init__(
        self,
        api: Endpoints,
        ids: List[str],
        *,
        control: Control,
        timeout: Optional[float],
        max_streams: int,
        poll: bool,
        settings: StreamSettings,
        poll_interval: float,
        request_timeout: Timeout,
        on_event: Optional[BatchEventCallback] = None,
        cancel_on_timeout: bool = False,
    ) -> None:
        self.api: Endpoints = api
        self.scoped: Endpoints = api.scoped(deadline=control.deadline, cancel=control.token)
        self.ids: List[str] = ids
        self.control: Control = control
        self.timeout: Optional[float] = timeout
        self.streams: int = 0 if poll else min(max(0, max_streams), len(ids))
        self.poll_interval: float = poll_interval
        self.request_timeout: Timeout = request_timeout
        self.on_event: Optional[BatchEventCallback] = on_event
        self.cancel_on_timeout: bool = cancel_on_timeout
        now = time.monotonic()
        jitter = random_source()
        self.followers: Dict[str, Follower] = {
            task_id: Follower(
                task_id,
                now=now,
                deadline=control.deadline,
                poll=True,
                settings=settings,
                poll_interval=poll_interval,
                random=jitter,
            )
            for task_id in ids
        }
        self._lock = threading.Lock()
        self.waiting: List[str] = list(ids)  # not taken by a stream worker: polled
        self.reported: Set[str] = set()
        self.results: queue.Queue[Completion] = queue.Queue()
        self.threads: List[threading.Thread] = []

    def run(self) -> Iterator[Completion]:
        """Yield a completion per task as each ends (every task once)."""
        for n in range(self.streams):
            self._start(self._stream_worker, f"cyberun-stream-{n}")
        self._start(self._poller, "cyberun-poller")
        try:
            delivered = 0
            while delivered < len(self.ids):
                remaining = self.control.remaining()
                if remaining is not None and remaining <= 0:
                    break
                if self.control.stopped:
                    break
                try:
                    completion = self.results.get(
                        timeout=0.1 if remaining is None else min(remaining, 0.1)
                    )
                except queue.Empty:
                    continue
                delivered += 1
                yield completion
            self._stop_workers()
            self._report_unfinished()
            while delivered < len(self.ids):
                delivered += 1
                yield self.results.get_nowait()
        finally:
            self._stop_workers()

    def _start(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self.threads.append(thread)
        thread.start()

    def _stop_workers(self) -> None:
        self.control.interrupt()
        for thread in self.threads:
            if thread is not threading.current_thread():
                thread.join(5)

    def _report_unfinished(self) -> None:
        """After the deadline (or a stop): every task not reported yet, once."""
        with self._lock:
            unfinished = [t for t in self.ids if t not in self.reported]
        stopped = self.control.stopped and not self._deadline_passed()
        cancel_api = self.api.scoped(deadline=time.monotonic() + CANCEL_GRACE)
        for task_id in unfinished:
            follower = self.followers[task_id]
            if stopped:
                error: Exception = WaitStopped(
                    f"stopped waiting for task {task_id}; it keeps running on the server",
                    task_id=task_id,
                )
                self._report(task_id, error=error)
                continue
            cancel_error: Optional[CyberunError] = None
            if self.cancel_on_timeout:
                try:
                    cancel_api.cancel_task(task_id)
                except CyberunError as exc:
                    cancel_error = exc
            seen = follower.outcome
            outcome = Outcome(
                "timeout",
                event=None if seen is None else seen.event,
                task=None if seen is None else seen.task,
            )
            try:
                settle(
                    outcome,
                    task_id,
                    self.timeout,
                    cancel_requested=self.cancel_on_timeout,
                    cancel_error=cancel_error,
                )
            except CyberunError as exc:
                self._report(task_id, error=exc)

    def _deadline_passed(self) -> bool:
        remaining = self.control.remaining()
        return remaining is not None and remaining <= 0

    def _report(
        self, task_id: str, result: Optional[TaskResult] = None, error: Optional[Exception] = None
    ) -> None:
        # Claiming and queueing are one step: a completion is never claimed
        # without being queued, nor queued twice.
        with self._lock:
            if task_id in self.reported:
                return
            self.reported.add(task_id)
            if task_id in self.waiting:
                self.waiting.remove(task_id)
            self.results.put(Completion(task_id, result, error))

    def _report_outcome(self, task_id: str, outcome: Outcome) -> None:
        if outcome.kind in ("timeout", "stopped"):
            return  # reported by the consumer, once the deadline passed or the stop came
        try:
            result = settle(outcome, task_id, self.timeout)
        except CyberunError as exc:
            self._report(task_id, error=exc)
        else:
            self._report(task_id, result=result)

    def _emit(self, task_id: str, events: List[TaskEvent]) -> None:
        if self.on_event is not None:
            for event in events:
                self.on_event(task_id, event)

    def _stream_worker(self) -> None:
        while not self.control.stopped:
            with self._lock:
                if not self.waiting:
                    return
                task_id = self.waiting.pop(0)
                follower = self.followers[task_id]
                follower.stream(time.monotonic())
            try:
                events = drive(follower, self.scoped, self.control, timeout=self.request_timeout)
                while True:
                    try:
                        event = next(events)
                    except StopIteration as end:
                        outcome: Outcome = end.value
                        break
                    self._emit(task_id, [event])
            except Exception as exc:  # a bug (or a callback's error) must not hang the consumer
                self._report(task_id, error=exc)
                continue
            self._report_outcome(task_id, outcome)

    def _poller(self) -> None:
        while not self.control.stopped:
            with self._lock:
                batch = list(self.waiting)
            if not batch and len(self.reported) == len(self.ids):
                return
            for task_id in batch:
                if self._stopped():
                    return
                try:
                    task = self.scoped.get_task(task_id)
                except CyberunError as exc:
                    if self._stopped():
                        return
                    self._poll_step(task_id, partial(_fail, error=exc))
                    continue
                self._poll_step(task_id, partial(_see, task=task))
            self.control.wait(self.poll_interval)

    def _stopped(self) -> bool:
        return self.control.stopped

    def _poll_step(self, task_id: str, feed: Callable[[Follower, float], None]) -> None:
        """Feed one snapshot (or error) to a polled task's follower, and act on its answer."""
        follower = self.followers[task_id]
        with self._lock:
            if task_id not in self.waiting:
                return  # a stream worker took it meanwhile
            feed(follower, time.monotonic())
            events, wants_result, outcome = _drain(follower)
            if wants_result or outcome is not None:
                self.waiting.remove(task_id)  # this thread finishes it
        try:
            self._emit(task_id, events)
            if wants_result:
                try:
                    result = self.scoped.get_result(task_id)
                except CyberunError as exc:
                    follower.result_failed(time.monotonic(), exc)
                else:
                    follower.result_seen(time.monotonic(), result)
                more, _, outcome = _drain(follower)
                self._emit(task_id, more)
        except Exception as exc:  # a callback's error: report it, keep polling the others
            self._report(task_id, error=exc)
            return
        if outcome is not None:
            self._report_outcome(task_id, outcome)


def _fail(follower: Follower, now: float, *, error: CyberunError) -> None:
    follower.task_failed(now, error)


def _see(follower: Follower, now: float, *, task: Task) -> None:
    follower.task_seen(now, task)


def _drain(follower: Follower) -> Tuple[List[TaskEvent], bool, Optional[Outcome]]:
    """The events a polled follower delivers now, whether it wants the result, its outcome."""
    events: List[TaskEvent] = []
    while True:
        action = follower.next_action(time.monotonic())
        if isinstance(action, Deliver):
            events.extend(action.events)
        elif isinstance(action, GetResult):
            return events, True, None
        elif isinstance(action, Finish):
            return events, False, action.outcome
        else:  # a sleep or the next GET: the poller's next round
            return events, False, None
