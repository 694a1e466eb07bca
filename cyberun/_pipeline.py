"""The request pipeline: build, send, decide, decode, map errors; the one place requests go out.

``Pipeline`` builds each request, adds the credential (only for the API's
own origin), sends it, follows redirects, reads and decodes the answer, and
turns failures into [`cyberun.errors`][cyberun.errors] exceptions. After each
attempt one function, `decide`, looks at what happened and at the attempts
before and returns "retry after N seconds" or the exception to raise, in the
manner of urllib3's ``Retry.increment``. A request that starts a billed task
is one more input to that decision, never a branch of its own:

- provably not accepted (no connection, a TLS handshake or proxy failure,
  a 429, a 503 with ``Retry-After``): retried under the policy; when the
  attempts run out, the precise error;
- sent and not known to be accepted (a reset or timeout after sending, a
  2xx whose body did not arrive whole, a 500, 502 or 504):
  [`SubmissionUncertain`][cyberun.SubmissionUncertain], never retried;
- any other request that may be repeated (GETs): any failure before a
  whole body arrived is retried; a whole body that is not JSON is a
  [`DecodeError`][cyberun.DecodeError], not retried.

The endpoint methods in [`cyberun.api`][cyberun.api] are small functions on
top of it; nothing sends HTTP by other means.
"""

from __future__ import annotations

import json
import logging
import platform
import re
import ssl
import time
from datetime import datetime, timezone
from typing import (
    Any,
    Dict,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Type,
    TypeVar,
    Union,
)
from urllib.parse import quote, urlencode, urljoin

import attrs

from ._bodies import decoded, discard, encode_json, rewinder
from ._convert import loads, structure
from ._redact import redact_text, redact_url, scrub_exception
from ._url import InvalidURL, parse_url
from ._version import __version__
from .errors import (
    APIError,
    ConfigurationError,
    ConnectError,
    ConnectTimeoutError,
    CyberunError,
    DecodeError,
    RequestCancelled,
    StreamError,
    SubmissionUncertain,
    TLSError,
    TooManyRedirects,
    TransportError,
    api_error_class,
)
from .models import Page
from .retry import RetryPolicy
from .transports._base import (
    Body,
    BodyTooLarge,
    CancelToken,
    Headers,
    Request,
    Response,
    Timeout,
    Transport,
    causes,
)

__all__ = ["Attempt", "Call", "Credentials", "Pipeline", "Retry", "decide", "looks_like_jwt"]

logger = logging.getLogger("cyberun")

T = TypeVar("T")
P = TypeVar("P", bound="Pipeline")

#: Largest JSON answer accepted from the API, after decompression (a hostile
#: server cannot fill memory).
MAX_JSON_BODY = 32 * 1024 * 1024
#: Largest decompressed event stream accepted on one connection.
MAX_DECODED_STREAM = 256 * 1024 * 1024
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
#: The only headers a storage request (presigned download or upload) carries,
#: besides a presigned PUT's signed ``upload_headers``.
STORAGE_HEADERS = ("User-Agent", "Accept", "Accept-Encoding", "Range", "If-Range")
_CREDENTIAL_HEADERS = ("Authorization", "X-Team-ID")
_JWT = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")
UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def looks_like_jwt(token: str) -> bool:
    """True for a token made of three base64url parts separated by dots."""
    return bool(_JWT.match(token))


