"""The endpoint layer: one method per API endpoint, and the one place requests are sent.

[`Endpoints`][cyberun.api.Endpoints] builds each request, adds authentication (only for the
API's own host), applies the [`RetryPolicy`][cyberun.RetryPolicy], follows
redirects, turns HTTP failures into [`cyberun.errors`][cyberun.errors] exceptions and
decodes answers into models. Nothing above it sends HTTP by other means.
"""

from __future__ import annotations

import json
import logging
import platform
import re
import time
from datetime import datetime, timezone
from typing import (
    IO,
    Any,
    Callable,
    Dict,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Type,
    TypeVar,
    Union,
)
from urllib.parse import quote, urlencode, urljoin, urlsplit

from ._convert import loads, structure
from ._redact import redact_text, redact_url
from ._version import __version__
from .errors import (
    APIError,
    ConfigurationError,
    ConnectError,
    ConnectTimeoutError,
    DecodeError,
    ParameterError,
    ServerError,
    SubmissionUncertain,
    TooManyRedirects,
    TransportError,
    api_error_class,
)
from .models import Page, ParameterDef, Task, TaskResult, UploadTarget, Webhook, Workflow
from .retry import RetryPolicy
from .transports._base import Body, Request, Response, Timeout, Transport, iter_body

__all__ = ["Credentials", "Endpoints", "check_parameters", "looks_like_jwt"]

logger = logging.getLogger("cyberun")

T = TypeVar("T")

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


def _segment(value: str, what: str, safe: str = "") -> str:
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


