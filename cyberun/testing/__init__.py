"""cyberun.testing: a real local Cyberun server for your tests (and ours).

``CyberunEmulator`` speaks the Cyberun API over HTTP/1.1 on loopback, using
the standard library only: tasks move through their lifecycle on a clock
you control, results are real files behind expiring presigned URLs on a
second loopback host, and faults (dropped streams, stalls, 5xx bursts,
expired URLs, truncated downloads...) can be injected on demand.

Three ways to use it:

- a context manager: ``with CyberunEmulator() as server: ...``;
- the pytest fixture ``cyberun_server`` (registered automatically when
  cyberun is installed);
- a command: ``python -m cyberun.testing serve --port 8765``.

It writes the wire format itself and never imports the SDK's models, so a
modelling bug in the SDK cannot hide behind it.
"""

from ._clock import ManualClock, ScaledClock
from ._emulator import CyberunEmulator
from ._faults import FAULTS, ROUTES, Fault
from ._http import RecordedRequest
from ._webhooks import DeliveryRecord, signature_header

__all__ = [
    "FAULTS",
    "ROUTES",
    "CyberunEmulator",
    "DeliveryRecord",
    "Fault",
    "ManualClock",
    "RecordedRequest",
    "ScaledClock",
    "signature_header",
]
