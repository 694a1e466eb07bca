"""With no arguments the emulator behaves as the documentation describes.

Observed over ``http.client`` and read with the small reader in ``wire.py``,
never with the SDK's parser.
"""

from __future__ import annotations

import http.client
from typing import Iterator, List

import pytest
from rawhttp import Emu

from cyberun.testing import CyberunEmulator, ManualClock

from .wire import WireEvent, blocks, events, open_stream, read_all


@pytest.fixture
def manual() -> Iterator[CyberunEmulator]:
    with CyberunEmulator(clock=ManualClock()) as emulator:
        yield emulator


def read_events(response: http.client.HTTPResponse, count: int) -> List[WireEvent]:
    """Read until ``count`` events have arrived (the stream stays open)."""
    data = b""
    while len(events(data)) < count:
        chunk = response.read1(65536)
        assert chunk, f"the stream ended after {events(data)}"
        data += chunk
    found = events(data)
    assert len(found) == count, found
    return found


def test_a_default_stream_has_no_ids_and_no_retry_line(manual: CyberunEmulator) -> None:
    api = Emu(manual)
    task_id = api.run()
    manual.advance(manual.finish_time(task_id))
    manual_stream = read_all(api.url(f"/tasks/{task_id}/events"), api.headers())
    task_id = api.run(parameters={"prompt": "x", "steps": 3})
    response, conn = open_stream(api.url(f"/tasks/{task_id}/events"), api.headers())
    try:
        (pending,) = read_events(response, 1)  # the stream has started at time 0
        manual.advance(100)
        data = response.read()
    finally:
        conn.close()
    assert pending.json()["status"] == "pending"
    for stream in (manual_stream, data):
        assert b"\nid:" not in b"\n" + stream and b"\nretry:" not in b"\n" + stream
        assert all(block.id is None and block.retry is None for block in blocks(stream))
    names = [e.event for e in events(data)]
    assert names[:3] == ["status"] * 3 and names[-1] == "completed"  # after pending
    assert names.count("progress") == 3


def test_a_reconnect_gets_one_status_event_then_only_new_events(
    manual: CyberunEmulator,
) -> None:
    api = Emu(manual)
    task_id = api.run(parameters={"prompt": "x", "steps": 10})
    # Queue (1 s), then 5 of the 10 steps (0.1 s each).
    manual.advance(1.0 + 5 * 0.1 + 0.01)
    first, conn = open_stream(api.url(f"/tasks/{task_id}/events"), api.headers())
    try:
        (opening,) = read_events(first, 1)
    finally:
        conn.close()
    assert opening.event == "status"
    assert opening.json()["status"] == "running" and opening.json()["task_id"] == task_id
    # A reconnect, even one sending Last-Event-ID, is a fresh stream: the
    # documentation promises no ids, so there is nothing to replay from.
    again, conn = open_stream(
        api.url(f"/tasks/{task_id}/events"), api.headers({"Last-Event-ID": "3"})
    )
    try:
        (restated,) = read_events(again, 1)
        manual.advance(100)
        rest = events(again.read())
    finally:
        conn.close()
    assert restated.event == "status" and restated.json()["status"] == "running"
    steps = [e.json()["step_current"] for e in rest if e.event == "progress"]
    assert steps == [6, 7, 8, 9, 10]  # only what happened after the connect
    assert [e.event for e in rest][-1] == "completed"


def test_a_stream_for_a_queued_task_restates_its_queued_status(manual: CyberunEmulator) -> None:
    api = Emu(manual)
    task_id = api.run()
    manual.advance(0.7)  # pending 0, waiting 0.3, queued 0.6, running 1.0
    response, conn = open_stream(api.url(f"/tasks/{task_id}/events"), api.headers())
    try:
        opening, running = read_events(response, 1) + read_events_after(manual, response, 0.5)
    finally:
        conn.close()
    assert (opening.event, opening.json()["status"]) == ("status", "queued")
    assert (running.event, running.json()["status"]) == ("status", "running")


def read_events_after(
    manual: CyberunEmulator, response: http.client.HTTPResponse, seconds: float
) -> List[WireEvent]:
    manual.advance(seconds)
    return read_events(response, 1)


def test_a_finished_task_streams_its_terminal_event_and_closes(manual: CyberunEmulator) -> None:
    api = Emu(manual)
    task_id = api.run("always-fails")
    manual.advance(60)
    found = events(read_all(api.url(f"/tasks/{task_id}/events"), api.headers()))
    assert [e.event for e in found] == ["failed"]
    assert "CUDA out of memory" in found[0].json()["error"]


def test_ids_and_replay_remain_an_explicit_option() -> None:
    with CyberunEmulator(clock=ManualClock(), sse_ids=True) as server:
        api = Emu(server)
        task_id = api.run(parameters={"prompt": "x", "steps": 4})
        server.advance(100)
        whole = events(read_all(api.url(f"/tasks/{task_id}/events"), api.headers()))
        assert [e.event for e in whole] == ["completed"]
        resumed = events(
            read_all(api.url(f"/tasks/{task_id}/events"), api.headers({"Last-Event-ID": "5"}))
        )
    assert [e.id for e in resumed] == ["6", "7", "8"]
    assert [e.event for e in resumed] == ["progress", "progress", "completed"]


# --- a run whose answer is cut after the task was created -------------------------------


def test_reset_after_accept_creates_the_task_and_cuts_the_answer(
    manual: CyberunEmulator,
) -> None:
    api = Emu(manual)
    manual.inject("reset", route="run", after_accept=True)
    with pytest.raises((ConnectionResetError, http.client.RemoteDisconnected)):
        api.run()
    listed = api.call("GET", "/tasks").json()["task_list"]
    assert len(listed) == 1  # the task exists: a blind retry would start a second one
    (record,) = [r for r in manual.requests if r.route == "run"]
    assert record.task_id == listed[0]["id"] and record.status is None
    manual.advance(100)
    task = api.call("GET", f"/tasks/{listed[0]['id']}").json()
    assert task["task_status"] == "completed"
    assert api.run() != listed[0]["id"]  # the fault was used up: the next run is answered


def test_a_status_after_accept_answers_an_error_for_a_created_task(
    manual: CyberunEmulator,
) -> None:
    api = Emu(manual)
    manual.inject("status", route="run", after_accept=True, status=504)
    answer = api.call("POST", "/workflows/slug/text-to-image/run", {"parameters": {"prompt": "x"}})
    assert answer.status == 504
    assert api.call("GET", "/tasks").json()["page_meta"]["total_count"] == 1


def test_reset_before_accept_creates_nothing(manual: CyberunEmulator) -> None:
    api = Emu(manual)
    manual.inject("reset", route="run")
    with pytest.raises((ConnectionResetError, http.client.RemoteDisconnected)):
        api.run()
    assert api.call("GET", "/tasks").json()["page_meta"]["total_count"] == 0


@pytest.mark.parametrize(
    ("fault", "route"), [("reset", "task"), ("reset", None), ("latency", "run"), ("drop", "run")]
)
def test_after_accept_is_refused_where_it_means_nothing(
    manual: CyberunEmulator, fault: str, route: str
) -> None:
    with pytest.raises(ValueError, match="after_accept"):
        manual.inject(fault, route=route, after_accept=True)
