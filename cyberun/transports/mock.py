"""MockTransport: answer requests with a function, for unit tests."""

from __future__ import annotations

import time
from typing import Callable, Iterable, Iterator, List

from .._redact import redact_url
from ..errors import ConnectTimeoutError, ReadTimeoutError, RequestCancelled
from ._base import BaseTransport, Request, Response, Timeout

__all__ = ["MockTransport"]


class MockTransport(BaseTransport):
    """A transport that calls ``handler(request)`` and returns its [`Response`][cyberun.Response].

    For unit tests of code built on the SDK; no network is involved:

    ```python
    import cyberun
    from cyberun.transports import MockTransport, Response


    def handler(request):
        if request.url.endswith("/tasks/t1"):
            body = b'{"id": "t1", "task_status": "running"}'
            return Response(200, {"Content-Type": "application/json"}, body)
        return Response(404, content=b'{"error": "not found"}')


    client = cyberun.Client("sk-test", transport=MockTransport(handler))
    assert client.get_task("t1").task_status == "running"
    ```

    The handler may also raise a [`TransportError`][cyberun.TransportError] (for example
    [`ConnectError`][cyberun.ConnectError]) to simulate a network failure.

    A request's ``deadline`` and ``cancel`` are honoured as a network
    transport honours them, at the points a mock can see: before the handler
    is called, when it returns (a handler that stands for a slow server can
    wait on ``request.cancel``), and before each piece of a streamed body.

    Attributes:
        requests: every request sent, in order.
    """

    def __init__(self, handler: Callable[[Request], Response]) -> None:
        self.handler = handler
        self.requests: List[Request] = []

    def __repr__(self) -> str:
        return "MockTransport()"

    def send(self, request: Request, *, timeout: Timeout) -> Response:
        """Record the request and return the handler's response."""
        self.requests.append(request)
        _check(request, ConnectTimeoutError)
        response = self.handler(request)
        if not isinstance(response, Response):
            raise TypeError(f"the MockTransport handler returned {response!r}, not a Response")
        if not response.url:
            response.url = request.url
        if request.deadline is None and request.cancel is None:
            return response
        try:
            _check(request, ReadTimeoutError)
        except BaseException:
            response.close()
            raise
        stream = response._stream
        if stream is not None:
            response._stream = _checked(stream, request)
        return response


def _check(request: Request, timeout_error: type) -> None:
    url = redact_url(request.url)
    if request.cancel is not None and request.cancel.cancelled:
        raise RequestCancelled("the request was cancelled", method=request.method, url=url)
    if request.deadline is not None and time.monotonic() >= request.deadline:
        raise timeout_error("the request's deadline passed", method=request.method, url=url)


def _checked(stream: Iterable[bytes], request: Request) -> Iterator[bytes]:
    pieces = iter(stream)
    while True:
        _check(request, ReadTimeoutError)
        chunk = next(pieces, None)
        if chunk is None:
            return
        _check(request, ReadTimeoutError)  # it arrived after the deadline or a cancel
        yield chunk
