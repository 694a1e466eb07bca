"""Urllib3Transport: HTTP over urllib3 1.26 or 2.x, optionally the user's own pool.

Also home of the urllib3 response streaming and error mapping that
[`RequestsTransport`][cyberun.RequestsTransport] shares (requests runs on urllib3).
"""

from __future__ import annotations

import functools
import socket
import threading
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, Optional, Tuple, Union

from .._redact import redact_text, redact_url, scrub_exception
from .._url import URL
from ..errors import (
    ConnectError,
    ConnectTimeoutError,
    ReadError,
    ReadTimeoutError,
    RequestCancelled,
    TLSError,
    TransportError,
)
from ._base import (
    BaseTransport,
    Body,
    Request,
    Response,
    Timeout,
    causes,
    checked_url,
    iter_body,
)
from ._sockets import RequestScope, TimedHTTPResponse, bound, create_connection, current
from .urllib import check_proxy, environment_proxy, is_loopback

if TYPE_CHECKING:  # pragma: no cover
    import urllib3

__all__ = ["Urllib3Transport"]

_CHUNK = 1024 * 1024  # read1 returns what is there: no read-ahead, fewer system calls


class Urllib3Transport(BaseTransport):
    """A transport on urllib3 (1.26 or 2.x).

    Args:
        pool: your own ``urllib3.PoolManager`` or ``ProxyManager``; its TLS,
            proxy and pool settings are used as they are, and it stays open
            when this transport closes. By default the transport makes its
            own pool, verifying TLS against the system CA store (or ``verify``
            when it is a path) and honouring proxy environment variables.
        verify: for the transport's own pool only: ``True``, a CA bundle
            path, or ``False`` (test servers only).
        cert: for the transport's own pool only: a client certificate path
            or a (cert, key) pair.
        trust_env: for the transport's own pool only: use
            ``HTTP_PROXY``/``HTTPS_PROXY``/``NO_PROXY``.
    """

    def __init__(
        self,
        pool: Optional[urllib3.PoolManager] = None,
        *,
        verify: Union[bool, str] = True,
        cert: Union[str, Tuple[str, str], None] = None,
        trust_env: bool = True,
        maxsize: int = 10,
    ) -> None:
        import urllib3

        self._urllib3 = urllib3
        self._own = pool is None
        self._pool_kwargs: Dict[str, Any] = {"maxsize": maxsize, "block": False}
        if verify is False:
            self._pool_kwargs["cert_reqs"] = "CERT_NONE"
        else:
            self._pool_kwargs["cert_reqs"] = "CERT_REQUIRED"
            if isinstance(verify, str):
                self._pool_kwargs["ca_certs"] = verify
        if cert is not None:
            certfile, keyfile = (cert, None) if isinstance(cert, str) else cert
            self._pool_kwargs["cert_file"] = certfile
            self._pool_kwargs["key_file"] = keyfile
        self._trust_env = trust_env
        self._pool = pool if pool is not None else urllib3.PoolManager(**self._pool_kwargs)
        if pool is None:
            use_scoped_pools(self._pool)
        self._proxy_pools: Dict[str, urllib3.ProxyManager] = {}
        self._direct: Optional[urllib3.PoolManager] = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        own = "" if self._own else "pool=<yours>"
        return f"Urllib3Transport({own})"

    def _pool_for(self, url: URL) -> Any:
        """The pool manager for ``url``: loopback never through a proxy, proxies checked.

        Raises:
            ConnectError: the environment asks for a proxy scheme urllib3
                cannot use (nothing is sent).
        """
        if is_loopback(url.host):
            if isinstance(self._pool, self._urllib3.ProxyManager):
                return self._direct_pool()  # a proxy cannot reach this machine's loopback
            return self._pool
        if not self._own or not self._trust_env:
            return self._pool
        proxy = check_proxy(
            environment_proxy(url.scheme, url.host), ("http", "https"), "Urllib3Transport"
        )
        if not proxy:
            return self._pool
        with self._lock:
            if proxy not in self._proxy_pools:
                # https through an http proxy goes through a CONNECT tunnel:
                # urllib3 never forwards an https request to a plain-http proxy.
                manager = self._urllib3.ProxyManager(proxy, **self._pool_kwargs)
                use_scoped_pools(manager)
                self._proxy_pools[proxy] = manager
            return self._proxy_pools[proxy]

    def _direct_pool(self) -> Any:
        with self._lock:
            if self._direct is None:
                settings = dict(getattr(self._pool, "connection_pool_kw", {}))
                self._direct = self._urllib3.PoolManager(**settings)
                use_scoped_pools(self._direct)
            return self._direct

    def send(self, request: Request, *, timeout: Timeout) -> Response:
        """Send the request; see [`Transport`][cyberun.Transport]."""
        url = checked_url(request.method, request.url)
        scope = RequestScope.of(request, timeout)
        headers = dict(request.headers.items())
        chunked = False
        body: Any = request.body
        if body is not None and not isinstance(body, (bytes, bytearray)):
            chunked = "content-length" not in request.headers
            body = checked_body(body, scope)
        try:
            scope.check()
            pool = self._pool_for(url)
            with bound(scope):
                raw = pool.urlopen(
                    request.method,
                    str(url),
                    body=body,
                    headers=headers,
                    redirect=False,
                    retries=False,
                    preload_content=False,
                    decode_content=False,
                    assert_same_host=False,
                    chunked=chunked,
                    timeout=urllib3_timeout(timeout, scope),
                    enforce_content_length=True,
                )
        except Exception as exc:
            scope.release()
            raise map_urllib3_error(exc, request.method, request.url, scope) from exc
        return urllib3_response(raw, request.method, request.url, scope)

    def close(self) -> None:
        """Close the pool this transport made; a pool you passed in stays open."""
        for pool in self._proxy_pools.values():
            pool.clear()
        self._proxy_pools.clear()
        if self._direct is not None:
            self._direct.clear()
        if self._own:
            self._pool.clear()


