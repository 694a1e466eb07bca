"""The request pipeline: build, send, decide, decode, map errors; the one place requests go out.

``Pipeline`` builds each request, adds authentication
(only for the API's own host), applies the [`RetryPolicy`][cyberun.RetryPolicy],
follows redirects, turns HTTP failures into [`cyberun.errors`][cyberun.errors]
exceptions and decodes answers. The endpoint methods in
[`cyberun.api`][cyberun.api] are small functions on top of it; nothing sends
HTTP by other means.
"""

from __future__ import annotations

import json
import logging
import platform
import re
import time
from datetime import datetime
from typing import Any, Callable, Dict, Iterator, Mapping, Optional, Tuple, Type, TypeVar
from urllib.parse import quote, urlencode, urljoin, urlsplit

from ._convert import loads, structure
from ._redact import redact_text, redact_url
from ._version import __version__
from .errors import (
    APIError,
    ConfigurationError,
    ConnectTimeoutError,
    DecodeError,
    RequestCancelled,
    SubmissionUncertain,
    TooManyRedirects,
    TransportError,
    api_error_class,
)
from .models import Page
from .retry import RetryPolicy
from .transports._base import (
    Body,
    CancelToken,
    Request,
    Response,
    Timeout,
    Transport,
    iter_body,
)

__all__ = ["Credentials", "Pipeline", "looks_like_jwt"]

logger = logging.getLogger("cyberun")

T = TypeVar("T")
P = TypeVar("P", bound="Pipeline")

#: Largest JSON answer accepted from the API (a hostile server cannot fill memory).
MAX_JSON_BODY = 32 * 1024 * 1024
#: Largest error body read to build an error message.
MAX_ERROR_BODY = 64 * 1024
MAX_REDIRECTS = 5
RUNTIME_PREFIX = "/api/v1/r"
MANAGEMENT_PREFIX = "/api/v1"
REQUEST_ID_HEADERS = (
    "x-request-id",
    "request-id",
    "x-correlation-id",
    "x-amzn-requestid",
    "x-amz-request-id",
    "cf-ray",
)
_JWT = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")
UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def looks_like_jwt(token: str) -> bool:
    """True for a token made of three base64url parts separated by dots."""
    return bool(_JWT.match(token))


class Credentials:
    """An API credential and the team it acts for; never shown in ``repr``.

    Args:
        token: an ``sk-`` integration key, a ``dk-`` device key or a user
            session JWT.
        team_id: the team's UUID; required with a JWT, ignored by the server
            for ``sk-``/``dk-`` keys.

    Raises:
        ConfigurationError: the token is empty, or is a JWT without a team id.
    """

    __slots__ = ("_team_id", "_token")

    def __init__(self, token: str, team_id: Optional[str] = None) -> None:
        token = (token or "").strip()
        if not token:
            raise ConfigurationError(
                "no API key: pass api_key=... or set the CYBERUN_API_KEY environment variable"
            )
        if any(ch.isspace() or ord(ch) < 32 for ch in token):
            raise ConfigurationError("the API key contains whitespace or control characters")
        if looks_like_jwt(token) and not team_id:
            raise ConfigurationError(
                "a session JWT needs a team id: pass team_id=... or set CYBERUN_TEAM_ID "
                "(sk- and dk- keys carry their team and need none)"
            )
        self._token = token
        self._team_id = team_id or None

    @property
    def kind(self) -> str:
        """``"integration"`` (sk-), ``"device"`` (dk-), ``"jwt"`` or ``"unknown"``."""
        if self._token.startswith("sk-"):
            return "integration"
        if self._token.startswith("dk-"):
            return "device"
        return "jwt" if looks_like_jwt(self._token) else "unknown"

    @property
    def team_id(self) -> Optional[str]:
        """The team id sent as ``X-Team-ID``, if any."""
        return self._team_id

    def headers(self) -> Dict[str, str]:
        """The headers that authenticate a request to the API host."""
        headers = {"Authorization": f"Bearer {self._token}"}
        if self._team_id:
            headers["X-Team-ID"] = self._team_id
        return headers

    def __repr__(self) -> str:
        team = f", team_id={self._team_id!r}" if self._team_id else ""
        return f"Credentials(kind={self.kind!r}{team})"


