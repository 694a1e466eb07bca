"""Fault injection: what can go wrong, where, and how many times."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional

__all__ = ["FAULTS", "ROUTES", "Fault", "FaultBook"]

#: Every fault the emulator can inject, with the routes it applies to and its parameters.
FAULTS: Dict[str, str] = {
    "status": "any route: answer an HTTP error instead. status=503, retry_after=None, "
    "body=None; after_accept=True (run only) creates the task first",
    "reset": "any route: reset the connection (TCP RST). after_bytes=None resets mid-body "
    "(events and storage), otherwise before answering; after_accept=True (run only) creates "
    "the task first",
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
    "slow_drip": "events, storage: write one byte at a time. delay=0.001 (real)",
    "expire_urls": "result: hand out download URLs that expire after `seconds` (emulated, 0)",
    "truncate": "storage: send the full Content-Length but stop after after_bytes=N",
}

#: Route names for `inject(route=...)`.
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
        """Register a fault."""
        if fault.kind not in FAULTS:
            raise ValueError(f"unknown fault {fault.kind!r}; known: {', '.join(FAULTS)}")
        if fault.route is not None and fault.route not in ROUTES:
            raise ValueError(f"unknown route {fault.route!r}; known: {', '.join(ROUTES)}")
        if fault.get("after_accept") and (
            fault.kind not in ("reset", "status") or fault.route != "run"
        ):
            raise ValueError(
                'after_accept=True needs inject("reset" or "status", route="run", ...)'
            )
        if fault.times is not None and fault.times < 1:
            raise ValueError("times must be at least 1 (or None for unlimited)")
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
