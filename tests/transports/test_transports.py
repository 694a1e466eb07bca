"""One behavioural suite for every transport, against a real server on loopback."""

from __future__ import annotations

import io
import json
import socket
import threading
import time
from typing import Iterator, List

import pytest
from netfixtures import NETWORK, make_transport
from rawserver import RawServer
from scripted import ScriptedServer

from cyberun.errors import (
    ConnectError,
    ConnectTimeoutError,
    ReadError,
    ReadTimeoutError,
    TransportError,
)
from cyberun.sse import iter_events
from cyberun.transports import (
    Headers,
    MockTransport,
    Request,
    Response,
    Timeout,
    Transport,
    default_transport,
    transport_by_name,
)


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedServer]:
    s = ScriptedServer()
    yield s
    s.close()


TIMEOUT = Timeout(5, 5)


def get(t: Transport, url: str, **kw: object) -> Response:
    return t.send(Request("GET", url, **kw), timeout=TIMEOUT)  # type: ignore[arg-type]


# --- answers -------------------------------------------------------------------------------


def test_status_headers_and_body(transport: Transport, server: ScriptedServer) -> None:
    with get(transport, server.url + "/json") as response:
        assert response.status == 200
        assert response.headers["content-type"] == "application/json"
        assert response.headers["Content-Type"] == "application/json"
        assert json.loads(response.read()) == {"ok": True}


def test_error_statuses_are_answers_not_exceptions(
    transport: Transport, server: ScriptedServer
) -> None:
    response = get(transport, server.url + "/status/503")
    assert response.status == 503 and response.headers["Retry-After"] == "1"
    assert b"status 503" in response.read()


def test_redirects_are_not_followed_by_transports(
    transport: Transport, server: ScriptedServer
) -> None:
    response = get(transport, server.url + "/redirect")
    assert response.status == 302 and response.is_redirect
    assert response.headers["location"] == "/json"
    response.close()


def test_a_large_body_streams_in_pieces(transport: Transport, server: ScriptedServer) -> None:
    response = get(transport, server.url + "/big?size=3000000")
    sizes = [len(chunk) for chunk in response.iter_bytes()]
    assert sum(sizes) == 3_000_000 and len(sizes) > 1
    assert max(sizes) <= 1024 * 1024


def test_read_limit_refuses_an_oversized_body(
    transport: Transport, server: ScriptedServer
) -> None:
    response = get(transport, server.url + "/big?size=100000")
    with pytest.raises(ReadError, match="limit"):
        response.read(limit=1000)


def test_connections_are_reused(transport: Transport, server: ScriptedServer) -> None:
    before = len(server.requests)
    for _ in range(5):
        get(transport, server.url + "/json").read()
    assert len(server.requests) == before + 5


# --- requests ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.invalid/x",
        "http:///no-host",
        "http://[::1/x",
        "example.invalid/no-scheme",
        "http://example.invalid:99999/x",
    ],
)
def test_a_malformed_url_is_a_connect_error_before_anything_is_sent(
    transport: Transport, url: str
) -> None:
    # Download links and redirects come from servers: a bad one must not
    # escape as the library's own exception, nor look like a sent request.
    with pytest.raises(ConnectError) as info:
        transport.send(Request("POST", url, body=b"x"), timeout=TIMEOUT)
    assert info.value.method == "POST"


def test_request_headers_arrive(transport: Transport, server: ScriptedServer) -> None:
    headers = {"X-Custom": "yes", "User-Agent": "cyberun-test", "Accept-Encoding": "identity"}
    echo = json.loads(get(transport, server.url + "/echo?a=1", headers=headers).read())
    assert echo["headers"]["x-custom"] == "yes"
    assert echo["headers"]["user-agent"] == "cyberun-test"
    assert echo["headers"]["accept-encoding"] == "identity"
    assert echo["path"] == "/echo?a=1"


@pytest.mark.parametrize("kind", ["bytes", "file", "iterable"])
def test_request_bodies_bytes_files_and_iterables(
    transport: Transport, server: ScriptedServer, kind: str
) -> None:
    payload = b"0123456789" * 10_000
    body: object = {
        "bytes": payload,
        "file": io.BytesIO(payload),
        "iterable": (payload[i : i + 4096] for i in range(0, len(payload), 4096)),
    }[kind]
    headers = {} if kind == "iterable" else {"Content-Length": str(len(payload))}
    request = Request("PUT", server.url + "/echo", headers, body)  # type: ignore[arg-type]
    echo = json.loads(transport.send(request, timeout=TIMEOUT).read())
    assert echo["method"] == "PUT"
    assert echo["body"].encode("latin-1") == payload
    assert echo["chunked"] is (kind == "iterable")


