"""Signed webhook deliveries, retried like the real service's."""

from __future__ import annotations

import http.client
import json
import ssl
import threading
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple
from urllib.parse import urlsplit

from ._records import DeliveryRecord, TaskRecord, signature_header
from ._world import World

__all__ = ["WebhookDispatcher"]

#: Delays (emulated seconds) before each retry after a failed delivery:
#: immediately, 5 s, 30 s, 2 min. Four retries, five attempts in all.
RETRY_DELAYS = (0.0, 5.0, 30.0, 120.0)


@dataclass
class _Plan:
    attempts: int = 0
    next_at: float = 0.0
    done: bool = False


class WebhookDispatcher:
    """Delivers ``task.completed`` / ``task.failed`` to every subscribed webhook."""

    def __init__(self, world: World) -> None:
        self.world = world
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
        world = self.world
        while not world.stopping():
            now = world.now()
            next_at = world.next_terminal_time()
            delivered = False
            for hook, task, event_type, due in world.due_deliveries():
                plan = self.plans.setdefault((str(hook["id"]), task.id), _Plan(next_at=due))
                if plan.done:
                    continue
                if plan.next_at <= now:
                    self._deliver(hook, task, event_type, plan)
                    delivered = True
                elif next_at is None or plan.next_at < next_at:
                    next_at = plan.next_at
            if delivered:
                continue
            world.clock.wait_until(
                next_at if next_at is not None else now + 3600.0,
                interrupted=world.stopping,
                max_real=0.05,
            )

    def _deliver(
        self, hook: Dict[str, Any], task: TaskRecord, event_type: str, plan: _Plan
    ) -> None:
        world = self.world
        payload = world.delivery_payload(task, event_type)
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
        world.record_delivery(record)
        if record.ok or plan.attempts > len(RETRY_DELAYS):
            plan.done = True
        else:
            plan.next_at = world.now() + RETRY_DELAYS[plan.attempts - 1]


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