class Credentials:
    """An API credential and the team it acts for; never shown in ``repr``.

    The kind is decided by the prefix first (``sk-``, ``dk-``); only a token
    with neither is looked at as a JWT, so an ``sk-`` key that happens to
    contain two dots is still an integration key.

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
        self._token = token
        self._team_id = team_id or None
        if self.kind == "jwt" and not team_id:
            raise ConfigurationError(
                "a session JWT needs a team id: pass team_id=... or set CYBERUN_TEAM_ID "
                "(sk- and dk- keys carry their team and need none)"
            )

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

    def secrets(self) -> Tuple[str, ...]:
        """The strings to redact wherever text leaves the SDK (the token itself)."""
        return (self._token,)

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


# --- the one retry decision --------------------------------------------------------------

#: Where an attempt ended: what the decision is told happened.
NOT_SENT = "not sent"  # no connection, TLS handshake or proxy failure: provably never sent
NO_ANSWER = "no answer"  # sent (or maybe), then a reset, a timeout or a cancel before a status
ANSWERED = "answered"  # a status line and headers that are not a usable 2xx
BODY_CUT = "body cut"  # a 2xx whose body did not arrive whole
BODY_BAD = "body bad"  # a 2xx whose whole body is not what the contract says

#: Statuses with which a server says it refused a request (it did not act on it).
_REFUSALS = frozenset({429})
#: Statuses after which a task may have been started although the answer is an error.
_MAYBE_ACCEPTED = frozenset({500, 502, 504})


@attrs.frozen
class Call:
    """What the decision needs to know about a request.

    Attributes:
        method: the HTTP method.
        url: the URL (redacted before it appears in any message).
        may_repeat: whether the request may be sent again once it may have
            reached the server (GETs, PUTs, cancelling a task).
        replayable: whether its body can be sent again.
        submission: the workflow, when the request starts a billed task.
    """

    method: str
    url: str
    may_repeat: bool
    replayable: bool = True
    submission: Optional[str] = None


@attrs.frozen
class Attempt:
    """What happened to one attempt.

    Attributes:
        stage: ``NOT_SENT``, ``NO_ANSWER``, ``ANSWERED``, ``BODY_CUT`` or ``BODY_BAD``.
        error: the error that ended it.
        sent_at: when it was sent (wall clock, for ``SubmissionUncertain``).
        status: the HTTP status, when an answer came.
        retry_after: the server's ``Retry-After``, in seconds, when it sent one.
        delay: the wait before the next attempt, once the decision chose one.
    """

    stage: str
    error: CyberunError
    sent_at: datetime
    status: Optional[int] = None
    retry_after: Optional[float] = None
    delay: float = 0.0


@attrs.frozen
class Retry:
    """The decision to send the request again after ``delay`` seconds."""

    delay: float


def decide(
    call: Call,
    attempt: Attempt,
    history: Sequence[Attempt],
    policy: RetryPolicy,
    *,
    time_left: Optional[float] = None,
) -> Union[Retry, CyberunError]:
    """Retry after some seconds, or the exception to raise: the one retry decision.

    Args:
        call: the request.
        attempt: what happened to the attempt that just ended.
        history: the attempts before it, with the waits that followed them.
        policy: the retry policy.
        time_left: seconds before the request's deadline, when it has one; a
            retry that could not start in time is not waited for.

    Returns:
        [`Retry`][cyberun._pipeline.Retry], or the error to raise: the attempt's own,
        or [`SubmissionUncertain`][cyberun.SubmissionUncertain] for a task
        submission that may have been accepted.
    """
    refused = _refused(attempt)
    if refused:
        retryable = _retryable_refusal(attempt, policy)
    elif call.may_repeat:
        retryable = attempt.stage in (NO_ANSWER, BODY_CUT) or (
            attempt.stage == ANSWERED and attempt.status in policy.statuses
        )
    else:
        retryable = False
    if isinstance(attempt.error, (RequestCancelled, TooManyRedirects)):
        retryable = False
    number = len(history) + 1
    if retryable and call.replayable and number < policy.attempts:
        delay = policy.delay(number, attempt.retry_after)
        waited = sum(previous.delay for previous in history)
        if waited + delay <= policy.total_wait_max and (time_left is None or delay < time_left):
            return Retry(delay)
    if call.submission is not None and not refused and _maybe_accepted(attempt):
        return _uncertain(call, attempt)
    return attempt.error


def _refused(attempt: Attempt) -> bool:
    """Whether the server provably did not act on the request."""
    if attempt.stage == NOT_SENT:
        return True
    if attempt.stage != ANSWERED:
        return False
    return attempt.status in _REFUSALS or (
        attempt.status == 503 and attempt.retry_after is not None
    )


def _retryable_refusal(attempt: Attempt, policy: RetryPolicy) -> bool:
    if attempt.stage == ANSWERED:
        return attempt.status in policy.statuses
    # A certificate that fails verification will fail the same way again.
    return not _certificate_failure(attempt.error)


def _maybe_accepted(attempt: Attempt) -> bool:
    if attempt.stage == ANSWERED:
        return attempt.status in _MAYBE_ACCEPTED
    return attempt.stage in (NO_ANSWER, BODY_CUT, BODY_BAD)


def _certificate_failure(error: BaseException) -> bool:
    if not isinstance(error, TLSError):
        return False
    return any(
        isinstance(link, ssl.SSLCertVerificationError)
        or type(link).__name__ in ("CertificateError", "SSLCertVerificationError")
        for link in causes(error)
    )


def _uncertain(call: Call, attempt: Attempt) -> SubmissionUncertain:
    workflow = call.submission or ""
    error = SubmissionUncertain(
        f"starting {workflow!r} failed after the request was sent ({attempt.error}); the task "
        "may exist. It was not retried, so no second task was started. Look for it with "
        "client.find_submitted(error) (tasks of this workflow created around "
        f"{attempt.sent_at.isoformat()}) before submitting again.",
        workflow=workflow,
        submitted_at=attempt.sent_at,
    )
    error.__cause__ = attempt.error
    return error


def stage_of(error: TransportError) -> str:
    """Where an attempt that ended with a transport error stopped.

    Transports raise [`ConnectError`][cyberun.ConnectError],
    [`ConnectTimeoutError`][cyberun.ConnectTimeoutError] and
    [`TLSError`][cyberun.TLSError] only before anything was sent; anything
    else may have reached the server.
    """
    if isinstance(error, (ConnectError, ConnectTimeoutError, TLSError)):
        return NOT_SENT
    return NO_ANSWER


# --- the pipeline ------------------------------------------------------------------------


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
        try:
            self._origin = parse_url(self.base_url).origin
        except InvalidURL as exc:
            raise ConfigurationError(f"the base URL cannot be used: {exc}") from None
        self._secrets = credentials.secrets()
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
        signed_headers: Optional[Mapping[str, str]] = None,
        authenticate: bool = True,
        idempotent: Optional[bool] = None,
        timeout: Optional[Timeout] = None,
        retry: Optional[RetryPolicy] = None,
        accept: str = "application/json",
    ) -> Response:
        """Send a request with retries and redirects; return a 2xx response, its body unread.

        For a streamed answer (events, downloads). The body of an API answer
        sent with ``Content-Encoding: gzip`` or ``deflate`` is decoded as it is
        read. ``authenticate=False`` makes a storage request: only the
        ``STORAGE_HEADERS`` of ``headers`` are sent, plus ``signed_headers``
        verbatim, and never the credential.

        Raises:
            APIError: the final answer was not 2xx (a subclass by status).
            TransportError: no answer, after the retries the policy allows.
        """
        response, _ = self._exchange(
            method,
            url,
            json_body=json_body,
            body=body,
            headers=headers,
            signed_headers=signed_headers,
            authenticate=authenticate,
            idempotent=idempotent,
            timeout=timeout,
            retry=retry,
            accept=accept,
            read=False,
        )
        if authenticate:
            return decoded(response, MAX_DECODED_STREAM, StreamError)
        return response

    def request_json(
        self,
        method: str,
        url: str,
        *,
        what: str,
        json_body: Any = None,
        idempotent: Optional[bool] = None,
        submission: Optional[str] = None,
    ) -> Any:
        """Send a request and return its JSON answer; reading the body is part of each attempt.

        Args:
            method: the HTTP method.
            url: the API URL.
            what: what the answer is, for error messages ("a task").
            json_body: the request's JSON body.
            idempotent: whether it may be repeated (default: by method).
            submission: the workflow, when the request starts a billed task.

        Raises:
            SubmissionUncertain: a submission that may have been accepted.
            DecodeError: a whole answer that is not JSON.
        """
        _, data = self._exchange(
            method,
            url,
            json_body=json_body,
            idempotent=idempotent,
            read=True,
            what=what,
            submission=submission,
        )
        return data

    def get_model(self, url: str, cls: Type[T], what: str) -> T:
        """GET ``url`` and decode the answer as ``cls``."""
        return structure(self.request_json("GET", url, what=what), cls)

    def get_page(self, url: str, cls: Type[T], key: str) -> Page[T]:
        """GET one page of a list endpoint and decode its envelope."""
        data = self.request_json("GET", url, what=f"a page of {key}")
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

    def read_json(self, response: Response, what: str) -> Any:
        """Read a JSON answer (bounded, decompressed) and close the response."""
        try:
            return loads(self._read_whole(response), what)
        except DecodeError as exc:
            exc.snippet = redact_text(exc.snippet, self._secrets)
            raise

    # -- the attempt loop ------------------------------------------------------------

    def _exchange(
        self,
        method: str,
        url: str,
        *,
        json_body: Any = None,
        body: Optional[Body] = None,
        headers: Optional[Mapping[str, str]] = None,
        signed_headers: Optional[Mapping[str, str]] = None,
        authenticate: bool = True,
        idempotent: Optional[bool] = None,
        timeout: Optional[Timeout] = None,
        retry: Optional[RetryPolicy] = None,
        accept: str = "application/json",
        read: bool,
        what: str = "the answer",
        submission: Optional[str] = None,
    ) -> Tuple[Response, Any]:
        policy = retry or self.retry
        request_headers = self._headers(accept, headers, signed_headers, authenticate)
        if json_body is not None:
            body = encode_json(json_body)
            request_headers["Content-Type"] = "application/json"
        try:
            first_url = str(parse_url(url))
        except InvalidURL as exc:
            raise ConnectError(
                f"cannot send to {redact_url(url)!r}: {exc}", method=method, url=redact_url(url)
            ) from None
        rewind = rewinder(body)
        call = Call(
            method=method,
            url=first_url,
            may_repeat=policy.method_may_repeat(method, idempotent),
            replayable=rewind is not None,
            submission=submission,
        )
        history: List[Attempt] = []
        while True:
            if history and rewind is not None:
                rewind()
            self._check_scope(method, url)
            request = Request(
                method,
                first_url,
                request_headers,
                body,
                deadline=self._deadline,
                cancel=self._cancel,
            )
            attempt, response, data = self._attempt(
                request, authenticate, timeout or self.timeout, policy, read, what
            )
            if attempt is None:
                return response, data  # type: ignore[return-value]
            decision = decide(call, attempt, history, policy, time_left=self._time_left())
            if not isinstance(decision, Retry):
                scrub_exception(decision, self._secrets)
                raise decision
            logger.info(
                "retrying %s %s in %.2fs after %s (attempt %d of %d)",
                method,
                redact_url(url),
                decision.delay,
                f"HTTP {attempt.status}" if attempt.status else type(attempt.error).__name__,
                len(history) + 2,
                policy.attempts,
            )
            self._pause(policy, decision.delay, method, url, attempt.error)
            history.append(attrs.evolve(attempt, delay=decision.delay))

    def _attempt(
        self,
        request: Request,
        authenticate: bool,
        timeout: Timeout,
        policy: RetryPolicy,
        read: bool,
        what: str,
    ) -> Tuple[Optional[Attempt], Optional[Response], Any]:
        """Send once; return (None, response, data) on success, else (the Attempt, None, None)."""
        sent_at = datetime.now(timezone.utc)
        try:
            response = self._send_following_redirects(
                request, authenticate=authenticate, timeout=timeout
            )
        except TransportError as exc:
            return Attempt(stage_of(exc), exc, sent_at), None, None
        if not response.is_success:
            error = self._error(response, request.method, request.url, policy)
            return (
                Attempt(ANSWERED, error, sent_at, response.status, error.retry_after),
                None,
                None,
            )
        if not read:
            return None, response, None
        try:
            body = self._read_whole(response)
        except TransportError as exc:
            return Attempt(BODY_CUT, exc, sent_at, response.status), None, None
        except DecodeError as exc:
            return Attempt(BODY_BAD, exc, sent_at, response.status), None, None
        try:
            return None, response, loads(body, what)
        except DecodeError as exc:
            exc.snippet = redact_text(exc.snippet, self._secrets)
            return Attempt(BODY_BAD, exc, sent_at, response.status), None, None

    def _headers(
        self,
        accept: str,
        headers: Optional[Mapping[str, str]],
        signed_headers: Optional[Mapping[str, str]],
        authenticate: bool,
    ) -> Headers:
        built = Headers(
            {
                "User-Agent": self.user_agent,
                "Accept": accept,
                # Uncompressed answers are asked for (an event stream must not
                # sit in a decompressor's buffer); a compressed one that comes
                # anyway is decoded, with a bound.
                "Accept-Encoding": "identity",
            }
        )
        for name, value in (headers or {}).items():
            if authenticate or name.lower() in _STORAGE_NAMES:
                built[name] = value
            else:
                logger.debug("not sending header %r to storage (not on the allow-list)", name)
        for name, value in (signed_headers or {}).items():
            built[name] = value  # signed by the presign answer: verbatim
        for name in _CREDENTIAL_HEADERS:
            built.pop(name, None)  # only ever from the credential, only to the API
        return built

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

    def _time_left(self) -> Optional[float]:
        return None if self._deadline is None else self._deadline - time.monotonic()

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

    # -- redirects -------------------------------------------------------------------

    def _send_following_redirects(
        self, request: Request, *, authenticate: bool, timeout: Timeout
    ) -> Response:
        url = request.url
        method = request.method
        trusted = authenticate
        for hop in range(MAX_REDIRECTS + 1):
            # The origin is the one the transport connects to: both come from parse_url.
            trusted = trusted and parse_url(url).origin == self._origin
            headers = request.headers.copy()
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
            location = response.headers["location"]
            discard(response)
            if hop == MAX_REDIRECTS:
                break
            url = self._redirect_target(method, url, location)
        raise TooManyRedirects(
            f"more than {MAX_REDIRECTS} redirects", method=method, url=redact_url(url)
        )

    @staticmethod
    def _redirect_target(method: str, url: str, location: str) -> str:
        try:
            return str(parse_url(urljoin(url, location)))
        except (InvalidURL, ValueError) as exc:
            reason = exc if isinstance(exc, InvalidURL) else "the URL is malformed"
            raise TooManyRedirects(
                f"the server redirected to a URL the SDK will not follow: {reason}",
                method=method,
                url=redact_url(url),
            ) from None

    # -- answers -------------------------------------------------------------------

    def _read_whole(self, response: Response) -> bytes:
        """The whole (decompressed) body, at most MAX_JSON_BODY bytes; closes the response.

        Raises:
            TransportError: the body did not arrive whole.
            DecodeError: it is larger than the limit, or its encoding is broken.
        """
        try:
            return decoded(response, MAX_JSON_BODY, DecodeError).read(limit=MAX_JSON_BODY)
        except BodyTooLarge:
            raise DecodeError(
                f"the answer is larger than the {MAX_JSON_BODY}-byte limit", what="answer"
            ) from None
        finally:
            response.close()

    def _error(self, response: Response, method: str, url: str, policy: RetryPolicy) -> APIError:
        try:
            body = response.read(limit=MAX_ERROR_BODY)
        except CyberunError:
            body = b""
        finally:
            response.close()
        server_message, code = _error_details(body)
        server_message = redact_text(server_message, self._secrets)
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


_STORAGE_NAMES = frozenset(name.lower() for name in STORAGE_HEADERS)

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
