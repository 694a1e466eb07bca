"""The drop sweep: cut a recorded, complete task stream at every byte offset.

Each run starts a fresh task that has already finished on the emulator,
whose streams replay the whole history (``sse_history="full"``), so every
connection carries exactly the recorded bytes and offset N always means the
same cut. After every cut, ``wait()`` must still return the right result,
the terminal event must reach the caller exactly once, and progress must
never go backwards. The default run sweeps a sample of at least 200 offsets
covering every event boundary (and the bytes around it) plus mid-line
positions; ``-m slow`` sweeps every offset, with and without event ids.
"""

from __future__ import annotations

import random
from typing import Iterator, List, Tuple

import pytest
from idmodes import IDS, SSE_IDS
from rawhttp import Emu, stream

import cyberun
from cyberun import CompletedEvent, ProgressEvent, StatusEvent, TaskEvent
from cyberun.testing import CyberunEmulator, ManualClock

RANKS = ["pending", "waiting", "queued", "running"]


def recorded_stream(server: CyberunEmulator) -> bytes:
    api = Emu(server)
    task_id = server.create_task("text-to-image", {"prompt": "x", "steps": 5})
    server.advance(10)
    _, _, chunks = stream(api.url(f"/tasks/{task_id}/events"), headers=api.headers())
    return b"".join(chunks)


def sample_offsets(data: bytes, size: int, seed: int = 7) -> List[int]:
    boundaries = set()
    for index, byte in enumerate(data):
        if byte == 10:  # every line end, so every event boundary too
            boundaries.update({index - 1, index, index + 1, index + 2})
    chosen = {o for o in boundaries if 0 <= o < len(data)}
    rng = random.Random(seed)
    while len(chosen) < size:
        chosen.add(rng.randrange(len(data)))
    return sorted(chosen)


def follow_with_cut(
    server: CyberunEmulator, client: cyberun.Client, offset: int
) -> Tuple[cyberun.TaskResult, List[TaskEvent]]:
    task_id = server.create_task("text-to-image", {"prompt": "x", "steps": 5})
    server.advance(10)
    server.inject("drop", route="events", task_id=task_id, after_bytes=offset)
    seen: List[TaskEvent] = []
    result = client.wait(task_id, on_event=seen.append, timeout=30)
    return result, seen


def check(result: cyberun.TaskResult, seen: List[TaskEvent], offset: int) -> None:
    assert result.task_status == "completed" and result.download_url, offset
    terminal = [e for e in seen if e.is_terminal]
    assert len(terminal) == 1 and isinstance(seen[-1], CompletedEvent), (offset, seen)
    steps = [e.step_current for e in seen if isinstance(e, ProgressEvent)]
    assert steps == sorted(steps) and len(steps) == len(set(steps)), (offset, steps)
    ranks = [RANKS.index(str(e.status)) for e in seen if isinstance(e, StatusEvent)]
    assert ranks == sorted(ranks) and len(ranks) == len(set(ranks)), (offset, ranks)


@pytest.fixture(params=SSE_IDS, ids=IDS)
def sweep(
    request: pytest.FixtureRequest,
) -> Iterator[Tuple[CyberunEmulator, cyberun.Client, bytes]]:
    with CyberunEmulator(clock=ManualClock(), sse_ids=request.param, sse_history="full") as server:
        client = cyberun.Client(
            server.api_key, base_url=server.base_url, transport="urllib", reconnect_backoff=0.0
        )
        yield server, client, recorded_stream(server)
        client.close()


def test_sample_of_offsets(sweep: Tuple[CyberunEmulator, cyberun.Client, bytes]) -> None:
    server, client, data = sweep
    offsets = sample_offsets(data, 200)
    assert len(offsets) >= 200
    for offset in offsets:
        result, seen = follow_with_cut(server, client, offset)
        check(result, seen, offset)


@pytest.mark.slow
def test_every_offset(sweep: Tuple[CyberunEmulator, cyberun.Client, bytes]) -> None:
    server, client, data = sweep
    for offset in range(len(data)):
        result, seen = follow_with_cut(server, client, offset)
        check(result, seen, offset)


def test_with_ids_a_cut_loses_and_repeats_nothing() -> None:
    with CyberunEmulator(clock=ManualClock(), sse_ids=True, sse_history="full") as server:
        client = cyberun.Client(server.api_key, base_url=server.base_url, reconnect_backoff=0.0)
        data = recorded_stream(server)
        for offset in sample_offsets(data, 60, seed=3):
            _, seen = follow_with_cut(server, client, offset)
            steps = [e.step_current for e in seen if isinstance(e, ProgressEvent)]
            if any(e.event_id for e in seen):  # the cut came after the first event's id
                assert steps == [1, 2, 3, 4, 5], (offset, steps)
        client.close()
