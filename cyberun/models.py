"""The API's data, as frozen attrs classes.

Field names follow the wire (``task_status``, ``download_urls``, ...) so
that the API documentation reads straight onto these classes. The classes
know nothing about JSON: the one converter in ``cyberun._convert`` turns
wire dictionaries into them and back.

Forward compatibility:

- Enumerations are *open*: [`TaskStatus`][cyberun.TaskStatus] and its siblings are ``str``
  subclasses with named constants for the documented values, and a value the
  SDK does not know yet (a new status such as ``provisioning``, a new tool)
  decodes to an instance holding the raw string instead of failing.
- Every model keeps the whole wire object in ``raw`` (read-only), so fields
  the server adds are reachable before the SDK knows them.
- Missing optional fields and ``null`` become ``None``; timestamps are
  timezone-aware ``datetime`` objects.
"""

from __future__ import annotations

from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any, ClassVar, Dict, FrozenSet, Generic, List, Mapping, Optional, Tuple, TypeVar

import attrs

from ._redact import REDACTED, redact_url

__all__ = [
    "CancelledEvent",
    "CompletedEvent",
    "DispatchTarget",
    "ErrorEvent",
    "FailedEvent",
    "OpenEnum",
    "Page",
    "ParameterDef",
    "ParameterType",
    "ProgressEvent",
    "StatusEvent",
    "TargetPool",
    "Task",
    "TaskEvent",
    "TaskResult",
    "TaskSource",
    "TaskStatus",
    "ToolType",
    "UnknownEvent",
    "UploadTarget",
    "Webhook",
    "WebhookDelivery",
    "WebhookEventType",
    "Workflow",
    "WorkflowStatus",
]

_EMPTY: Mapping[str, Any] = MappingProxyType({})


def _raw_field() -> Any:
    # The wire object the model came from; excluded from equality and repr.
    return attrs.field(default=_EMPTY, eq=False, repr=False, kw_only=True)


def _redacted_url_repr(url: Optional[str]) -> str:
    return "None" if url is None else repr(redact_url(url))


def _redacted_urls_repr(urls: Optional[Mapping[str, str]]) -> str:
    if urls is None:
        return "None"
    return repr({key: redact_url(url) for key, url in urls.items()})


def _secret_repr(value: Optional[str]) -> str:
    return "None" if value is None else repr(REDACTED)


# --- open enumerations ---------------------------------------------------------


class OpenEnum(str):
    """A string enumeration that also holds values the SDK does not know yet.

    Instances compare equal to their plain strings (``TaskStatus.RUNNING ==
    "running"``), the documented values are class constants, and an unknown
    value keeps its raw string rather than raising.
    """

    __slots__ = ()
    _values: ClassVar[Tuple[str, ...]] = ()

    def __new__(cls, value: str) -> OpenEnum:
        """Wrap ``value``; an instance of this class is returned as it is."""
        if isinstance(value, cls):
            return value
        if not isinstance(value, str):
            raise TypeError(f"{cls.__name__} needs a string, not {type(value).__name__}")
        return str.__new__(cls, value)

    @property
    def value(self) -> str:
        """The plain string value."""
        return str.__str__(self)

    @property
    def is_known(self) -> bool:
        """True when this SDK version documents this value."""
        return str(self) in self._values

    @classmethod
    def known(cls) -> Tuple[OpenEnum, ...]:
        """The values this SDK version documents, in order."""
        return tuple(cls(value) for value in cls._values)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str.__repr__(str(self))})"

    def __reduce__(self) -> Tuple[Any, Tuple[str]]:
        return (type(self), (str(self),))


