"""A request's deadline and cancel token, on every transport, against raw-socket servers.

A cancel from another thread must end a request promptly whatever it is
waiting for (a connect that hangs, headers that never come, a body that has
stopped), and a deadline must bound a server that sends one byte at a time,
which a per-read timeout alone never would.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any, Iterator, List

import pytest
from rawserver import Blackhole, RawRequest, RawServer, drip, read_request

from cyberun.errors import (
    ConnectTimeoutError,
    ReadTimeoutError,
    RequestCancelled,
)
from cyberun.transports import (
    CancelToken,
    MockTransport,
    Request,
    Response,
    Timeout,
    Transport,
)

PATIENT = Timeout(10, 10)  # far longer than any wait below: only the deadline or a cancel ends it
PROMPT = 0.5  # what "promptly" means here, on a loaded 2-core machine


@pytest.fixture
def stop() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


def cancel_after(token: CancelToken, seconds: float) -> List[float]:
    """Cancel ``token`` from another thread after ``seconds``; returns [the time it fired]."""
    fired: List[float] = []

    def fire() -> None:
        fired.append(time.monotonic())
        token.cancel()

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    return fired


def assert_prompt(fired: List[float]) -> None:
    assert fired, "the cancel never fired: the request ended by itself"
    assert time.monotonic() - fired[0] < PROMPT


def headers_then(body: bytes, framing: str = "length") -> bytes:
    if framing == "chunked":
        return b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
    return b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n" % len(body)


# --- cancel -------------------------------------------------------------------------------


def test_a_cancel_ends_a_request_blocked_on_connect(transport: Transport) -> None:
    token = CancelToken()
    with Blackhole() as hole:
        fired = cancel_after(token, 0.3)
        with pytest.raises(RequestCancelled):
            transport.send(Request("GET", hole.url + "/x", cancel=token), timeout=PATIENT)
        assert_prompt(fired)


def test_a_cancel_ends_a_request_waiting_for_the_headers(
    transport: Transport, stop: threading.Event
) -> None:
    token = CancelToken()
    with RawServer(lambda conn, request: stop.wait(30)) as server:
        fired = cancel_after(token, 0.3)
        with pytest.raises(RequestCancelled):
            transport.send(Request("GET", server.url + "/x", cancel=token), timeout=PATIENT)
        assert_prompt(fired)
        assert len(server.requests) == 1


def test_a_cancel_ends_a_reused_connection_waiting_for_the_headers(
    transport: Transport, stop: threading.Event
) -> None:
    def script(conn: socket.socket, request: RawRequest) -> None:
        conn.sendall(headers_then(b"ok") + b"ok")
        if read_request(conn) is not None:  # the second request, on the same connection
            stop.wait(30)

    token = CancelToken()
    with RawServer(script) as server:
        first = Request("GET", server.url + "/1", cancel=token)
        assert transport.send(first, timeout=PATIENT).read() == b"ok"
        fired = cancel_after(token, 0.3)
        with pytest.raises(RequestCancelled):
            transport.send(Request("GET", server.url + "/2", cancel=token), timeout=PATIENT)
        assert_prompt(fired)
        assert server.connections == 1


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_a_cancel_ends_a_body_read_in_the_middle(
    transport: Transport, stop: threading.Event, framing: str
) -> None:
    def script(conn: socket.socket, request: RawRequest) -> None:
        conn.sendall(headers_then(b"x" * 1000, framing))
        conn.sendall(b"a\r\n0123456789\r\n" if framing == "chunked" else b"0123456789")
        stop.wait(30)

    token = CancelToken()
    with RawServer(script) as server:
        response = transport.send(Request("GET", server.url + "/x", cancel=token), timeout=PATIENT)
        chunks = response.iter_bytes()
        assert next(chunks) == b"0123456789"
        fired = cancel_after(token, 0.3)
        with pytest.raises(RequestCancelled):
            next(chunks)
        assert_prompt(fired)
        assert response.closed


def test_a_cancel_ends_a_tls_handshake_the_server_never_answers(
    transport: Transport, stop: threading.Event
) -> None:
    token = CancelToken()
    # The server takes the connection and reads the ClientHello, then says nothing.
    with RawServer(lambda conn, request: stop.wait(30), read=False) as server:
        url = f"https://127.0.0.1:{server.port}/x"
        fired = cancel_after(token, 0.3)
        with pytest.raises(RequestCancelled):
            transport.send(Request("GET", url, cancel=token), timeout=PATIENT)
        assert_prompt(fired)


def test_a_request_cancelled_before_it_starts_never_connects(transport: Transport) -> None:
    token = CancelToken()
    token.cancel()
    with RawServer(lambda conn, request: None) as server:
        with pytest.raises(RequestCancelled):
            transport.send(Request("POST", server.url + "/x", cancel=token), timeout=PATIENT)
        time.sleep(0.1)
        assert server.connections == 0


def test_a_cancel_after_the_answer_leaves_the_connection_usable(transport: Transport) -> None:
    def script(conn: socket.socket, request: RawRequest) -> None:
        while request is not None:
            conn.sendall(headers_then(b"ok") + b"ok")
            request = read_request(conn)  # type: ignore[assignment]

    token = CancelToken()
    with RawServer(script) as server:
        request = Request("GET", server.url + "/1", cancel=token)
        assert transport.send(request, timeout=PATIENT).read() == b"ok"
        token.cancel()  # the request is over: nothing of it is left to cancel
        assert transport.send(Request("GET", server.url + "/2"), timeout=PATIENT).read() == b"ok"
        assert server.connections == 1


# --- deadline -----------------------------------------------------------------------------


def test_a_deadline_bounds_a_connect_that_hangs(transport: Transport) -> None:
    with Blackhole() as hole:
        deadline = time.monotonic() + 0.4
        with pytest.raises(ConnectTimeoutError):
            transport.send(Request("GET", hole.url + "/x", deadline=deadline), timeout=PATIENT)
        assert time.monotonic() - deadline < PROMPT


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_a_deadline_bounds_a_body_sent_one_byte_at_a_time(
    transport: Transport, stop: threading.Event, framing: str
) -> None:
    # One byte every 0.3 s: each read gets its byte well within the 10 s read
    # timeout, so only the deadline can end the request. In the chunked case
    # even the chunk-size lines trickle in, inside http.client's readline; a
    # body byte costs six bytes there, so they come every 0.1 s (the first
    # body byte at 0.3 s, as in the other case, well inside the deadline).
    body = b"y" * 100
    wire = b"".join(b"1\r\n%s\r\n" % body[i : i + 1] for i in range(len(body)))

    def script(conn: socket.socket, request: RawRequest) -> None:
        conn.sendall(headers_then(body, framing))
        if framing == "chunked":
            drip(conn, wire, 0.1, stop)
        else:
            drip(conn, body, 0.3, stop)

    with RawServer(script) as server:
        deadline = time.monotonic() + 1.5
        request = Request("GET", server.url + "/x", deadline=deadline)
        received: List[bytes] = []
        chunks = transport.send(request, timeout=PATIENT).iter_bytes()
        with pytest.raises(ReadTimeoutError):
            received.extend(chunks)
        assert time.monotonic() - deadline < PROMPT
        assert 0 < len(b"".join(received)) < len(body)


def test_a_deadline_bounds_headers_that_arrive_one_byte_at_a_time(
    transport: Transport, stop: threading.Event
) -> None:
    head = b"HTTP/1.1 200 OK\r\n" + b"X-Padding: " + b"p" * 200 + b"\r\n\r\n"

    def script(conn: socket.socket, request: RawRequest) -> None:
        drip(conn, head, 0.3, stop)

    with RawServer(script) as server:
        deadline = time.monotonic() + 1.0
        with pytest.raises(ReadTimeoutError):
            transport.send(Request("GET", server.url + "/x", deadline=deadline), timeout=PATIENT)
        assert time.monotonic() - deadline < PROMPT


def test_a_deadline_already_passed_sends_nothing(transport: Transport) -> None:
    with RawServer(lambda conn, request: None) as server:
        request = Request("POST", server.url + "/x", deadline=time.monotonic() - 1)
        with pytest.raises(ConnectTimeoutError):
            transport.send(request, timeout=PATIENT)
        time.sleep(0.1)
        assert server.connections == 0


def test_without_deadline_or_cancel_a_slow_body_is_read_whole(
    transport: Transport, stop: threading.Event
) -> None:
    body = b"z" * 5

    def script(conn: socket.socket, request: RawRequest) -> None:
        conn.sendall(headers_then(body))
        drip(conn, body, 0.05, stop)

    with RawServer(script) as server:
        assert transport.send(Request("GET", server.url + "/x"), timeout=PATIENT).read() == body


# --- MockTransport -------------------------------------------------------------------------


def test_mock_transport_honours_a_cancel_before_and_during_the_body() -> None:
    token = CancelToken()
    calls: List[Request] = []

    def slow_pieces() -> Iterator[bytes]:
        yield b"first"
        token.wait(30)  # a stream that has stopped, until the cancel
        yield b"never delivered"

    def handler(request: Request) -> Response:
        calls.append(request)
        return Response(200, stream=slow_pieces())

    mock = MockTransport(handler)
    response = mock.send(Request("GET", "http://h/x", cancel=token), timeout=PATIENT)
    chunks = response.iter_bytes()
    assert next(chunks) == b"first"
    fired = cancel_after(token, 0.2)
    with pytest.raises(RequestCancelled):
        next(chunks)
    assert_prompt(fired)
    with pytest.raises(RequestCancelled):
        mock.send(Request("GET", "http://h/y", cancel=token), timeout=PATIENT)
    assert len(calls) == 1  # the handler never saw the request cancelled beforehand


def test_mock_transport_honours_a_deadline_on_slow_headers_and_a_drip_fed_body() -> None:
    def slow_headers(request: Request) -> Response:
        time.sleep(0.3)
        return Response(200, content=b"late")

    def dripping(request: Request) -> Response:
        def pieces() -> Iterator[bytes]:
            for _ in range(100):
                time.sleep(0.1)
                yield b"d"

        return Response(200, stream=pieces())

    deadline = time.monotonic() + 0.1
    with pytest.raises(ReadTimeoutError):
        MockTransport(slow_headers).send(
            Request("GET", "http://h/", deadline=deadline), timeout=PATIENT
        )
    deadline = time.monotonic() + 0.5
    response = MockTransport(dripping).send(
        Request("GET", "http://h/", deadline=deadline), timeout=PATIENT
    )
    with pytest.raises(ReadTimeoutError):
        response.read()
    assert time.monotonic() - deadline < PROMPT
    with pytest.raises(ConnectTimeoutError):
        MockTransport(dripping).send(
            Request("GET", "http://h/", deadline=time.monotonic() - 1), timeout=PATIENT
        )


# --- the token itself ------------------------------------------------------------------------


def test_cancel_token_runs_each_callback_once_from_any_thread() -> None:
    token = CancelToken()
    ran: List[str] = []
    remove = token.add_callback(lambda: ran.append("removed"))
    token.add_callback(lambda: ran.append("a"))
    token.add_callback(lambda: 1 / 0)  # type: ignore[func-returns-value]  # a failing one
    token.add_callback(lambda: ran.append("b"))
    remove()
    assert not token.cancelled and token.wait(0.01) is False
    threads = [threading.Thread(target=token.cancel) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert ran == ["a", "b"] and token.cancelled and token.wait(None) is True
    token.add_callback(lambda: ran.append("late"))  # already cancelled: runs at once
    assert ran == ["a", "b", "late"]
    assert "cancelled" in repr(token)


def test_a_transport_of_your_own_that_ignores_both_keeps_working() -> None:
    class OldStyle:
        def send(self, request: Any, *, timeout: Timeout) -> Response:
            return Response(200, content=b'{"ok": true}')

        def close(self) -> None:
            pass

        def __enter__(self) -> Any:
            return self

        def __exit__(self, *exc: Any) -> None:
            pass

    from cyberun.api import Credentials, Endpoints
    from cyberun.retry import RetryPolicy

    api = Endpoints(
        base_url="https://api.test",
        credentials=Credentials("sk-test"),
        transport=OldStyle(),  # type: ignore[arg-type]
        timeout=Timeout(),
        retry=RetryPolicy(),
    )
    token = CancelToken()
    scoped = api.scoped(deadline=time.monotonic() + 30, cancel=token)
    assert scoped.read_json(scoped.send("GET", scoped.runtime_url("/x")), "x") == {"ok": True}
    token.cancel()
    with pytest.raises(RequestCancelled):  # the pipeline checks before each attempt
        scoped.send("GET", scoped.runtime_url("/x"))
    assert api.read_json(api.send("GET", api.runtime_url("/x")), "x") == {"ok": True}


# --- pools and sessions of the user's own ---------------------------------------------------


def _users_own(name: str) -> Transport:
    if name == "requests":
        requests = pytest.importorskip("requests")
        from cyberun.transports import RequestsTransport

        return RequestsTransport(session=requests.Session())
    urllib3 = pytest.importorskip("urllib3")
    from cyberun.transports import Urllib3Transport

    return Urllib3Transport(pool=urllib3.PoolManager())


@pytest.mark.parametrize("name", ["requests", "urllib3"])
def test_over_a_users_own_pool_cancel_and_deadline_hold_once_the_headers_are_in(
    name: str, stop: threading.Event
) -> None:
    # The SDK did not open these sockets, so it takes them over at the headers:
    # from then on a cancel ends a blocked read and the deadline bounds the body.
    def script(conn: socket.socket, request: RawRequest) -> None:
        conn.sendall(headers_then(b"x" * 100) + b"x")
        if request.target == "/drip":
            drip(conn, b"x" * 99, 0.3, stop)
        stop.wait(30)

    transport = _users_own(name)
    try:
        with RawServer(script) as server:
            token = CancelToken()
            response = transport.send(
                Request("GET", server.url + "/hold", cancel=token), timeout=PATIENT
            )
            chunks = response.iter_bytes()
            assert next(chunks) == b"x"
            fired = cancel_after(token, 0.3)
            with pytest.raises(RequestCancelled):
                next(chunks)
            assert_prompt(fired)
            deadline = time.monotonic() + 1.0
            response = transport.send(
                Request("GET", server.url + "/drip", deadline=deadline), timeout=PATIENT
            )
            with pytest.raises(ReadTimeoutError):
                response.read()
            assert time.monotonic() - deadline < PROMPT
    finally:
        transport.close()
