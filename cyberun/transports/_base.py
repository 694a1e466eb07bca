"""The transport seam: Request, Response, Timeout, Headers and the Transport protocol.

A transport moves one HTTP request and its answer. It knows nothing about
tasks, JSON, authentication, retries or redirects: those live above it, in
the endpoint layer. Every transport raises only [`cyberun.errors`][cyberun.errors]
transport errors, with the backend's exception chained.
"""

from __future__ import annotations

import enum
import logging
import threading
from typing import (
    IO,
    Any,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    MutableMapping,
    Optional,
    Protocol,
    Tuple,
    Union,
    runtime_checkable,
)

from .._redact import redact_url
from .._url import URL, InvalidURL, parse_url
from ..errors import ConnectError, ReadError

__all__ = [
    "DEFAULT",
    "BaseTransport",
    "Body",
    "CancelToken",
    "DefaultType",
    "Headers",
    "Request",
    "Response",
    "Timeout",
    "Transport",
    "iter_body",
]


logger: logging.Logger = logging.getLogger("cyberun")


class DefaultType(enum.Enum):
    """The type of [`DEFAULT`][cyberun.DEFAULT]: "use the documented default".

    Distinct from ``None``, which means "none" where it is allowed (for
    example ``Timeout(read=None)`` waits forever). Its only value is
    ``DEFAULT``; test for it with ``value is DEFAULT``.
    """

    DEFAULT = "DEFAULT"

    def __repr__(self) -> str:
        return "DEFAULT"


#: Pass for an argument to mean "the documented default" (``None`` may mean "none").
DEFAULT = DefaultType.DEFAULT
_Default = DefaultType  # the name the SDK's modules used before it was public


