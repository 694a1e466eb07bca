"""Every exception the SDK raises, under one root: [`CyberunError`][cyberun.CyberunError].

This module is a leaf: it imports nothing from the package, so every layer
(the SSE parser included) can import it.

Context travels in keyword-only constructor arguments and attributes, never
in positional arguments, so that ``str(error)`` is always the human-readable
message and pickling an error (for example across a process pool) keeps it.
No message, attribute or ``repr`` here ever holds a credential: the code that
raises these errors passes URLs through the redaction helper first.

The hierarchy:

```text
CyberunError
├── ConfigurationError
├── ParameterError
├── TransportError
│   ├── ConnectError
│   ├── TLSError
│   ├── ConnectTimeoutError      (also TimeoutError)
│   ├── ReadTimeoutError         (also TimeoutError)
│   ├── ReadError
│   ├── RequestCancelled
│   └── TooManyRedirects
├── SubmissionUncertain
├── APIError
│   ├── BadRequest · AuthenticationError · PermissionDenied
│   ├── NotFound · Conflict · RateLimited
│   └── ServerError
├── DecodeError
├── StreamError
│   └── SSELimitError
├── InvalidSignature
├── DownloadError
└── TaskError
    ├── TaskFailed · TaskCancelled
    ├── WaitTimeout             (also TimeoutError)
    └── WaitStopped
```
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Tuple, Type

if TYPE_CHECKING:  # pragma: no cover - for the attributes' types only; nothing is imported
    from datetime import datetime

    from .models import Task
    from .sse import ServerSentEvent

__all__ = [
    "APIError",
    "AuthenticationError",
    "BadRequest",
    "ConfigurationError",
    "Conflict",
    "ConnectError",
    "ConnectTimeoutError",
    "CyberunError",
    "DecodeError",
    "DownloadError",
    "InvalidSignature",
    "NotFound",
    "ParameterError",
    "PermissionDenied",
    "RateLimited",
    "ReadError",
    "ReadTimeoutError",
    "RequestCancelled",
    "SSELimitError",
    "ServerError",
    "StreamError",
    "SubmissionUncertain",
    "TLSError",
    "TaskCancelled",
    "TaskError",
    "TaskFailed",
    "TooManyRedirects",
    "TransportError",
    "UnknownTaskStatus",
    "WaitStopped",
    "WaitTimeout",
]


class CyberunError(Exception):
    """Base class of every error raised by the SDK.

    Catch this to handle anything that went wrong in ``cyberun`` in one place.
    """


class ConfigurationError(CyberunError, ValueError):
    """The client is configured in a way that cannot work.

    Raised before any request is sent: a missing API key, a JWT without a
    team id, a malformed or insecure base URL.
    """


class ParameterError(CyberunError, ValueError):
    """Run parameters that break the workflow's parameter definitions.

    Attributes:
        problems: every problem found, one sentence each, so a caller can fix
            them all at once rather than one per attempt.
        workflow: the workflow id or slug the parameters were checked against.
    """

    def __init__(
        self,
        message: str,
        *,
        problems: Sequence[str] = (),
        workflow: Optional[str] = None,
    ) -> None:
        super().__init__(message)
        self.problems: Tuple[str, ...] = tuple(problems)
        self.workflow = workflow


class TransportError(CyberunError):
    """The request did not get a complete HTTP answer.

    Attributes:
        method: the HTTP method of the request, when known.
        url: the request URL with credentials and signatures redacted.
    """

    def __init__(
        self,
        message: str,
        *,
        method: Optional[str] = None,
        url: Optional[str] = None,
    ) -> None:
        super().__init__(message)
        self.method = method
        self.url = url


class ConnectError(TransportError):
    """No connection could be made (refused, DNS failure, unreachable, a proxy failure).

    The request provably never reached the server, so it is always safe to
    retry, even for a request that starts a task. Also raised, before
    anything is sent, for a URL the SDK will not send to and for a proxy
    scheme the transport cannot use.
    """


class TLSError(TransportError):
    """The TLS handshake failed (certificate verification, protocol mismatch).

    The request was not sent: transports raise this only for a failure
    before the request could be written (a TLS error later, while the answer
    was awaited, is a [`ReadError`][cyberun.ReadError]). A certificate that
    fails verification is not retried; other handshake failures are.
    """


class ConnectTimeoutError(TransportError, TimeoutError):
    """The connection was not established within the connect timeout.

    The request was not sent.
    """


class ReadTimeoutError(TransportError, TimeoutError):
    """The server went silent for longer than the read timeout.

    The request may have reached the server. On an event stream this means
    "stalled": the SDK reconnects rather than failing.
    """


class ReadError(TransportError):
    """The connection broke while the request or its answer was in flight.

    Covers resets, a peer that closed early, and a body shorter than its
    ``Content-Length``. The request may have reached the server.
    """


class RequestCancelled(TransportError):
    """The request was cancelled through its [`CancelToken`][cyberun.CancelToken].

    Raised promptly, whichever stage the request had reached (waiting to be
    sent, connecting, waiting for the answer, reading its body). A request
    cancelled after it was sent may still have reached the server.
    """


class TooManyRedirects(TransportError):
    """The server's redirects cannot be followed.

    More than five in a row, or a ``Location`` the SDK will not follow: not
    http(s), or a URL that parsers could read in more than one way (a
    backslash, user info, a control character, a bad port or host). Never
    retried.
    """


class SubmissionUncertain(CyberunError):
    """A request that starts a task failed after it may have reached the server.

    Raised when the run request was sent and no whole answer came back (a
    reset or timeout after sending, a 2xx whose body was cut, stalled or
    unreadable) or the answer was a 500, 502 or 504. The task may or may not
    exist. The SDK never retries such a request, because the API has no
    idempotency key and a retry could start a second (billed) task. Look for
    it with ``client.find_submitted(error)`` before submitting again. The
    failure that caused it is chained as ``__cause__``.

    Attributes:
        workflow: the workflow id or slug that was being run.
        submitted_at: when the request was sent (timezone-aware ``datetime``).
    """

    def __init__(
        self,
        message: str,
        *,
        workflow: Optional[str] = None,
        submitted_at: Optional[datetime] = None,
    ) -> None:
        super().__init__(message)
        self.workflow = workflow
        self.submitted_at = submitted_at


class APIError(CyberunError):
    """The API answered with an HTTP error status.

    Attributes:
        status: the HTTP status code.
        message: the server's error message (from a JSON ``error`` /
            ``message`` / ``detail`` field, or the text body), possibly empty.
        code: the server's machine-readable error code, when it sent one.
        method: the request method.
        url: the request URL, credentials and signatures redacted.
        request_id: the server's request id (``X-Request-ID`` and similar)
            when it sent one; quote it to support.
        retry_after: seconds the server asked to wait (``Retry-After``), when
            it sent that header.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        server_message: str = "",
        code: Optional[str] = None,
        method: Optional[str] = None,
        url: Optional[str] = None,
        request_id: Optional[str] = None,
        retry_after: Optional[float] = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = server_message
        self.code = code
        self.method = method
        self.url = url
        self.request_id = request_id
        self.retry_after = retry_after