class TaskStatus(OpenEnum):
    """A task's state. Terminal states: ``completed``, ``failed``, ``cancelled``."""

    __slots__ = ()
    _values = (
        "pending",
        "waiting",
        "provisioning",
        "queued",
        "running",
        "completed",
        "failed",
        "cancelled",
    )
    _terminal: ClassVar[FrozenSet[str]] = frozenset({"completed", "failed", "cancelled"})

    PENDING: ClassVar[TaskStatus]
    WAITING: ClassVar[TaskStatus]
    PROVISIONING: ClassVar[TaskStatus]
    QUEUED: ClassVar[TaskStatus]
    RUNNING: ClassVar[TaskStatus]
    COMPLETED: ClassVar[TaskStatus]
    FAILED: ClassVar[TaskStatus]
    CANCELLED: ClassVar[TaskStatus]

    @property
    def is_terminal(self) -> bool:
        """True for ``completed``, ``failed`` and ``cancelled``: the task will not change again."""
        return str(self) in self._terminal


class TaskSource(OpenEnum):
    """How a task was created: ``jwt`` (web UI) or ``api_key``."""

    __slots__ = ()
    _values = ("jwt", "api_key")
    JWT: ClassVar[TaskSource]
    API_KEY: ClassVar[TaskSource]


class ToolType(OpenEnum):
    """The runtime a workflow runs on: ``comfyui`` or ``nerfstudio``."""

    __slots__ = ()
    _values = ("comfyui", "nerfstudio")
    COMFYUI: ClassVar[ToolType]
    NERFSTUDIO: ClassVar[ToolType]


class DispatchTarget(OpenEnum):
    """Where a task runs: ``agent`` (your own GPUs) or ``comfy_cloud``."""

    __slots__ = ()
    _values = ("agent", "comfy_cloud")
    AGENT: ClassVar[DispatchTarget]
    COMFY_CLOUD: ClassVar[DispatchTarget]


class TargetPool(OpenEnum):
    """The dispatch pool: ``team`` or ``community``."""

    __slots__ = ()
    _values = ("team", "community")
    TEAM: ClassVar[TargetPool]
    COMMUNITY: ClassVar[TargetPool]


class WorkflowStatus(OpenEnum):
    """Whether a workflow accepts new tasks: ``active`` or ``disabled``."""

    __slots__ = ()
    _values = ("active", "disabled")
    ACTIVE: ClassVar[WorkflowStatus]
    DISABLED: ClassVar[WorkflowStatus]


class ParameterType(OpenEnum):
    """A workflow parameter's type."""

    __slots__ = ()
    _values = ("string", "number", "boolean", "select", "file")
    STRING: ClassVar[ParameterType]
    NUMBER: ClassVar[ParameterType]
    BOOLEAN: ClassVar[ParameterType]
    SELECT: ClassVar[ParameterType]
    FILE: ClassVar[ParameterType]


class WebhookEventType(OpenEnum):
    """A webhook delivery's event: ``task.completed`` or ``task.failed``."""

    __slots__ = ()
    _values = ("task.completed", "task.failed")
    TASK_COMPLETED: ClassVar[WebhookEventType]
    TASK_FAILED: ClassVar[WebhookEventType]


for _enum in (
    TaskStatus,
    TaskSource,
    ToolType,
    DispatchTarget,
    TargetPool,
    WorkflowStatus,
    ParameterType,
    WebhookEventType,
):
    for _value in _enum._values:
        setattr(_enum, _value.replace(".", "_").upper(), _enum(_value))
del _enum, _value


# --- tasks ---------------------------------------------------------------------


