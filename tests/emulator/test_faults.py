"""Every stream option and injected fault, observed over plain http.client."""

from __future__ import annotations

import http.client
import json
import socket
import time
from typing import Iterator, List
from urllib.parse import urlsplit

import pytest
from rawhttp import Emu, request, stream

from cyberun.sse import iter_events
from cyberun.testing import FAULTS, CyberunEmulator


@pytest.fixture
def server() -> Iterator[CyberunEmulator]:
    with CyberunEmulator(time_scale=0.05) as emulator:
        yield emulator


def raw_stream(api: Emu, task_id: str, extra=None) -> bytes:  # type: ignore[no-untyped-def]
    """Every byte of the events stream, tolerating an abrupt end."""
    _, _, chunks = stream(api.url(f"/tasks/{task_id}/events"), headers=api.headers(extra))
    data = b""
    try:
        for chunk in chunks:
            data += chunk
    except (http.client.IncompleteRead, ConnectionError) as exc:
        partial = getattr(exc, "partial", b"")
        data += partial if isinstance(partial, bytes) else b""
    return data


def event_types(data: bytes) -> List[str]:
    return [e.event for e in iter_events([data])]


def test_a_full_stream_is_chunked_event_stream_with_ids_and_closes() -> None:
    with CyberunEmulator(time_scale=0.05, sse_ids=True) as server:
        api = Emu(server)
        task_id = api.run()
        status, headers, chunks = stream(
            api.url(f"/tasks/{task_id}/events"), headers=api.headers()
        )
        body = b"".join(chunks)
    assert status == 200
    assert headers["content-type"].startswith("text/event-stream")
    assert headers["transfer-encoding"] == "chunked"
    assert headers["connection"] == "close"
    events = list(iter_events([body]))
    ids = [int(e.id) for e in events]
    assert ids == sorted(set(ids))  # strictly increasing (a late start skips to the present)
    assert events[-1].event == "completed"
    steps = [json.loads(e.data)["step_current"] for e in events if e.event == "progress"]
    assert steps == sorted(steps) and steps[-1] == 20


def test_last_event_id_resumes_after_that_event() -> None:
    with CyberunEmulator(time_scale=0.05, sse_ids=True) as server:
        _resumes_after_the_last_event_id(server)


def _resumes_after_the_last_event_id(server: CyberunEmulator) -> None:
    api = Emu(server)
    task_id = api.run()
    whole = api.events(task_id)
    resumed = api.events(task_id, {"Last-Event-ID": "10"})
    assert [e.id for e in resumed] == [e.id for e in whole if int(e.id) > 10]


def test_close_delimited_framing_retry_line_and_no_ids() -> None:
    with CyberunEmulator(
        time_scale=0.005, sse_framing="close", sse_retry=1500, sse_ids=False
    ) as server:
        api = Emu(server)
        task_id = api.run()
        status, headers, chunks = stream(
            api.url(f"/tasks/{task_id}/events"), headers=api.headers()
        )
        body = b"".join(chunks)
    assert status == 200
    assert "transfer-encoding" not in headers and "content-length" not in headers
    assert body.startswith(b"retry: 1500\n\n")
    events = list(iter_events([body]))
    assert all(e.id == "" for e in events) and events[-1].event == "completed"


def test_keepalive_comments_fill_silences() -> None:
    # Status changes are 0.3 emulated seconds (60 ms here) apart: longer than 20 ms.
    with CyberunEmulator(time_scale=0.2, keepalive_interval=0.02) as server:
        api = Emu(server)
        data = raw_stream(api, api.run(parameters={"prompt": "x", "steps": 2}))
    assert b": keep-alive\n\n" in data
    assert event_types(data)[-1] == "completed"


def test_a_stream_for_a_finished_task_sends_the_terminal_event_and_closes(
    server: CyberunEmulator,
) -> None:
    api = Emu(server)
    task_id = api.run()
    api.events(task_id)
    assert [e.event for e in api.events(task_id)] == ["completed"]


def test_the_fault_catalogue_is_documented() -> None:
    assert {"drop", "stall", "keepalive_only", "status", "wrong_content_type", "malformed_json",
            "no_terminal", "slow_drip", "expire_urls", "truncate", "reset", "latency",
            "error_event"} == set(FAULTS)  # fmt: skip


def test_inject_rejects_unknown_faults_and_routes(server: CyberunEmulator) -> None:
    with pytest.raises(ValueError, match="unknown fault"):
        server.inject("meteor")
    with pytest.raises(ValueError, match="unknown route"):
        server.inject("status", route="nowhere")


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_status_fault_answers_the_next_n_requests_of_a_route(
    server: CyberunEmulator, status: int
) -> None:
    api = Emu(server)
    server.inject("status", route="workflows", times=2, status=status, retry_after=3)
    answers = [api.call("GET", "/workflows") for _ in range(3)]
    assert [a.status for a in answers] == [status, status, 200]
    assert answers[0].headers["retry-after"] == "3"
    assert api.call("GET", "/tasks").status == 200  # other routes are untouched


def test_status_fault_for_one_task_only(server: CyberunEmulator) -> None:
    api = Emu(server)
    one, two = api.run(), api.run()
    server.inject("status", task_id=one, status=500, times=None)
    assert api.call("GET", f"/tasks/{one}").status == 500
    assert api.call("GET", f"/tasks/{one}").status == 500
    assert api.call("GET", f"/tasks/{two}").status == 200
    server.clear_faults()
    assert api.call("GET", f"/tasks/{one}").status == 200