def urllib3_response(
    raw: Any, method: str, url: str, scope: Optional[RequestScope] = None
) -> Response:
    """Wrap a urllib3 response (``preload_content=False``) as a streaming Response.

    ``close()`` is safe from another thread: it shuts the socket down first
    (unblocking a read in progress) and leaves the rest of the cleanup to the
    reading thread, so it never waits behind that thread's lock. With a
    ``scope``, every read honours the request's deadline and cancel token,
    also over a pool of the user's (whose sockets the SDK did not open).
    """
    state: Dict[str, bool] = {
        "done": False,
        "complete": False,
        "reading": False,
        "released": False,
    }
    lock = threading.Lock()
    safe_url = redact_url(url)
    read1 = getattr(raw, "read1", None)  # urllib3 >= 2.3
    fp = getattr(raw, "_fp", None)  # http.client response underneath (older urllib3)
    sock = _socket_of(raw)  # captured now: "Connection: close" detaches it later
    if scope is not None:
        scope.watch(sock)

    def next_chunk() -> bytes:
        if scope is not None:
            scope.check(method, safe_url)
            if sock is not None and getattr(raw, "_connection", None) is not None:
                # Only while the connection is still this response's: once
                # the body is in, urllib3 hands it back to the pool.
                sock.settimeout(scope.read_timeout())
        if read1 is not None:
            return read1(_CHUNK)  # type: ignore[no-any-return]
        if fp is not None and hasattr(fp, "read1"):
            data: bytes = fp.read1(_CHUNK)
            if not data and getattr(fp, "length", None):
                raise ReadError(
                    f"the body ended {fp.length} bytes short of its Content-Length",
                    method=method,
                    url=safe_url,
                )
            return data
        return raw.read(_CHUNK)  # type: ignore[no-any-return]  # pragma: no cover

    def release() -> None:
        with lock:
            if state["released"]:
                return
            state["released"] = True
        if scope is not None:
            scope.release()
        if not state["complete"]:
            raw.close()
        elif read1 is None and fp is not None:
            # http.client's read1 leaves the reader of a whole body open (its
            # read() closes it): with "Connection: close" that reader is the
            # socket's last holder, which would then outlive the response.
            fp.close()
        raw.release_conn()

    def stream() -> Iterator[bytes]:
        try:
            while True:
                state["reading"] = True
                try:
                    chunk = next_chunk()
                except Exception as exc:
                    if state["done"]:
                        return  # closed from another thread: stop quietly
                    raise map_urllib3_error(exc, method, url, scope) from exc
                finally:
                    state["reading"] = False
                if not chunk:
                    if scope is not None:
                        scope.check(method, safe_url)  # a cancel's shutdown reads as the end
                    break
                yield chunk
            state["complete"] = True
            if scope is not None:
                scope.release()
        finally:
            if state["done"]:
                release()  # a close() from another thread left this to us

    def close() -> None:
        if state["done"]:
            return
        state["done"] = True
        if state["complete"]:
            release()
            return
        _interrupt(raw, sock)
        if not state["reading"]:
            release()

    return Response(raw.status, list(raw.headers.items()), stream=stream(), close=close, url=url)


