"""Fault injection: what can go wrong, where, and how many times."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

__all__ = ["FAULTS", "FAULT_ROUTES", "ROUTES", "Fault", "FaultBook"]

#: Route names for `inject(route=...)`: the API's, then the storage host's.
ROUTES = (
    "run",
    "tasks",
    "task",
    "cancel",
    "result",
    "events",
    "workflows",
    "workflow",
    "presign",
    "upload",
    "download",
    "webhooks",
)

#: Every fault the emulator can inject, with the routes it applies to and its parameters.
FAULTS: Dict[str, str] = {
    "status": "any route: answer an HTTP error instead. status=503, retry_after=None, "
    "body=None (plain text instead of the usual error JSON or S3 XML); after_accept=True "
    "(run only) creates the task first",
    "reset": "any route: reset the connection (TCP RST) before answering (an upload: after "
    "reading its body); after_bytes=N resets after N bytes of the answer (events, download) "
    "or of the request body (upload); after_accept=True (run only) creates the task first",
    "latency": "any route: wait before answering. seconds=0.5 (real)",
    "drop": "events: close the stream abruptly. after_bytes=N or after_events=N",
    "stall": "events: send nothing for a while. seconds=5.0 (real), after_events=0",
    "keepalive_only": "events: send only keep-alive comments. interval=0.05 (real), "
    "seconds=None (forever)",
    "wrong_content_type": "events: answer 200 with another content type. "
    "content_type='text/html; charset=utf-8'",
    "malformed_json": "events: break one event's JSON. after_events=0",
    "error_event": "events: send an `error` event first. message='failed to fetch task status'",
    "no_terminal": "events: close cleanly just before the terminal event",
    "slow_drip": "events, download: write one byte at a time. delay=0.001 (real)",
    "expire_urls": "result: hand out download URLs that expire after `seconds` (emulated, 0)",
    "truncate": "download: send the full Content-Length but stop after after_bytes=N "
    "(default: half the body)",
}

#: The routes each fault applies to (``inject`` refuses any other).
FAULT_ROUTES: Dict[str, Tuple[str, ...]] = {
    "status": ROUTES,
    "reset": ROUTES,
    "latency": ROUTES,
    "drop": ("events",),
    "stall": ("events",),
    "keepalive_only": ("events",),
    "wrong_content_type": ("events",),
    "malformed_json": ("events",),
    "error_event": ("events",),
    "no_terminal": ("events",),
    "slow_drip": ("events", "download"),
    "expire_urls": ("result",),
    "truncate": ("download",),
}

_PARAMS: Dict[str, Tuple[str, ...]] = {
    "status": ("status", "retry_after", "body", "after_accept"),
    "reset": ("after_bytes", "after_accept"),
    "latency": ("seconds",),
    "drop": ("after_bytes", "after_events"),
    "stall": ("seconds", "after_events"),
    "keepalive_only": ("interval", "seconds"),
    "wrong_content_type": ("content_type",),
    "malformed_json": ("after_events",),
    "error_event": ("message",),
    "no_terminal": (),
    "slow_drip": ("delay",),
    "expire_urls": ("seconds",),
    "truncate": ("after_bytes",),
}


@dataclass
class Fault:
    """One injected fault; ``times=None`` means until cleared."""

    kind: str
    route: Optional[str] = None
    task_id: Optional[str] = None
    times: Optional[int] = 1
    params: Dict[str, Any] = field(default_factory=dict)
    used: int = 0

    def applies(self, route: str, task_id: Optional[str]) -> bool:
        """Whether this fault targets a request to ``route`` for ``task_id``."""
        if self.route is not None and self.route != route:
            return False
        return self.task_id is None or self.task_id == task_id

    def get(self, name: str, default: Any = None) -> Any:
        """A parameter, or its default."""
        return self.params.get(name, default)


class FaultBook:
    """The active faults, consumed as requests hit them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: List[Fault] = []

    def add(self, fault: Fault) -> Fault:
        """Register a fault; a ValueError says in one line what is wrong with it."""
        check(fault)
        with self._lock:
            self._faults.append(fault)
        return fault

    def take(
        self,
        kinds: Iterable[str],
        route: str,
        task_id: Optional[str],
        where: Callable[[Fault], bool] = lambda fault: True,
    ) -> List[Fault]:
        """Consume one use of every active fault of ``kinds`` that targets this request."""
        wanted = set(kinds)
        taken = []
        with self._lock:
            for fault in list(self._faults):
                if fault.kind in wanted and fault.applies(route, task_id) and where(fault):
                    fault.used += 1
                    taken.append(fault)
                    if fault.times is not None and fault.used >= fault.times:
                        self._faults.remove(fault)
        return taken

    def clear(self) -> None:
        """Remove every fault."""
        with self._lock:
            self._faults.clear()

    def active(self) -> List[Fault]:
        """A snapshot of the faults still active."""
        with self._lock:
            return list(self._faults)


def check(fault: Fault) -> None:
    """Refuse a fault that would be accepted and never applied."""
    if fault.kind not in FAULTS:
        raise ValueError(f"unknown fault {fault.kind!r}; known: {', '.join(FAULTS)}")
    routes = FAULT_ROUTES[fault.kind]
    if fault.get("after_accept") and (
        fault.kind not in ("reset", "status") or fault.route != "run"
    ):
        raise ValueError('after_accept=True needs inject("reset" or "status", route="run", ...)')
    if fault.route is not None and fault.route not in ROUTES:
        raise ValueError(f"unknown route {fault.route!r}; known: {', '.join(ROUTES)}")
    if fault.route is not None and fault.route not in routes:
        raise ValueError(
            f"fault {fault.kind!r} applies to route {' or '.join(map(repr, routes))}, "
            f"not {fault.route!r}"
        )
    unknown = sorted(set(fault.params) - set(_PARAMS[fault.kind]))
    if unknown:
        known = ", ".join(_PARAMS[fault.kind]) or "none"
        raise ValueError(
            f"fault {fault.kind!r} takes no parameter {', '.join(unknown)}; "
            f"its parameters: {known}"
        )
    if fault.kind == "reset" and fault.get("after_bytes") is not None:
        if fault.route not in ("events", "download", "upload"):
            raise ValueError(
                'reset with after_bytes needs route="events", "download" or "upload" '
                "(the routes with a body to cut)"
            )
    if (
        fault.kind == "drop"
        and fault.get("after_bytes") is None
        and fault.get("after_events") is None
    ):
        raise ValueError("drop needs after_bytes=N or after_events=N")
    for name in ("after_bytes", "after_events", "status"):
        value = fault.get(name)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 0
        ):
            raise ValueError(f"{name} must be a non-negative integer, not {value!r}")
    for name in ("seconds", "delay", "interval"):
        value = fault.get(name)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0
        ):
            raise ValueError(f"{name} must be a number of seconds >= 0, not {value!r}")
    if fault.times is not None and fault.times < 1:
        raise ValueError("times must be at least 1 (or None for unlimited)")
