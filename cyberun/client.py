"""The Client facade: configuration, the choice of strategy, and every public call.

A [`Client`][cyberun.Client] is safe to share between threads: it keeps no state per
request, its transport is thread-safe, and each wait or event stream has
its own follower and stop signals. Following itself lives in
``cyberun.strategies`` (the sans-I/O follower and its driver).
"""

from __future__ import annotations

import copy as copy_module
import io
import ipaddress
import logging
import os
import sys
import threading
import time
import weakref
from datetime import datetime, timedelta, timezone
from importlib.util import find_spec
from pathlib import Path
from typing import (
    IO,
    TYPE_CHECKING,
    Any,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Literal,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Type,
    Union,
)
from urllib.parse import urlsplit, urlunsplit

import attrs

from ._parameters import raise_for_parameters
from ._pipeline import UUID
from ._redact import redact_url
from .api import Credentials, Endpoints
from .errors import (
    BadRequest,
    ConfigurationError,
    CyberunError,
    SubmissionUncertain,
    WaitStopped,
)
from .models import (
    DispatchTarget,
    OpenEnum,
    TargetPool,
    Task,
    TaskEvent,
    TaskResult,
    TaskStatus,
    ToolType,
    Webhook,
    WebhookEventType,
    Workflow,
)

if TYPE_CHECKING:  # pragma: no cover
    from typing_extensions import Self
from ._record import RECORD_NAME, EventLog, build_record, write_record
from ._uploads import (
    DEFAULT_MAX_UPLOAD_SIZE,
    UploadCache,
    Uploaded,
    Uploader,
    cache_for,
    file_problems,
    is_local_file,
    local_name_and_size,
    reupload_stale,
    upload_inputs,
)
from .retry import RetryPolicy
from .strategies import Control, Downloader, Follower, StreamSettings, drive, follow_events, settle
from .strategies._destination import check_destination
from .strategies.batch import Batch, BatchEventCallback, Completion
from .strategies.driver import cancel_quietly, random_source
from .strategies.results import ProgressCallback
from .transports import (
    DEFAULT,
    BaseTransport,
    DefaultType,
    Request,
    Response,
    Timeout,
    Transport,
    default_transport,
    transport_by_name,
    transport_class_name,
)

__all__ = ["Client", "Completion", "EventStream", "FollowMode", "RunOutcome", "TaskHandle"]

logger: logging.Logger = logging.getLogger("cyberun")

DEFAULT_BASE_URL = "https://core.cyberun.cloud"
#: ``read_output``'s default limit.
DEFAULT_MAX_READ = 100 * 1024 * 1024

FollowMode = Literal["auto", "stream", "poll"]
FollowMode.__doc__ = """How to follow a task.

``"auto"`` streams the task's events and falls back to polling when streaming
is not possible; ``"stream"`` streams (and still falls back after repeated
failures rather than fail); ``"poll"`` polls ``GET /tasks/{id}``.
"""
MODES: Tuple[FollowMode, ...] = ("auto", "stream", "poll")

# The documented values of the run request's closed choices (DESIGN: API.md).
DispatchTargetName = Literal["agent", "comfy_cloud"]
TargetPoolName = Literal["team", "community"]
ToolTypeName = Literal["comfyui", "nerfstudio"]

#: on_upload_progress(parameter_key, bytes_sent, bytes_total)
UploadProgress = Callable[[str, int, int], None]
#: A file to upload: a path, or a binary file object open for reading.
FileLike = Union["os.PathLike[str]", IO[bytes]]
TaskStatusName = Literal[
    "pending", "waiting", "provisioning", "queued", "running", "completed", "failed", "cancelled"
]
WebhookEventName = Literal["task.completed", "task.failed"]


def normalize_base_url(url: str, *, allow_http: bool = False) -> str:
    """Check and normalise a base URL to the host root (plus any proxy prefix).

    ``https://core.cyberun.cloud/api/v1/r`` and ``.../api/v1`` (as copied from
    the docs) become ``https://core.cyberun.cloud``; another path prefix (a
    corporate gateway's) is kept.

    Raises:
        ConfigurationError: not an absolute http(s) URL, credentials in the
            URL, or plain http to a host that is not loopback without
            ``allow_http``.
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            f"base URL {redact_url(url)!r} is not an absolute http(s) URL such as "
            f"{DEFAULT_BASE_URL}"
        )
    if parts.username or parts.password:
        raise ConfigurationError("do not put credentials in the base URL; use api_key=...")
    if parts.query or parts.fragment:
        raise ConfigurationError("the base URL must not have a query string or fragment")
    if parts.scheme == "http" and not allow_http and not _is_loopback(parts.hostname):
        raise ConfigurationError(
            f"refusing plain http to {parts.hostname}: the API key would travel in clear. "
            "Use https, or pass allow_insecure_http=True if you really mean it"
        )
    path = parts.path.rstrip("/")
    for suffix in ("/api/v1/r", "/api/v1"):
        if path.endswith(suffix):
            path = path[: -len(suffix)]
            break
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@attrs.frozen
class RunOutcome:
    """What [`Client.run_and_wait`][cyberun.Client.run_and_wait] returns.

    Attributes:
        task: the task's handle.
        result: its result (with fresh download links).
        files: the downloaded files, when a destination was given.
    """

    task: TaskHandle
    result: TaskResult
    files: List[Path] = attrs.Factory(list)


class EventStream(Iterator[TaskEvent]):
    """The iterator [`Client.events`][cyberun.Client.events] returns.

    Iterate it for events until the terminal one. [`close`][cyberun.EventStream.close] may be
    called from any thread: it stops the iteration and closes the
    connection at once; the task keeps running on the server.
    """

    def __init__(
        self, events: Iterator[TaskEvent], control: Control, on_close: Callable[[], None]
    ) -> None:
        self._events = events
        self._control = control
        self._on_close = on_close

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> TaskEvent:
        try:
            return next(self._events)
        except BaseException:
            self._on_close()
            raise

    def close(self) -> None:
        """Stop following (from any thread); the task keeps running on the server."""
        self._control.interrupt()
        self._on_close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


class TaskHandle:
    """A task started (or found) through a client; cheap, holds just the id.

    Attributes:
        id: the task's id.
    """

    __slots__ = ("_client", "_parameters", "_uploads", "id")

    def __init__(self, client: Client, task_id: str) -> None:
        # What `run` sent for this task (for the run record).
        self._uploads: Dict[str, Uploaded] = {}
        self._parameters: Dict[str, Any] = {}
        self._client = client
        self.id: str = task_id

    def wait(
        self,
        *,
        timeout: Optional[float] = None,
        on_event: Optional[Callable[[TaskEvent], None]] = None,
        mode: FollowMode = "auto",
        cancel_on_timeout: bool = False,
        stop: Optional[threading.Event] = None,
    ) -> TaskResult:
        """Follow the task until it ends; see [`Client.wait`][cyberun.Client.wait]."""
        return self._client.wait(
            self.id,
            timeout=timeout,
            on_event=on_event,
            mode=mode,
            cancel_on_timeout=cancel_on_timeout,
            stop=stop,
        )

    def events(
        self,
        *,
        mode: FollowMode = "auto",
        timeout: Optional[float] = None,
        stop: Optional[threading.Event] = None,
    ) -> EventStream:
        """The task's events until the terminal one.

        See [`Client.events`][cyberun.Client.events].
        """
        return self._client.events(self.id, mode=mode, timeout=timeout, stop=stop)

    def refresh(self) -> Task:
        """The task's current status and metadata."""
        return self._client.get_task(self.id)

    def result(self) -> TaskResult:
        """The task's result, with fresh download links."""
        return self._client.get_result(self.id)

    def download(
        self,
        dest_dir: Union[str, os.PathLike[str]],
        *,
        overwrite: bool = False,
        on_progress: Optional[ProgressCallback] = None,
    ) -> List[Path]:
        """Download the result's files into ``dest_dir``.

        See [`Client.download`][cyberun.Client.download].
        """
        return self._client.download(
            self.id, dest_dir, overwrite=overwrite, on_progress=on_progress
        )

    def cancel(self) -> None:
        """Cancel the task (a no-op once it has ended)."""
        self._client.cancel(self.id)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TaskHandle) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"<TaskHandle {self.id}>"


