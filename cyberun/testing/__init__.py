"""cyberun.testing: a real local Cyberun server for your tests (and ours).

``CyberunEmulator`` speaks the Cyberun API over HTTP/1.1 on loopback, using
the standard library only: tasks follow a [`Timeline`][cyberun.testing.Timeline]
on a clock you control, results are real files behind expiring presigned
URLs on a second loopback host, and faults (dropped streams, stalls, 5xx
bursts, expired URLs, truncated downloads...) can be injected on demand.

Three ways to use it:

- a context manager: ``with CyberunEmulator() as server: ...``;
- the pytest fixtures ``cyberun_server`` and ``cyberun_session_server``
  (registered automatically when cyberun is installed; ``-p no:cyberun``
  turns them off);
- a command: ``python -m cyberun.testing serve --port 8765``.

It writes the wire format itself and never imports the SDK's models, so a
modelling bug in the SDK cannot hide behind it. Names load on first use:
importing this package (as the pytest plugin does) costs nothing until a
name is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Dict, List

if TYPE_CHECKING:  # pragma: no cover - names for type checkers and IDEs
    from ._clock import ManualClock, ScaledClock
    from ._emulator import CyberunEmulator
    from ._faults import FAULT_ROUTES, FAULTS, ROUTES, Fault
    from ._hooks import Hook, HookCall
    from ._recording import RecordingTransport
    from ._records import DeliveryRecord, RecordedRequest, signature_header
    from ._responses import register_task
    from ._timeline import Step, Timeline

# Public name -> module that defines it; imported on first attribute access.
_LAZY: Dict[str, str] = {
    "CyberunEmulator": "cyberun.testing._emulator",
    "DeliveryRecord": "cyberun.testing._records",
    "FAULTS": "cyberun.testing._faults",
    "FAULT_ROUTES": "cyberun.testing._faults",
    "Fault": "cyberun.testing._faults",
    "Hook": "cyberun.testing._hooks",
    "HookCall": "cyberun.testing._hooks",
    "ManualClock": "cyberun.testing._clock",
    "ROUTES": "cyberun.testing._faults",
    "RecordedRequest": "cyberun.testing._records",
    "RecordingTransport": "cyberun.testing._recording",
    "ScaledClock": "cyberun.testing._clock",
    "Step": "cyberun.testing._timeline",
    "Timeline": "cyberun.testing._timeline",
    "register_task": "cyberun.testing._responses",
    "signature_header": "cyberun.testing._records",
}

__all__ = [
    "FAULTS",
    "FAULT_ROUTES",
    "ROUTES",
    "CyberunEmulator",
    "DeliveryRecord",
    "Fault",
    "Hook",
    "HookCall",
    "ManualClock",
    "RecordedRequest",
    "RecordingTransport",
    "ScaledClock",
    "Step",
    "Timeline",
    "register_task",
    "signature_header",
]


# Hidden from type checkers: they see the names imported under TYPE_CHECKING.
if not TYPE_CHECKING:

    def __getattr__(name: str) -> Any:
        module_name = _LAZY.get(name)
        if module_name is None:
            raise AttributeError(f"module 'cyberun.testing' has no attribute {name!r}")
        value = getattr(importlib.import_module(module_name), name)
        globals()[name] = value  # later lookups skip this function
        return value


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(__all__))
