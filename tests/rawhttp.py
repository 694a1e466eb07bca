"""A tiny standard-library HTTP client for testing servers without the SDK."""

from __future__ import annotations

import http.client
import json
from typing import Any, Dict, Iterator, List, Optional, Tuple
from urllib.parse import urlsplit

from cyberun.sse import ServerSentEvent, iter_events


class Answer:
    def __init__(self, status: int, headers: Dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"<Answer {self.status} {self.body[:120]!r}>"


def request(
    url: str,
    method: str = "GET",
    *,
    headers: Optional[Dict[str, str]] = None,
    body: Any = None,
    json_body: Any = None,
    timeout: float = 10.0,
) -> Answer:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        headers = dict(headers or {})
        if json_body is not None:
            body = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return Answer(response.status, dict(response.getheaders()), response.read())
    finally:
        conn.close()


def stream(
    url: str, *, headers: Optional[Dict[str, str]] = None, timeout: float = 10.0
) -> Tuple[int, Dict[str, str], Iterator[bytes]]:
    """Open a streaming GET; yields raw chunks as they arrive."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    conn.request("GET", path, headers=headers or {})
    response = conn.getresponse()

    def chunks() -> Iterator[bytes]:
        try:
            while True:
                chunk = response.read1(65536)
                if not chunk:
                    return
                yield chunk
        finally:
            conn.close()

    return response.status, {k.lower(): v for k, v in response.getheaders()}, chunks()


def events(url: str, *, headers: Optional[Dict[str, str]] = None) -> List[ServerSentEvent]:
    status, _, chunks = stream(url, headers=headers)
    assert status == 200
    return list(iter_events(chunks))


class Emu:
    """Shortcuts for talking to a CyberunEmulator over raw HTTP."""

    def __init__(self, server: Any, token: Optional[str] = None) -> None:
        self.server = server
        self.token = token if token is not None else server.api_key

    def headers(self, extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        headers.update(extra or {})
        return headers

    def url(self, path: str) -> str:
        return self.server.base_url + (
            "/api/v1/r" + path if not path.startswith("/api/") else path
        )

    def call(self, method: str, path: str, json_body: Any = None, **kw: Any) -> Answer:
        return request(
            self.url(path),
            method,
            headers=self.headers(kw.pop("headers", None)),
            json_body=json_body,
            **kw,
        )

    def run(self, workflow: str = "text-to-image", parameters: Any = None) -> str:
        answer = self.call(
            "POST",
            f"/workflows/slug/{workflow}/run",
            {"parameters": parameters or {"prompt": "a fox"}},
        )
        assert answer.status == 202, answer
        return str(answer.json()["task_id"])

    def presign(self, file_name: str, file_size: int, content_type: str) -> Answer:
        """POST /files/presign; the answer as it came."""
        body = {"file_name": file_name, "file_size": file_size, "content_type": content_type}
        return self.call("POST", "/files/presign", body)

    def create_webhook(
        self,
        webhook_url: str,
        events: List[str],
        display_name: str = "t",
        headers: Optional[Dict[str, str]] = None,
    ) -> Answer:
        """POST /api/v1/webhooks; the answer as it came."""
        body = {"display_name": display_name, "webhook_url": webhook_url, "webhook_events": events}
        return self.call("POST", "/api/v1/webhooks", body, headers=headers)

    def events(
        self, task_id: str, extra: Optional[Dict[str, str]] = None
    ) -> List[ServerSentEvent]:
        return events(self.url(f"/tasks/{task_id}/events"), headers=self.headers(extra))