class Headers(MutableMapping[str, str]):
    """Case-insensitive HTTP headers that keep the spelling they were given.

    Args:
        headers: initial headers, as a mapping or (name, value) pairs.
    """

    __slots__ = ("_items",)

    def __init__(
        self, headers: Union[Mapping[str, str], Iterable[Tuple[str, str]], None] = None
    ) -> None:
        self._items: Dict[str, Tuple[str, str]] = {}
        if headers:
            self.update(headers)

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()][1]

    def __setitem__(self, name: str, value: str) -> None:
        self._items[name.lower()] = (name, value)

    def __delitem__(self, name: str) -> None:
        del self._items[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def copy(self) -> Headers:
        """Return an independent copy."""
        return Headers(self.items())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return {k.lower(): v for k, v in self.items()} == {
                str(k).lower(): v for k, v in other.items()
            }
        return NotImplemented

    def __repr__(self) -> str:
        # Names only: values may be credentials or signatures.
        return f"Headers({sorted(self)!r})"


class CancelToken:
    """A one-way switch that cancels the requests carrying it, from any thread.

    Give it to [`Request`][cyberun.Request] (or to
    [`Endpoints.scoped`][cyberun.api.Endpoints.scoped]); calling
    [`cancel`][cyberun.CancelToken.cancel] from another thread ends those
    requests promptly, at whatever stage they are (waiting to retry,
    connecting, waiting for the headers, reading the body), with
    [`RequestCancelled`][cyberun.RequestCancelled]:

    ```python
    import threading

    from cyberun import CancelToken

    token = CancelToken()
    threading.Timer(0.01, token.cancel).start()
    assert token.wait(5) and token.cancelled
    ```

    Thread-safe; cancelling is idempotent and cannot be undone.
    """

    __slots__ = ("_callbacks", "_event", "_lock")

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: List[Callable[[], None]] = []

    @property
    def cancelled(self) -> bool:
        """True once [`cancel`][cyberun.CancelToken.cancel] has been called."""
        return self._event.is_set()

    def cancel(self) -> None:
        """Cancel (any thread, any number of times): run every callback once."""
        with self._lock:
            if self._event.is_set():
                return
            self._event.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            _run_callback(callback)

    def wait(self, timeout: Optional[float]) -> bool:
        """Block until cancelled or ``timeout`` seconds pass (None: no limit).

        Returns:
            True once cancelled, False when the time ran out first.
        """
        return self._event.wait(timeout)

    def add_callback(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Run ``callback`` once when cancelled (at once if already cancelled).

        Callbacks run in the thread that cancels; they must be quick and must
        not raise (an exception is logged and ignored).

        Returns:
            A function that removes the callback (harmless once it has run).
        """
        with self._lock:
            if not self._event.is_set():
                self._callbacks.append(callback)
                return lambda: self._remove(callback)
        _run_callback(callback)
        return lambda: None

    def _remove(self, callback: Callable[[], None]) -> None:
        with self._lock:
            try:
                self._callbacks.remove(callback)
            except ValueError:
                pass

    def __repr__(self) -> str:
        return f"<CancelToken {'cancelled' if self.cancelled else 'active'}>"


def _run_callback(callback: Callable[[], None]) -> None:
    try:
        callback()
    except Exception:  # a cancel must reach every other callback
        logger.debug("a cancel callback failed", exc_info=True)


#: What a request body may be: bytes, a binary file object, or an iterable of
#: byte chunks (streamed, never read whole into memory).
Body = Union[bytes, IO[bytes], Iterable[bytes]]


class Request:
    """One HTTP request, as transports see it.

    Args:
        method: the HTTP method, for example ``"GET"``.
        url: the absolute URL, query string included.
        headers: request headers.
        body: ``None``, bytes, a binary file object or an iterable of bytes.
            File objects and iterables are streamed; give a
            ``Content-Length`` header for them when the size is known.
        deadline: an absolute ``time.monotonic()`` time the
            request must not outlast: transports raise
            [`ConnectTimeoutError`][cyberun.ConnectTimeoutError] or
            [`ReadTimeoutError`][cyberun.ReadTimeoutError] once it passes,
            while connecting, waiting for the headers or reading the body (a
            body that trickles in cannot outlast it). None: only the
            [`Timeout`][cyberun.Timeout] applies.
        cancel: a [`CancelToken`][cyberun.CancelToken] whose ``cancel()``
            ends the request promptly with
            [`RequestCancelled`][cyberun.RequestCancelled].

    A transport of your own may ignore ``deadline`` and ``cancel``; the SDK
    still checks both before each attempt and while waiting to retry.
    """

    __slots__ = ("body", "cancel", "deadline", "headers", "method", "url")

    def __init__(
        self,
        method: str,
        url: str,
        headers: Union[Mapping[str, str], Iterable[Tuple[str, str]], None] = None,
        body: Optional[Body] = None,
        *,
        deadline: Optional[float] = None,
        cancel: Optional[CancelToken] = None,
    ) -> None:
        self.method: str = method.upper()
        self.url: str = url
        self.headers: Headers = Headers(headers)
        self.body: Optional[Body] = body
        self.deadline: Optional[float] = deadline
        self.cancel: Optional[CancelToken] = cancel

    def __repr__(self) -> str:
        return f"<Request {self.method} {redact_url(self.url)}>"


class BodyTooLarge(ReadError):
    """Internal: a body longer than the limit ``Response.read`` was given."""


class Response:
    """An HTTP response whose body may still be arriving.

    Build one directly in tests and ``MockTransport`` handlers:

    ```python
    from cyberun.transports import Response

    response = Response(status=200, headers={"Content-Type": "application/json"}, content=b"{}")
    ```

    Args:
        status: the HTTP status code.
        headers: response headers (looked up case-insensitively).
        content: the whole body, when it is already in memory.
        stream: an iterable that yields the body's bytes as they arrive;
            used instead of ``content``.
        close: called once when the response is closed, to release the
            connection. Transports make it safe to call from another thread,
            where it interrupts a read that is blocked waiting for data.
        url: the URL that produced this response.
    """

    __slots__ = (
        "_close",
        "_closed",
        "_consumed",
        "_content",
        "_stream",
        "headers",
        "status",
        "url",
    )

    def __init__(
        self,
        status: int,
        headers: Union[Mapping[str, str], Iterable[Tuple[str, str]], None] = None,
        content: Optional[bytes] = None,
        stream: Optional[Iterable[bytes]] = None,
        close: Optional[Callable[[], None]] = None,
        url: str = "",
    ) -> None:
        if content is not None and stream is not None:
            raise ValueError("give a Response either content or stream, not both")
        self.status: int = int(status)
        self.headers: Headers = Headers(headers)
        self.url: str = url
        self._content = content
        self._stream = stream
        self._close = close
        self._closed = False
        self._consumed = False

    @property
    def is_success(self) -> bool:
        """True for a 2xx status."""
        return 200 <= self.status < 300

    @property
    def is_redirect(self) -> bool:
        """True for a redirect status that carries a ``Location``."""
        return self.status in (301, 302, 303, 307, 308) and "location" in self.headers

    def iter_bytes(self) -> Iterator[bytes]:
        """Yield the body's bytes as soon as each piece arrives.

        The body can be read once. The response is closed when the body ends.

        Raises:
            ReadError: the body was already read, or the connection broke.
        """
        if self._consumed:
            raise ReadError("the response body was already read", url=redact_url(self.url))
        if self._closed:
            raise ReadError(
                "the response was closed before its body was read", url=redact_url(self.url)
            )
        self._consumed = True
        try:
            if self._content is not None:
                if self._content:
                    yield self._content
                return
            if self._stream is not None:
                for chunk in self._stream:
                    if chunk:
                        yield chunk
        finally:
            self.close()

    def read(self, limit: Optional[int] = None) -> bytes:
        """Read the whole body.

        Args:
            limit: the most bytes to accept; a longer body raises instead of
                filling memory (a hostile or broken server).

        Raises:
            ReadError: the body is longer than ``limit`` or the connection broke.
        """
        if self._content is not None and (not self._consumed or self._closed):
            # Whole content in memory, or a body read before: return it (again).
            self._consumed = True
            self.close()
            if limit is not None and len(self._content) > limit:
                raise BodyTooLarge(
                    f"response body larger than the {limit}-byte limit",
                    url=redact_url(self.url),
                )
            return self._content
        parts: List[bytes] = []
        size = 0
        for chunk in self.iter_bytes():
            size += len(chunk)
            if limit is not None and size > limit:
                self.close()
                raise BodyTooLarge(
                    f"response body larger than the {limit}-byte limit",
                    url=redact_url(self.url),
                )
            parts.append(chunk)
        body = b"".join(parts)
        self._content = body
        return body

    def close(self) -> None:
        """Release the connection. Safe to call more than once, from any thread."""
        if self._closed:
            return
        self._closed = True
        if self._close is not None:
            self._close()

    @property
    def closed(self) -> bool:
        """True once [`close`][cyberun.Response.close] has been called."""
        return self._closed

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Response [{self.status}]>"


class Timeout:
    """Connect and read timeouts, in seconds: an immutable value.

    Args:
        connect: the longest wait for a connection (TCP and TLS); default 10 s.
        read: the longest silence allowed between two pieces of the answer;
            default 30 s. On an event stream a read timeout means "stalled":
            the SDK reconnects and checks the task rather than failing.

    ``None`` means "wait forever" and must be asked for explicitly; leaving
    an argument out (or passing `DEFAULT`) means the default.
    ``Timeout.from_value(5)`` sets both to 5 s.
    """

    __slots__ = ("connect", "read")

    DEFAULT_CONNECT = 10.0
    DEFAULT_READ = 30.0

    connect: Optional[float]
    read: Optional[float]

    def __init__(
        self,
        connect: Union[float, DefaultType, None] = DEFAULT,
        read: Union[float, DefaultType, None] = DEFAULT,
    ) -> None:
        connect_value = (
            self.DEFAULT_CONNECT if connect is DEFAULT else _seconds(connect, "connect")
        )
        read_value = self.DEFAULT_READ if read is DEFAULT else _seconds(read, "read")
        object.__setattr__(self, "connect", connect_value)
        object.__setattr__(self, "read", read_value)

    @classmethod
    def from_value(
        cls,
        value: Union[Timeout, float, Tuple[Optional[float], Optional[float]], DefaultType, None],
    ) -> Timeout:
        """Normalise a Timeout, a number (for both), a (connect, read) pair, or None."""
        if isinstance(value, Timeout):
            return value
        if value is DEFAULT:
            return cls()
        if isinstance(value, tuple):
            connect, read = value
            return cls(connect, read)
        return cls(value, value)

    def replace(
        self,
        *,
        connect: Union[float, DefaultType, None] = DEFAULT,
        read: Union[float, DefaultType, None] = DEFAULT,
    ) -> Timeout:
        """Return a copy with some values changed."""
        return Timeout(
            self.connect if connect is DEFAULT else connect,
            self.read if read is DEFAULT else read,
        )

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Timeout is immutable; use replace()")

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Timeout):
            return (self.connect, self.read) == (other.connect, other.read)
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.connect, self.read))

    def __repr__(self) -> str:
        return f"Timeout(connect={self.connect!r}, read={self.read!r})"


def _seconds(value: Union[float, DefaultType, None], name: str) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"{name} timeout must be a positive number of seconds or None")
    return float(value)


def checked_url(method: str, url: str) -> URL:
    """Parse an absolute http(s) URL, or raise ConnectError: such a request is never sent.

    URLs also come from servers (download links, redirects), so a malformed
    or ambiguous one must end as the SDK's own error, not as whatever the
    HTTP library happens to raise. Transports send ``str()`` of the result,
    the canonical form every HTTP library reads the same way (see
    ``cyberun._url``).
    """
    try:
        return parse_url(url)
    except InvalidURL as exc:
        raise ConnectError(
            f"cannot send to {redact_url(url)!r}: {exc}", method=method, url=redact_url(url)
        ) from None


def causes(exc: Optional[BaseException], depth: int = 8) -> Iterator[BaseException]:
    """``exc`` and what it wraps: its cause, urllib3's ``reason``, an exception argument.

    The HTTP libraries wrap an error in another without always chaining it
    (urllib3 1.26 puts the ``ssl`` error in ``SSLError.args``), so this is
    how the SDK finds out what really happened.
    """
    for _ in range(depth):
        if exc is None:
            return
        yield exc
        reason = getattr(exc, "reason", None)
        wrapped = next((arg for arg in exc.args if isinstance(arg, BaseException)), None)
        if isinstance(reason, BaseException):
            exc = reason
        else:
            exc = exc.__cause__ or wrapped or exc.__context__


def iter_body(body: Body, chunk_size: int = 64 * 1024) -> Iterator[bytes]:
    """Yield a request body's bytes: whole bytes, a file read in chunks, or an iterable."""
    if isinstance(body, (bytes, bytearray)):
        yield bytes(body)
        return
    read = getattr(body, "read", None)
    if callable(read):
        while True:
            chunk = read(chunk_size)
            if not chunk:
                return
            yield chunk
    else:
        yield from body


@runtime_checkable
class Transport(Protocol):
    """What the SDK needs from an HTTP client.

    Resource ownership: a transport closes only what it created. A
    ``requests.Session`` or ``urllib3.PoolManager`` the user passed in stays
    open when the transport closes; the user closes it.
    """

    def send(self, request: Request, *, timeout: Timeout) -> Response:
        """Send ``request`` and return the response once its headers arrive.

        The body is not read: call ``iter_bytes()``/``read()``/``close()``.
        Redirects are not followed (the layer above does it once).

        Raises:
            TransportError: a subclass saying what failed; never a bare
                exception of the backend library.
        """

    def close(self) -> None:
        """Release what the transport created (connections, sessions)."""

    def __enter__(self) -> Transport: ...

    def __exit__(self, *exc_info: Any) -> None: ...


class BaseTransport:
    """Convenience base class: context-manager support and a no-op ``close``."""

    def send(self, request: Request, *, timeout: Timeout) -> Response:
        """Send the request; see [`Transport`][cyberun.Transport]."""
        raise NotImplementedError

    def close(self) -> None:
        """Release resources; nothing by default."""

    def __enter__(self) -> BaseTransport:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()