def test_empty_post_sends_a_zero_content_length(
    transport: Transport, server: ScriptedServer
) -> None:
    echo = json.loads(
        transport.send(Request("POST", server.url + "/echo"), timeout=TIMEOUT).read()
    )
    assert echo["method"] == "POST" and echo["body"] == ""
    assert echo["headers"].get("content-length", "0") == "0"


# --- streaming without read-ahead --------------------------------------------------------------


@pytest.mark.parametrize("framing", ["chunked", "close"])
def test_an_event_arrives_while_the_server_is_still_paused(
    transport: Transport, framing: str
) -> None:
    server = ScriptedServer()  # its own gate: the test holds it shut
    try:
        response = get(transport, server.url + f"/events/{framing}")
        events = iter_events(response.iter_bytes())
        first = next(events)  # must not wait for the second event or the end
        assert (first.event, first.data) == ("first", "1")
        assert not server.gate.is_set()
        server.gate.set()
        assert [e.event for e in events] == ["second"]
    finally:
        server.close()


# --- errors ------------------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_refused_connection_is_a_connect_error(transport: Transport) -> None:
    with pytest.raises(ConnectError) as info:
        get(transport, f"http://127.0.0.1:{_closed_port()}/x")
    assert info.value.__cause__ is not None
    assert info.value.method == "GET"


def test_unresolvable_host_is_a_connect_error(transport: Transport) -> None:
    with pytest.raises(ConnectError):
        get(transport, "http://does-not-exist.invalid/x")


def test_connect_timeout(transport: Transport) -> None:
    # A listener with a full backlog that never accepts: SYNs go unanswered.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = []
    try:
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(listener.getsockname())
            fillers.append(filler)
        time.sleep(0.05)
        port = listener.getsockname()[1]
        with pytest.raises((ConnectTimeoutError, ConnectError)) as info:
            transport.send(Request("GET", f"http://127.0.0.1:{port}/"), timeout=Timeout(0.3, 5))
        assert isinstance(info.value, TimeoutError) or "timed out" in str(info.value).lower()
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


def test_read_timeout(transport: Transport, server: ScriptedServer) -> None:
    with pytest.raises(ReadTimeoutError) as info:
        transport.send(Request("GET", server.url + "/slow?seconds=2"), timeout=Timeout(5, 0.3))
    assert isinstance(info.value, TimeoutError)


def test_read_timeout_while_streaming(transport: Transport) -> None:
    server = ScriptedServer()
    try:
        response = transport.send(
            Request("GET", server.url + "/events/chunked"), timeout=Timeout(5, 0.3)
        )
        chunks = response.iter_bytes()
        next(chunks)
        with pytest.raises(ReadTimeoutError):
            next(chunks)
    finally:
        server.close()


def test_body_shorter_than_its_content_length(
    transport: Transport, server: ScriptedServer
) -> None:
    response = get(transport, server.url + "/truncated")
    with pytest.raises(ReadError):
        response.read()


@pytest.mark.parametrize("read", ["read", "iter_bytes"])
def test_a_whole_body_under_connection_close_closes_the_socket_at_once(
    transport: Transport, read: str
) -> None:
    # With "Connection: close" the response holds the connection's last
    # reference; once the whole body is read the socket must be closed then,
    # not when the garbage collector finds it (urllib3 1.26 left it open).
    closed_by_client = threading.Event()

    def answer(conn: socket.socket, request: object) -> None:
        body = b'{"ok": true}'
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
        )
        conn.settimeout(5)
        try:
            if conn.recv(1) == b"":
                closed_by_client.set()
        except OSError:
            pass

    with RawServer(answer) as raw:
        response = get(transport, raw.url + "/x")
        body = response.read() if read == "read" else b"".join(response.iter_bytes())
        assert body == b'{"ok": true}'
        assert response.closed
        assert closed_by_client.wait(5), "the socket stayed open after the whole body was read"
        del response


def test_connection_reset(transport: Transport, server: ScriptedServer) -> None:
    with pytest.raises(ReadError):
        get(transport, server.url + "/reset").read()


def test_errors_never_leak_backend_exceptions(
    transport: Transport, server: ScriptedServer
) -> None:
    for url in (
        f"http://127.0.0.1:{_closed_port()}/",
        server.url + "/reset",
        server.url + "/truncated",
    ):
        try:
            get(transport, url).read()
        except TransportError:
            pass


# --- closing -------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/hold", "/events/chunked-closing", "/events/close"])
def test_close_from_another_thread_interrupts_a_blocked_read(
    transport: Transport, path: str
) -> None:
    server = ScriptedServer()
    try:
        response = get(transport, server.url + path)
        chunks = response.iter_bytes()
        assert next(chunks)
        timer = threading.Timer(0.2, response.close)
        timer.start()
        started = time.monotonic()
        rest = b""
        try:
            for chunk in chunks:
                rest += chunk
        except TransportError:
            pass
        assert time.monotonic() - started < 3  # not the 30 s the server holds
        assert response.closed
    finally:
        server.close()


