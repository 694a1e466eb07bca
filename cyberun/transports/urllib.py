"""UrllibTransport: HTTP with the standard library only (``http.client``, ``ssl``).

The zero-dependency transport: keep-alive connection reuse, proxies from the
environment (``HTTP_PROXY``, ``HTTPS_PROXY``, ``NO_PROXY``), the system CA
store, and prompt streaming (each piece of the body is handed over as soon
as it arrives, never held back to fill a buffer).
"""

from __future__ import annotations

import base64
import http.client
import ipaddress
import select
import socket
import ssl
import threading
import urllib.request
from typing import Dict, Iterator, List, Mapping, Optional, Tuple, Union
from urllib.parse import unquote, urlsplit

from .._redact import redact_url
from ..errors import (
    ConnectError,
    ConnectTimeoutError,
    ReadError,
    ReadTimeoutError,
    RequestCancelled,
    TLSError,
    TransportError,
)
from ._base import BaseTransport, Request, Response, Timeout, checked_url, iter_body
from ._sockets import RequestScope, TimedHTTPResponse, bound, create_connection

__all__ = ["UrllibTransport"]

_CHUNK = 1024 * 1024  # read1 returns what is there: no read-ahead, fewer system calls
_PoolKey = Tuple[str, str, int, Optional[str]]


def environment_proxy(scheme: str, host: str) -> Optional[str]:
    """The proxy the environment (or system settings) asks for, or None.

    Honours ``HTTP_PROXY``/``HTTPS_PROXY``/``ALL_PROXY`` and ``NO_PROXY``;
    loopback hosts are never proxied (a proxy cannot reach your loopback).
    """
    if is_loopback(host) or urllib.request.proxy_bypass(host):
        return None
    proxies = urllib.request.getproxies()
    return proxies.get(scheme) or proxies.get("all")


