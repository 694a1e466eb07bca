"""Hostile or broken servers: the SDK ends with a clear outcome and bounded memory."""

from __future__ import annotations

import gzip
import json
import threading
import time
import tracemalloc
from http.server import BaseHTTPRequestHandler
from typing import Any, Callable, Dict, Iterator, Type

import attrs
import pytest
from localhttp import LocalServer, QuietHandler

import cyberun
from cyberun import CompletedEvent, DecodeError

TASK = "019abc12-9012-7890-abcd-ef1234567896"
TASK_B = TASK.encode()
MiB = 1024 * 1024


_BOMB: Dict[str, bytes] = {}


def gzip_bomb() -> bytes:
    """200 MiB of JSON-ish bytes, gzipped to a few hundred KiB (built once)."""
    if "bomb" not in _BOMB:
        _BOMB["bomb"] = gzip.compress(b"{" + b" " * (200 * MiB) + b"}", compresslevel=9)
    return _BOMB["bomb"]


class HostileServer:
    """Answers the task routes; the events route and the task route misbehave on demand."""

    def __init__(self, events: str = "silent", task_body: str = "normal") -> None:
        self.events = events
        self.task_body = task_body
        self.stop = threading.Event()
        hostile = self

        class Handle(QuietHandler):
            def do_GET(self) -> None:
                try:
                    hostile.route(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.local = LocalServer(Handle)
        self.url = self.local.url

    def close(self) -> None:
        self.stop.set()
        self.local.close()

    def json(self, h: BaseHTTPRequestHandler, payload: Any) -> None:
        body = json.dumps(payload).encode()
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def route(self, h: BaseHTTPRequestHandler) -> None:
        if h.path.endswith("/result"):
            self.json(h, {"id": TASK, "task_status": "completed", "task_output": {"ok": True}})
        elif h.path.endswith("/events"):
            self.stream(h)
        else:
            self.task(h)

    def task(self, h: BaseHTTPRequestHandler) -> None:
        if self.task_body == "billion":
            h.send_response(200)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(10**9))
            h.end_headers()
            chunk = b" " * 65536
            while not self.stop.is_set():
                h.wfile.write(chunk)
        elif self.task_body == "gzip-bomb":
            body = gzip_bomb()
            h.send_response(200)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Encoding", "gzip")  # although we asked for identity
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)
        elif self.task_body == "deep":
            body = b"[" * 100_000 + b"]" * 100_000
            h.send_response(200)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)
        else:
            self.json(
                h, {"id": TASK, "task_status": "completed", "completed_at": "2026-01-01T00:00:00Z"}
            )

    def stream(self, h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.send_header("Connection", "close")
        h.end_headers()
        h.close_connection = True
        w = h.wfile
        if self.events == "endless-line":
            w.write(b"event: progress\ndata: ")
            while not self.stop.is_set():
                w.write(b"x" * 65536)
        elif self.events == "endless-comments":
            while not self.stop.is_set():
                w.write(b": still here, no events for you\n")
                w.flush()
                time.sleep(0.005)
        elif self.events == "silent":
            self.stop.wait(60)
        elif self.events == "invalid-utf8":
            w.write(b"event: st\xffatus\ndata: \xc3\x28\xa0\xa1\n\n")
            w.write(
                b'event: progress\ndata: {"task_id": "%s", "current_node": "n\xff"}\n\n' % TASK_B
            )
            w.write(b"event: completed\n")
            w.write(
                b'data: {"task_id": "%s", "status": "completed", "output": {"n": "\xfe"}}\n\n'
                % TASK_B
            )
        elif self.events == "deep-json":
            w.write(b"event: progress\ndata: " + b"[" * 100_000 + b"]" * 100_000 + b"\n\n")
            w.write(b'event: completed\ndata: {"task_id": "t", "status": "completed"}\n\n')


@pytest.fixture
def hostile() -> Iterator[Callable[..., HostileServer]]:
    made = []

    def make(**kw: str) -> HostileServer:
        server = HostileServer(**kw)
        made.append(server)
        return server

    yield make
    for server in made:
        server.close()


def client_for(server: HostileServer, **kw: Any) -> cyberun.Client:
    settings: Dict[str, Any] = {
        "base_url": server.url,
        "timeout": cyberun.Timeout(5, 0.5),
        "liveness_interval": 0.3,
        "reconnect_backoff": 0.0,
        "poll_interval": 0.05,
        "retry": cyberun.RetryPolicy(backoff=0.0),
    }
    settings.update(kw)
    return cyberun.Client("sk-test", **settings)


def peak_during(action: Callable[[], Any]) -> tuple[Any, int]:
    tracemalloc.start()
    try:
        outcome = action()
        return outcome, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def raised(expected: Type[BaseException], action: Callable[[], Any]) -> BaseException:
    """Run ``action`` and return the ``expected`` exception it raised."""
    with pytest.raises(expected) as info:
        action()
    return info.value


@pytest.mark.parametrize("transport", ["urllib", "requests"])
def test_an_endless_data_line_is_cut_off_with_memory_bounded(hostile: Any, transport: str) -> None:
    if transport == "requests":
        pytest.importorskip("requests")
    client = client_for(hostile(events="endless-line"), transport=transport)
    client.stream_settings = attrs.evolve(
        client.stream_settings, max_line_size=1 * MiB, max_event_size=2 * MiB
    )
    events, peak = peak_during(lambda: list(client.events(TASK)))
    assert isinstance(events[-1], CompletedEvent)  # three broken streams, then polling
    assert peak < 8 * MiB
    client.close()


def test_an_endless_stream_of_comments_for_a_finished_task(hostile: Any) -> None:
    client = client_for(hostile(events="endless-comments"))
    started = time.monotonic()
    result, peak = peak_during(lambda: client.wait(TASK))
    assert result.task_status == "completed"
    assert time.monotonic() - started < 10  # the liveness check found the task finished
    assert peak < 2 * MiB
    client.close()


def test_a_silent_stream_for_a_finished_task(hostile: Any) -> None:
    client = client_for(hostile(events="silent"))
    assert client.wait(TASK, timeout=20).task_status == "completed"
    client.close()


def test_invalid_utf8_is_replaced_not_fatal(hostile: Any) -> None:
    client = client_for(hostile(events="invalid-utf8"))
    events = list(client.events(TASK))
    assert events[0].type == "unknown" and "\ufffd" in events[0].event  # type: ignore[attr-defined]
    assert events[1].current_node == "n\ufffd"  # type: ignore[attr-defined]
    assert isinstance(events[-1], CompletedEvent) and events[-1].output == {"n": "\ufffd"}
    client.close()


def test_deeply_nested_json_in_an_event_is_skipped(
    hostile: Any, caplog: pytest.LogCaptureFixture
) -> None:
    client = client_for(hostile(events="deep-json"))
    events = list(client.events(TASK))
    assert [e.type for e in events] == ["completed"]
    assert any("undecodable" in r.getMessage() for r in caplog.records)
    client.close()


def test_deeply_nested_json_in_an_answer_is_a_decode_error(hostile: Any) -> None:
    client = client_for(hostile(task_body="deep"))
    with pytest.raises(DecodeError):
        client.get_task(TASK)
    client.close()


def test_a_billion_byte_content_length_is_refused_with_memory_bounded(hostile: Any) -> None:
    client = client_for(hostile(task_body="billion"), transport="urllib")
    error, peak = peak_during(lambda: raised(DecodeError, lambda: client.get_task(TASK)))
    assert "limit" in str(error)  # a whole body too large: not retried
    assert peak < 80 * MiB  # the 32 MiB JSON limit, not a gigabyte
    client.close()


@pytest.mark.parametrize("transport", ["urllib", "urllib3", "requests"])
def test_a_gzip_bomb_is_never_inflated(hostile: Any, transport: str) -> None:
    if transport != "urllib":
        pytest.importorskip(transport)
    gzip_bomb()  # built before measuring: only the client's memory is traced
    client = client_for(hostile(task_body="gzip-bomb"), transport=transport)
    error, peak = peak_during(lambda: raised(DecodeError, lambda: client.get_task(TASK)))
    assert "decompresses to more than" in str(error)
    # Decoded step by step and stopped at the 32 MiB JSON limit: never 200 MiB.
    assert peak < 80 * MiB
    client.close()