class Client:
    """The Cyberun API: run workflows, follow tasks, fetch results.

    Args:
        api_key: an ``sk-`` integration key, a ``dk-`` device key or a session
            JWT; default ``$CYBERUN_API_KEY``.
        team_id: the team UUID, required with a JWT; default ``$CYBERUN_TEAM_ID``.
        base_url: the API host root; default ``$CYBERUN_BASE_URL`` or
            ``https://core.cyberun.cloud``. URLs copied from the docs
            (``.../api/v1`` or ``.../api/v1/r``) are accepted.
        transport: a [`Transport`][cyberun.Transport], or ``"requests"``,
            ``"urllib3"``, ``"urllib"`` or ``"auto"`` (default: requests if
            installed, else urllib3, else the standard library).
        timeout: a [`Timeout`][cyberun.Timeout], a number or a (connect, read)
            pair; default ``Timeout(connect=10, read=30)``.
        retry: a [`RetryPolicy`][cyberun.RetryPolicy], a number of attempts, or
            False; default ``RetryPolicy()`` (4 attempts).
        poll_interval: seconds between polls when polling (jittered).
        liveness_interval: seconds without a real event after which a stream
            of keep-alives is checked with one GET of the task.
        max_stream_failures: stream connects in a row that bring no event
            before polling instead.
        reconnect_backoff: base delay (seconds) before reconnecting a broken
            stream; full jitter, doubling per short-lived connection in a row
            up to 30 s, back to the base after a connection that stayed up a
            minute; two connects are never less than twice this apart.
        allow_insecure_http: allow plain http to a host that is not loopback.
        max_upload_size: the largest input file (bytes) ``validate`` lets
            through before anything is sent; default 500 MB, the service's
            documented limit. None: no local check.
        upload_cache: reuse the file key of an input uploaded before (same
            bytes, base URL and team) for up to 20 hours of the service's one
            day: ``True`` keeps the cache in the platform's user cache folder,
            a path keeps it there; default ``False`` (no files written).

    Raises:
        ConfigurationError: no key, a JWT without a team id, a bad base URL.

    Use it as a context manager, or call [`close`][cyberun.Client.close], to release its
    connections. One client is safe to share between threads.
    """

    def __init__(
        self,
        api_key: Optional[str] = None,
        *,
        team_id: Optional[str] = None,
        base_url: Optional[str] = None,
        transport: Union[Transport, str, None] = None,
        timeout: Union[
            Timeout, float, Tuple[Optional[float], Optional[float]], DefaultType, None
        ] = DEFAULT,
        retry: Union[RetryPolicy, int, bool, DefaultType, None] = DEFAULT,
        poll_interval: float = 3.0,
        liveness_interval: float = 15.0,
        max_stream_failures: int = 3,
        reconnect_backoff: float = 0.5,
        allow_insecure_http: bool = False,
        max_upload_size: Optional[int] = DEFAULT_MAX_UPLOAD_SIZE,
        upload_cache: Union[bool, str, os.PathLike[str]] = False,
    ) -> None:
        token = api_key if api_key is not None else os.environ.get("CYBERUN_API_KEY", "")
        if not token or not token.strip():
            raise ConfigurationError(
                "no API key: pass api_key=... or set the CYBERUN_API_KEY environment variable"
            )
        team = team_id if team_id is not None else (os.environ.get("CYBERUN_TEAM_ID") or None)
        url = (
            base_url
            if base_url is not None
            else (os.environ.get("CYBERUN_BASE_URL") or DEFAULT_BASE_URL)
        )
        self.base_url: str = normalize_base_url(url, allow_http=allow_insecure_http)
        credentials = Credentials(token, team)
        if transport is not None and not isinstance(transport, (str, BaseTransport)):
            if not callable(getattr(transport, "send", None)):
                raise TypeError(
                    "transport must be a Transport (an object with send() and close()), "
                    f"or one of 'auto', 'requests', 'urllib3', 'urllib'; not {transport!r}"
                )
        # A transport chosen by name is created, and its library imported, at
        # the first request: constructing a client imports no HTTP library.
        self._transport: Transport = (
            _DeferredTransport(transport if isinstance(transport, str) else "auto")
            if transport is None or isinstance(transport, str)
            else transport
        )
        self._owns_transport = True
        self._configure(
            credentials,
            timeout=Timeout.from_value(timeout),
            retry=RetryPolicy()
            if isinstance(retry, DefaultType)
            else RetryPolicy.from_value(retry),
            poll_interval=poll_interval,
            liveness_interval=liveness_interval,
            max_stream_failures=max_stream_failures,
            reconnect_backoff=reconnect_backoff,
            max_upload_size=max_upload_size,
            upload_cache=cache_for(upload_cache, _cache_scope(self.base_url, credentials)),
        )

    def _configure(
        self,
        credentials: Credentials,
        *,
        timeout: Timeout,
        retry: RetryPolicy,
        poll_interval: float,
        liveness_interval: float,
        max_stream_failures: int,
        reconnect_backoff: float,
        max_upload_size: Optional[int],
        upload_cache: Optional[UploadCache],
    ) -> None:
        """Set all but the base URL and the transport (for ``__init__`` and ``with_options``)."""
        _check_number("poll_interval", poll_interval, minimum=0, inclusive=False)
        _check_number("liveness_interval", liveness_interval, minimum=0, inclusive=False)
        _check_number("max_stream_failures", max_stream_failures, minimum=1, integer=True)
        _check_number("reconnect_backoff", reconnect_backoff, minimum=0)
        if max_upload_size is not None:
            _check_number("max_upload_size", max_upload_size, minimum=0, integer=True)
        self.max_upload_size: Optional[int] = max_upload_size
        self._upload_cache = upload_cache
        self.timeout: Timeout = timeout
        self.retry: RetryPolicy = retry
        self.poll_interval: float = poll_interval
        self.stream_settings: StreamSettings = StreamSettings(
            liveness_interval=liveness_interval,
            max_failures=max_stream_failures,
            reconnect_backoff=reconnect_backoff,
        )
        self._api = Endpoints(
            base_url=self.base_url,
            credentials=credentials,
            transport=self._transport,
            timeout=self.timeout,
            retry=self.retry,
            user_agent_suffix=(
                self._transport.class_name
                if isinstance(self._transport, _DeferredTransport)
                else type(self._transport).__name__
            ),
        )
        self._uploader = Uploader(self._api, cache=upload_cache)
        # Weak: an abandoned event stream releases its wait with it.
        self._controls: weakref.WeakSet[Control] = weakref.WeakSet()
        self._lock = threading.Lock()
        # Parameter definitions fetched for validation, by the workflow string
        # given to run (one GET per workflow per client).
        self._definitions: Dict[str, Workflow] = {}
        self._closed = False

    def with_options(
        self,
        *,
        timeout: Union[
            Timeout, float, Tuple[Optional[float], Optional[float]], DefaultType, None
        ] = DEFAULT,
        retry: Union[RetryPolicy, int, bool, DefaultType, None] = DEFAULT,
        poll_interval: Union[float, DefaultType] = DEFAULT,
        liveness_interval: Union[float, DefaultType] = DEFAULT,
        max_stream_failures: Union[int, DefaultType] = DEFAULT,
        reconnect_backoff: Union[float, DefaultType] = DEFAULT,
    ) -> Self:
        """A cheap copy of this client with some settings changed.

        The copy shares the credential, base URL and transport (and so its
        connection pool). Closing the copy stops the copy's own waits and
        streams but never closes the shared transport; closing the original
        does. Every keyword of [`Client`][cyberun.Client] is accepted except
        ``api_key``, ``team_id``, ``base_url``, ``transport``,
        ``max_upload_size`` and ``upload_cache`` (kept as they are); one left
        out keeps this client's value.

        ```python
        from cyberun import Client, RetryPolicy

        client = Client("sk-example", base_url="http://127.0.0.1:9")
        patient = client.with_options(timeout=120, retry=8)
        paced = client.with_options(retry=RetryPolicy.never())  # your own pacer retries
        assert patient.timeout.read == 120 and paced.retry.attempts == 1
        assert patient.transport is client.transport
        ```

        Raises:
            ConfigurationError: a value that cannot work (as for ``Client``).
        """
        settings = self.stream_settings
        copy = object.__new__(type(self))
        copy.base_url = self.base_url
        copy._transport = self._transport
        copy._owns_transport = False
        copy._configure(
            self._api.credentials,
            timeout=self.timeout
            if isinstance(timeout, DefaultType)
            else Timeout.from_value(timeout),
            retry=self.retry if isinstance(retry, DefaultType) else RetryPolicy.from_value(retry),
            poll_interval=(
                self.poll_interval if isinstance(poll_interval, DefaultType) else poll_interval
            ),
            liveness_interval=(
                settings.liveness_interval
                if isinstance(liveness_interval, DefaultType)
                else liveness_interval
            ),
            max_stream_failures=(
                settings.max_failures
                if isinstance(max_stream_failures, DefaultType)
                else max_stream_failures
            ),
            reconnect_backoff=(
                settings.reconnect_backoff
                if isinstance(reconnect_backoff, DefaultType)
                else reconnect_backoff
            ),
            max_upload_size=self.max_upload_size,
            upload_cache=self._upload_cache,
        )
        return copy

    def __repr__(self) -> str:
        return f"<cyberun.Client base_url={self.base_url!r} transport={self._transport!r}>"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def close(self) -> None:
        """Stop every wait and stream in progress (tasks keep running) and release connections.

        A copy made by [`with_options`][cyberun.Client.with_options] stops its own waits
        and leaves the shared transport open.
        """
        with self._lock:
            self._closed = True
            controls = list(self._controls)
        for control in controls:
            control.interrupt()
        if self._owns_transport:
            self._transport.close()

    @property
    def transport(self) -> Transport:
        """The transport that sends this client's requests (created now if it was not yet)."""
        if isinstance(self._transport, _DeferredTransport):
            return self._transport.get()
        return self._transport

    @property
    def api(self) -> Endpoints:
        """The endpoint layer, one method per API endpoint (for advanced use)."""
        return self._api

    # -- tasks -----------------------------------------------------------------------------

    def run(
        self,
        workflow: str,
        parameters: Optional[Mapping[str, Any]] = None,
        *,
        dispatch_target: Union[DispatchTargetName, DispatchTarget, None] = None,
        target_pool: Union[TargetPoolName, TargetPool, None] = None,
        submitter_region: Optional[str] = None,
        tool_type: Union[ToolTypeName, ToolType, None] = None,
        validate: bool = True,
        on_upload_progress: Optional[UploadProgress] = None,
        extra_body: Optional[Mapping[str, Any]] = None,
    ) -> TaskHandle:
        """Start a workflow and return a handle to the new task.

        Args:
            workflow: a workflow id, a slug, or ``slug@version``.
            parameters: the workflow's parameters. A ``pathlib.Path`` or an
                open binary file is uploaded first (``files/presign`` plus a
                streamed PUT) and replaced by its file key; a string is sent
                as it is (an existing file key, for instance).
            dispatch_target: ``"agent"`` or ``"comfy_cloud"``.
            target_pool: ``"team"`` or ``"community"``.
            submitter_region: for example ``"us-east"``.
            tool_type: ``"comfyui"`` or ``"nerfstudio"``.
            validate: check the parameters against the workflow's definitions
                before anything is uploaded or started, and raise
                [`ParameterError`][cyberun.ParameterError] listing every
                problem. The definitions are fetched once per client and
                workflow (one GET), then reused. ``False`` skips the check.
            on_upload_progress: called as ``(key, bytes_sent, total)`` while
                file parameters upload.
            extra_body: further fields for the run request's body, for
                options newer than this SDK; they are sent as given and win
                over the fields above.

        Returns:
            A handle to the new task.

        Raises:
            ParameterError: ``validate`` found problems.
            ValueError: a choice (``dispatch_target``, ``target_pool``,
                ``tool_type``) that this SDK does not know.
            SubmissionUncertain: the request may have reached the server but
                its answer was lost; the task may exist. Never retried.
        """
        params: Dict[str, Any] = dict(parameters or {})
        body: Dict[str, Any] = {"parameters": params}
        for name, choice, known in (
            ("dispatch_target", dispatch_target, DispatchTarget),
            ("target_pool", target_pool, TargetPool),
            ("submitter_region", submitter_region, None),
            ("tool_type", tool_type, ToolType),
        ):
            if choice is None:
                continue
            if known is not None:
                _check_choice(name, choice, known)
            body[name] = str(choice)
        if extra_body:
            body.update(extra_body)
        if validate:
            self._validate(workflow, params)
        uploads = upload_inputs(self._uploader, params, on_upload_progress)
        try:
            task_id = self._api.run_workflow(workflow, body)
        except BadRequest as exc:
            # A 400 proves no task started: an input the cache reused that the
            # service no longer has is uploaded again, and the run sent once more.
            if not reupload_stale(self._uploader, parameters or {}, params, uploads, exc):
                raise
            task_id = self._api.run_workflow(workflow, body)
        logger.info("started task %s (%s)", task_id, workflow)
        handle = TaskHandle(self, task_id)
        handle._uploads = uploads
        handle._parameters = {k: v for k, v in params.items() if k not in uploads}
        return handle

    def _validate(self, workflow: str, parameters: Mapping[str, Any]) -> None:
        """Check parameters against the workflow's definitions (fetched once per client)."""
        try:
            definition = self._workflow_definition(workflow)
        except CyberunError as exc:
            raise _with_message(
                exc,
                f"{exc} (while fetching the parameter definitions of {workflow!r} to check "
                "the parameters; pass validate=False to skip the check)",
            ) from exc
        # A local file for a file parameter is checked as the file key it becomes.
        checked = {
            key: (local_name_and_size(value)[0] if is_local_file(value) else value)
            for key, value in parameters.items()
        }
        raise_for_parameters(
            definition,
            checked,
            extra=file_problems(definition, parameters, max_upload_size=self.max_upload_size),
        )

    def _workflow_definition(self, workflow: str) -> Workflow:
        """The workflow as ``get_workflow`` returns it, fetched once per client."""
        with self._lock:
            definition = self._definitions.get(workflow)
        if definition is None:
            definition = self.get_workflow(workflow)
            with self._lock:
                self._definitions[workflow] = definition
        return definition

    def upload_file(
        self,
        file: FileLike,
        *,
        content_type: Optional[str] = None,
        on_progress: Optional[Callable[[int, int], None]] = None,
    ) -> str:
        """Upload an input file; return the file key to pass as a ``file`` parameter.

        The file is streamed, never read whole into memory. A folder is
        packed into a zip first (sorted, relative paths, symlinks skipped).
        A PUT that fails starts again from a fresh presigned URL; with
        ``upload_cache``, bytes uploaded before reuse their file key.
        """
        return self._uploader.upload(
            file, content_type=content_type, on_progress=on_progress
        ).file_key

    def task(self, task_id: str) -> TaskHandle:
        """A handle to an existing task (no request is made)."""
        return TaskHandle(self, task_id)

    def get_task(self, task_id: str) -> Task:
        """A task's status and metadata."""
        return self._api.get_task(task_id)

    def list_tasks(
        self,
        status: Union[TaskStatusName, TaskStatus, None] = None,
        *,
        per_page: int = 20,
        limit: Optional[int] = None,
    ) -> Iterator[Task]:
        """Tasks, newest first, fetched page by page as you iterate."""
        return self._api.iter_tasks(status=status, per_page=per_page, limit=limit)

    def find_submitted(self, error: SubmissionUncertain, *, skew: float = 300) -> List[Task]:
        """The tasks an uncertain submission may have started, newest first.

        A [`SubmissionUncertain`][cyberun.SubmissionUncertain] means the run
        request may have reached the server although its answer was lost.
        This lists the tasks of that workflow (a slug or ``slug@version`` is
        resolved to its workflow id) created within ``skew`` seconds either
        side of when the request was sent (the server's clock may differ from
        this machine's). One task: it is almost certainly the one started;
        none: the request most likely never started one.

        Args:
            error: the exception ``run`` raised.
            skew: seconds either side of ``error.submitted_at`` to accept.

        Returns:
            The candidate tasks, newest first (possibly empty).

        Raises:
            ValueError: ``error`` carries no workflow or submission time.
        """
        submitted_at = getattr(error, "submitted_at", None)
        workflow = getattr(error, "workflow", None)
        if not isinstance(submitted_at, datetime) or not workflow:
            raise ValueError(
                "find_submitted needs a SubmissionUncertain with its workflow and time"
            )
        if skew < 0:
            raise ValueError("skew must be 0 or more seconds")
        workflow_id = workflow if UUID.match(workflow) else self.get_workflow(workflow).id
        window = timedelta(seconds=skew)
        return _tasks_created_between(
            self._api, workflow_id, _aware(submitted_at) - window, _aware(submitted_at) + window
        )

    def cancel(self, task_id: str) -> None:
        """Cancel a task; a no-op on a task that has already ended."""
        self._api.cancel_task(task_id)

    def get_result(self, task_id: str) -> TaskResult:
        """A task's output and freshly signed download links."""
        return self._api.get_result(task_id)

    # -- workflows --------------------------------------------------------------------------

    def list_workflows(self) -> Iterator[Workflow]:
        """Every workflow, fetched page by page as you iterate."""
        return self._api.iter_workflows()

    def get_workflow(self, id_or_slug: str) -> Workflow:
        """A workflow by id, slug, or ``slug@version``."""
        return self._api.get_workflow(id_or_slug)

    # -- following ----------------------------------------------------------------------------

    def events(
        self,
        task_id: str,
        *,
        mode: FollowMode = "auto",
        timeout: Optional[float] = None,
        stop: Optional[threading.Event] = None,
    ) -> EventStream:
        """The task's events as they happen, until (and including) the terminal one.

        Args:
            task_id: the task.
            mode: ``"auto"`` (stream, fall back to polling), ``"stream"``
                (stream; after repeated failures it still falls back rather
                than fail), or ``"poll"``.
            timeout: stop with [`WaitTimeout`][cyberun.WaitTimeout] after this many seconds.
            stop: set this event (from any thread) to end the iteration.

        Returns:
            An [`EventStream`][cyberun.EventStream] (an iterator, and a context
                manager that closes it) of [`StatusEvent`][cyberun.StatusEvent],
                [`ProgressEvent`][cyberun.ProgressEvent] and
                [`ErrorEvent`][cyberun.ErrorEvent] (recoverable) as they come,
                then one of [`CompletedEvent`][cyberun.CompletedEvent],
                [`FailedEvent`][cyberun.FailedEvent] or
                [`CancelledEvent`][cyberun.CancelledEvent].
        """
        _check_mode(mode)
        control = self._control(timeout, stop)
        follower = self._follower(task_id, control, mode, fetch_result=False)
        events = follow_events(
            follower,
            self._api_for(control),
            control,
            timeout=self.timeout,
            wait_timeout=timeout,
        )
        return EventStream(events, control, lambda: self._release(control))

    def wait(
        self,
        task_id: str,
        *,
        timeout: Optional[float] = None,
        on_event: Optional[Callable[[TaskEvent], None]] = None,
        mode: FollowMode = "auto",
        cancel_on_timeout: bool = False,
        stop: Optional[threading.Event] = None,
    ) -> TaskResult:
        """Follow a task until it ends; return the result of a completed task.

        Args:
            task_id: the task.
            timeout: the most seconds to wait (wall clock, sleeping,
                reconnecting and fetching the result included); the call
                returns or raises within about half a second of it, whatever
                the server does. None waits as long as it takes.
            on_event: called with every event as it arrives.
            mode: ``"auto"``, ``"stream"`` or ``"poll"`` (see [`events`][cyberun.Client.events]).
            cancel_on_timeout: cancel the task on the server when the
                deadline passes, so it stops costing GPU time. A cancel that
                fails is attached to the ``WaitTimeout`` as ``cancel_error``.
            stop: set this event (from any thread) to stop waiting.

        Raises:
            TaskFailed: the task failed; ``error`` holds the server's message.
            TaskCancelled: the task was cancelled.
            UnknownTaskStatus: the task ended in a status this SDK does not know.
            WaitTimeout: the deadline passed; the task still runs on the
                server unless ``cancel_on_timeout``.
            WaitStopped: the stop event was set or the client closed.
        """
        _check_mode(mode)
        control = self._control(timeout, stop)
        try:
            follower = self._follower(task_id, control, mode, fetch_result=True)
            for event in drive(follower, self._api_for(control), control, timeout=self.timeout):
                if on_event is not None:
                    on_event(event)
        finally:
            self._release(control)
        outcome = follower.outcome
        assert outcome is not None
        cancel_error = None
        if outcome.kind == "timeout" and cancel_on_timeout:
            cancel_error = cancel_quietly(self._api, task_id)
        return settle(
            outcome,
            task_id,
            timeout,
            cancel_requested=cancel_on_timeout,
            cancel_error=cancel_error,
        )

    def _follower(
        self, task_id: str, control: Control, mode: str, *, fetch_result: bool
    ) -> Follower:
        return Follower(
            task_id,
            now=time.monotonic(),
            deadline=control.deadline,
            poll=mode == "poll",
            fetch_result=fetch_result,
            settings=self.stream_settings,
            poll_interval=self.poll_interval,
            random=random_source(),
        )

    def _control(self, timeout: Optional[float], stop: Optional[threading.Event]) -> Control:
        control = Control(timeout, stop)
        with self._lock:
            if self._closed:
                raise WaitStopped("the client is closed")
            self._controls.add(control)
        return control

    def _release(self, control: Control) -> None:
        with self._lock:
            self._controls.discard(control)

    def _api_for(self, control: Control) -> Endpoints:
        """The endpoint layer whose requests (and retry waits) end with this wait."""
        return self._api.scoped(deadline=control.deadline, cancel=control.token)

    # -- results -------------------------------------------------------------------------------

    def download(
        self,
        task_or_result: Union[str, TaskHandle, TaskResult],
        dest_dir: Union[str, os.PathLike[str]],
        *,
        overwrite: bool = False,
        on_progress: Optional[ProgressCallback] = None,
        reserve: Sequence[str] = (),
        max_concurrency: int = 4,
        on_total_progress: Optional[Callable[[int, Optional[int]], None]] = None,
    ) -> List[Path]:
        """Download every output file of a completed task into ``dest_dir``.

        Files are named after their output key (``9.images.0.png``) or the
        URL's file name, made safe and unique for any file system (the rule
        is in the results guide). Each is written to a temporary file and
        renamed into place when complete; a failed or interrupted download
        leaves nothing behind, and stale temporary files of an earlier
        download that was killed are removed. Expired links are refreshed
        once. A symlink at a target name is replaced (never written through),
        and only with ``overwrite``.

        Args:
            task_or_result: a task id, a handle, or a result already fetched.
            dest_dir: the folder (created if needed).
            overwrite: replace existing files (otherwise a clash is an error
                before anything is downloaded).
            on_progress: called as ``(file_name, bytes_done, bytes_total_or_None)``.
            reserve: names no output may take (and that may not exist yet
                without ``overwrite``): ``["cyberun-task.json"]`` before
                writing a run record with
                [`write_run_record`][cyberun.Client.write_run_record].
            max_concurrency: files fetched at a time when there are several,
                each on a thread and connection of its own (``on_progress``
                is then called from those threads); 1 fetches them one after
                another on the calling thread. A failure stops the others and
                leaves only complete files.
            on_total_progress: called as ``(bytes_done, bytes_total_or_None)``
                summed over every file (the total is known once every file
                has started).

        Returns:
            The paths written, in the result's order.

        Raises:
            TaskFailed: the task failed (the message is the server's).
            TaskCancelled: the task was cancelled.
            DownloadError: the task has not completed yet (the message names
                its status), or a file could not be fetched or written.
        """
        result, task_id = self._result_of(task_or_result)
        downloader = Downloader(self._api, lambda: self.get_result(task_id), timeout=self.timeout)
        _check_number("max_concurrency", max_concurrency, minimum=1, integer=True)
        return downloader.download_all(
            result,
            dest_dir,
            overwrite=overwrite,
            on_progress=on_progress,
            reserved=reserve,
            max_concurrency=max_concurrency,
            on_total_progress=on_total_progress,
        )

    def download_output(
        self,
        task_or_result: Union[str, TaskHandle, TaskResult],
        key: str,
        file: IO[bytes],
        *,
        on_progress: Optional[ProgressCallback] = None,
    ) -> int:
        """Stream one output into a binary file object you own; return the bytes written.

        Args:
            task_or_result: a task id, a handle, or a result.
            key: the output's key in ``download_urls`` (``""`` for ``download_url``).
            file: where to write; it is not closed.
            on_progress: as for [`download`][cyberun.Client.download].
        """
        result, task_id = self._result_of(task_or_result)
        downloader = Downloader(self._api, lambda: self.get_result(task_id), timeout=self.timeout)
        return downloader.download_into(result, key, file, on_progress=on_progress)

    def read_output(
        self,
        task_or_result: Union[str, TaskHandle, TaskResult],
        key: Optional[str] = None,
        *,
        max_bytes: Optional[int] = DEFAULT_MAX_READ,
    ) -> bytes:
        """One output's bytes, in memory.

        The same rules as [`download`][cyberun.Client.download]: only a
        completed task, expired links refreshed, resumes that never splice
        two objects.

        Args:
            task_or_result: a task id, a handle, or a result.
            key: the output's key in ``download_urls`` (``""`` for
                ``download_url``); None means the only output.
            max_bytes: refuse a larger output (default 100 MiB; None: no
                limit). Stream big ones with [`open_output`][cyberun.Client.open_output].

        Raises:
            DownloadError: no such output, several outputs and no ``key``
                (the message lists them), larger than ``max_bytes``, or
                the transfer failed.
            TaskFailed: the task failed (and ``TaskCancelled``).
        """
        result, task_id = self._result_of(task_or_result)
        downloader = Downloader(self._api, lambda: self.get_result(task_id), timeout=self.timeout)
        return downloader.read(result, key, max_bytes=max_bytes)

    def open_output(
        self,
        task_or_result: Union[str, TaskHandle, TaskResult],
        key: Optional[str] = None,
    ) -> io.BufferedReader:
        """One output as a readable binary stream; close it (or use ``with``) when done.

        ```python
        import cyberun

        with cyberun.Client() as client:
            task = client.run("text-to-image", {"prompt": "a fox"})
            with client.open_output(task.wait()) as stream:
                assert stream.read(8)[1:4] == b"PNG"
        ```

        Args:
            task_or_result: a task id, a handle, or a result.
            key: as for [`read_output`][cyberun.Client.read_output].

        Raises:
            DownloadError: as for [`read_output`][cyberun.Client.read_output]
                (transfer errors while reading, too).
        """
        result, task_id = self._result_of(task_or_result)
        downloader = Downloader(self._api, lambda: self.get_result(task_id), timeout=self.timeout)
        return downloader.open_stream(result, key)

    def _result_of(self, value: Union[str, TaskHandle, TaskResult]) -> Tuple[TaskResult, str]:
        if isinstance(value, TaskResult):
            return value, value.id
        task_id = value.id if isinstance(value, TaskHandle) else value
        return self.get_result(task_id), task_id

    def run_and_wait(
        self,
        workflow: str,
        parameters: Optional[Mapping[str, Any]] = None,
        *,
        dispatch_target: Union[DispatchTargetName, DispatchTarget, None] = None,
        target_pool: Union[TargetPoolName, TargetPool, None] = None,
        submitter_region: Optional[str] = None,
        tool_type: Union[ToolTypeName, ToolType, None] = None,
        validate: bool = True,
        on_upload_progress: Optional[UploadProgress] = None,
        extra_body: Optional[Mapping[str, Any]] = None,
        timeout: Optional[float] = None,
        on_event: Optional[Callable[[TaskEvent], None]] = None,
        mode: FollowMode = "auto",
        cancel_on_timeout: bool = False,
        stop: Optional[threading.Event] = None,
        download_to: Union[str, os.PathLike[str], None] = None,
        overwrite: bool = False,
        run_record: bool = True,
    ) -> RunOutcome:
        """Run a workflow, follow it to the end, and optionally download its files.

        The one call for scripts. Every keyword of [`run`][cyberun.Client.run]
        and of [`wait`][cyberun.Client.wait] is accepted here with the same
        meaning; anything else is a ``TypeError``.

        Args:
            workflow: as for [`run`][cyberun.Client.run].
            parameters: as for [`run`][cyberun.Client.run].
            dispatch_target: as for [`run`][cyberun.Client.run].
            target_pool: as for [`run`][cyberun.Client.run].
            submitter_region: as for [`run`][cyberun.Client.run].
            tool_type: as for [`run`][cyberun.Client.run].
            validate: as for [`run`][cyberun.Client.run] (on by default).
            on_upload_progress: as for [`run`][cyberun.Client.run].
            extra_body: as for [`run`][cyberun.Client.run].
            timeout: as for [`wait`][cyberun.Client.wait].
            on_event: as for [`wait`][cyberun.Client.wait].
            mode: as for [`wait`][cyberun.Client.wait].
            cancel_on_timeout: as for [`wait`][cyberun.Client.wait].
            stop: as for [`wait`][cyberun.Client.wait].
            download_to: a folder to download the result's files into. It is
                checked before the task is started: it must be a writable
                folder (or not exist yet) and, without ``overwrite``, hold no
                files yet.
            overwrite: download into a folder that holds files, replacing
                those with the same names.
            run_record: with ``download_to``, also write ``cyberun-task.json``
                there: the workflow, parameters (inputs as name, size and
                SHA-256), task id, GPU, agent, times, output files and the
                stage/message lines seen (see the results guide).

        Returns:
            The task, its result and the files downloaded.

        Raises:
            ParameterError: as [`run`][cyberun.Client.run] raises it.
            TaskFailed: as [`wait`][cyberun.Client.wait] raises it (and
                ``TaskCancelled``, ``WaitTimeout``, ``WaitStopped``).
            DownloadError: ``download_to`` cannot take the files (raised
                before anything is started), or a file could not be fetched
                or written.
        """
        _check_mode(mode)
        if download_to is not None:  # before a billed task starts, not after it ran
            check_destination(download_to, overwrite=overwrite)
        task = self.run(
            workflow,
            parameters,
            dispatch_target=dispatch_target,
            target_pool=target_pool,
            submitter_region=submitter_region,
            tool_type=tool_type,
            validate=validate,
            on_upload_progress=on_upload_progress,
            extra_body=extra_body,
        )
        log = EventLog()
        result = task.wait(
            timeout=timeout,
            on_event=log if on_event is None else _both(log, on_event),
            mode=mode,
            cancel_on_timeout=cancel_on_timeout,
            stop=stop,
        )
        if download_to is None:
            return RunOutcome(task=task, result=result, files=[])
        downloader = Downloader(self._api, lambda: self.get_result(task.id), timeout=self.timeout)
        named = downloader.download_named(
            result,
            download_to,
            overwrite=overwrite,
            reserved=[RECORD_NAME] if run_record else (),
            max_concurrency=4,
        )
        if run_record:
            self.write_run_record(task, download_to, named, log.lines, workflow=workflow)
        return RunOutcome(task=task, result=result, files=[path for _, path in named])

    def write_run_record(
        self,
        task: TaskHandle,
        folder: Union[str, os.PathLike[str]],
        outputs: Sequence[Tuple[str, Path]],
        log: Sequence[Mapping[str, Any]] = (),
        *,
        workflow: Optional[str] = None,
        parameters: Optional[Mapping[str, Any]] = None,
    ) -> Path:
        """Write ``cyberun-task.json`` for a finished task into ``folder``; return its path.

        [`run_and_wait`][cyberun.Client.run_and_wait] and the CLI's
        ``--download`` call this; call it yourself after your own downloads.

        Args:
            task: the task (a handle from ``run`` knows its uploaded inputs).
            folder: where the outputs are.
            outputs: ``(output key, path)`` of each file.
            log: the stage/message lines seen (an ``EventLog``'s ``lines``).
            workflow: the workflow string given to ``run`` (its definition,
                if fetched for validation, gives ``slug@version``).
            parameters: the run parameters, when known.
        """
        details = self.get_task(task.id)
        definition = self._definitions.get(workflow or "")
        if definition is None and details.workflow_id:
            try:
                definition = self.get_workflow(details.workflow_id)
            except CyberunError:  # the record is a courtesy; it never fails a run
                logger.info("could not fetch workflow %s for the run record", details.workflow_id)
        uploads = getattr(task, "_uploads", {})
        sent = dict(parameters if parameters is not None else getattr(task, "_parameters", {}))
        for key, done in uploads.items():
            sent[key] = done.file_key
        record = build_record(
            details,
            workflow=definition,
            parameters=sent,
            inputs={key: done.record() for key, done in uploads.items()},
            outputs=outputs,
            log=log,
        )
        return write_record(Path(folder), record)

    def as_completed(
        self,
        task_ids: Iterable[Union[str, TaskHandle]],
        *,
        max_streams: int = 8,
        timeout: Optional[float] = None,
        mode: FollowMode = "auto",
        on_event: Optional[BatchEventCallback] = None,
        cancel_on_timeout: bool = False,
    ) -> Iterator[Completion]:
        """Follow many tasks at once; yield a [`Completion`][cyberun.Completion] as each ends.

        At most ``max_streams`` tasks are streamed at a time, from that many
        threads; the others are polled by one more thread, so hundreds of
        tasks never mean hundreds of connections. A task that ends while
        polled is reported without ever being streamed; an error on a poll
        is retried like any GET and never ends a task early. Every task is
        reported once, with its real outcome. Stopping the iteration early
        (or dropping the iterator) stops every thread.

        Args:
            task_ids: task ids (or handles).
            max_streams: streams (and streaming threads) at most; 0 polls all.
            timeout: after this many seconds, every unfinished task is
                reported with a [`WaitTimeout`][cyberun.WaitTimeout] error.
            mode: ``"auto"`` or ``"poll"`` for the streamed tasks.
            on_event: called as ``on_event(task_id, event)`` with every event
                of every task, from the thread following that task.
            cancel_on_timeout: cancel the unfinished tasks when the deadline
                passes (a failed cancel is the ``WaitTimeout``'s ``cancel_error``).
        """
        _check_mode(mode)
        ids = list(dict.fromkeys(t.id if isinstance(t, TaskHandle) else t for t in task_ids))
        control = self._control(timeout, None)
        batch = Batch(
            self._api,
            ids,
            control=control,
            timeout=timeout,
            max_streams=max_streams,
            poll=mode == "poll",
            settings=self.stream_settings,
            poll_interval=self.poll_interval,
            request_timeout=self.timeout,
            on_event=on_event,
            cancel_on_timeout=cancel_on_timeout,
        )
        return batch.run()

    # -- webhooks (management API: a JWT with team id, or a dk- key) -----------------------------

    def create_webhook(
        self,
        url: str,
        events: Iterable[Union[WebhookEventName, WebhookEventType]] = (
            "task.completed",
            "task.failed",
        ),
        *,
        name: str = "cyberun",
    ) -> Webhook:
        """Subscribe ``url`` (https) to task events; the answer holds the secret (shown once)."""
        return self._api.create_webhook(
            display_name=name, webhook_url=url, webhook_events=list(events)
        )

    def get_webhook(self, webhook_id: str) -> Webhook:
        """One webhook subscription."""
        return self._api.get_webhook(webhook_id)

    def list_webhooks(self) -> Iterator[Webhook]:
        """Every webhook subscription."""
        return self._api.iter_webhooks()

    def update_webhook(
        self,
        webhook_id: str,
        *,
        url: Optional[str] = None,
        events: Optional[Iterable[Union[WebhookEventName, WebhookEventType]]] = None,
        name: Optional[str] = None,
        active: Optional[bool] = None,
    ) -> Webhook:
        """Change a subscription's URL, events, name or active state."""
        changes: Dict[str, Any] = {}
        if url is not None:
            changes["webhook_url"] = url
        if events is not None:
            changes["webhook_events"] = list(events)
        if name is not None:
            changes["display_name"] = name
        if active is not None:
            changes["is_active"] = active
        return self._api.update_webhook(webhook_id, changes)

    def delete_webhook(self, webhook_id: str) -> None:
        """Remove a subscription."""
        self._api.delete_webhook(webhook_id)

    def rotate_webhook_secret(self, webhook_id: str) -> str:
        """Issue a new signing secret; the old one stops working at once."""
        return self._api.rotate_webhook_secret(webhook_id)


