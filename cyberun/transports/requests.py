"""RequestsTransport: HTTP over requests, optionally the user's own Session.

A Session you pass keeps working as configured: its proxies, CA bundle,
client certificates and mounted adapters apply (its ``verify`` and
``proxies`` even win over ``REQUESTS_CA_BUNDLE`` and ``*_PROXY``, which plain
requests lets override them). For safety:

- its ``auth`` (and ``.netrc``) and any ``Authorization``/``X-Team-ID``
  default header are never applied, so a credential can only come from the
  SDK, which sends it to the API's origin alone;
- its other defaults (headers such as a gateway token, cookies, params)
  travel only with the SDK's credential, that is to the API's origin: a
  request without it (presigned storage, a redirect to another host) carries
  exactly the SDK's headers;
- loopback hosts are never proxied, and a proxy scheme requests cannot use
  is refused before anything is sent.

Requests go to the session's adapter directly (``Session.send`` would read
a whole redirect body, however large, before returning); the session's
response hooks are not run.
"""

from __future__ import annotations

import functools
import socket
from typing import TYPE_CHECKING, Any, Dict, Mapping, Optional, Tuple

from .._redact import redact_text, scrub_exception
from .._url import URL
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
from .urllib import check_proxy, is_loopback
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
        url = checked_url(request.method, request.url)
        scope = RequestScope.of(request, timeout)
        try:
            scope.check()
            prepared, credentialed = self._prepare(request, str(url), scope)
            settings = self.session.merge_environment_settings(
                prepared.url, dict(self.session.proxies), True, self.session.verify, None
            )
            proxies = self._proxies(url, settings["proxies"])
            adapter = self.session.get_adapter(prepared.url)
            with bound(scope):
                response = adapter.send(
                    prepared,
                    stream=True,
                    timeout=_timeouts(timeout, scope),  # type: ignore[arg-type]
                    verify=settings["verify"],  # type: ignore[arg-type]
                    cert=settings["cert"],
                    proxies=proxies,
                )
        except Exception as exc:
            scope.release()
            raise self._map_error(exc, request, scope) from exc
        if credentialed:
            from requests.cookies import extract_cookies_to_jar

            extract_cookies_to_jar(  # type: ignore[no-untyped-call]
                self.session.cookies, prepared, response.raw
            )
        return urllib3_response(response.raw, request.method, request.url, scope)

    def _prepare(self, request: Request, url: str, scope: RequestScope) -> Tuple[Any, bool]:
        """The prepared request, and whether it carries the SDK's credential."""
        requests = self._requests
        headers: Dict[str, Optional[str]] = dict(request.headers.items())
        body: Any = request.body
        if body is not None and not isinstance(body, (bytes, bytearray)):
            if not callable(getattr(body, "read", None)):
                length = request.headers.get("Content-Length")
                # requests streams a sized body as is; an unsized one goes chunked.
                body = checked_body(body, scope)
                body = _Sized(body, int(length)) if length else body
        credentialed = "authorization" in request.headers
        if not credentialed:
            # Storage or another host: exactly the SDK's headers, nothing of the session's.
            prepared = requests.PreparedRequest()
            prepared.prepare(method=request.method, url=url, headers=headers, data=body)
            return prepared, False
        for name in _CREDENTIAL_HEADERS:
            if name not in request.headers:
                headers[name] = None  # removes a session default of that name
        wanted = requests.Request(request.method, url, headers=headers, data=body, auth=_no_auth)
        return self.session.prepare_request(wanted), True

    def _proxies(self, url: URL, configured: Mapping[str, str]) -> Dict[str, str]:
        """The proxies for ``url``: none for loopback; refuses schemes requests cannot use."""
        if is_loopback(url.host):
            return {}  # a proxy cannot reach this machine's loopback, and would see the key
        from requests.utils import select_proxy

        proxies = dict(configured)
        check_proxy(select_proxy(str(url), proxies), _proxy_schemes(), "RequestsTransport")
        return proxies

    def _map_error(
        self, exc: BaseException, request: Request, scope: Optional[RequestScope]
    ) -> TransportError:
        rex = self._requests.exceptions
        method, url = request.method, request.url
        scrub_exception(exc)
        if scope is not None and scope.cancelled:
            return RequestCancelled("the request was cancelled", method=method)
        if isinstance(exc, TransportError):
            return exc
        # requests wraps urllib3's exception as its first argument: map that
        # one, which says whether the request was ever sent.
        cause = exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else None
        if cause is not None and not isinstance(exc, rex.InvalidURL):
            mapped = map_urllib3_error(cause, method, url, scope)
            if isinstance(exc, rex.ConnectTimeout) and not isinstance(mapped, ConnectTimeoutError):
                return ConnectTimeoutError(str(mapped), method=method, url=mapped.url)
            return mapped
        # A bare exception of requests' (a custom adapter, a mocking library):
        # mapped by its class alone.
        detail = redact_text(str(exc))
        if isinstance(exc, (rex.InvalidURL, rex.InvalidSchema, rex.MissingSchema)):
            return ConnectError(f"invalid URL: {detail}", method=method)
        if isinstance(exc, rex.ConnectTimeout):
            return ConnectTimeoutError("timed out connecting", method=method)
        if isinstance(exc, rex.SSLError):
            return TLSError(f"TLS error: {detail}", method=method)
        if isinstance(exc, rex.ConnectionError):
            return ConnectError(f"could not connect: {detail}", method=method)
        if cause is None:
            return map_urllib3_error(exc, method, url, scope)
        return ReadError(detail)

    def close(self) -> None:
        """Close the session this transport made; a session you passed in stays open."""
        if self._own:
            self.session.close()


@functools.lru_cache(maxsize=None)
def _proxy_schemes() -> Tuple[str, ...]:
    """The proxy schemes requests can use here: SOCKS only with PySocks installed."""
    from importlib.util import find_spec

    if find_spec("socks") is None:
        return ("http", "https")
    return ("http", "https", "socks4", "socks4a", "socks5", "socks5h")


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
