"""The emulator id modes the SDK's suites run against: one place decides.

``"off"``: as documented (no ``id:`` lines, no replay); ``"on"``: ids with
``Last-Event-ID`` replay. Both by default; ``CYBERUN_ID_MODES=off`` (or
``on``; comma-separated) restricts the run, as CI does for its secondary
environments.
"""

from __future__ import annotations

import os
from typing import List

_ALL = ["off", "on"]


def _chosen() -> List[str]:
    wanted = [m.strip() for m in os.environ.get("CYBERUN_ID_MODES", "").split(",") if m.strip()]
    unknown = sorted(set(wanted) - set(_ALL))
    if unknown:
        raise ValueError(f"CYBERUN_ID_MODES: unknown mode {', '.join(unknown)}; use off, on")
    return [m for m in _ALL if m in wanted] or list(_ALL)


#: The chosen modes, in order.
ID_MODES: List[str] = _chosen()
#: ``sse_ids`` values for pytest ``params``, and their ids.
SSE_IDS: List[bool] = [mode == "on" for mode in ID_MODES]
IDS: List[str] = [f"ids-{mode}" for mode in ID_MODES]
