"""Transports: how the SDK sends HTTP.

Pick one, or let the client pick: requests if it is installed, else
urllib3, else the standard library. Each concrete transport imports its
library only when it is created.
"""

from __future__ import annotations

import importlib
from importlib.util import find_spec
from typing import TYPE_CHECKING, Any, Dict

from ._base import (
    DEFAULT,
    BaseTransport,
    Body,
    CancelToken,
    DefaultType,
    Headers,
    Request,
    Response,
    Timeout,
    Transport,
)
from .mock import MockTransport

if TYPE_CHECKING:  # pragma: no cover
    from .requests import RequestsTransport
    from .urllib import UrllibTransport
    from .urllib3 import Urllib3Transport

__all__ = [
    "DEFAULT",
    "BaseTransport",
    "Body",
    "CancelToken",
    "DefaultType",
    "Headers",
    "MockTransport",
    "Request",
    "RequestsTransport",
    "Response",
    "Timeout",
    "Transport",
    "Urllib3Transport",
    "UrllibTransport",
    "default_transport",
    "transport_by_name",
    "transport_class_name",
]

_LAZY: Dict[str, str] = {
    "RequestsTransport": ".requests",
    "Urllib3Transport": ".urllib3",
    "UrllibTransport": ".urllib",
}

# Names accepted by transport_by_name, in the order auto-selection tries them.
_BY_NAME = {
    "requests": "RequestsTransport",
    "urllib3": "Urllib3Transport",
    "urllib": "UrllibTransport",
}


def _lazy(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'cyberun.transports' has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)


# Hidden from type checkers, which see the TYPE_CHECKING imports above instead.
if not TYPE_CHECKING:
    __getattr__ = _lazy


def transport_class_name(name: str) -> str:
    """The class ``transport_by_name(name)`` creates, without importing it (not for "auto").

    Raises:
        ValueError: an unknown name.
    """
    if name not in _BY_NAME:
        raise ValueError(f"unknown transport {name!r}; choose from auto, {', '.join(_BY_NAME)}")
    return _BY_NAME[name]


def transport_by_name(name: str) -> Transport:
    """Create a transport by name: ``"requests"``, ``"urllib3"``, ``"urllib"`` or ``"auto"``."""
    if name == "auto":
        return default_transport()
    if name not in _BY_NAME:
        raise ValueError(f"unknown transport {name!r}; choose from auto, {', '.join(_BY_NAME)}")
    cls = _lazy(_BY_NAME[name])
    return cls()  # type: ignore[no-any-return]


def default_transport() -> Transport:
    """The best available transport: requests, else urllib3, else the standard library."""
    for library in ("requests", "urllib3"):
        if find_spec(library) is not None:
            try:
                return transport_by_name(library)
            except ImportError:  # installed but broken: try the next one
                continue
    return transport_by_name("urllib")
