"""Hooks: call the test's function at a point of the emulator's work (a task created, ...)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable, List, Optional

from ._faults import ROUTES
from ._records import RecordedRequest

__all__ = ["POINTS", "Hook", "HookBook", "HookCall"]

#: Where a hook can be called: ``created`` (a run created its task, before the
#: answer is written), ``answered`` (a request's answer was written, or its
#: connection cut), ``event`` (an event was written to a stream).
POINTS = ("created", "answered", "event")


@dataclass(frozen=True)
class HookCall:
    """What a hook's callback is given.

    Attributes:
        point: ``created``, ``answered`` or ``event``.
        route: the request's route.
        task_id: the task concerned, if any.
        request: the request as the emulator records it.
        events: at ``event``, how many events this stream has written so far.
    """

    point: str
    route: str
    task_id: Optional[str]
    request: RecordedRequest
    events: int = 0


@dataclass
class Hook:
    """A registered callback; ``times=None`` means until the emulator stops.

    Attributes:
        calls: how many times it was called.
        errors: exceptions its callback raised (the emulator carries on).
    """

    point: str
    callback: Callable[[HookCall], None]
    route: Optional[str] = None
    task_id: Optional[str] = None
    times: Optional[int] = 1
    after_events: Optional[int] = None
    calls: int = 0
    errors: List[BaseException] = field(default_factory=list)


class HookBook:
    """The registered hooks, called as the emulator reaches their point."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hooks: List[Hook] = []

    def add(self, hook: Hook) -> Hook:
        """Register a hook; a ValueError says in one line what is wrong with it."""
        if hook.point not in POINTS:
            raise ValueError(f"unknown hook point {hook.point!r}; known: {', '.join(POINTS)}")
        if hook.route is not None and hook.route not in ROUTES:
            raise ValueError(f"unknown route {hook.route!r}; known: {', '.join(ROUTES)}")
        if hook.after_events is not None and hook.point != "event":
            raise ValueError('after_events needs the point "event"')
        if hook.times is not None and hook.times < 1:
            raise ValueError("times must be at least 1 (or None for unlimited)")
        if not callable(hook.callback):
            raise TypeError("callback must be callable")
        with self._lock:
            self._hooks.append(hook)
        return hook

    def fire(self, call: HookCall) -> None:
        """Call every hook registered for this point, route and task."""
        due = []
        with self._lock:
            for hook in list(self._hooks):
                if hook.point != call.point:
                    continue
                if hook.route is not None and hook.route != call.route:
                    continue
                if hook.task_id is not None and hook.task_id != call.task_id:
                    continue
                if hook.after_events is not None and call.events != hook.after_events:
                    continue
                hook.calls += 1
                due.append(hook)
                if hook.times is not None and hook.calls >= hook.times:
                    self._hooks.remove(hook)
        for hook in due:
            try:
                hook.callback(call)
            except Exception as exc:  # the test's bug must not break the server
                hook.errors.append(exc)

    def clear(self) -> None:
        """Remove every hook."""
        with self._lock:
            self._hooks.clear()