class BadRequest(APIError):
    """HTTP 400: the server rejected the request as malformed."""


class AuthenticationError(APIError):
    """HTTP 401: the credential is missing, unknown, expired or revoked."""


class PermissionDenied(APIError):
    """HTTP 403: the credential may not do this (or the licence lacks a feature)."""


class NotFound(APIError):
    """HTTP 404: no such task, workflow or webhook (or not visible to this team)."""


class Conflict(APIError):
    """HTTP 409: the request conflicts with the resource's current state."""


class RateLimited(APIError):
    """HTTP 429: too many requests; ``retry_after`` says how long to wait."""


class ServerError(APIError):
    """HTTP 5xx: the server failed; usually transient."""


_STATUS_CLASSES: Dict[int, Type[APIError]] = {
    400: BadRequest,
    401: AuthenticationError,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    429: RateLimited,
}


def api_error_class(status: int) -> Type[APIError]:
    """Return the most specific [`APIError`][cyberun.APIError] subclass for an HTTP status.

    Args:
        status: an HTTP status code of 400 or above.

    Returns:
        The class to raise: for example [`NotFound`][cyberun.NotFound] for 404,
        [`ServerError`][cyberun.ServerError] for any 5xx, plain
        [`APIError`][cyberun.APIError] otherwise.
    """
    if status >= 500:
        return ServerError
    return _STATUS_CLASSES.get(status, APIError)


