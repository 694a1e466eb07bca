"""The fault matrix: every fault the emulator can inject, alone and in pairs,
against ``events()``, ``wait()`` in each mode, and ``download()``.

Each cell asserts the documented outcome (the SDK recovers: success, with the
fallback noted) and an upper bound on the API requests it made. Tasks have
already finished and streams replay their whole history, so counts are exact
and deterministic. ``docs/content/reliability.md`` shows ``EXPECTED`` as a
table; a test checks that the page and this table agree.
"""

from __future__ import annotations

import itertools
import os
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, NamedTuple

import pytest
from idmodes import IDS, SSE_IDS

import cyberun
from cyberun.testing import FAULTS, CyberunEmulator, ManualClock
from cyberun.transports import Timeout


class Fault(NamedTuple):
    kind: str
    route: str
    params: Dict[str, Any]
    times: Any = 1
    extra: int = 2  # the most API requests this fault may add to an operation
    note: str = "recovers"


FAULT_CASES: Dict[str, Fault] = {
    "status 503 on events": Fault("status", "events", {"status": 503}, extra=2),
    "status 503 on task": Fault("status", "task", {"status": 503}, extra=1),
    "status 503 on result": Fault("status", "result", {"status": 503}, extra=1),
    "status 429 + Retry-After on result": Fault(
        "status", "result", {"status": 429, "retry_after": 0.05}, extra=1
    ),
    "status 503 on download": Fault("status", "download", {"status": 503}, extra=0),
    "reset on result": Fault("reset", "result", {}, extra=1),
    "reset mid-download": Fault("reset", "download", {"after_bytes": 50}, extra=0),
    "latency on events": Fault("latency", "events", {"seconds": 0.1}, extra=0),
    "drop after 200 bytes": Fault("drop", "events", {"after_bytes": 200}, extra=2),
    "drop after 3 events": Fault("drop", "events", {"after_events": 3}, extra=2),
    "reset mid-stream": Fault("reset", "events", {"after_bytes": 300}, extra=2),
    "stall": Fault("stall", "events", {"seconds": 2.0, "after_events": 2}, extra=2),
    "keep-alives only": Fault(
        "keepalive_only", "events", {"interval": 0.02}, times=None, extra=1, note="liveness check"
    ),
    "wrong content type": Fault(
        "wrong_content_type", "events", {}, times=None, extra=1, note="falls back to polling"
    ),
    "malformed JSON": Fault(
        "malformed_json", "events", {"after_events": 4}, extra=2, note="event skipped"
    ),
    "error event": Fault("error_event", "events", {}, extra=0, note="ErrorEvent reported"),
    "no terminal event": Fault(
        "no_terminal", "events", {}, times=None, extra=2, note="terminal from GET"
    ),
    "slow drip": Fault("slow_drip", "events", {"delay": 0.0}, extra=0),
    "slow drip download": Fault("slow_drip", "download", {"delay": 0.0}, extra=0),
    "expired URLs": Fault("expire_urls", "result", {"seconds": 0}, extra=1, note="refreshed once"),
    "truncated download": Fault(
        "truncate", "download", {"after_bytes": 100}, extra=0, note="resumed with Range"
    ),
}

OPERATIONS = ["events", "wait auto", "wait stream", "wait poll", "download"]
# API requests of each operation on a healthy server (storage not counted).
BASELINE = {"events": 1, "wait auto": 2, "wait stream": 2, "wait poll": 2, "download": 1}


def applies(fault: Fault, operation: str) -> bool:
    """Whether the fault can touch this operation at all."""
    if fault.route in ("events",) and operation in ("wait poll", "download"):
        return False
    if fault.route == "download" and operation != "download":
        return False
    if fault.route == "result" and operation == "events":
        return False
    return not (fault.route == "task" and operation == "download")


def expected_outcome(fault: Fault, operation: str) -> str:
    return fault.note if applies(fault, operation) else "not affected"


EXPECTED: Dict[str, Dict[str, str]] = {
    name: {op: expected_outcome(fault, op) for op in OPERATIONS}
    for name, fault in FAULT_CASES.items()
}


def test_every_emulator_fault_is_in_the_matrix() -> None:
    assert {fault.kind for fault in FAULT_CASES.values()} == set(FAULTS)


@pytest.fixture(scope="module", params=SSE_IDS, ids=IDS)
def server(request: pytest.FixtureRequest) -> Iterator[CyberunEmulator]:
    # Without ids (the documented server) and with them. Streams replay the
    # whole history, so every cell sees the same bytes whatever the timing.
    with CyberunEmulator(
        clock=ManualClock(), sse_history="full", sse_ids=request.param
    ) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def client(server: CyberunEmulator) -> Iterator[cyberun.Client]:
    with cyberun.Client(
        server.api_key,
        base_url=server.base_url,
        timeout=Timeout(5, 0.5),
        poll_interval=0.02,
        liveness_interval=0.2,
        reconnect_backoff=0.0,
        retry=cyberun.RetryPolicy(backoff=0.0, retry_after_max=0.1),
    ) as c:
        yield c