@attrs.frozen
class Task:
    """A task's status and metadata (``GET /tasks/{id}``).

    Output data and download links are not here: see [`TaskResult`][cyberun.TaskResult].

    Attributes:
        id: the task's UUID.
        workflow_id: the workflow it runs.
        task_source: ``jwt`` or ``api_key``: how it was started.
        task_status: ``pending``, ``waiting``, ``queued``, ``running``,
            ``completed``, ``failed`` or ``cancelled`` (or a newer value,
            kept as it is).
        created_at: when it was created (timezone-aware).
        task_error: the failure message; ``""`` unless failed.
        retry_count: 0 for the first attempt.
        started_at: when it started running, if it has.
        completed_at: when it reached a terminal state, if it has.
        agent_id: the GPU agent running it, if known.
        agent_labels: that agent's labels.
        gateway_id: the gateway it went through, if known.
        gpu_type: the GPU it runs on, if known.
        dispatch_target: ``agent`` or ``comfy_cloud``.
        target_pool: ``team`` or ``community``.
        tool_type: ``comfyui`` or ``nerfstudio``.
        raw: the JSON object as received, unknown fields included.
    """

    id: str
    workflow_id: Optional[str] = None
    task_source: Optional[TaskSource] = None
    task_status: Optional[TaskStatus] = None
    created_at: Optional[datetime] = None
    task_error: str = ""
    retry_count: int = 0
    started_at: Optional[datetime] = None
    completed_at: Optional[datetime] = None
    agent_id: Optional[str] = None
    agent_labels: Optional[List[str]] = None
    gateway_id: Optional[str] = None
    gpu_type: Optional[str] = None
    dispatch_target: Optional[DispatchTarget] = None
    target_pool: Optional[TargetPool] = None
    tool_type: Optional[ToolType] = None
    raw: Mapping[str, Any] = _raw_field()

    @property
    def is_terminal(self) -> bool:
        """True once the task is completed, failed or cancelled."""
        return self.task_status is not None and self.task_status.is_terminal

    @property
    def queue_seconds(self) -> Optional[float]:
        """Seconds from creation until it started running (None until it has)."""
        return _seconds_between(self.created_at, self.started_at)

    @property
    def run_seconds(self) -> Optional[float]:
        """Seconds from the start of its run until it ended (None until both happened)."""
        return _seconds_between(self.started_at, self.completed_at)


def _seconds_between(start: Optional[datetime], end: Optional[datetime]) -> Optional[float]:
    if start is None or end is None:
        return None
    if (start.tzinfo is None) != (end.tzinfo is None):  # one naive: read both as UTC
        start, end = start.replace(tzinfo=None), end.replace(tzinfo=None)
    return max((end - start).total_seconds(), 0.0)


@attrs.frozen
class TaskResult:
    """A task's output and presigned download links (``GET /tasks/{id}/result``).

    The links expire (about an hour after the request): fetch the result again
    for fresh ones. ``repr`` hides their signatures.

    Attributes:
        id: the task's UUID.
        task_status: the task's status (``completed`` when there are files).
        task_output: the output metadata, e.g. ``{"storage_key": ...,
            "image_count": 1}``; None unless completed.
        download_url: the presigned link to the primary output, or None.
        download_urls: every output's presigned link by output key (for
            example ``"9.images.0"``), for tasks with several outputs.
        expires_at: when the links stop working.
        task_error: the failure message; ``""`` unless failed.
        completed_at: when the task reached a terminal state.
        raw: the JSON object as received, unknown fields included.
    """

    id: str
    task_status: Optional[TaskStatus] = None
    task_output: Optional[Dict[str, Any]] = None
    download_url: Optional[str] = attrs.field(default=None, repr=_redacted_url_repr)
    download_urls: Optional[Dict[str, str]] = attrs.field(default=None, repr=_redacted_urls_repr)
    expires_at: Optional[datetime] = None
    task_error: str = ""
    completed_at: Optional[datetime] = None
    raw: Mapping[str, Any] = _raw_field()

    def urls(self) -> List[Tuple[str, str]]:
        """Every downloadable output as ``(key, url)``; a URL listed twice appears once.

        Keys come from ``download_urls``; the primary ``download_url`` gets the
        key ``""`` unless the same URL is also listed under a real key.
        """
        found: List[Tuple[str, str]] = []
        seen = set()
        for key, url in (self.download_urls or {}).items():
            if url and url not in seen:
                seen.add(url)
                found.append((key, url))
        if self.download_url and self.download_url not in seen:
            found.insert(0, ("", self.download_url))
        return found

    def is_expired(self, now: Optional[datetime] = None, *, margin: float = 0.0) -> bool:
        """True when ``expires_at`` has passed (or passes within ``margin`` seconds)."""
        if self.expires_at is None:
            return False
        now = now or datetime.now(timezone.utc)
        return (self.expires_at - now).total_seconds() <= margin


