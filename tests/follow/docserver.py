"""A hand-written server shaped like the documented API (no ``id:`` lines unless asked).

Each test says what every events connection sends (``streams``: a list of
scripts, the last one repeated), what ``GET /tasks/{id}`` answers (a status,
``completed_at`` once terminal) and how slowly the result and the task
answer. Raw sockets: every byte, pause and close is the test's.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Union

from rawserver import RawRequest, RawServer

TASK = "019abc12-9012-7890-abcd-ef1234567896"
OTHER = "019abc12-0000-7890-abcd-ef1234567896"
PREFIX = "/api/v1/r/tasks/"

#: One events connection: bytes to send, a float to pause for, or "hang" (until the server closes).
Step = Union[bytes, float, str]


def event(kind: str, task: str = TASK, event_id: Optional[str] = None, **data: Any) -> bytes:
    lines = [] if event_id is None else [f"id: {event_id}"]
    payload = {"task_id": task, **data}
    if kind in ("status", "progress"):
        payload.setdefault("timestamp", "2026-02-01T14:30:05Z")
    lines += [f"event: {kind}", f"data: {json.dumps(payload, separators=(',', ':'))}"]
    return ("\n".join(lines) + "\n\n").encode()


def status(value: str, **kw: Any) -> bytes:
    return event("status", status=value, **kw)


def progress(step: int, total: int = 3, node: str = "3", **kw: Any) -> bytes:
    return event(
        "progress",
        progress=step / total,
        step_current=step,
        step_total=total,
        current_node=node,
        **kw,
    )


def completed(task: str = TASK, **kw: Any) -> bytes:
    return event("completed", task=task, status="completed", output={"image_count": 1}, **kw)


class DocServer:
    """The documented API on loopback, scripted per test."""

    def __init__(
        self,
        streams: List[List[Step]],
        *,
        task_status: Union[str, Callable[[], str]] = "running",
        task_delay: float = 0.0,
        result_delay: float = 0.0,
        cancel_status: int = 200,
        content_type: str = "text/event-stream",
    ) -> None:
        self.streams = streams
        self.task_status = task_status
        self.task_delay = task_delay
        self.result_delay = result_delay
        self.cancel_status = cancel_status
        self.content_type = content_type
        self.requests: List[RawRequest] = []
        self.times: List[float] = []
        self._lock = threading.Lock()
        self._stream_count = 0
        self.raw = RawServer(self._serve)
        self.url = self.raw.url

    def close(self) -> None:
        self.raw.close()

    def __enter__(self) -> DocServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def count(self, route: str) -> int:
        return sum(1 for r in self.requests if _route(r) == route)

    def _serve(self, conn: socket.socket, request: RawRequest) -> None:
        with self._lock:
            self.requests.append(request)
            self.times.append(time.monotonic())
        route = _route(request)
        if route == "events":
            with self._lock:
                script = self.streams[min(self._stream_count, len(self.streams) - 1)]
                self._stream_count += 1
            head = (
                f"HTTP/1.1 200 OK\r\nContent-Type: {self.content_type}\r\n"
                "Cache-Control: no-cache\r\nConnection: close\r\n\r\n"
            )
            conn.sendall(head.encode())
            for step in script:
                if isinstance(step, bytes):
                    conn.sendall(step)
                elif step == "hang":
                    self.raw.stop.wait(60)
                else:
                    if self.raw.stop.wait(float(step)):
                        return
            return
        if route == "task":
            if self.raw.stop.wait(self.task_delay):
                return
            value = self.task_status() if callable(self.task_status) else self.task_status
            done = value in (
                "completed",
                "failed",
                "cancelled",
                "archived",
            )  # archived: a future one
            body: Dict[str, Any] = {
                "id": TASK,
                "workflow_id": "019abc12-8901-7890-abcd-ef1234567895",
                "task_source": "api_key",
                "task_status": value,
                "created_at": "2026-02-01T14:30:00Z",
                "task_error": "boom" if value == "failed" else "",
                "completed_at": "2026-02-01T14:31:00Z" if done else None,
            }
            _send_json(conn, 200, body)
            return
        if route == "result":
            if self.raw.stop.wait(self.result_delay):
                return
            _send_json(
                conn,
                200,
                {
                    "id": TASK,
                    "task_status": "completed",
                    "task_output": {"image_count": 1},
                    "download_url": "https://s3.example.com/o.png?X-Amz-Signature=abc",
                    "task_error": "",
                },
            )
            return
        if route == "cancel":
            _send_json(conn, self.cancel_status, {"ok": self.cancel_status < 300})
            return
        _send_json(conn, 404, {"error": "not found"})


def _route(request: RawRequest) -> str:
    path = request.target.split("?")[0]
    if not path.startswith(PREFIX):
        return "other"
    rest = path[len(PREFIX) :].split("/")
    if len(rest) == 1:
        return "task"
    return rest[1]


def _send_json(conn: socket.socket, code: int, body: Any) -> None:
    data = json.dumps(body).encode()
    head = (
        f"HTTP/1.1 {code} X\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
    )
    conn.sendall(head.encode() + data)
