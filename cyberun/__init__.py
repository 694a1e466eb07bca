"""cyberun: the Python SDK for the Cyberun Cloud task API.

Run a workflow, follow the task live, fetch its result files::

    import cyberun

    with cyberun.Client() as client:  # reads CYBERUN_API_KEY
        task = client.run("text-to-image", {"prompt": "a lighthouse at dusk"})
        result = task.wait(on_event=print)
        paths = client.download(result, "outputs/")

Only the errors are imported eagerly; everything else loads on first use, so
``import cyberun`` stays cheap and never imports an HTTP library.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Dict, List

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
    WaitStopped,
    WaitTimeout,
)

if TYPE_CHECKING:  # pragma: no cover - names for type checkers and IDEs
    pass

# Public name -> module that defines it; imported on first attribute access.
_LAZY: Dict[str, str] = {}

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
    "WaitStopped",
    "WaitTimeout",
    "__version__",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'cyberun' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(__all__))
