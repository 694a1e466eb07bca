"""A loopback HTTP server that records every request and answers with a function of the test's."""

from __future__ import annotations

import json
import socket
from typing import Any, Callable, Dict, List, Optional, Tuple

from localhttp import LocalServer, QuietHandler

#: answer(request) -> (status, headers, body)
Answer = Callable[["Seen"], Tuple[int, Dict[str, str], bytes]]

TASK = "019abc12-9012-7890-abcd-ef1234567896"


class Seen:
    """One request as the server saw it (header names in lower case)."""

    def __init__(self, method: str, target: str, headers: Dict[str, str], body: bytes) -> None:
        self.method = method
        self.target = target
        self.path = target.split("?", 1)[0]
        self.headers = headers
        self.body = body

    def __repr__(self) -> str:
        return f"<Seen {self.method} {self.target}>"


def task_json(task_id: str = TASK, status: str = "running") -> bytes:
    return json.dumps(
        {
            "id": task_id,
            "workflow_id": "w",
            "task_status": status,
            "created_at": "2026-01-01T00:00:00Z",
        }
    ).encode()


def ok_json(body: bytes) -> Tuple[int, Dict[str, str], bytes]:
    return 200, {"Content-Type": "application/json"}, body


class Recorder:
    """Records requests on ``host`` and answers each with ``answer(seen)``."""

    def __init__(
        self,
        answer: Optional[Answer] = None,
        host: str = "127.0.0.1",
        wrap_socket: Optional[Callable[[socket.socket], socket.socket]] = None,
    ) -> None:
        self.seen: List[Seen] = []
        self.answer: Answer = answer or (lambda seen: ok_json(task_json()))
        recorder = self

        class Handle(QuietHandler):
            def handle_one(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                seen = Seen(
                    self.command,
                    self.path,
                    {name.lower(): value for name, value in self.headers.items()},
                    body,
                )
                recorder.seen.append(seen)
                status, headers, payload = recorder.answer(seen)
                self.send_response(status)
                for name, value in headers.items():
                    # UTF-8 on the wire, as a careless server writes a non-ASCII Location.
                    self._headers_buffer.append(f"{name}: {value}\r\n".encode())  # type: ignore[attr-defined]
                if "content-length" not in {name.lower() for name in headers}:
                    self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = handle_one

        self.local = LocalServer(Handle, host, wrap_socket=wrap_socket)
        self.host = host
        self.port = self.local.port
        self.url = self.local.url

    def close(self) -> None:
        self.local.close()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def with_header(self, name: str) -> List[Seen]:
        """The requests that carried header ``name``."""
        return [seen for seen in self.seen if name.lower() in seen.headers]