class _DeferredTransport(BaseTransport):
    """A transport chosen by name, created (and its library imported) at the first request.

    Construction checks that the library is installed, so a missing optional
    dependency is a clear [`ConfigurationError`][cyberun.ConfigurationError] at once.
    """

    def __init__(self, name: str) -> None:
        self.auto = name == "auto"
        self.name = _transport_name(name)
        self.class_name = transport_class_name(self.name)
        self._created: Optional[Transport] = None
        self._lock = threading.Lock()

    def get(self) -> Transport:
        """The transport, created on the first call."""
        created = self._created
        if created is None:
            with self._lock:
                if self._created is None:
                    # "auto" falls back past a library that is installed but broken.
                    self._created = (
                        default_transport() if self.auto else transport_by_name(self.name)
                    )
                created = self._created
        return created

    def send(self, request: Request, **options: Any) -> Response:
        return self.get().send(request, **options)

    def close(self) -> None:
        with self._lock:
            created = self._created
        if created is not None:
            created.close()

    def __repr__(self) -> str:
        created = self._created
        return repr(created) if created is not None else f"<{self.class_name} (not yet created)>"


#: Optional libraries a transport needs -> the extra that installs them.
_TRANSPORT_EXTRAS = {"requests": "requests", "urllib3": "urllib3"}