def _socket_of(raw: Any) -> Optional[socket.socket]:
    connection = getattr(raw, "_connection", None) or getattr(raw, "connection", None)
    sock = getattr(connection, "sock", None)
    if sock is None:
        # With "Connection: close", http.client detaches the socket from the
        # connection; the response's reader still holds it.
        reader = getattr(getattr(raw, "_fp", None), "fp", None)
        sock = getattr(getattr(reader, "raw", None), "_sock", None)
    return sock if isinstance(sock, socket.socket) else None


def _interrupt(raw: Any, sock: Optional[socket.socket]) -> None:
    """Unblock a read waiting on this response's socket in another thread."""
    shutdown = getattr(raw, "shutdown", None)  # urllib3 >= 2.3
    if callable(shutdown):
        try:
            shutdown()
        except Exception:  # pragma: no cover - best effort
            pass
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def map_urllib3_error(
    exc: BaseException, method: str, url: str, scope: Optional[RequestScope] = None
) -> TransportError:
    """Translate a urllib3 (or socket/http.client) exception to the SDK's most specific error.

    A cancelled request is [`RequestCancelled`][cyberun.RequestCancelled] whatever the
    shutdown of its socket looked like to the library. Only a failure before
    the request could be written is a ``ConnectError``, ``ConnectTimeoutError``
    or ``TLSError`` (they promise nothing was sent): urllib3 reports a TLS
    or proxy error the same way whenever it happens, so the scope says
    whether the connection was ready. The exception (which quotes the URL,
    signature included) is scrubbed before it is chained.
    """
    import urllib3.exceptions as e

    safe_url = redact_url(url)
    scrub_exception(exc)
    if scope is not None and scope.cancelled:
        return RequestCancelled("the request was cancelled", method=method, url=safe_url)
    if isinstance(exc, TransportError):
        return exc
    if isinstance(exc, e.MaxRetryError) and exc.reason is not None:
        exc = exc.reason
    connected = None if scope is None else scope.connected
    unsent = connected is False or (connected is None and _failed_to_connect(exc))
    detail = redact_text(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, e.ProxyError) and unsent:
        return ConnectError(
            f"the proxy failed for {safe_url}: {detail}", method=method, url=safe_url
        )
    if isinstance(exc, e.NewConnectionError):  # refused, DNS, unreachable
        return ConnectError(f"could not connect to {safe_url}", method=method, url=safe_url)
    if isinstance(exc, e.ConnectTimeoutError):
        return ConnectTimeoutError(
            f"timed out connecting to {safe_url}", method=method, url=safe_url
        )
    if isinstance(exc, e.SSLError) and (unsent or (connected is None and _certificate(exc))):
        return TLSError(
            f"TLS handshake with {safe_url} failed: {detail}", method=method, url=safe_url
        )
    if isinstance(exc, (e.ReadTimeoutError, socket.timeout)):
        return ReadTimeoutError(
            f"no data from {safe_url} within the read timeout", method=method, url=safe_url
        )
    if isinstance(exc, e.ProtocolError) and exc.args and _is_short_body(exc.args[-1]):
        return ReadError(f"the body from {safe_url} ended early", method=method, url=safe_url)
    return ReadError(f"the connection to {safe_url} broke: {detail}", method=method, url=safe_url)


def _failed_to_connect(exc: BaseException) -> bool:
    """Over a pool of the user's: whether the error happened while connecting."""
    import urllib3.exceptions as e

    refused = (
        e.NewConnectionError,
        e.ConnectTimeoutError,
        socket.gaierror,
        ConnectionRefusedError,
    )
    return any(isinstance(link, refused) for link in causes(exc))


def _certificate(exc: BaseException) -> bool:
    """Whether a TLS error is a certificate that failed verification (only in a handshake)."""
    import ssl

    return any(
        isinstance(link, (ssl.SSLCertVerificationError, ssl.CertificateError))
        for link in causes(exc)
    )


def _is_short_body(cause: Any) -> bool:
    import http.client

    name = type(cause).__name__
    return isinstance(cause, http.client.IncompleteRead) or name == "IncompleteRead"