# --- workflows -----------------------------------------------------------------


@attrs.frozen
class ParameterDef:
    """One input a workflow accepts, with the rules a value must follow.

    Attributes:
        key: the name to use in ``parameters``.
        type: ``string``, ``number``, ``boolean``, ``select`` or ``file``.
        label: a human-readable name.
        description: what it does.
        required: whether a run must give it.
        default: the value used when it is not given.
        min: the smallest allowed number (``number`` only).
        max: the largest allowed number (``number`` only).
        options: the allowed values (``select`` only); see
            [`option_values`][cyberun.ParameterDef.option_values].
        accept: the accepted file types (``file`` only).
        source_key: the input name a file is staged under.
        node_id: server-side wiring into the workflow graph.
        field: server-side wiring into the workflow graph.
        target_path: server-side wiring into the workflow graph.
        raw: the JSON object as received.
    """

    key: str
    type: Optional[ParameterType] = None
    label: Optional[str] = None
    description: Optional[str] = None
    required: bool = False
    default: Any = None
    min: Optional[float] = None
    max: Optional[float] = None
    options: Optional[List[Any]] = None
    accept: Any = None
    source_key: Optional[str] = None
    node_id: Any = None
    field: Any = None
    target_path: Any = None
    raw: Mapping[str, Any] = _raw_field()

    def option_values(self) -> List[Any]:
        """The allowed values of a ``select``: plain options, or each option's ``value``."""
        values = []
        for option in self.options or []:
            if isinstance(option, Mapping) and "value" in option:
                values.append(option["value"])
            else:
                values.append(option)
        return values


@attrs.frozen
class Workflow:
    """A runnable workflow template and the parameters it takes.

    Attributes:
        id: the workflow's UUID.
        workflow_slug: its slug, as used in ``run("slug")``.
        display_name: a human-readable name.
        version: its version number (``run("slug@2")`` pins one).
        workflow_status: ``active`` or ``disabled`` (a disabled workflow
            rejects new tasks).
        created_at: when it was created.
        updated_at: when it last changed.
        description: what it does.
        workflow_json: the workflow graph (absent for ``sk-`` callers);
            hidden from ``repr``.
        parameters: the inputs it accepts.
        required_labels: agent labels a GPU agent must have to run it.
        task_timeout: seconds a task may run (0 means no limit).
        max_retries: how often a failed task is retried by the server.
        preferred_gpu: the GPU type it prefers.
        default_dispatch_target: ``agent`` or ``comfy_cloud``.
        min_vram_gb: the GPU memory it needs.
        required_models: the models it needs.
        tool_type: ``comfyui`` or ``nerfstudio``.
        raw: the JSON object as received.
    """

    id: str
    workflow_slug: Optional[str] = None
    display_name: Optional[str] = None
    version: Optional[int] = None
    workflow_status: Optional[WorkflowStatus] = None
    created_at: Optional[datetime] = None
    updated_at: Optional[datetime] = None
    description: Optional[str] = None
    workflow_json: Optional[Dict[str, Any]] = attrs.field(default=None, repr=False)
    parameters: List[ParameterDef] = attrs.Factory(list)
    required_labels: Optional[List[str]] = None
    task_timeout: Optional[int] = None
    max_retries: Optional[int] = None
    preferred_gpu: Optional[str] = None
    default_dispatch_target: Optional[DispatchTarget] = None
    min_vram_gb: Optional[float] = None
    required_models: Optional[List[Any]] = None
    tool_type: Optional[ToolType] = None
    raw: Mapping[str, Any] = _raw_field()

    def parameter(self, key: str) -> Optional[ParameterDef]:
        """The definition of parameter ``key``, or ``None``."""
        return next((p for p in self.parameters if p.key == key), None)