def check_proxy(proxy: Optional[str], schemes: Tuple[str, ...], transport: str) -> Optional[str]:
    """``proxy`` with its scheme (``http://`` assumed); ConnectError if ``transport`` can't use it.

    Raised before anything is sent, naming the scheme: a request must never
    go out some other way than the one configured.
    """
    if not proxy:
        return None
    if "://" not in proxy:
        proxy = f"http://{proxy}"
    scheme = proxy.split("://", 1)[0].lower()
    if scheme not in schemes:
        allowed = " and ".join(f"{name}://" for name in schemes)
        raise ConnectError(
            f"the proxy {redact_url(proxy)!r} uses the {scheme}:// scheme, which {transport} "
            f"does not support (only {allowed}); nothing was sent"
        )
    return proxy


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (never sent through a proxy)."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class UrllibTransport(BaseTransport):
    """A transport on the standard library alone.

    Args:
        verify: ``True`` (the default) verifies TLS certificates against the
            system CA store; a path uses that CA bundle instead; an
            ``ssl.SSLContext`` is used as given. ``False`` disables
            verification and should only ever be used against a test server.
        cert: a client certificate: a PEM path, or a (cert, key) pair of paths.
        proxies: ``{"http": url, "https": url}``; by default read from the
            environment (``HTTP_PROXY``, ``HTTPS_PROXY``, ``NO_PROXY``).
            Loopback hosts are never proxied.
        trust_env: read proxies from the environment when ``proxies`` is None.
        pool_size: idle connections kept per host.

    Thread-safe: connections are checked out of a locked pool, one request
    at a time each.
    """

    def __init__(
        self,
        *,
        verify: Union[bool, str, ssl.SSLContext] = True,
        cert: Union[str, Tuple[str, str], None] = None,
        proxies: Optional[Mapping[str, str]] = None,
        trust_env: bool = True,
        pool_size: int = 10,
    ) -> None:
        self._ssl_context = _ssl_context(verify, cert)
        self._proxies = dict(proxies) if proxies is not None else None
        self._trust_env = trust_env
        self._pool_size = pool_size
        self._pool: Dict[_PoolKey, List[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()
        self._closed = False

    def __repr__(self) -> str:
        return "UrllibTransport()"

    # -- public ---------------------------------------------------------------------

    def send(self, request: Request, *, timeout: Timeout) -> Response:
        """Send the request; see [`Transport`][cyberun.Transport]."""
        if self._closed:
            raise ConnectError("the transport is closed", url=redact_url(request.url))
        parts = checked_url(request.method, request.url)
        method = request.method
        url = redact_url(request.url)
        scope = RequestScope.of(request, timeout)
        scope.check(method, url)
        proxy = self._proxy_for(parts.scheme, parts.host)
        key: _PoolKey = (parts.scheme, parts.host, parts.port, proxy)
        conn = self._checkout(key)
        fresh = conn is None
        if conn is None:
            conn = self._new_connection(parts.scheme, parts.host, parts.port, proxy, timeout)
        with bound(scope):
            if fresh:
                scope.connected = False
                try:
                    conn.connect()
                except Exception as exc:
                    conn.close()
                    scope.release()
                    raise _connect_error(exc, method, url, scope) from exc
            scope.connected = True
            sock = conn.sock
            try:
                scope.watch(sock)
                if sock is not None:
                    sock.settimeout(scope.read_timeout())
                # A forward proxy gets the absolute URL; everything else the path.
                target = str(parts) if (proxy and parts.scheme == "http") else parts.target
                self._send_request(conn, method, target, request, scope)
                response = conn.getresponse()
            except Exception as exc:
                conn.close()
                scope.release()
                raise _read_error(exc, method, url, scope) from exc
        return self._wrap(response, conn, sock, key, request, method, scope)

    def close(self) -> None:
        """Close every pooled connection. Responses still open keep their own."""
        with self._lock:
            self._closed = True
            pools = list(self._pool.values())
            self._pool.clear()
        for conns in pools:
            for conn in conns:
                conn.close()

    # -- connections ------------------------------------------------------------------

    def _proxy_for(self, scheme: str, host: str) -> Optional[str]:
        """The proxy for a request, or None; loopback never; refuses what it cannot use.

        Raises:
            ConnectError: a proxy scheme other than http:// (nothing is sent).
        """
        if is_loopback(host):
            return None
        if self._proxies is not None:
            proxy = self._proxies.get(scheme) or self._proxies.get("all")
        elif not self._trust_env:
            return None
        else:
            proxy = environment_proxy(scheme, host)
        return check_proxy(proxy, ("http",), "UrllibTransport")

    def _new_connection(
        self, scheme: str, host: str, port: int, proxy: Optional[str], timeout: Timeout
    ) -> http.client.HTTPConnection:
        conn = self._plain_or_proxied(scheme, host, port, proxy, timeout.connect)
        # Connect and read through the helpers that honour a request's
        # deadline and cancel token (plain http.client when it has neither).
        conn._create_connection = create_connection  # type: ignore[attr-defined]
        conn.response_class = TimedHTTPResponse
        return conn

    def _plain_or_proxied(
        self,
        scheme: str,
        host: str,
        port: int,
        proxy: Optional[str],
        connect_timeout: Optional[float],
    ) -> http.client.HTTPConnection:
        if proxy is None:
            if scheme == "https":
                return http.client.HTTPSConnection(
                    host, port, timeout=connect_timeout, context=self._ssl_context
                )
            return http.client.HTTPConnection(host, port, timeout=connect_timeout)
        proxy_parts = urlsplit(proxy)
        proxy_host = proxy_parts.hostname or ""
        proxy_port = proxy_parts.port or 80
        auth_headers: Dict[str, str] = {}
        if proxy_parts.username is not None:
            credentials = f"{unquote(proxy_parts.username)}:{unquote(proxy_parts.password or '')}"
            token = base64.b64encode(credentials.encode()).decode()
            auth_headers["Proxy-Authorization"] = f"Basic {token}"
        if scheme == "https":
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                proxy_host, proxy_port, timeout=connect_timeout, context=self._ssl_context
            )
            conn.set_tunnel(host, port, headers=auth_headers)
            return conn
        conn = _ProxyConnection(proxy_host, proxy_port, timeout=connect_timeout)
        conn.proxy_headers = auth_headers
        return conn

    def _checkout(self, key: _PoolKey) -> Optional[http.client.HTTPConnection]:
        while True:
            with self._lock:
                idle = self._pool.get(key)
                if not idle:
                    return None
                conn = idle.pop()
            if _still_usable(conn):
                return conn
            conn.close()

    def _checkin(self, key: _PoolKey, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if not self._closed:
                idle = self._pool.setdefault(key, [])
                if len(idle) < self._pool_size:
                    idle.append(conn)
                    return
        conn.close()

    # -- requests and responses ---------------------------------------------------------

    @staticmethod
    def _send_request(
        conn: http.client.HTTPConnection,
        method: str,
        target: str,
        request: Request,
        scope: RequestScope,
    ) -> None:
        conn.putrequest(method, target, skip_accept_encoding=True)
        for name, value in getattr(conn, "proxy_headers", {}).items():
            conn.putheader(name, value)
        for name, value in request.headers.items():
            conn.putheader(name, value)
        body = request.body
        if body is None:
            if method in ("POST", "PUT", "PATCH") and "content-length" not in request.headers:
                conn.putheader("Content-Length", "0")
            conn.endheaders()
        elif isinstance(body, (bytes, bytearray)):
            if "content-length" not in request.headers:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(bytes(body))
        else:
            chunked = "content-length" not in request.headers
            if chunked:
                conn.putheader("Transfer-Encoding", "chunked")
            conn.endheaders()
            for chunk in iter_body(body, _CHUNK):
                if not chunk:
                    continue
                scope.check()
                conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
            if chunked:
                conn.send(b"0\r\n\r\n")

    def _wrap(
        self,
        response: http.client.HTTPResponse,
        conn: http.client.HTTPConnection,
        sock: Optional[socket.socket],
        key: _PoolKey,
        request: Request,
        method: str,
        scope: RequestScope,
    ) -> Response:
        state = {"done": False}
        url = redact_url(request.url)

        def stream() -> Iterator[bytes]:
            while True:
                try:
                    chunk = response.read1(_CHUNK)
                except Exception as exc:
                    if state["done"]:
                        return  # closed from another thread: stop quietly
                    raise _read_error(exc, method, url, scope) from exc
                if not chunk:
                    break
                yield chunk
            if response.length:  # http.client returns b"" early on a short body
                raise ReadError(
                    f"the body ended {response.length} bytes short of its Content-Length",
                    method=method,
                    url=url,
                )
            state["complete"] = True
            scope.release()

        def close() -> None:
            if state["done"]:
                return
            state["done"] = True
            scope.release()
            if state.get("complete") and not response.will_close:
                response.close()
                self._checkin(key, conn)
                return
            # Interrupt a read blocked in another thread, then drop the connection.
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            response.close()
            conn.close()

        headers = list(response.getheaders())
        return Response(response.status, headers, stream=stream(), close=close, url=request.url)


class _ProxyConnection(http.client.HTTPConnection):
    """A plain-HTTP connection to a forward proxy (absolute URLs in the request line)."""

    proxy_headers: Dict[str, str]


def _path(parts: object) -> str:
    path = getattr(parts, "path", "") or "/"
    query = getattr(parts, "query", "")
    return f"{path}?{query}" if query else path


def _still_usable(conn: http.client.HTTPConnection) -> bool:
    # An idle keep-alive socket that is readable has been closed by the server
    # (or holds junk): reusing it would fail after the request was sent.
    sock = conn.sock
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable


def _ssl_context(
    verify: Union[bool, str, ssl.SSLContext], cert: Union[str, Tuple[str, str], None]
) -> ssl.SSLContext:
    if isinstance(verify, ssl.SSLContext):
        context = verify
    elif verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif isinstance(verify, str):
        context = ssl.create_default_context(cafile=verify)
    else:
        context = ssl.create_default_context()
    if cert is not None:
        certfile, keyfile = (cert, None) if isinstance(cert, str) else cert
        context.load_cert_chain(certfile, keyfile)
    return context


def _connect_error(
    exc: BaseException, method: str, url: str, scope: RequestScope
) -> TransportError:
    if scope.cancelled:
        return RequestCancelled("the request was cancelled", method=method, url=url)
    if isinstance(exc, TransportError):
        return exc
    if isinstance(exc, socket.timeout):
        return ConnectTimeoutError(f"timed out connecting to {url}", method=method, url=url)
    if isinstance(exc, ssl.SSLError):
        return TLSError(f"TLS handshake with {url} failed: {exc}", method=method, url=url)
    return ConnectError(f"could not connect to {url}: {exc}", method=method, url=url)


def _read_error(exc: BaseException, method: str, url: str, scope: RequestScope) -> TransportError:
    if scope.cancelled:
        return RequestCancelled("the request was cancelled", method=method, url=url)
    if isinstance(exc, TransportError):
        return exc
    if isinstance(exc, socket.timeout):
        return ReadTimeoutError(
            f"no data from {url} within the read timeout", method=method, url=url
        )
    if isinstance(exc, ssl.SSLError):
        # After the handshake: the request may have gone out, so not a TLSError
        # (which promises nothing was sent).
        return ReadError(f"the TLS connection to {url} broke: {exc}", method=method, url=url)
    if isinstance(exc, http.client.IncompleteRead):
        return ReadError(f"the body from {url} ended early", method=method, url=url)
    return ReadError(
        f"the connection to {url} broke: {type(exc).__name__}: {exc}", method=method, url=url
    )
