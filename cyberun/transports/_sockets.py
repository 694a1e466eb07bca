"""Sockets that honour a request's deadline and cancel token.

``http.client`` (under every built-in transport) reads an answer with many
``recv`` calls, and gives each the whole read timeout: a server that sends
one byte a second would hold a request for ever, and a read blocked in one
thread cannot be ended from another. Here each connect and each ``recv``
gets only the time left before the request's deadline, and a cancel from
another thread shuts the socket down, which wakes whatever call is blocked
on it (``connect``, the TLS handshake, ``recv``, ``sendall``).

A transport binds a [`RequestScope`][cyberun.transports._sockets.RequestScope] to the
calling thread for the duration of its ``send`` (the HTTP libraries call
back into this module from that thread): ``create_connection`` opens the
socket and [`TimedHTTPResponse`][cyberun.transports._sockets.TimedHTTPResponse] reads
the answer through it.
"""

from __future__ import annotations

import http.client
import io
import select
import socket
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator, List, Optional, Sequence, Set, Tuple

from ..errors import RequestCancelled
from ._base import CancelToken, Request, Timeout

__all__ = ["RequestScope", "TimedHTTPResponse", "bound", "create_connection", "current"]

_local = threading.local()

SocketOption = Tuple[int, int, Any]


class RequestScope:
    """The deadline and cancel token of one request, the sockets it uses, how far it got.

    Args:
        deadline: an absolute ``time.monotonic()`` time, or None.
        cancel: the request's cancel token, or None.
        timeout: the request's connect and read timeouts.
        clock: the monotonic clock.

    Attributes:
        connected: True once the request had a connection ready to write to
            (TLS and any proxy tunnel done), False while it had none, None
            when the transport could not see (a pool of the user's): whether
            a failure could have happened after the request was sent.
    """

    def __init__(
        self,
        deadline: Optional[float],
        cancel: Optional[CancelToken],
        timeout: Timeout,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.deadline = deadline
        self.cancel = cancel
        self.timeout = timeout
        self.clock = clock
        self.connected: Optional[bool] = None
        self._lock = threading.Lock()
        self._watched: List[socket.socket] = []
        self._filenos: Set[int] = set()
        self._removers: List[Callable[[], None]] = []
        self._released = False

    @classmethod
    def of(cls, request: Request, timeout: Timeout) -> RequestScope:
        """The scope of ``request`` (its deadline and cancel token, if it has them)."""
        return cls(getattr(request, "deadline", None), getattr(request, "cancel", None), timeout)

    @property
    def active(self) -> bool:
        """Whether there is a deadline or a cancel token to honour."""
        return self.deadline is not None or self.cancel is not None

    @property
    def cancelled(self) -> bool:
        """True once the request's token was cancelled."""
        return self.cancel is not None and self.cancel.cancelled

    def check(self, method: Optional[str] = None, url: Optional[str] = None) -> None:
        """Raise RequestCancelled if the request was cancelled."""
        if self.cancelled:
            raise RequestCancelled("the request was cancelled", method=method, url=url)

    def expired(self) -> bool:
        """True once the deadline has passed."""
        return self.deadline is not None and self.clock() >= self.deadline

    def connect_timeout(self, timeout: Optional[float]) -> Optional[float]:
        """``timeout`` (seconds or None) shortened to the time left before the deadline.

        Raises:
            socket.timeout: the deadline has already passed.
        """
        return self._bounded(timeout)

    def read_timeout(self) -> Optional[float]:
        """The read timeout shortened to the time left before the deadline.

        Raises:
            socket.timeout: the deadline has already passed.
        """
        return self._bounded(self.timeout.read)

    def _bounded(self, timeout: Optional[float]) -> Optional[float]:
        if self.deadline is None:
            return timeout
        left = self.deadline - self.clock()
        if left <= 0:
            raise socket.timeout("the request's deadline passed")
        return left if timeout is None else min(timeout, left)

    def watch(self, sock: Optional[Any]) -> None:
        """Shut ``sock`` down when the request is cancelled (at once if it already is).

        A duplicate of the socket is kept, so the shutdown reaches the
        connection whatever happens to the object (the TLS layer takes over
        the plain socket's descriptor while it handshakes).
        """
        if self.cancel is None or sock is None:
            return
        try:
            fileno = sock.fileno()
            if fileno < 0:
                return
            duplicate = socket.fromfd(fileno, sock.family, sock.type)
        except (OSError, AttributeError, ValueError):
            return  # not a real socket (a test double): nothing to wake
        with self._lock:
            if self._released or fileno in self._filenos:
                duplicate.close()
                return
            self._filenos.add(fileno)
            self._watched.append(duplicate)
            self._removers.append(self.cancel.add_callback(lambda: _shutdown(duplicate)))

    def release(self) -> None:
        """Forget the request's sockets (it is over): later cancels touch nothing."""
        with self._lock:
            if self._released:
                return
            self._released = True
            watched, self._watched = self._watched, []
            removers, self._removers = self._removers, []
        for remove in removers:
            remove()
        for duplicate in watched:
            duplicate.close()


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # not connected yet, or already closed: nothing is blocked on it


@contextmanager
def bound(scope: Optional[RequestScope]) -> Iterator[None]:
    """Make ``scope`` the calling thread's current request scope for the block."""
    previous = getattr(_local, "scope", None)
    _local.scope = scope
    try:
        yield
    finally:
        _local.scope = previous


def current() -> Optional[RequestScope]:
    """The scope of the request this thread is sending, if any."""
    return getattr(_local, "scope", None)


def create_connection(
    address: Tuple[str, int],
    timeout: Any = socket._GLOBAL_DEFAULT_TIMEOUT,  # type: ignore[attr-defined]
    source_address: Optional[Tuple[str, int]] = None,
    socket_options: Optional[Sequence[SocketOption]] = None,
) -> socket.socket:
    """``socket.create_connection`` that honours the current request's deadline and cancel.

    Raises:
        RequestCancelled: the request was cancelled before or while connecting.
        socket.timeout: the connect timeout or the deadline passed.
        OSError: the connection failed (as ``socket.create_connection``).
    """
    scope = current()
    if timeout is socket._GLOBAL_DEFAULT_TIMEOUT:  # type: ignore[attr-defined]
        timeout = socket.getdefaulttimeout()
    elif not isinstance(timeout, (int, float)):
        timeout = None  # urllib3's "default" sentinel: no timeout of its own
    host, port = address
    error: Optional[BaseException] = None
    for family, kind, proto, _, where in socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM):
        sock = socket.socket(family, kind, proto)
        try:
            for option in socket_options or ():
                sock.setsockopt(*option)
            if scope is not None:
                scope.check()
                scope.watch(sock)
                timeout = scope.connect_timeout(timeout)
            sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(where)
            if scope is not None:
                scope.check()  # a shutdown may let connect() return as if it succeeded
            return sock
        except RequestCancelled:
            sock.close()
            raise
        except OSError as exc:
            sock.close()
            if scope is not None:
                scope.check()
            error = exc
    if error is not None:
        raise error
    raise OSError(f"getaddrinfo returned no address for {host}")