def _transport_name(name: str) -> str:
    """The transport ``name`` stands for ("auto" resolved), checking its library is installed.

    Raises:
        ValueError: an unknown name.
        ConfigurationError: the named transport's library is not installed.
    """
    if name == "auto":
        return next((n for n in _TRANSPORT_EXTRAS if _installed(n)), "urllib")
    transport_class_name(name)  # raises ValueError for an unknown name
    if name in _TRANSPORT_EXTRAS and not _installed(name):
        raise ConfigurationError(
            f"transport {name!r} needs the optional {name!r} package, which is not installed: "
            f"pip install 'cyberun[{_TRANSPORT_EXTRAS[name]}]'"
        )
    return name


def _installed(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it."""
    if module in sys.modules:
        return sys.modules[module] is not None
    try:
        return find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _check_number(
    name: str,
    value: object,
    *,
    minimum: float,
    inclusive: bool = True,
    integer: bool = False,
) -> None:
    """Refuse a Client option that is not a number in range, naming the option."""
    kind = "an integer" if integer else "a number"
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or (integer and not isinstance(value, int))
    ):
        raise TypeError(f"{name} must be {kind}, not {value!r}")
    if value < minimum or (not inclusive and value == minimum):
        bound = f"at least {minimum:g}" if inclusive else f"greater than {minimum:g}"
        raise ConfigurationError(f"{name} must be {bound}, not {value!r}")


def _check_choice(name: str, value: str, known: Type[OpenEnum]) -> None:
    """Refuse a plain string that is not a documented value of ``known``.

    An instance of the open enumeration itself (``DispatchTarget("new")``)
    is the explicit way to send a value newer than this SDK.
    """
    if isinstance(value, known) or value in known._values:
        return
    allowed = " or ".join(repr(v) for v in known._values)
    raise ValueError(
        f"{name} must be {allowed}, not {value!r} (for a value newer than this SDK, pass "
        f"{known.__name__}({value!r}) or extra_body={{{name!r}: ...}})"
    )


def _with_message(error: CyberunError, message: str) -> CyberunError:
    """A copy of ``error`` (same class and attributes) with another message."""
    copy = copy_module.copy(error)
    copy.args = (message,)
    return copy


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def _tasks_created_between(
    api: Endpoints, workflow_id: str, start: datetime, end: datetime
) -> List[Task]:
    """Tasks of one workflow created in ``[start, end]``, newest first.

    The list is read newest first, as the server orders it, and reading
    stops after a page whose every task is older than ``start``; should the
    server turn out not to order its list, every page is read.
    """
    found: List[Task] = []
    ordered = True
    previous: Optional[datetime] = None
    page = 1
    while True:
        batch = api.list_tasks_page(page, 100)
        all_older = bool(batch.items)
        for task in batch.items:
            if task.created_at is None:
                all_older = False
                continue
            created = _aware(task.created_at)
            if previous is not None and created > previous:
                ordered = False
            previous = created
            if created >= start:
                all_older = False
            if task.workflow_id == workflow_id and start <= created <= end:
                found.append(task)
        if not batch.items or page >= batch.page_count or (ordered and all_older):
            break
        page += 1
    return sorted(found, key=lambda task: _aware(task.created_at or start), reverse=True)


def _check_mode(mode: object) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")


def _both(
    first: Callable[[TaskEvent], None], second: Callable[[TaskEvent], None]
) -> Callable[[TaskEvent], None]:
    def call(event: TaskEvent) -> None:
        first(event)
        second(event)

    return call


def _cache_scope(base_url: str, credentials: Credentials) -> str:
    """What upload cache entries are keyed by besides the bytes: the host and the team.

    A key whose team the server derives (``sk-``, ``dk-``) is identified by a
    hash of it; the cache never holds the key itself.
    """
    import hashlib

    team = credentials.team_id
    if team is None or credentials.kind in ("integration", "device"):
        team = "key:" + hashlib.sha256(credentials.secrets()[0].encode()).hexdigest()[:32]
    return f"{base_url}\n{team}"
