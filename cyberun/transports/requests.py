"""RequestsTransport: HTTP over requests, optionally the user's own Session.

A Session you pass keeps working as configured: its proxies, CA bundle,
client certificates and mounted adapters apply (its ``verify`` and
``proxies`` even win over ``REQUESTS_CA_BUNDLE`` and ``*_PROXY``, which plain
requests lets override them). Two of its settings are
overridden for safety: its ``auth`` (and ``.netrc``) and any
``Authorization``/``X-Team-ID`` default header are never applied, so a
credential can only come from the SDK, which sends it to the API host alone.
"""

from __future__ import annotations

import functools
import socket
from typing import TYPE_CHECKING, Any, Dict, Optional, Tuple

from ..errors import (
    ConnectError,
    ConnectTimeoutError,
    ReadError,
    RequestCancelled,
    TLSError,
    TransportError,
)
from ._base import BaseTransport, Request, Response, Timeout, checked_url
from ._sockets import RequestScope, bound
from .urllib3 import checked_body, map_urllib3_error, urllib3_response, use_scoped_pools

if TYPE_CHECKING:  # pragma: no cover
    import requests

__all__ = ["RequestsTransport"]

_CREDENTIAL_HEADERS = ("Authorization", "X-Team-ID")


def _no_auth(request: Any) -> Any:
    # Passed as `auth` so that neither session.auth nor .netrc adds anything.
    return request


class _Sized:
    """An iterable body with a known length, so requests sends it unchunked."""

    def __init__(self, body: Any, length: int) -> None:
        self.body = body
        self.length = length

    def __iter__(self) -> Any:
        return iter(self.body)

    def __len__(self) -> int:
        return self.length


class RequestsTransport(BaseTransport):
    """A transport on requests.

    Args:
        session: your own ``requests.Session``; it stays open when this
            transport closes. By default the transport makes its own.
    """

    def __init__(self, session: Optional[requests.Session] = None) -> None:
        import requests

        self._requests = requests
        self._own = session is None
        if session is None:
            session = requests.Session()
            adapter = _scoped_adapter_class()()
            session.mount("https://", adapter)
            session.mount("http://", adapter)
        self.session: requests.Session = session

    def __repr__(self) -> str:
        own = "" if self._own else "session=<yours>"
        return f"RequestsTransport({own})"

    def send(self, request: Request, *, timeout: Timeout) -> Response:
        """Send the request; see [`Transport`][cyberun.Transport]."""
        checked_url(request.method, request.url)
        scope = RequestScope.of(request, timeout)
        headers: Dict[str, Optional[str]] = dict(request.headers.items())
        for name in _CREDENTIAL_HEADERS:
            if name not in request.headers:
                headers[name] = None  # removes a session default of that name
        body: Any = request.body
        if body is not None and not isinstance(body, (bytes, bytearray)):
            if not callable(getattr(body, "read", None)):
                length = request.headers.get("Content-Length")
                # requests streams a sized body as is; an unsized one goes chunked.
                body = checked_body(body, scope)
                body = _Sized(body, int(length)) if length else body
        try:
            if scope is not None:
                scope.check()
            with bound(scope):
                response = self.session.request(
                    request.method,
                    request.url,
                    headers=headers,
                    data=body,
                    stream=True,
                    allow_redirects=False,
                    timeout=_timeouts(timeout, scope),  # type: ignore[arg-type]
                    auth=_no_auth,
                    # Given per request, the session's own settings win over
                    # REQUESTS_CA_BUNDLE and *_PROXY, which requests otherwise
                    # lets override them (requests issues #3829 and #2018).
                    verify=self.session.verify,
                    proxies=dict(self.session.proxies),
                )
        except Exception as exc:
            if scope is not None:
                scope.release()
            raise self._map_error(exc, request, scope) from exc
        return urllib3_response(response.raw, request.method, request.url, scope)

    def _map_error(
        self, exc: BaseException, request: Request, scope: Optional[RequestScope]
    ) -> TransportError:
        rex = self._requests.exceptions
        method, url = request.method, request.url
        if scope is not None and scope.cancelled:
            return RequestCancelled("the request was cancelled", method=method)
        if isinstance(exc, TransportError):
            return exc
        # requests wraps urllib3's exception as its first argument: map that
        # one, which says whether the request was ever sent.
        cause = exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else None
        if cause is not None and not isinstance(exc, rex.InvalidURL):
            mapped = map_urllib3_error(cause, method, url)
            if isinstance(exc, rex.ConnectTimeout) and not isinstance(mapped, ConnectTimeoutError):
                return ConnectTimeoutError(str(mapped), method=method, url=mapped.url)
            if isinstance(exc, rex.SSLError) and not isinstance(mapped, TLSError):
                return TLSError(str(mapped), method=method, url=mapped.url)
            return mapped
        if isinstance(exc, (rex.InvalidURL, rex.InvalidSchema, rex.MissingSchema)):
            return ConnectError(f"invalid URL: {exc}", method=method)
        if isinstance(exc, rex.ConnectTimeout):
            return ConnectTimeoutError("timed out connecting", method=method)
        if isinstance(exc, rex.SSLError):
            return TLSError(f"TLS error: {exc}", method=method)
        if isinstance(exc, rex.ConnectionError):
            return ConnectError(f"could not connect: {exc}", method=method)
        return map_urllib3_error(exc, method, url) if cause is None else ReadError(str(exc))

    def close(self) -> None:
        """Close the session this transport made; a session you passed in stays open."""
        if self._own:
            self.session.close()


def _timeouts(
    timeout: Timeout, scope: Optional[RequestScope]
) -> Tuple[Optional[float], Optional[float]]:
    if scope is None:
        return (timeout.connect, timeout.read)
    try:
        return (scope.connect_timeout(timeout.connect), scope.read_timeout())
    except socket.timeout:
        raise ConnectTimeoutError("the request's deadline passed before it was sent") from None


@functools.lru_cache(maxsize=None)
def _scoped_adapter_class() -> Any:
    """An ``HTTPAdapter`` whose pools honour each request's deadline and cancel token."""
    from requests.adapters import HTTPAdapter

    class ScopedAdapter(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)  # type: ignore[no-untyped-call]
            use_scoped_pools(self.poolmanager)

        def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
            manager = super().proxy_manager_for(proxy, **kwargs)  # type: ignore[no-untyped-call]
            use_scoped_pools(manager)
            return manager

    return ScopedAdapter