def test_reset_fault_resets_the_connection(server: CyberunEmulator) -> None:
    server.inject("reset", route="tasks")
    with pytest.raises((ConnectionResetError, http.client.RemoteDisconnected)):
        Emu(server).call("GET", "/tasks")


def test_latency_fault_delays_the_answer(server: CyberunEmulator) -> None:
    server.inject("latency", route="tasks", seconds=0.2)
    started = time.monotonic()
    assert Emu(server).call("GET", "/tasks").status == 200
    assert time.monotonic() - started >= 0.2


@pytest.mark.parametrize("after", [1, 57, 300])
def test_drop_after_bytes_cuts_the_stream_at_that_offset(
    server: CyberunEmulator, after: int
) -> None:
    api = Emu(server)
    task_id = api.run()
    server.inject("drop", route="events", after_bytes=after)
    data = raw_stream(api, task_id)
    assert len(data) == after
    resumed = api.events(task_id, {"Last-Event-ID": "0"})  # the fault was used up
    assert resumed[-1].event == "completed"


def test_drop_after_events(server: CyberunEmulator) -> None:
    api = Emu(server)
    task_id = api.run()
    server.inject("drop", route="events", after_events=3)
    assert len(event_types(raw_stream(api, task_id))) == 3


def test_reset_mid_stream(server: CyberunEmulator) -> None:
    api = Emu(server)
    task_id = api.run()
    server.inject("reset", route="events", after_bytes=100)
    assert len(raw_stream(api, task_id)) <= 100


def test_stall_sends_nothing_for_a_while() -> None:
    with CyberunEmulator(time_scale=0.05) as server:
        api = Emu(server)
        task_id = api.run()
        server.inject("stall", route="events", seconds=0.3, after_events=1)
        _, _, chunks = stream(api.url(f"/tasks/{task_id}/events"), headers=api.headers())
        arrivals = [time.monotonic() for _ in chunks]
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
    assert max(gaps) >= 0.25


def test_keepalive_only_never_sends_an_event(server: CyberunEmulator) -> None:
    api = Emu(server)
    task_id = api.run()
    server.inject("keepalive_only", route="events", interval=0.01, seconds=0.2)
    data = raw_stream(api, task_id)
    assert data.count(b": keep-alive\n\n") >= 5
    assert event_types(data) == []


def test_wrong_content_type(server: CyberunEmulator) -> None:
    api = Emu(server)
    task_id = api.run()
    server.inject("wrong_content_type", route="events")
    status, headers, chunks = stream(api.url(f"/tasks/{task_id}/events"), headers=api.headers())
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert b"<html>" in b"".join(chunks)


def test_malformed_json_in_one_event(server: CyberunEmulator) -> None:
    api = Emu(server)
    task_id = api.run()
    server.inject("malformed_json", route="events", after_events=1)
    events = api.events(task_id)
    with pytest.raises(json.JSONDecodeError):
        json.loads(events[1].data)
    for event in events[:1] + events[2:]:
        json.loads(event.data)


def test_error_event_comes_first(server: CyberunEmulator) -> None:
    api = Emu(server)
    task_id = api.run()
    server.inject("error_event", route="events", message="failed to fetch task status")
    events = api.events(task_id)
    assert events[0].event == "error"
    assert json.loads(events[0].data) == {"message": "failed to fetch task status"}
    assert events[-1].event == "completed"


def test_no_terminal_closes_cleanly_before_the_terminal_event(server: CyberunEmulator) -> None:
    api = Emu(server)
    task_id = api.run()
    server.inject("no_terminal", route="events")
    types = [e.event for e in api.events(task_id)]
    assert types and "completed" not in types


def test_slow_drip_writes_one_byte_at_a_time(server: CyberunEmulator) -> None:
    api = Emu(server)
    task_id = api.run()
    api.events(task_id)  # finished: the next stream is just the terminal event
    server.inject("slow_drip", route="events", delay=0.0005)
    _, _, chunks = stream(api.url(f"/tasks/{task_id}/events"), headers=api.headers())
    pieces = list(chunks)
    assert len(pieces) > 50 and max(len(p) for p in pieces) <= 16


def test_expire_urls_hands_out_expired_links(server: CyberunEmulator) -> None:
    api = Emu(server)
    task_id = api.run()
    api.events(task_id)
    server.inject("expire_urls", route="result", seconds=0)
    result = api.call("GET", f"/tasks/{task_id}/result").json()
    time.sleep(0.05)
    assert request(result["download_url"]).status == 403


def test_truncate_sends_less_than_the_content_length(server: CyberunEmulator) -> None:
    api = Emu(server)
    task_id = api.run()
    api.events(task_id)
    url = api.call("GET", f"/tasks/{task_id}/result").json()["download_url"]
    server.inject("truncate", route="download", after_bytes=100)
    with pytest.raises(http.client.IncompleteRead) as info:
        request(url)
    assert len(info.value.partial) == 100


def test_download_status_fault_uses_the_download_route(server: CyberunEmulator) -> None:
    api = Emu(server)
    task_id = api.run()
    api.events(task_id)
    url = api.call("GET", f"/tasks/{task_id}/result").json()["download_url"]
    server.inject("status", route="download", status=503)
    assert request(url).status == 503
    assert request(url).status == 200


def test_idle_keepalive_connections_are_served_repeatedly(server: CyberunEmulator) -> None:
    parts = urlsplit(server.base_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    for _ in range(3):
        conn.request(
            "GET", "/api/v1/r/tasks", headers={"Authorization": f"Bearer {server.api_key}"}
        )
        response = conn.getresponse()
        response.read()
        assert response.status == 200
    sock = conn.sock
    assert isinstance(sock, socket.socket)
    conn.close()
