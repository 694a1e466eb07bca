"""Issue 19, reads and local checks: each finding, on every transport, against loopback servers."""

from __future__ import annotations

import gzip
import importlib.util
import json
import math
import socket
import sys
import threading
import zlib
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest
from rawserver import CuttingProxy, RawRequest, RawServer
from recorder import TASK, Recorder, Seen, ok_json, task_json

import cyberun
from cyberun.testing import CyberunEmulator
from cyberun.transports import MockTransport, Request, Response

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def emulator() -> Iterator[CyberunEmulator]:
    with CyberunEmulator(time_scale=0.01) as server:
        yield server


def routes(server: CyberunEmulator, name: str) -> int:
    return sum(1 for r in server.requests if r.route == name)


# --- a GET whose JSON body is cut is retried --------------------------------------------------


class CutOnce:
    """A plan for CuttingProxy: cut the first answer whose target matches, pass the rest."""

    def __init__(self, suffix: str) -> None:
        self.suffix = suffix
        self.done = False

    def __call__(self, request: RawRequest) -> str:
        path = request.target.split("?")[0]
        if not self.done and request.method == "GET" and path.endswith(self.suffix):
            self.done = True
            return "cut"
        return "pass"


@pytest.mark.parametrize("call", ["get_task", "get_result", "poll-wait", "stream-wait"])
def test_a_get_whose_json_body_is_cut_is_retried(
    transport: str, emulator: CyberunEmulator, call: str
) -> None:
    with cyberun.Client(emulator.api_key, base_url=emulator.base_url) as direct:
        task_id = direct.run("text-to-image", {"prompt": "x", "steps": 2}).id
        direct.wait(task_id)
    suffix = "/result" if call in ("get_result", "stream-wait") else task_id
    plan = CutOnce(suffix)
    with CuttingProxy(emulator.base_url, plan) as proxy:
        client = cyberun.Client(
            emulator.api_key,
            base_url=proxy.url,
            transport=transport,
            retry=cyberun.RetryPolicy(backoff=0.0),
            poll_interval=0.05,
        )
        if call == "get_task":
            assert client.get_task(task_id).task_status == "completed"
        elif call == "get_result":
            assert client.get_result(task_id).task_status == "completed"
        else:
            mode = "poll" if call == "poll-wait" else "auto"
            assert client.wait(task_id, mode=mode).task_status == "completed"
        client.close()
    assert plan.done and len(proxy.spoiled) == 1  # one answer was cut, and it was asked again


def test_a_whole_body_that_is_not_json_is_a_decode_error_not_retried(transport: str) -> None:
    api = Recorder(lambda seen: (200, {"Content-Type": "text/html"}, b"<html>login</html>"))
    client = cyberun.Client("sk-test-0123456789", base_url=api.url, transport=transport)
    with api, client, pytest.raises(cyberun.DecodeError, match="expected JSON"):
        client.get_task(TASK)
    assert len(api.seen) == 1


# --- a redirect with a 400 MiB body -----------------------------------------------------------


def redirect_memory() -> Any:
    """benchmarks/redirect_memory.py: the one measurement, used by the test and the report."""
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "redirect_memory.py"
    spec = importlib.util.spec_from_file_location("redirect_memory", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_redirect_with_a_400_mib_body_is_never_read(transport: str) -> None:
    if sys.platform == "win32":  # pragma: no cover - resource is POSIX
        pytest.skip("measured with the resource module")
    bench = redirect_memory()
    peak, growth, sent = bench.measure(bench._SDK, transport)  # MiB, in a fresh process
    print(f"{transport}: peak RSS {peak:.1f} MiB (+{growth:.1f} MiB), server wrote {sent:.0f} MiB")
    assert growth < 32  # it was +805 MiB with requests' Session.request
    assert sent < 64  # what socket buffers take, not 400 MiB


# --- URLs that would raise a raw ValueError ---------------------------------------------------

BAD_LINKS = [
    "https://storage.example:99999/o.png?X-Amz-Signature=abc",
    "https://[::1/o.png",
    "https://a\u2100b.example/o.png",
    "https://sto\\rage.example/o.png",
]


@pytest.mark.parametrize("link", BAD_LINKS)
def test_a_malformed_download_link_is_a_cyberun_error(
    transport: str, link: str, tmp_path: Path
) -> None:
    result = {"id": TASK, "task_status": "completed", "download_url": link}
    api = Recorder(lambda seen: ok_json(json.dumps(result).encode()))
    client = cyberun.Client("sk-test-0123456789", base_url=api.url, transport=transport)
    with api, client, pytest.raises(cyberun.DownloadError) as info:
        client.download(TASK, tmp_path)
    assert "cannot send" in str(info.value) and "abc" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


# --- Content-Encoding the SDK did not ask for -------------------------------------------------

EVENTS = (
    b'event: status\ndata: {"task_id": "%(t)s", "status": "running"}\n\n'
    b'event: progress\ndata: {"task_id": "%(t)s", "progress": 0.5}\n\n'
    b'event: completed\ndata: {"task_id": "%(t)s", "status": "completed", "output": {}}\n\n'
) % {b"t": TASK.encode()}


def compressed(data: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return gzip.compress(data)
    if encoding == "deflate":
        return zlib.compress(data)
    raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)  # "deflate" without its zlib wrapper
    return raw.compress(data) + raw.flush()


def encoding_api(encoding: str) -> Recorder:
    header = "deflate" if encoding == "raw-deflate" else encoding

    def answer(seen: Seen) -> Tuple[int, Dict[str, str], bytes]:
        if seen.path.endswith("/events"):
            body, kind = EVENTS, "text/event-stream"
        elif seen.path.endswith("/result"):
            body, kind = (
                json.dumps({"id": TASK, "task_status": "completed"}).encode(),
                "application/json",
            )
        else:
            body, kind = task_json(status="completed"), "application/json"
        return 200, {"Content-Type": kind, "Content-Encoding": header}, compressed(body, encoding)

    return Recorder(answer)


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "raw-deflate"])
def test_a_compressed_json_body_and_event_stream_are_decoded(
    transport: str, encoding: str
) -> None:
    with encoding_api(encoding) as api:
        client = cyberun.Client("sk-test-0123456789", base_url=api.url, transport=transport)
        assert client.get_task(TASK).task_status == "completed"
        events = list(client.events(TASK))
        client.close()
    assert [type(e).__name__ for e in events] == ["StatusEvent", "ProgressEvent", "CompletedEvent"]
    assert api.seen[0].headers["accept-encoding"] == "identity"  # it was never asked for