# --- lists, uploads, webhooks -----------------------------------------------------

T = TypeVar("T")


@attrs.frozen
class Page(Generic[T]):
    """One page of a list endpoint.

    Attributes:
        items: this page's items.
        current_page: its number, from 1.
        per_page: the page size asked for.
        total_count: how many items all pages hold together.
    """

    items: List[T]
    current_page: int = 1
    per_page: int = 0
    total_count: int = 0

    @property
    def page_count(self) -> int:
        """How many pages ``total_count`` makes at this page size."""
        if self.per_page <= 0:
            return 1 if self.items else 0
        return -(-self.total_count // self.per_page)


@attrs.frozen
class UploadTarget:
    """Where to upload one input file (the ``files/presign`` answer).

    PUT the bytes to ``upload_url`` with every ``upload_headers`` entry, then
    pass ``file_key`` as the value of the workflow's ``file`` parameter.

    Attributes:
        file_key: the value to pass for the ``file`` parameter.
        upload_url: the presigned PUT link (hidden from ``repr``).
        upload_headers: headers the PUT must carry verbatim (they are signed).
        raw: the JSON object as received.
    """

    file_key: str
    upload_url: str = attrs.field(repr=_redacted_url_repr)
    upload_headers: Dict[str, str] = attrs.Factory(dict)
    raw: Mapping[str, Any] = _raw_field()


@attrs.frozen
class Webhook:
    """A webhook subscription.

    Attributes:
        id: the subscription's id.
        display_name: its name.
        webhook_url: where deliveries are POSTed.
        webhook_events: ``task.completed`` and/or ``task.failed``.
        webhook_secret: the ``whsec_...`` signing secret, present only in the
            answer that created it; hidden from ``repr``.
        is_active: whether deliveries are sent.
        created_at: when it was created.
        updated_at: when it last changed.
        raw: the JSON object as received.
    """

    id: str
    display_name: Optional[str] = None
    webhook_url: Optional[str] = None
    webhook_events: List[str] = attrs.Factory(list)
    webhook_secret: Optional[str] = attrs.field(default=None, repr=_secret_repr)
    is_active: Optional[bool] = None
    created_at: Optional[datetime] = None
    updated_at: Optional[datetime] = None
    raw: Mapping[str, Any] = _raw_field()


@attrs.frozen
class WebhookDelivery:
    """The body of one webhook call (``task.completed`` or ``task.failed``).

    Attributes:
        event_type: ``task.completed`` or ``task.failed`` (a newer type is
            kept as it is).
        task_id: the task it is about.
        task_status: the task's status.
        task_output: the output metadata of a completed task.
        task_error: the failure message of a failed task.
        timestamp: when the event happened.
        raw: the JSON object as received.
    """

    event_type: WebhookEventType
    task_id: str
    task_status: Optional[TaskStatus] = None
    task_output: Optional[Dict[str, Any]] = None
    task_error: str = ""
    timestamp: Optional[datetime] = None
    raw: Mapping[str, Any] = _raw_field()

    @property
    def delivery_key(self) -> Tuple[str, str]:
        """``(task_id, event_type)``: identifies a delivery across its retries."""
        return (self.task_id, str(self.event_type))


# --- task events -----------------------------------------------------------------


@attrs.frozen
class TaskEvent:
    """Base class of everything ``events()`` yields.

    Attributes:
        task_id: the task the event is about ("" when the server omitted it).
        event_id: the stream's event id (``id:``), or ``""``.
        timestamp: when the server says it happened, if it said.
        raw: the event's decoded JSON data (``{}`` when there was none).
    """

    type: ClassVar[str] = ""
    is_terminal: ClassVar[bool] = False

    task_id: str = attrs.field(default="", kw_only=True)
    event_id: str = attrs.field(default="", kw_only=True, eq=False)
    timestamp: Optional[datetime] = attrs.field(default=None, kw_only=True)
    raw: Mapping[str, Any] = _raw_field()


@attrs.frozen
class StatusEvent(TaskEvent):
    """The task's status changed (pending → waiting → queued → running ...).

    Attributes:
        status: the new status.
    """

    type: ClassVar[str] = "status"
    status: TaskStatus = attrs.field(kw_only=True)


@attrs.frozen
class ProgressEvent(TaskEvent):
    """An execution tick: overall progress and, per runtime, steps, node, stage and message.

    Attributes:
        progress: overall progress from 0.0 to 1.0, if sent.
        step_current: the current step (ComfyUI samplers), if sent.
        step_total: the number of steps, if sent.
        current_node: the ComfyUI node executing, if sent.
        stage: the Nerfstudio stage (``download``, ``process_data``,
            ``train``, ``export``, ``upload``), if sent.
        message: a human-readable note, if sent.
    """

    type: ClassVar[str] = "progress"
    progress: Optional[float] = attrs.field(default=None, kw_only=True)
    step_current: Optional[int] = attrs.field(default=None, kw_only=True)
    step_total: Optional[int] = attrs.field(default=None, kw_only=True)
    current_node: Optional[str] = attrs.field(default=None, kw_only=True)
    stage: Optional[str] = attrs.field(default=None, kw_only=True)
    message: Optional[str] = attrs.field(default=None, kw_only=True)

    @property
    def percentage(self) -> Optional[float]:
        """Progress in percent (0 to 100), from ``progress`` or else from the steps."""
        if self.progress is not None:
            value = self.progress * 100.0
        elif self.step_current is not None and self.step_total:
            value = self.step_current * 100.0 / self.step_total
        else:
            return None
        return min(max(value, 0.0), 100.0)


@attrs.frozen
class CompletedEvent(TaskEvent):
    """The task completed (terminal).

    Attributes:
        status: ``completed``.
        completed_at: when, if sent.
        output: the task's output object, if sent. The download links come
            with the result: see [`Client.get_result`][cyberun.Client.get_result].
    """

    type: ClassVar[str] = "completed"
    is_terminal: ClassVar[bool] = True
    status: TaskStatus = attrs.field(default=TaskStatus.COMPLETED, kw_only=True)
    completed_at: Optional[datetime] = attrs.field(default=None, kw_only=True)
    output: Optional[Dict[str, Any]] = attrs.field(default=None, kw_only=True)


@attrs.frozen
class FailedEvent(TaskEvent):
    """The task failed (terminal).

    Attributes:
        status: ``failed``.
        error: the server's message.
    """

    type: ClassVar[str] = "failed"
    is_terminal: ClassVar[bool] = True
    status: TaskStatus = attrs.field(default=TaskStatus.FAILED, kw_only=True)
    error: str = attrs.field(default="", kw_only=True)


@attrs.frozen
class CancelledEvent(TaskEvent):
    """The task was cancelled (terminal).

    Attributes:
        status: ``cancelled``.
    """

    type: ClassVar[str] = "cancelled"
    is_terminal: ClassVar[bool] = True
    status: TaskStatus = attrs.field(default=TaskStatus.CANCELLED, kw_only=True)


@attrs.frozen
class ErrorEvent(TaskEvent):
    """The server had a problem reading the task's status; recoverable, following continues.

    Attributes:
        message: the server's message.
    """

    type: ClassVar[str] = "error"
    message: str = attrs.field(default="", kw_only=True)


@attrs.frozen
class UnknownEvent(TaskEvent):
    """An event type this SDK version does not know; kept, never dropped.

    Attributes:
        event: the event's type as sent.
        data: the event's data as sent (its JSON, if any, is in ``raw``).
    """

    type: ClassVar[str] = "unknown"
    event: str = attrs.field(default="", kw_only=True)
    data: str = attrs.field(default="", kw_only=True)