class Endpoints:
    """One method per endpoint of the Cyberun API.

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
        self.base_url = base_url.rstrip("/")
        self.credentials = credentials
        self.transport = transport
        self.timeout = timeout
        self.retry = retry
        self._origin = _origin(self.base_url)
        user_agent = f"cyberun-python/{__version__} Python/{platform.python_version()}"
        self.user_agent = f"{user_agent} {user_agent_suffix}".strip()

    def __repr__(self) -> str:
        return f"<Endpoints {self.base_url}>"

    def derive(
        self, *, retry: Optional[RetryPolicy] = None, timeout: Optional[Timeout] = None
    ) -> Endpoints:
        """A copy sharing the transport and credential, with another policy or timeout."""
        copy = object.__new__(Endpoints)
        copy.__dict__.update(self.__dict__)
        if retry is not None:
            copy.retry = retry
        if timeout is not None:
            copy.timeout = timeout
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
            try:
                response = self._send_following_redirects(
                    Request(method, url, request_headers, body),
                    authenticate=authenticate,
                    timeout=timeout or self.timeout,
                )
            except TransportError as exc:
                replayable = body is None or rewind is not None
                if (
                    attempt < policy.attempts
                    and replayable
                    and policy.retries_error(exc, method, idempotent)
                ):
                    delay = policy.delay(attempt)
                    logger.info(
                        "retrying %s %s in %.2fs after %s (attempt %d of %d)",
                        method,
                        redact_url(url),
                        delay,
                        type(exc).__name__,
                        attempt + 1,
                        policy.attempts,
                    )
                    policy.sleep(delay)
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
                policy.sleep(delay)
                continue
            raise self._error(response, method, url, policy)

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
                Request(method, url, headers, request.body), timeout=timeout
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

    def _json(self, response: Response, what: str) -> Any:
        try:
            body = response.read(limit=MAX_JSON_BODY)
        finally:
            response.close()
        return loads(body, what)

    def _get(self, url: str, cls: Type[T], what: str) -> T:
        return structure(self._json(self.send("GET", url), what), cls)

    # -- tasks -----------------------------------------------------------------------

    def run_workflow(self, workflow: str, body: Mapping[str, Any]) -> str:
        """Start a workflow; return the new task's id.

        ``workflow`` is a workflow UUID, a slug or ``slug@version``. A slug is
        anything that is not a UUID.

        Raises:
            SubmissionUncertain: the request may have reached the server but
                no answer came back; the task may exist. Never retried.
        """
        if _UUID.match(workflow):
            url = self.runtime_url(f"/workflows/{_segment(workflow, 'workflow id')}/run")
        else:
            url = self.runtime_url(
                f"/workflows/slug/{_segment(workflow, 'workflow slug', safe='@')}/run"
            )
        submitted_at = datetime.now(timezone.utc)
        try:
            response = self.send("POST", url, json_body=dict(body), idempotent=False)
        except (ConnectError, ConnectTimeoutError):
            raise  # provably never sent (and already retried)
        except TransportError as exc:
            raise _uncertain(workflow, submitted_at, str(exc)) from exc
        except ServerError as exc:
            if exc.status in (502, 504):  # a gateway answered; the backend may have acted
                raise _uncertain(workflow, submitted_at, str(exc)) from exc
            raise
        data = self._json(response, "a run answer")
        task_id = data.get("task_id") if isinstance(data, dict) else None
        if not isinstance(task_id, str) or not task_id:
            raise DecodeError(
                "the run answer has no task_id", what="run answer", snippet=repr(data)[:200]
            )
        return task_id

    def get_task(self, task_id: str) -> Task:
        """``GET /tasks/{id}``."""
        return self._get(
            self.runtime_url(f"/tasks/{_segment(task_id, 'task id')}"), Task, "a task"
        )

    def list_tasks_page(
        self, page: int = 1, per_page: int = 20, status: Optional[str] = None
    ) -> Page[Task]:
        """One page of ``GET /tasks`` (newest first, as the server orders them)."""
        query = {"current_page": page, "per_page": per_page, "status": status}
        return self._page(self.runtime_url("/tasks", query), Task, "task_list")

    def iter_tasks(
        self, *, status: Optional[str] = None, per_page: int = 20, limit: Optional[int] = None
    ) -> Iterator[Task]:
        """Every task, fetching pages lazily; stops at ``total_count`` or ``limit``."""
        return self._iterate(
            lambda page: self.list_tasks_page(page, per_page, status), per_page, limit
        )

    def cancel_task(self, task_id: str) -> None:
        """``POST /tasks/{id}/cancel``; a no-op on a finished task. Safe to repeat."""
        url = self.runtime_url(f"/tasks/{_segment(task_id, 'task id')}/cancel")
        self.send("POST", url, idempotent=True).close()

    def get_result(self, task_id: str) -> TaskResult:
        """``GET /tasks/{id}/result``: output and fresh presigned links."""
        url = self.runtime_url(f"/tasks/{_segment(task_id, 'task id')}/result")
        return self._get(url, TaskResult, "a task result")

    def open_events(
        self,
        task_id: str,
        *,
        last_event_id: Optional[str] = None,
        timeout: Optional[Timeout] = None,
        retry: Optional[RetryPolicy] = None,
    ) -> Response:
        """Open ``GET /tasks/{id}/events`` and return the streaming response."""
        headers = {"Cache-Control": "no-cache"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        url = self.runtime_url(f"/tasks/{_segment(task_id, 'task id')}/events")
        return self.send(
            "GET",
            url,
            headers=headers,
            accept="text/event-stream",
            timeout=timeout,
            retry=retry,
        )

    # -- workflows --------------------------------------------------------------------

    def list_workflows_page(self, page: int = 1, per_page: int = 20) -> Page[Workflow]:
        """One page of ``GET /workflows``."""
        query = {"current_page": page, "per_page": per_page}
        return self._page(self.runtime_url("/workflows", query), Workflow, "workflow_list")

    def iter_workflows(self, *, per_page: int = 50) -> Iterator[Workflow]:
        """Every workflow, fetching pages lazily."""
        return self._iterate(lambda page: self.list_workflows_page(page, per_page), per_page, None)

    def get_workflow(self, workflow: str) -> Workflow:
        """A workflow by UUID (``/workflows/{id}``) or by slug / ``slug@version``."""
        if _UUID.match(workflow):
            url = self.runtime_url(f"/workflows/{_segment(workflow, 'workflow id')}")
        else:
            url = self.runtime_url(
                f"/workflows/slug/{_segment(workflow, 'workflow slug', safe='@')}"
            )
        return self._get(url, Workflow, "a workflow")

    # -- files ------------------------------------------------------------------------

    def presign_upload(self, file_name: str, file_size: int, content_type: str) -> UploadTarget:
        """``POST /files/presign``: where to PUT one input file."""
        body = {"file_name": file_name, "file_size": file_size, "content_type": content_type}
        response = self.send(
            "POST", self.runtime_url("/files/presign"), json_body=body, idempotent=True
        )
        return structure(self._json(response, "a presign answer"), UploadTarget)

    def upload(
        self,
        target: UploadTarget,
        body: Body,
        *,
        size: int,
        on_progress: Optional[Callable[[int, int], None]] = None,
    ) -> None:
        """PUT a file to its presigned URL with the signed headers, never the credential.

        A file object that can seek is re-sent from the start on a retry.
        A 412 on a retry means an earlier attempt already stored the object.
        """
        headers = dict(target.upload_headers)
        headers.setdefault("Content-Length", str(size))
        if on_progress is not None:
            body = _ProgressBody(body, size, on_progress)
        try:
            self.send(
                "PUT",
                target.upload_url,
                body=body,
                headers=headers,
                authenticate=False,
                idempotent=True,
                accept="*/*",
            ).close()
        except APIError as exc:
            if exc.status == 412 and "If-None-Match" in headers:
                return  # an earlier attempt's PUT landed: the object is there
            raise

    def open_download(
        self,
        url: str,
        *,
        headers: Optional[Mapping[str, str]] = None,
        timeout: Optional[Timeout] = None,
    ) -> Response:
        """GET a presigned storage URL (never with the credential); return the stream."""
        return self.send(
            "GET", url, headers=headers, authenticate=False, accept="*/*", timeout=timeout
        )

    # -- webhooks (management API: JWT with team id, or dk-) --------------------------

    def create_webhook(
        self, *, display_name: str, webhook_url: str, webhook_events: Sequence[str]
    ) -> Webhook:
        """``POST /api/v1/webhooks``."""
        body = {
            "display_name": display_name,
            "webhook_url": webhook_url,
            "webhook_events": list(webhook_events),
        }
        response = self.send("POST", self.management_url("/webhooks"), json_body=body)
        return structure(self._json(response, "a webhook"), Webhook)

    def get_webhook(self, webhook_id: str) -> Webhook:
        """``GET /api/v1/webhooks/{id}``."""
        url = self.management_url(f"/webhooks/{_segment(webhook_id, 'webhook id')}")
        return self._get(url, Webhook, "a webhook")

    def list_webhooks_page(self, page: int = 1, per_page: int = 50) -> Page[Webhook]:
        """One page of ``GET /api/v1/webhooks``."""
        query = {"current_page": page, "per_page": per_page}
        return self._page(self.management_url("/webhooks", query), Webhook, "webhook_list")

    def iter_webhooks(self, *, per_page: int = 50) -> Iterator[Webhook]:
        """Every webhook, fetching pages lazily."""
        return self._iterate(lambda page: self.list_webhooks_page(page, per_page), per_page, None)

    def update_webhook(self, webhook_id: str, changes: Mapping[str, Any]) -> Webhook:
        """``PUT /api/v1/webhooks/{id}`` with the fields to change."""
        url = self.management_url(f"/webhooks/{_segment(webhook_id, 'webhook id')}")
        response = self.send("PUT", url, json_body=dict(changes))
        return structure(self._json(response, "a webhook"), Webhook)

    def delete_webhook(self, webhook_id: str) -> None:
        """``DELETE /api/v1/webhooks/{id}``."""
        url = self.management_url(f"/webhooks/{_segment(webhook_id, 'webhook id')}")
        self.send("DELETE", url).close()

    def rotate_webhook_secret(self, webhook_id: str) -> str:
        """``POST /api/v1/webhooks/{id}/rotate-secret``; the old secret stops working at once."""
        url = self.management_url(f"/webhooks/{_segment(webhook_id, 'webhook id')}/rotate-secret")
        data = self._json(self.send("POST", url), "a rotated secret")
        secret = data.get("webhook_secret") if isinstance(data, dict) else None
        if not isinstance(secret, str) or not secret:
            raise DecodeError("the rotate-secret answer has no webhook_secret", what="secret")
        return secret

    # -- pagination ---------------------------------------------------------------------

    def _page(self, url: str, cls: Type[T], key: str) -> Page[T]:
        data = self._json(self.send("GET", url), f"a page of {key}")
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

    @staticmethod
    def _iterate(
        fetch: Callable[[int], Page[T]], per_page: int, limit: Optional[int]
    ) -> Iterator[T]:
        # Stops at total_count, at an empty page, at a page that repeats the
        # previous one (a server ignoring the page number), or at `limit`:
        # never loops forever on an inconsistent server.
        seen = 0
        page_number = 1
        last_first: Any = None
        max_pages: Optional[int] = None
        while True:
            page = fetch(page_number)
            if not page.items:
                return
            first = getattr(page.items[0], "id", None)
            if page_number > 1 and first is not None and first == last_first:
                logger.warning("the server returned page %d twice; stopping", page_number)
                return
            last_first = first
            for item in page.items:
                yield item
                seen += 1
                if limit is not None and seen >= limit:
                    return
            if max_pages is None:
                max_pages = page.page_count or 1
            if seen >= page.total_count or page_number >= max_pages:
                return
            page_number += 1


_UUID = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
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


def _uncertain(workflow: str, submitted_at: datetime, detail: str) -> SubmissionUncertain:
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
    if isinstance(body, _ProgressBody):
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


def _progress_rewinder(body: _ProgressBody) -> Optional[Callable[[], None]]:
    found = _rewinder(body.inner)
    if found is None:
        return None
    rewind_inner: Callable[[], None] = found

    def rewind() -> None:
        rewind_inner()
        body.sent = 0

    return rewind


class _ProgressBody:
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


def check_parameters(workflow: Workflow, parameters: Mapping[str, Any]) -> List[str]:
    """Check run parameters against a workflow's definitions; return every problem found.

    Checks that required keys are present, that no unknown key is given,
    that numbers are numbers within ``min``/``max``, booleans are booleans,
    strings and file keys are strings, and select values are among the
    options. An empty list means the parameters look valid.
    """
    problems: List[str] = []
    definitions = {p.key: p for p in workflow.parameters}
    for key in parameters:
        if key not in definitions:
            known = ", ".join(sorted(definitions)) or "none"
            problems.append(f"unknown parameter {key!r} (this workflow takes: {known})")
    for key, definition in definitions.items():
        if key not in parameters:
            if definition.required and definition.default is None:
                problems.append(f"missing required parameter {key!r}")
            continue
        problems.extend(_check_value(definition, parameters[key]))
    return problems


def _check_value(definition: ParameterDef, value: Any) -> List[str]:
    key = definition.key
    kind = str(definition.type) if definition.type is not None else ""
    if value is None:
        return [f"parameter {key!r} is null"] if definition.required else []
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return [f"parameter {key!r} must be a number, got {value!r:.40}"]
        if definition.min is not None and value < definition.min:
            return [f"parameter {key!r} is {value}, below its minimum {definition.min:g}"]
        if definition.max is not None and value > definition.max:
            return [f"parameter {key!r} is {value}, above its maximum {definition.max:g}"]
    elif kind == "boolean":
        if not isinstance(value, bool):
            return [f"parameter {key!r} must be true or false, got {value!r:.40}"]
    elif kind in ("string", "file"):
        if not isinstance(value, str):
            return [f"parameter {key!r} must be a string, got {type(value).__name__}"]
    elif kind == "select":
        allowed = definition.option_values()
        if allowed and value not in allowed:
            shown = ", ".join(repr(v) for v in allowed[:10])
            return [f"parameter {key!r} is {value!r:.40}, not one of its options ({shown})"]
    return []


def raise_for_parameters(workflow: Workflow, parameters: Mapping[str, Any]) -> None:
    """Raise [`ParameterError`][cyberun.ParameterError] listing every problem, if there is any."""
    problems = check_parameters(workflow, parameters)
    if problems:
        count = f"{len(problems)} problem{'s' if len(problems) > 1 else ''}"
        name = workflow.workflow_slug or workflow.id
        raise ParameterError(
            f"parameters for {name!r} have {count}: " + "; ".join(problems),
            problems=problems,
            workflow=name,
        )


def file_name_for(path_or_name: Union[str, IO[bytes]]) -> str:
    """A file name to declare when presigning an upload."""
    name = path_or_name if isinstance(path_or_name, str) else getattr(path_or_name, "name", "")
    return str(name).replace("\\", "/").rsplit("/", 1)[-1] or "upload.bin"