def test_a_gzipped_event_stream_delivers_each_event_as_it_arrives(transport: str) -> None:
    gate = threading.Event()

    def script(conn: socket.socket, request: RawRequest) -> None:
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Encoding: gzip\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        )
        packer = zlib.compressobj(wbits=16 + zlib.MAX_WBITS)

        def send(data: bytes) -> None:
            conn.sendall(b"%x\r\n%s\r\n" % (len(data), data))

        first, rest = EVENTS.split(b"\n\n", 1)
        send(packer.compress(first + b"\n\n") + packer.flush(zlib.Z_SYNC_FLUSH))
        gate.wait(10)
        send(packer.compress(rest) + packer.flush())
        conn.sendall(b"0\r\n\r\n")

    with RawServer(script) as server:
        client = cyberun.Client("sk-test-0123456789", base_url=server.url, transport=transport)
        response = client.api.open_events(TASK)
        from cyberun.sse import iter_events

        events = iter_events(response.iter_bytes())
        assert next(events).event == "status"  # before the server sends the rest
        assert not gate.is_set()
        gate.set()
        assert [e.event for e in events] == ["progress", "completed"]
        client.close()


def test_an_encoding_the_sdk_cannot_decode_fails_loudly(transport: str) -> None:
    def answer(seen: Seen) -> Tuple[int, Dict[str, str], bytes]:
        kind = "text/event-stream" if seen.path.endswith("/events") else "application/json"
        return 200, {"Content-Type": kind, "Content-Encoding": "br"}, b"\x1b\x03\x00\xf8\xa5"

    with Recorder(answer) as api:
        client = cyberun.Client("sk-test-0123456789", base_url=api.url, transport=transport)
        with pytest.raises(cyberun.DecodeError, match="'br'"):
            client.get_task(TASK)
        with pytest.raises(cyberun.StreamError, match="'br'"):
            client.api.open_events(TASK).read()
        client.close()


def test_a_truncated_gzip_body_is_retried_as_a_cut_body(transport: str) -> None:
    calls: List[int] = []

    def answer(seen: Seen) -> Tuple[int, Dict[str, str], bytes]:
        calls.append(1)
        body = gzip.compress(task_json())
        if len(calls) == 1:
            body = body[: len(body) // 2]  # whole by Content-Length, cut inside the gzip data
        return 200, {"Content-Type": "application/json", "Content-Encoding": "gzip"}, body

    with Recorder(answer) as api:
        client = cyberun.Client(
            "sk-test-0123456789",
            base_url=api.url,
            transport=transport,
            retry=cyberun.RetryPolicy(backoff=0.0),
        )
        assert client.get_task(TASK).id == TASK
        client.close()
    assert len(calls) == 2


# --- checks made before anything is sent ------------------------------------------------------


def recording_client(token: str = "sk-test-0123456789") -> Tuple[cyberun.Client, List[Request]]:
    transport = MockTransport(lambda request: Response(202, content=b'{"task_id": "t"}'))
    return cyberun.Client(token, transport=transport), transport.requests


@pytest.mark.parametrize("per_page", [0, 101, 200, -1])
def test_per_page_outside_the_api_range_is_refused_before_sending(per_page: int) -> None:
    client, sent = recording_client()
    with pytest.raises(ValueError, match="from 1 to 100"):
        client.list_tasks(per_page=per_page)
    with pytest.raises(ValueError, match="from 1 to 100"):
        client.api.list_workflows_page(1, per_page)
    with pytest.raises(ValueError, match="from 1 to 100"):
        client.api.iter_webhooks(per_page=per_page)
    assert sent == []


def test_a_key_is_known_by_its_prefix_before_its_shape() -> None:
    for key in ("sk-live.abc.def", "dk-device.part.two"):
        client, sent = recording_client(key)  # two dots: no JWT, no team id needed
        assert client.api.credentials.kind in ("integration", "device")
        client.run("text-to-image", {"prompt": "x"}, validate=False)
        assert sent[0].headers["Authorization"] == f"Bearer {key}"
    with pytest.raises(cyberun.ConfigurationError, match="team id"):
        cyberun.Client("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.c2ln", transport=MockTransport(print))


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
def test_nan_and_infinite_parameters_are_refused_before_sending(number: float) -> None:
    client, sent = recording_client()
    with pytest.raises(cyberun.ParameterError, match="not finite") as info:
        client.run(
            "text-to-image",
            {"prompt": "x", "cfg": number, "nested": [1, {"v": number}]},
            validate=False,
        )
    assert sent == []
    assert info.value.problems == (
        f"parameters.cfg is {number!r}, which JSON cannot carry",
        f"parameters.nested[1].v is {number!r}, which JSON cannot carry",
    )