def segment(value: str, what: str, safe: str = "") -> str:
    """Quote one path segment so that no value can change the path."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must be a non-empty string, got {value!r}")
    if value in (".", "..") or any(ord(ch) < 32 or ch == "\x7f" for ch in value):
        raise ValueError(f"{what} is not valid: {value!r}")
    return quote(value, safe=safe)


def _origin(url: str) -> Tuple[str, str, Optional[int]]:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return (parts.scheme, (parts.hostname or "").lower(), port)


class Pipeline:
    """Sends requests to the Cyberun API: authentication, retries, redirects, errors, decoding.

    Thread-safe: it holds no per-request state, so one instance serves many
    threads (as long as the transport does, which every built-in one does).

    Args:
        base_url: the host root, for example ``https://core.cyberun.cloud``
            (already normalised by the client).
        credentials: the credential to send to the API host.
        transport: the transport that sends requests.
        timeout: the default timeouts.
        retry: the retry policy for ordinary requests.
        user_agent_suffix: appended to the ``User-Agent`` (the transport name).
    """

    def __init__(
        self,
        *,
        base_url: str,
        credentials: Credentials,
        transport: Transport,
        timeout: Timeout,
        retry: RetryPolicy,
        user_agent_suffix: str = "",
    ) -> None:
        self.base_url: str = base_url.rstrip("/")
        self.credentials = credentials
        self.transport = transport
        self.timeout = timeout
        self.retry = retry
        self._origin = _origin(self.base_url)
        self._deadline: Optional[float] = None
        self._cancel: Optional[CancelToken] = None
        user_agent = f"cyberun-python/{__version__} Python/{platform.python_version()}"
        self.user_agent: str = f"{user_agent} {user_agent_suffix}".strip()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.base_url}>"

    def scoped(
        self: P, *, deadline: Optional[float] = None, cancel: Optional[CancelToken] = None
    ) -> P:
        """A cheap copy whose every request carries this deadline and cancel token.

        The copy shares the transport, credential, timeout and retry policy.
        Its requests end with a timeout error once ``deadline`` (an absolute
        ``time.monotonic()`` time) passes, and with
        [`RequestCancelled`][cyberun.RequestCancelled] promptly after
        ``cancel.cancel()`` from any thread. Its waits between retries never
        outlast the deadline (a retry that could not start in time is not
        waited for: the error at hand is raised) and end at once on a cancel.

        Args:
            deadline: an absolute ``time.monotonic()`` time; combined with one
                this object already has, the earlier wins.
            cancel: a cancel token; replaces one this object already has.
        """
        copy = object.__new__(type(self))
        copy.__dict__.update(self.__dict__)
        if deadline is not None:
            copy._deadline = deadline if self._deadline is None else min(deadline, self._deadline)
        if cancel is not None:
            copy._cancel = cancel
        return copy

    # -- URLs ----------------------------------------------------------------------

    def runtime_url(self, path: str, query: Optional[Mapping[str, Any]] = None) -> str:
        """An absolute URL under ``/api/v1/r``."""
        return self._url(RUNTIME_PREFIX + path, query)

    def management_url(self, path: str, query: Optional[Mapping[str, Any]] = None) -> str:
        """An absolute URL under ``/api/v1`` (webhooks)."""
        return self._url(MANAGEMENT_PREFIX + path, query)

    def _url(self, path: str, query: Optional[Mapping[str, Any]]) -> str:
        url = self.base_url + path
        if query:
            pairs = [(k, v) for k, v in query.items() if v is not None]
            if pairs:
                url += "?" + urlencode(pairs)
        return url

    # -- sending -------------------------------------------------------------------

    def send(
        self,
        method: str,
        url: str,
        *,
        json_body: Any = None,
        body: Optional[Body] = None,
        headers: Optional[Mapping[str, str]] = None,
        authenticate: bool = True,
        idempotent: Optional[bool] = None,
        timeout: Optional[Timeout] = None,
        retry: Optional[RetryPolicy] = None,
        accept: str = "application/json",
    ) -> Response:
        """Send a request with retries and redirects; return a 2xx response.

        The body is not read. ``authenticate`` adds the credential, and only
        while the request (or its redirects) stays on the API's own origin.

        Raises:
            APIError: the final answer was not 2xx (a subclass by status).
            TransportError: no answer, after the retries the policy allows.
        """
        policy = retry or self.retry
        request_headers: Dict[str, str] = {
            "User-Agent": self.user_agent,
            "Accept": accept,
            # Uncompressed answers: JSON bodies are small, an event stream must
            # not sit in a decompressor's buffer, and it rules out
            # decompression bombs by construction.
            "Accept-Encoding": "identity",
        }
        if json_body is not None:
            body = json.dumps(json_body, separators=(",", ":")).encode()
            request_headers["Content-Type"] = "application/json"
        if headers:
            request_headers.update(headers)
        rewind = _rewinder(body)
        attempt = 0
        while True:
            attempt += 1
            if attempt > 1 and rewind is not None:
                rewind()
            self._check_scope(method, url)
            try:
                response = self._send_following_redirects(
                    Request(
                        method,
                        url,
                        request_headers,
                        body,
                        deadline=self._deadline,
                        cancel=self._cancel,
                    ),
                    authenticate=authenticate,
                    timeout=timeout or self.timeout,
                )
            except TransportError as exc:
                replayable = body is None or rewind is not None
                delay = policy.delay(attempt)
                if (
                    attempt < policy.attempts
                    and replayable
                    and policy.retries_error(exc, method, idempotent)
                    and not isinstance(exc, RequestCancelled)
                    and self._in_time(delay)
                ):
                    logger.info(
                        "retrying %s %s in %.2fs after %s (attempt %d of %d)",
                        method,
                        redact_url(url),
                        delay,
                        type(exc).__name__,
                        attempt + 1,
                        policy.attempts,
                    )
                    self._pause(policy, delay, method, url, exc)
                    continue
                raise
            if response.is_success:
                return response
            if (
                attempt < policy.attempts
                and (body is None or rewind is not None)
                and policy.retries_status(response.status, method, idempotent)
            ):
                retry_after = policy.parse_retry_after(response.headers.get("Retry-After"))
                delay = policy.delay(attempt, retry_after)
                if not self._in_time(delay):
                    raise self._error(response, method, url, policy)
                response.close()
                logger.info(
                    "retrying %s %s in %.2fs after HTTP %d (attempt %d of %d)",
                    method,
                    redact_url(url),
                    delay,
                    response.status,
                    attempt + 1,
                    policy.attempts,
                )
                self._pause(policy, delay, method, url, None)
                continue
            raise self._error(response, method, url, policy)

    def _check_scope(self, method: str, url: str) -> None:
        """Before an attempt: raise if the request is cancelled or its deadline passed."""
        if self._cancel is not None and self._cancel.cancelled:
            raise RequestCancelled("the request was cancelled", method=method, url=redact_url(url))
        if self._deadline is not None and time.monotonic() >= self._deadline:
            raise ConnectTimeoutError(
                "the request's deadline passed before it was sent",
                method=method,
                url=redact_url(url),
            )

    def _in_time(self, delay: float) -> bool:
        """Whether a retry after ``delay`` seconds can start before the deadline."""
        return self._deadline is None or time.monotonic() + delay < self._deadline

    def _pause(
        self,
        policy: RetryPolicy,
        delay: float,
        method: str,
        url: str,
        cause: Optional[BaseException],
    ) -> None:
        """Wait before a retry; a cancel ends the wait at once with RequestCancelled."""
        if policy.pause(delay, self._cancel):
            return
        raise RequestCancelled(
            "the request was cancelled while waiting to retry",
            method=method,
            url=redact_url(url),
        ) from cause

    def _send_following_redirects(
        self, request: Request, *, authenticate: bool, timeout: Timeout
    ) -> Response:
        url = request.url
        method = request.method
        trusted = authenticate
        for hop in range(MAX_REDIRECTS + 1):
            if trusted and _origin(url) != self._origin:
                trusted = False  # left the API's origin: never send the credential again
            headers = request.headers.copy()
            for name in ("Authorization", "X-Team-ID"):
                headers.pop(name, None)
            if trusted:
                headers.update(self.credentials.headers())
            started = time.monotonic()
            response = self.transport.send(
                Request(
                    method,
                    url,
                    headers,
                    request.body,
                    deadline=request.deadline,
                    cancel=request.cancel,
                ),
                timeout=timeout,
            )
            logger.debug(
                "%s %s -> %d (%.0f ms)",
                method,
                redact_url(url),
                response.status,
                (time.monotonic() - started) * 1000,
            )
            if not response.is_redirect or method not in ("GET", "HEAD"):
                return response
            location = urljoin(url, response.headers["location"])
            response.close()
            if urlsplit(location).scheme not in ("http", "https"):
                raise TooManyRedirects(
                    "the server redirected to a URL that is not http(s)",
                    method=method,
                    url=redact_url(location),
                )
            if hop == MAX_REDIRECTS:
                break
            if urlsplit(url).scheme == "https" and urlsplit(location).scheme == "http":
                trusted = False  # a downgrade: the credential must not travel in clear
            url = location
        raise TooManyRedirects(
            f"more than {MAX_REDIRECTS} redirects", method=method, url=redact_url(url)
        )

    def _error(self, response: Response, method: str, url: str, policy: RetryPolicy) -> APIError:
        try:
            body = response.read(limit=MAX_ERROR_BODY)
        except TransportError:
            body = b""
        server_message, code = _error_details(body)
        server_message = redact_text(server_message)
        request_id = next(
            (response.headers[name] for name in REQUEST_ID_HEADERS if name in response.headers),
            None,
        )
        retry_after = policy.parse_retry_after(response.headers.get("Retry-After"))
        cls = api_error_class(response.status)
        parts = [f"HTTP {response.status} for {method} {redact_url(url)}"]
        if server_message:
            parts.append(f": {server_message}")
        hint = _HINTS.get(response.status)
        if response.status >= 500 and hint is None:
            hint = "the server failed; this is usually temporary, try again later"
        if hint:
            parts.append(f" ({hint})")
        if retry_after is not None:
            parts.append(f"; the server asks to retry after {retry_after:.0f}s")
        if request_id:
            parts.append(f"; request id {request_id}")
        return cls(
            "".join(parts),
            status=response.status,
            server_message=server_message,
            code=code,
            method=method,
            url=redact_url(url),
            request_id=request_id,
            retry_after=retry_after,
        )

    def read_json(self, response: Response, what: str) -> Any:
        """Read a JSON answer (bounded) and close the response."""
        try:
            body = response.read(limit=MAX_JSON_BODY)
        finally:
            response.close()
        return loads(body, what)

    def get_model(self, url: str, cls: Type[T], what: str) -> T:
        """GET ``url`` and decode the answer as ``cls``."""
        return structure(self.read_json(self.send("GET", url), what), cls)

    def get_page(self, url: str, cls: Type[T], key: str) -> Page[T]:
        """GET one page of a list endpoint and decode its envelope."""
        data = self.read_json(self.send("GET", url), f"a page of {key}")
        if not isinstance(data, dict):
            raise DecodeError(f"expected a {key} envelope object", what="Page")
        items = data.get(key)
        if items is None:  # be liberal in the envelope's key
            items = next((v for k, v in data.items() if isinstance(v, list)), [])
        if not isinstance(items, list):
            raise DecodeError(f"{key} is not a list", what="Page", snippet=repr(items)[:200])
        meta = data.get("page_meta") or {}
        return Page(
            items=[structure(item, cls) for item in items],
            current_page=_int(meta.get("current_page"), 1),
            per_page=_int(meta.get("per_page"), len(items)),
            total_count=_int(meta.get("total_count"), len(items)),
        )


_HINTS = {
    400: None,
    401: "the API key is missing, unknown or revoked: check CYBERUN_API_KEY",
    403: "this credential may not do that (webhook management needs a JWT with a team id "
    "or a dk- key), or the deployment's licence lacks the feature",
    404: "no such resource, or it belongs to another team",
    429: "rate limited",
}


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def uncertain(workflow: str, submitted_at: datetime, detail: str) -> SubmissionUncertain:
    """The error for a run request that failed after it was sent."""
    return SubmissionUncertain(
        f"starting {workflow!r} failed after the request was sent ({detail}); the task may "
        "exist. It was not retried, so no second task was started. Look for it with "
        f"client.list_tasks() (tasks created after {submitted_at.isoformat()}) before "
        "submitting again.",
        workflow=workflow,
        submitted_at=submitted_at,
    )


def _error_details(body: bytes) -> Tuple[str, Optional[str]]:
    """The server's message and code from an error body: JSON or plain text."""
    text = body.decode("utf-8", "replace").strip()
    if not text:
        return "", None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return text[:500], None
    if not isinstance(data, dict):
        return text[:500], None
    error = data.get("error")
    code = data.get("code") or data.get("error_code")
    message = None
    if isinstance(error, dict):
        message = error.get("message") or error.get("detail")
        code = code or error.get("code") or error.get("type")
    elif isinstance(error, str):
        message = error
    message = message or data.get("message") or data.get("detail") or data.get("msg")
    if isinstance(message, (list, dict)):
        message = json.dumps(message)[:500]
    return (str(message)[:500] if message else text[:500]), (str(code) if code else None)


def _rewinder(body: Optional[Body]) -> Optional[Callable[[], None]]:
    """A way to send ``body`` again, or None when it cannot be replayed."""
    if body is None or isinstance(body, (bytes, bytearray)):
        return lambda: None
    if isinstance(body, ProgressBody):
        return _progress_rewinder(body)
    seek = getattr(body, "seek", None)
    tell = getattr(body, "tell", None)
    if callable(seek) and callable(tell):
        try:
            start = tell()
        except (OSError, ValueError):
            return None
        return lambda: seek(start)
    return None


def _progress_rewinder(body: ProgressBody) -> Optional[Callable[[], None]]:
    found = _rewinder(body.inner)
    if found is None:
        return None
    rewind_inner: Callable[[], None] = found

    def rewind() -> None:
        rewind_inner()
        body.sent = 0

    return rewind


class ProgressBody:
    """An upload body that reports how many bytes have gone."""

    def __init__(self, inner: Body, total: int, callback: Callable[[int, int], None]) -> None:
        self.inner = inner
        self.total = total
        self.callback = callback
        self.sent = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in iter_body(self.inner):
            yield chunk
            self.sent += len(chunk)
            self.callback(self.sent, self.total)