#: Seconds between two looks at a polled cancel token while a read waits.
POLL = 0.1


class TimedHTTPResponse(http.client.HTTPResponse):
    """An ``http.client`` response whose every read honours the current request's scope.

    Reading the status line, the headers and every piece of the body goes
    through [`_TimedReader`][cyberun.transports._sockets._TimedReader]. Used as
    the ``response_class`` of the transports' own connections.
    """

    def __init__(self, sock: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(sock, *args, **kwargs)
        scope = current()
        if scope is not None and scope.active and isinstance(self.fp, io.BufferedReader):
            scope.watch(sock)  # a reused connection's socket was not watched yet
            self.fp = io.BufferedReader(_TimedReader(self.fp.detach(), sock, scope))


class _TimedReader(io.RawIOBase):
    """Reads a socket with the time left before the deadline as each recv's timeout."""

    def __init__(self, raw: Any, sock: Any, scope: RequestScope) -> None:
        super().__init__()
        self._raw = raw
        self._sock = sock
        self._scope = scope

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        scope = self._scope
        scope.check()
        timeout = scope.read_timeout()
        if getattr(scope.cancel, "polled", False):
            # A token that nothing fires (a user's stop event behind it) is
            # looked at every POLL seconds while the socket has nothing.
            timeout = self._wait_readable(scope, timeout)
        self._sock.settimeout(timeout)
        try:
            count: int = self._raw.readinto(buffer)
        except OSError:
            scope.check()  # a cancel's shutdown can surface as any socket error
            raise
        if not count:
            scope.check()  # ... or as the end of the stream
        return count

    def _wait_readable(self, scope: RequestScope, timeout: Optional[float]) -> Optional[float]:
        """Wait until the socket has data, checking the token; return the read timeout left."""
        sock = self._sock
        end = None if timeout is None else scope.clock() + timeout
        while True:
            pending = getattr(sock, "pending", None)  # TLS: bytes already decrypted
            if pending is not None and pending():
                break
            left = POLL if end is None else min(POLL, end - scope.clock())
            if left <= 0:
                return 0.001  # the read timeout passed: let the read say so
            try:
                readable, _, _ = select.select([sock], [], [], left)
            except (OSError, ValueError):
                break  # a closed or shut-down socket: the read reports it
            scope.check()
            if readable:
                break
        return None if end is None else max(end - scope.clock(), 0.001)

    def fileno(self) -> int:
        return int(self._raw.fileno())

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()
