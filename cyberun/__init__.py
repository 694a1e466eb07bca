"""cyberun: the Python SDK for the Cyberun Cloud task API.

Run a workflow, follow the task live, fetch its result files:

```python
import cyberun

with cyberun.Client() as client:  # reads CYBERUN_API_KEY
    task = client.run("text-to-image", {"prompt": "a lighthouse at dusk"})
    result = task.wait(on_event=print)
    paths = client.download(result, "outputs/")
```

Only the errors (and the logging setup: a ``NullHandler`` on the ``cyberun``
logger, and ``CYBERUN_LOG``) are imported eagerly; everything else loads on
first use, so ``import cyberun`` stays cheap and never imports an HTTP library.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Dict, List

from ._logging import install as _install_logging
from ._version import __version__
from .errors import (
    APIError,
    AuthenticationError,
    BadRequest,
    ConfigurationError,
    Conflict,
    ConnectError,
    ConnectTimeoutError,
    CyberunError,
    DecodeError,
    DownloadError,
    InvalidSignature,
    NotFound,
    ParameterError,
    PermissionDenied,
    RateLimited,
    ReadError,
    ReadTimeoutError,
    RequestCancelled,
    ServerError,
    SSELimitError,
    StreamError,
    SubmissionUncertain,
    TaskCancelled,
    TaskError,
    TaskFailed,
    TLSError,
    TooManyRedirects,
    TransportError,
    UnknownTaskStatus,
    WaitStopped,
    WaitTimeout,
)

if TYPE_CHECKING:  # pragma: no cover - names for type checkers and IDEs
    from ._convert import decode_event
    from .client import Client, Completion, EventStream, FollowMode, RunOutcome, TaskHandle
    from .models import (
        CancelledEvent,
        CompletedEvent,
        DispatchTarget,
        ErrorEvent,
        FailedEvent,
        OpenEnum,
        Page,
        ParameterDef,
        ParameterType,
        ProgressEvent,
        StatusEvent,
        TargetPool,
        Task,
        TaskEvent,
        TaskResult,
        TaskSource,
        TaskStatus,
        ToolType,
        UnknownEvent,
        UploadTarget,
        Webhook,
        WebhookDelivery,
        WebhookEventType,
        Workflow,
        WorkflowStatus,
    )
    from .retry import RetryPolicy
    from .sse import ServerSentEvent, SSEParser
    from .transports import (
        DEFAULT,
        BaseTransport,
        CancelToken,
        DefaultType,
        Headers,
        MockTransport,
        Request,
        RequestsTransport,
        Response,
        Timeout,
        Transport,
        Urllib3Transport,
        UrllibTransport,
    )
    from .webhooks import DeliveryDeduplicator, parse_delivery, sign_webhook, verify_signature

# Public name -> module that defines it; imported on first attribute access.
_LAZY: Dict[str, str] = {
    **dict.fromkeys(
        ["Client", "Completion", "EventStream", "FollowMode", "RunOutcome", "TaskHandle"],
        "cyberun.client",
    ),
    **dict.fromkeys(
        [
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
        ],
        "cyberun.models",
    ),
    **dict.fromkeys(
        [
            "DEFAULT",
            "BaseTransport",
            "DefaultType",
            "CancelToken",
            "Headers",
            "MockTransport",
            "Request",
            "RequestsTransport",
            "Response",
            "Timeout",
            "Transport",
            "Urllib3Transport",
            "UrllibTransport",
        ],
        "cyberun.transports",
    ),
    "RetryPolicy": "cyberun.retry",
    **dict.fromkeys(
        ["DeliveryDeduplicator", "parse_delivery", "sign_webhook", "verify_signature"],
        "cyberun.webhooks",
    ),
    "decode_event": "cyberun._convert",
    "SSEParser": "cyberun.sse",
    "ServerSentEvent": "cyberun.sse",
}

__all__ = [
    "DEFAULT",
    "APIError",
    "AuthenticationError",
    "BadRequest",
    "BaseTransport",
    "CancelToken",
    "CancelledEvent",
    "Client",
    "CompletedEvent",
    "Completion",
    "ConfigurationError",
    "Conflict",
    "ConnectError",
    "ConnectTimeoutError",
    "CyberunError",
    "DecodeError",
    "DefaultType",
    "DeliveryDeduplicator",
    "DispatchTarget",
    "DownloadError",
    "ErrorEvent",
    "EventStream",
    "FailedEvent",
    "FollowMode",
    "Headers",
    "InvalidSignature",
    "MockTransport",
    "NotFound",
    "OpenEnum",
    "Page",
    "ParameterDef",
    "ParameterError",
    "ParameterType",
    "PermissionDenied",
    "ProgressEvent",
    "RateLimited",
    "ReadError",
    "ReadTimeoutError",
    "Request",
    "RequestCancelled",
    "RequestsTransport",
    "Response",
    "RetryPolicy",
    "RunOutcome",
    "SSELimitError",
    "SSEParser",
    "ServerError",
    "ServerSentEvent",
    "StatusEvent",
    "StreamError",
    "SubmissionUncertain",
    "TLSError",
    "TargetPool",
    "Task",
    "TaskCancelled",
    "TaskError",
    "TaskEvent",
    "TaskFailed",
    "TaskHandle",
    "TaskResult",
    "TaskSource",
    "TaskStatus",
    "Timeout",
    "TooManyRedirects",
    "ToolType",
    "Transport",
    "TransportError",
    "UnknownEvent",
    "UnknownTaskStatus",
    "UploadTarget",
    "Urllib3Transport",
    "UrllibTransport",
    "WaitStopped",
    "WaitTimeout",
    "Webhook",
    "WebhookDelivery",
    "WebhookEventType",
    "Workflow",
    "WorkflowStatus",
    "__version__",
    "decode_event",
    "parse_delivery",
    "sign_webhook",
    "verify_signature",
]


_install_logging()


# Hidden from type checkers: they see the names imported under TYPE_CHECKING
# above, so `cyberun.Clinet` is an error there rather than `Any`.
if not TYPE_CHECKING:

    def __getattr__(name: str) -> Any:
        module_name = _LAZY.get(name)
        if module_name is None:
            raise AttributeError(f"module 'cyberun' has no attribute {name!r}")
        value = getattr(importlib.import_module(module_name), name)
        globals()[name] = value  # later lookups skip this function
        return value


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(__all__))