def perform(client: cyberun.Client, operation: str, task_id: str, tmp: Path) -> Any:
    if operation == "events":
        events = list(client.events(task_id))
        assert isinstance(events[-1], cyberun.CompletedEvent)
        return events
    if operation.startswith("wait"):
        mode = operation.split()[1]
        result = client.wait(task_id, mode=mode)
        assert result.task_status == "completed" and result.download_url
        return result
    paths = client.download(task_id, tmp, overwrite=True)
    assert len(paths) == 1 and paths[0].read_bytes().startswith(b"\x89PNG")
    return paths


def run_cell(
    server: CyberunEmulator, client: cyberun.Client, faults: List[Fault], operation: str, tmp: Path
) -> int:
    task_id = server.create_task("text-to-image", {"prompt": "x", "steps": 3})
    server.advance(10)
    for fault in faults:
        server.inject(
            fault.kind, route=fault.route, task_id=task_id, times=fault.times, **fault.params
        )
    before = len([r for r in server.requests if r.task_id == task_id])
    try:
        perform(client, operation, task_id, tmp)
    finally:
        server.clear_faults()
    return len([r for r in server.requests if r.task_id == task_id]) - before


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("name", list(FAULT_CASES))
def test_single_faults(
    server: CyberunEmulator, client: cyberun.Client, name: str, operation: str, tmp_path: Path
) -> None:
    fault = FAULT_CASES[name]
    made = run_cell(server, client, [fault], operation, tmp_path)
    bound = BASELINE[operation] + (fault.extra if applies(fault, operation) else 0)
    assert made <= bound, f"{name} / {operation}: {made} requests, bound {bound}"


DEADLINE = 0.5


@pytest.mark.parametrize("mode", ["auto", "poll"])
@pytest.mark.parametrize("name", [n for n, f in FAULT_CASES.items() if f.route != "download"])
def test_the_deadline_holds_under_every_fault(
    server: CyberunEmulator, client: cyberun.Client, name: str, mode: str
) -> None:
    # A task that never ends (the manual clock stands still): every wait
    # must end in WaitTimeout within half a second of its deadline.
    fault = FAULT_CASES[name]
    task_id = server.create_task("text-to-image", {"prompt": "x", "steps": 3})
    times = None if fault.kind in ("latency", "status", "reset", "stall") else fault.times
    params = dict(fault.params)
    if fault.kind in ("latency", "stall"):
        params["seconds"] = 5.0  # longer than the deadline
    server.inject(fault.kind, route=fault.route, task_id=task_id, times=times, **params)
    started = time.monotonic()
    try:
        with pytest.raises(cyberun.WaitTimeout):
            client.wait(task_id, mode=mode, timeout=DEADLINE)
    finally:
        server.clear_faults()
    overrun = time.monotonic() - started - DEADLINE
    log = os.environ.get("CYBERUN_OVERRUN_LOG")
    if log:  # for the benchmark report: the worst overrun across the matrix
        with open(log, "a", encoding="utf-8") as out:
            out.write(f"{overrun:.3f} {name} / {mode}\n")
    assert overrun < 0.5, f"{name} / {mode}: {overrun:.2f}s past the deadline"


PAIRS = [
    (a, b)
    for a, b in itertools.combinations(FAULT_CASES, 2)
    if FAULT_CASES[a].kind != FAULT_CASES[b].kind
]


@pytest.mark.slow
@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize(("first", "second"), PAIRS)
def test_pairs_of_faults(
    server: CyberunEmulator,
    client: cyberun.Client,
    first: str,
    second: str,
    operation: str,
    tmp_path: Path,
) -> None:
    faults = [FAULT_CASES[first], FAULT_CASES[second]]
    made = run_cell(server, client, faults, operation, tmp_path)
    bound = BASELINE[operation] + sum(f.extra for f in faults if applies(f, operation)) + 1
    assert made <= bound, f"{first} + {second} / {operation}: {made} requests, bound {bound}"


def test_the_documented_table_matches() -> None:
    page = Path(__file__).resolve().parents[2] / "docs" / "content" / "reliability.md"
    rows = {}
    for line in page.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == len(OPERATIONS) + 1 and cells[0] in FAULT_CASES:
            rows[cells[0]] = dict(zip(OPERATIONS, cells[1:]))
    assert rows == EXPECTED


def markdown_table() -> str:
    """The table for docs/content/reliability.md (print it to update the page)."""
    lines = ["| fault | " + " | ".join(OPERATIONS) + " |", "|---" * (len(OPERATIONS) + 1) + "|"]
    for name, outcomes in EXPECTED.items():
        lines.append(f"| {name} | " + " | ".join(outcomes[op] for op in OPERATIONS) + " |")
    return "\n".join(lines)
