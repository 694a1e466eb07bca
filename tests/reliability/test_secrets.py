"""Secrets: the API key, the team id and presigned signatures never leak.

A full scenario runs with logging at DEBUG. Every log record, exception
message, ``repr`` and ``str`` of the objects involved, and the emulator's
request logs are searched for the secrets. On the wire, the key and team id
may appear in exactly one place: the ``Authorization`` and ``X-Team-ID``
headers of requests to the API host; never in a URL or body, never to
storage, never to a redirect target on another host.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, List, Tuple
from urllib.parse import urlsplit

import pytest

import cyberun
from cyberun.testing import CyberunEmulator
from cyberun.transports import Request, Response, Timeout, UrllibTransport

SIGNATURE = re.compile(r"X-Amz-Signature=([0-9a-f]+)")


class Recording(UrllibTransport):
    """Sends for real and keeps (url, headers, body) of every request as sent.

    A request to ``/api/v1/r/tasks/redirect-me`` is answered with a redirect
    to the storage host, without reaching the server.
    """

    def __init__(self, storage_url: str) -> None:
        super().__init__()
        self.sent: List[Tuple[str, dict, bytes]] = []  # type: ignore[type-arg]
        self.storage_url = storage_url

    def send(self, request: Request, *, timeout: Timeout) -> Response:
        body = request.body if isinstance(request.body, bytes) else b""
        self.sent.append((request.url, dict(request.headers.items()), body))
        if request.url.endswith("/tasks/redirect-me"):
            return Response(302, {"Location": self.storage_url + "/elsewhere/x"}, content=b"")
        return super().send(request, timeout=timeout)


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: List[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append(record.getMessage())
        self.texts.append(repr(record.args))
        if record.exc_info:
            self.texts.append(logging.Formatter().formatException(record.exc_info))


def everything(obj: Any) -> List[str]:
    return [str(obj), repr(obj)]


def test_no_secret_leaks_anywhere(tmp_path: Path) -> None:
    capture = Capture()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    seen: List[str] = []
    try:
        with CyberunEmulator(time_scale=0.01) as server:
            key, team = server.jwt, server.team_id
            transport = Recording(server.storage_url)
            client = cyberun.Client(
                key,
                team_id=team,
                base_url=server.base_url,
                transport=transport,
                retry=cyberun.RetryPolicy(backoff=0.0),
            )
            seen += everything(client) + everything(client.api) + everything(transport)
            photo = tmp_path / "in.zip"
            photo.write_bytes(b"\x89PNG fake")
            task = client.run("gaussian-splat", {"images": photo})
            server.inject("drop", route="events", task_id=task.id, after_bytes=150)
            server.inject("status", route="result", task_id=task.id, status=503)
            events: List[Any] = []
            result = task.wait(on_event=events.append)
            seen += [text for event in events for text in everything(event)]
            seen += everything(result) + everything(task) + everything(task.refresh())
            server.inject("expire_urls", route="result", seconds=0)
            paths = client.download(task, tmp_path / "out")
            seen += [str(p) for p in paths]
            seen += [text for w in client.list_workflows() for text in everything(w)]
            hook = client.create_webhook("https://example.com/hook")
            secret = client.rotate_webhook_secret(hook.id)
            seen += everything(hook) + everything(client.get_webhook(hook.id))
            wrong_key = cyberun.Client(key + "x", team_id=team, base_url=server.base_url)
            for attempt in (
                lambda: client.get_task("00000000-0000-4000-8000-000000000000"),
                lambda: client.run("always-fails").wait(),
                lambda: client.get_task("redirect-me"),
                lambda: client.wait(client.run("slow-render").id, timeout=0.2),
                lambda: wrong_key.get_task("t"),
            ):
                with pytest.raises(cyberun.CyberunError) as info:
                    attempt()
                seen += [*everything(info.value), repr(vars(info.value))]
            client.close()
            wrong_key.close()
            seen += [
                repr(server.requests),
                repr(server.storage_requests),
                repr(server.webhook_deliveries),
            ]
            signatures = {
                match for url, _, _ in transport.sent for match in SIGNATURE.findall(url)
            } | {
                match
                for r in (result,)
                for url in [r.download_url or ""]
                for match in SIGNATURE.findall(url)
            }
            api_origin = urlsplit(server.base_url).netloc
            sent = list(transport.sent)
    finally:
        root.removeHandler(capture)
        root.setLevel(old_level)
    texts = seen + capture.texts
    assert capture.texts, "the scenario logged nothing at DEBUG"
    assert signatures, "the scenario saw no presigned URL"
    for text in texts:
        assert key not in text, text[:200]
        assert team not in text, text[:200]
        assert secret not in text and (hook.webhook_secret or "") not in text
        for signature in signatures:
            assert signature not in text, text[:200]
    # On the wire: the credential only in its headers, only to the API host.
    storage_requests = 0
    for url, headers, body in sent:
        assert key not in url and team not in url
        assert key.encode() not in body and team.encode() not in body
        if urlsplit(url).netloc == api_origin:
            assert headers.get("Authorization") == f"Bearer {key}"
            assert headers.get("X-Team-ID") == team
            assert [v for n, v in headers.items() if key in v] == [headers["Authorization"]]
        else:
            storage_requests += 1
            assert "Authorization" not in headers and "X-Team-ID" not in headers
            assert not any(key in v or team in v for v in headers.values())
    assert storage_requests >= 3  # the upload, the downloads, the redirect target


def test_debug_logging_redacts_urls_it_prints(caplog: pytest.LogCaptureFixture) -> None:
    from cyberun._redact import redact_text, redact_url

    url = "https://storage.example/b/k.png?X-Amz-Signature=abcdef&X-Amz-Credential=AKIA"
    assert redact_url(url) == "https://storage.example/b/k.png?[redacted]"
    assert "abcdef" not in redact_text(
        f"fetching {url} with sk-live-1234567890 and whsec_0123456789abc"
    )
    assert "sk-live" not in redact_text("Bearer sk-live-1234567890")
    assert redact_url("https://user:pass@host/p") == "https://host/p"


def test_exception_urls_never_hold_a_query(tmp_path: Path) -> None:
    with CyberunEmulator(
        time_scale=0.01,
    ) as server, cyberun.Client(server.api_key, base_url=server.base_url) as client:
        task = client.run("text-to-image", {"prompt": "x", "steps": 2})
        result = task.wait()
        server.inject("status", route="download", status=500, times=None)
        with pytest.raises(cyberun.DownloadError) as info:
            client.download(result, tmp_path)
    text = (
        str(info.value)
        + repr(vars(info.value))
        + repr(info.value.__cause__)
        + str(info.value.__cause__)
    )
    assert "X-Amz" not in text and "?" not in str(info.value.__cause__).split(" for ")[0]
