"""MockTransport: answer requests with a function, for unit tests."""

from __future__ import annotations

from typing import Callable, List

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
        response = self.handler(request)
        if not isinstance(response, Response):
            raise TypeError(f"the MockTransport handler returned {response!r}, not a Response")
        if not response.url:
            response.url = request.url
        return response