class DecodeError(CyberunError, ValueError):
    """A body or event that does not match the API contract.

    Attributes:
        what: what was being decoded (for example ``"Task"``).
        snippet: the start of the offending text, for debugging.
    """

    def __init__(self, message: str, *, what: str = "", snippet: str = "") -> None:
        super().__init__(message)
        self.what = what
        self.snippet = snippet


class StreamError(CyberunError):
    """A broken Server-Sent Events stream."""


class SSELimitError(StreamError):
    """An SSE line or event exceeded the parser's configured size limit.

    Attributes:
        limit: the limit that was exceeded, in bytes.
        kind: ``"line"`` or ``"event"``.
        events: the events completed before the limit was reached that the
            raising call has not delivered (``SSEParser.feed`` returns none
            when it raises; ``iter_events`` yields them first and leaves this
            empty), so that nothing valid is lost.
    """

    def __init__(
        self,
        message: str,
        *,
        limit: int = 0,
        kind: str = "",
        events: Sequence[ServerSentEvent] = (),
    ) -> None:
        super().__init__(message)
        self.limit = limit
        self.kind = kind
        self.events: List[ServerSentEvent] = list(events)


class InvalidSignature(CyberunError, ValueError):
    """A webhook delivery failed signature verification; do not trust its body."""


class DownloadError(CyberunError):
    """A result file could not be downloaded.

    Attributes:
        key: the output key (for example ``"9.images.0"``) or file name.
        status: the storage host's HTTP status, when it answered.
    """

    def __init__(
        self, message: str, *, key: Optional[str] = None, status: Optional[int] = None
    ) -> None:
        super().__init__(message)
        self.key = key
        self.status = status


class TaskError(CyberunError):
    """A task ended (or was waited on) without producing a result.

    Attributes:
        task_id: the task's id.
        task: the last known [`Task`][cyberun.Task], when it was fetched.
    """

    def __init__(self, message: str, *, task_id: str = "", task: Optional[Task] = None) -> None:
        super().__init__(message)
        self.task_id = task_id
        self.task = task


class TaskFailed(TaskError):
    """The task failed on the server.

    Attributes:
        error: the server's error text (``task_error``), possibly empty.
    """

    def __init__(
        self,
        message: str,
        *,
        task_id: str = "",
        task: Optional[Task] = None,
        error: str = "",
    ) -> None:
        super().__init__(message, task_id=task_id, task=task)
        self.error = error


class TaskCancelled(TaskError):
    """The task was cancelled before it completed."""


class WaitTimeout(TaskError, TimeoutError):
    """The wait's deadline passed before the task finished (or before its result arrived).

    The task keeps running on the server (unless the wait was asked to cancel
    it on timeout); wait on it again or cancel it. When the task had already
    completed but its result could not be fetched in time, the message says
    so: call ``client.get_result(task_id)``.

    Attributes:
        cancel_error: with ``cancel_on_timeout``, the error that stopped the
            cancel request, or None (no cancel asked, or it succeeded).
    """

    def __init__(
        self,
        message: str,
        *,
        task_id: str = "",
        task: Optional[Task] = None,
        cancel_error: Optional[CyberunError] = None,
    ) -> None:
        super().__init__(message, task_id=task_id, task=task)
        self.cancel_error = cancel_error


class UnknownTaskStatus(TaskError):
    """The task ended in a status this SDK version does not know.

    The server reported a status newer than this SDK together with
    ``completed_at``: the task will not change again. Upgrade the SDK; the
    task itself is in ``task``.

    Attributes:
        status: the status as the server sent it.
    """

    def __init__(
        self, message: str, *, task_id: str = "", task: Optional[Task] = None, status: str = ""
    ) -> None:
        super().__init__(message, task_id=task_id, task=task)
        self.status = status


class WaitStopped(TaskError):
    """The wait was stopped by the caller (a stop event or a closed client).

    The task keeps running on the server.
    """