def urllib3_timeout(timeout: Timeout, scope: Optional[RequestScope]) -> Any:
    """A ``urllib3.Timeout`` for this request: the connect and read timeouts, cut to its deadline.

    Raises:
        ConnectTimeoutError: the deadline has already passed.
    """
    import urllib3

    connect, read = timeout.connect, timeout.read
    if scope is not None:
        try:
            connect = scope.connect_timeout(connect)
            read = scope.read_timeout()
        except socket.timeout:
            raise ConnectTimeoutError("the request's deadline passed before it was sent") from None
    return urllib3.Timeout(connect=connect, read=read)


def checked_body(body: Body, scope: Optional[RequestScope]) -> Iterator[bytes]:
    """A streamed request body that stops with RequestCancelled once the request is cancelled."""
    for chunk in iter_body(body, _CHUNK):
        if scope is not None:
            scope.check()
        yield chunk


def use_scoped_pools(manager: Any) -> None:
    """Make a pool manager the SDK created open its connections through `_sockets`.

    Its connections then honour each request's deadline on connect and on
    every read, and a cancel shuts their socket down. Managers with pool
    classes of their own (SOCKS) are left as they are.
    """
    import urllib3.poolmanager

    if manager.pool_classes_by_scheme == urllib3.poolmanager.pool_classes_by_scheme:
        manager.pool_classes_by_scheme = _scoped_pool_classes()


@functools.lru_cache(maxsize=None)
def _scoped_pool_classes() -> Dict[str, Any]:
    from urllib3 import connection, connectionpool

    class ScopedHTTPConnection(connection.HTTPConnection):
        response_class = TimedHTTPResponse

        def _new_conn(self) -> Any:
            return _scoped_socket(self, super()._new_conn)

        def connect(self) -> None:
            _connecting(super().connect)

    class ScopedHTTPSConnection(connection.HTTPSConnection):
        response_class = TimedHTTPResponse

        def _new_conn(self) -> Any:
            return _scoped_socket(self, super()._new_conn)

        def connect(self) -> None:
            _connecting(super().connect)

    class ScopedHTTPConnectionPool(connectionpool.HTTPConnectionPool):
        ConnectionCls = ScopedHTTPConnection

        def _get_conn(self, timeout: Optional[float] = None) -> Any:
            return _checked_out(super()._get_conn(timeout))

        def _put_conn(self, conn: Any) -> None:
            super()._put_conn(_checked_in(conn))

    class ScopedHTTPSConnectionPool(connectionpool.HTTPSConnectionPool):
        ConnectionCls = ScopedHTTPSConnection

        def _get_conn(self, timeout: Optional[float] = None) -> Any:
            return _checked_out(super()._get_conn(timeout))

        def _put_conn(self, conn: Any) -> None:
            super()._put_conn(_checked_in(conn))

    return {"http": ScopedHTTPConnectionPool, "https": ScopedHTTPSConnectionPool}


def _checked_out(conn: Any) -> Any:
    """A connection leaves the pool for the current request: a cancel may shut it down."""
    scope = current()
    conn._cyberun_scope = scope
    if scope is not None:
        sock = getattr(conn, "sock", None)
        scope.connected = sock is not None  # a kept-alive connection is ready at once
        scope.watch(sock)
    return conn


def _connecting(connect: Callable[[], None]) -> None:
    """Connect (TCP, proxy tunnel, TLS), then mark the current request as able to be sent."""
    scope = current()
    if scope is not None:
        scope.connected = False
    connect()
    if scope is not None:
        scope.connected = True


def _checked_in(conn: Any) -> Any:
    """A connection goes back to the pool: its request's cancel must never reach it again."""
    scope = getattr(conn, "_cyberun_scope", None)
    if scope is not None:
        conn._cyberun_scope = None
        scope.release()
    return conn


def _scoped_socket(conn: Any, default: Callable[[], Any]) -> Any:
    """What urllib3's ``_new_conn`` does, through `create_connection`, raising urllib3's errors."""
    if current() is None:
        return default()
    import urllib3.exceptions as e

    try:
        return create_connection(
            (conn._dns_host, conn.port), conn.timeout, conn.source_address, conn.socket_options
        )
    except socket.gaierror as exc:
        raise e.NewConnectionError(conn, f"Failed to resolve {conn.host!r} ({exc})") from exc
    except socket.timeout as exc:
        raise e.ConnectTimeoutError(
            conn, f"Connection to {conn.host} timed out. (connect timeout={conn.timeout})"
        ) from exc
    except OSError as exc:
        raise e.NewConnectionError(conn, f"Failed to establish a new connection: {exc}") from exc