def test_responses_close_once_and_are_context_managers(
    transport: Transport, server: ScriptedServer
) -> None:
    with get(transport, server.url + "/json") as response:
        pass
    assert response.closed
    response.close()
    with pytest.raises(ReadError, match="closed before"):
        response.read()
    read_twice = get(transport, server.url + "/json")
    read_twice.read()
    with pytest.raises(ReadError, match="already read"):
        list(read_twice.iter_bytes())


def test_transports_are_context_managers() -> None:
    for name in NETWORK:
        with make_transport(name) as t:
            assert isinstance(t, Transport)


# --- the seam's own values ----------------------------------------------------------------------


def test_timeout_values() -> None:
    assert Timeout() == Timeout(10.0, 30.0)
    assert Timeout(5, None).read is None
    assert Timeout.from_value(3) == Timeout(3, 3)
    assert Timeout.from_value((1, 2)) == Timeout(1, 2)
    assert Timeout.from_value(None) == Timeout(None, None)
    assert Timeout(1, 2).replace(read=9) == Timeout(1, 9)
    with pytest.raises(AttributeError):
        Timeout().read = 3  # type: ignore[misc]
    with pytest.raises(ValueError, match="positive"):
        Timeout(-1)
    assert repr(Timeout(1, 2)) == "Timeout(connect=1.0, read=2.0)"


def test_headers_are_case_insensitive_and_hide_values_in_repr() -> None:
    headers = Headers({"Authorization": "Bearer secret", "X-A": "1"})
    assert headers["authorization"] == "Bearer secret" and "x-a" in headers
    assert "secret" not in repr(headers)
    assert headers == {"authorization": "Bearer secret", "x-a": "1"}
    copy = headers.copy()
    del copy["X-A"]
    assert "X-A" in headers and "X-A" not in copy


def test_request_repr_hides_the_query() -> None:
    assert "sig" not in repr(Request("get", "https://h/p?X-Amz-Signature=sig"))


def test_response_from_content_and_from_stream() -> None:
    assert Response(200, content=b"abc").read() == b"abc"
    assert Response(200, stream=iter([b"a", b"", b"bc"])).read() == b"abc"
    assert list(Response(204).iter_bytes()) == []
    with pytest.raises(ValueError, match="not both"):
        Response(200, content=b"x", stream=[b"y"])
    closed: List[int] = []
    with Response(200, stream=[b"x"], close=lambda: closed.append(1)) as response:
        assert response.read() == b"x"
    assert closed == [1]


def test_auto_selection_prefers_requests_then_urllib3_then_urllib() -> None:
    chosen = type(default_transport()).__name__
    try:
        import requests  # noqa: F401

        assert chosen == "RequestsTransport"
    except ImportError:
        try:
            import urllib3  # noqa: F401

            assert chosen == "Urllib3Transport"
        except ImportError:
            assert chosen == "UrllibTransport"


def test_unknown_transport_name() -> None:
    with pytest.raises(ValueError, match="unknown transport"):
        transport_by_name("carrier-pigeon")


# --- MockTransport ------------------------------------------------------------------------------


def test_mock_transport_calls_the_handler_and_records_requests() -> None:
    def handler(request: Request) -> Response:
        if request.url.endswith("/boom"):
            raise ConnectError("simulated")
        return Response(200, {"Content-Type": "text/plain"}, content=request.method.encode())

    mock = MockTransport(handler)
    with mock:
        assert mock.send(Request("PUT", "https://x/a"), timeout=Timeout()).read() == b"PUT"
        with pytest.raises(ConnectError):
            mock.send(Request("GET", "https://x/boom"), timeout=Timeout())
    assert [r.method for r in mock.requests] == ["PUT", "GET"]


def test_mock_transport_rejects_a_non_response() -> None:
    mock = MockTransport(lambda request: "nope")  # type: ignore[arg-type,return-value]
    with pytest.raises(TypeError, match="not a Response"):
        mock.send(Request("GET", "https://x/"), timeout=Timeout())


def test_mock_transport_streams_like_the_others() -> None:
    def handler(request: Request) -> Response:
        return Response(
            200,
            {"Content-Type": "text/event-stream"},
            stream=iter([b"data: a\n\n", b"data: b\n\n"]),
        )

    response = MockTransport(handler).send(Request("GET", "https://x/e"), timeout=Timeout())
    assert [e.data for e in iter_events(response.iter_bytes())] == ["a", "b"]
