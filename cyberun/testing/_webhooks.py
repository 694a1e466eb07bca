"""Signed webhook deliveries, retried like the real service's."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple
from urllib.parse import urlsplit

if TYPE_CHECKING:  # pragma: no cover
    from ._emulator import CyberunEmulator
    from ._world import TaskRecord

__all__ = ["DeliveryRecord", "WebhookDispatcher", "signature_header"]

#: Delays (emulated seconds) before each retry after a failed delivery:
#: immediately, 5 s, 30 s, 2 min. Four retries, five attempts in all.
RETRY_DELAYS = (0.0, 5.0, 30.0, 120.0)


def signature_header(secret: str, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 of the raw body keyed with the whole secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass
class DeliveryRecord:
    """One delivery attempt the emulator made."""

    webhook_id: str
    task_id: str
    event_type: str
    attempt: int
    url: str
    body: bytes
    signature: str
    status: Optional[int] = None
    error: str = ""
    time: float = field(default_factory=time.monotonic)

    @property
    def ok(self) -> bool:
        """True when the receiver answered 2xx."""
        return self.status is not None and 200 <= self.status < 300


@dataclass
class _Plan:
    attempts: int = 0
    next_at: float = 0.0
    done: bool = False


class WebhookDispatcher:
    """Delivers ``task.completed`` / ``task.failed`` to every subscribed webhook."""

    def __init__(self, emulator: CyberunEmulator) -> None:
        self.emulator = emulator
        self.plans: Dict[Tuple[str, str], _Plan] = {}
        self.thread: Optional[threading.Thread] = None
        self.lock = threading.Lock()

    def ensure_started(self) -> None:
        """Start the delivery thread (once), when the first webhook is created."""
        with self.lock:
            if self.thread is None:
                self.thread = threading.Thread(
                    target=self._run, name="emulator-webhooks", daemon=True
                )
                self.thread.start()

    def join(self, timeout: float) -> None:
        """Wait for the delivery thread to end (after the emulator stops)."""
        if self.thread is not None:
            self.thread.join(timeout)

    def _run(self) -> None:
        emulator = self.emulator
        while not emulator._stopping():
            due, next_at = self._plan()
            for hook, task, event_type, plan in due:
                self._deliver(hook, task, event_type, plan)
            if due:
                continue
            emulator.clock.wait_until(
                next_at if next_at is not None else emulator.clock.now() + 3600.0,
                interrupted=emulator._stopping,
                max_real=0.05,
            )

    def _plan(self) -> Tuple[List[Tuple[Dict[str, Any], TaskRecord, str, _Plan]], Optional[float]]:
        emulator = self.emulator
        now = emulator.clock.now()
        due = []
        next_at: Optional[float] = None
        for task in list(emulator._tasks.values()):
            terminal = next((e for e in task.timeline if e.event in ("completed", "failed")), None)
            if terminal is None:
                continue
            event_type = f"task.{terminal.event}"
            for hook in list(emulator._webhooks.values()):
                if event_type not in hook.get("webhook_events", []) or not hook.get(
                    "is_active", True
                ):
                    continue
                if hook["_created"] > terminal.time:
                    continue  # subscribed after the task finished
                key = (str(hook["id"]), task.id)
                plan = self.plans.setdefault(key, _Plan(next_at=terminal.time))
                if plan.done:
                    continue
                if plan.next_at <= now:
                    due.append((hook, task, event_type, plan))
                elif next_at is None or plan.next_at < next_at:
                    next_at = plan.next_at
        return due, next_at

    def _deliver(
        self, hook: Dict[str, Any], task: TaskRecord, event_type: str, plan: _Plan
    ) -> None:
        emulator = self.emulator
        payload = emulator._delivery_payload(task, event_type)
        body = json.dumps(payload, separators=(",", ":")).encode()
        secret = str(hook["webhook_secret"])
        signature = signature_header(secret, body)
        url = str(hook["webhook_url"])
        plan.attempts += 1
        record = DeliveryRecord(
            webhook_id=str(hook["id"]),
            task_id=payload["task_id"],
            event_type=event_type,
            attempt=plan.attempts,
            url=url,
            body=body,
            signature=signature,
        )
        try:
            record.status = _post(url, body, signature)
        except Exception as exc:
            record.error = f"{type(exc).__name__}: {exc}"
        with emulator._lock:
            emulator.webhook_deliveries.append(record)
        if record.ok or plan.attempts > len(RETRY_DELAYS):
            plan.done = True
        else:
            plan.next_at = emulator.clock.now() + RETRY_DELAYS[plan.attempts - 1]


def _post(url: str, body: bytes, signature: str) -> int:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme == "https":
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            host, parts.port or 443, timeout=5, context=ssl.create_default_context()
        )
    else:
        conn = http.client.HTTPConnection(host, parts.port or 80, timeout=5)
    try:
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        conn.request(
            "POST",
            path,
            body=body,
            headers={
                "Content-Type": "application/json",
                "X-Webhook-Signature-256": signature,
                "User-Agent": "Cyberun-Webhooks/1.0 (emulator)",
            },
        )
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()
