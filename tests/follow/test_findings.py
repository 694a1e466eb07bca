"""Each finding of issue 17, against hand-written servers shaped like the documented API.

No ``id:`` lines unless the finding is about ids; raw sockets, so every byte,
pause and close is the test's own.
"""

from __future__ import annotations

import gc
import importlib.util
import threading
import time
from typing import Any, Iterator, List

import pytest

import cyberun
from cyberun import (
    CompletedEvent,
    ProgressEvent,
    StatusEvent,
    TaskEvent,
    UnknownTaskStatus,
    WaitStopped,
    WaitTimeout,
)
from cyberun.testing import CyberunEmulator

from .docserver import OTHER, TASK, DocServer, completed, event, progress, status


def client_for(server: DocServer, **options: Any) -> cyberun.Client:
    # urllib3 where it is installed; the standard library's otherwise (tox -e minimal).
    default = "urllib3" if importlib.util.find_spec("urllib3") else "urllib"
    if options.get("transport") in ("requests", "urllib3"):
        pytest.importorskip(options["transport"])
    settings: dict = {
        "base_url": server.url,
        "transport": default,
        "retry": cyberun.RetryPolicy(backoff=0.01),
    }
    settings.update(options)
    return cyberun.Client("sk-test", **settings)


def names(events: List[TaskEvent]) -> List[str]:
    out = []
    for e in events:
        if isinstance(e, StatusEvent):
            out.append(str(e.status))
        elif isinstance(e, ProgressEvent):
            out.append(f"{e.current_node}:{e.step_current}")
        else:
            out.append(e.type)
    return out


@pytest.fixture
def clients() -> Iterator[List[cyberun.Client]]:
    made: List[cyberun.Client] = []
    yield made
    for client in made:
        client.close()


# --- 1. delivery -----------------------------------------------------------------------------


def test_a_server_side_retry_reaches_on_event_as_sent(clients: List[cyberun.Client]) -> None:
    script = [status("running"), progress(1), progress(2), status("queued"), status("running")]
    script += [progress(1), progress(2), progress(3), completed()]
    with DocServer([script]) as server:
        client = client_for(server)
        clients.append(client)
        seen: List[TaskEvent] = []
        client.wait(TASK, on_event=seen.append, timeout=10)
    assert names(seen) == [
        "running", "3:1", "3:2", "queued", "running", "3:1", "3:2", "3:3", "completed",
    ]  # fmt: skip


def test_a_second_sampler_node_is_not_lost(clients: List[cyberun.Client]) -> None:
    script = [progress(n, node="3") for n in (1, 2, 3)] + [
        progress(n, node="10") for n in (1, 2, 3)
    ]
    with DocServer([[*script, completed()]]) as server:
        client = client_for(server)
        clients.append(client)
        seen = list(client.events(TASK, timeout=10))
    assert names(seen) == ["3:1", "3:2", "3:3", "10:1", "10:2", "10:3", "completed"]


def test_an_inherited_id_does_not_make_later_events_repeats(clients: List[cyberun.Client]) -> None:
    script = [status("running", event_id="7"), progress(1), progress(2)]
    script += [event("queue_position", position=2), completed()]
    with DocServer([script]) as server:
        client = client_for(server)
        clients.append(client)
        seen = list(client.events(TASK, timeout=10))
    assert names(seen) == ["running", "3:1", "3:2", "unknown", "completed"]
    assert isinstance(seen[-1], CompletedEvent) and seen[-1].output == {"image_count": 1}


def test_an_id_less_reconnect_restating_the_status_is_delivered_once(
    clients: List[cyberun.Client],
) -> None:
    first = [status("running"), progress(1)]
    second = [status("running"), progress(2), progress(3), completed()]
    with DocServer([first, second]) as server:
        client = client_for(server, reconnect_backoff=0.0)
        clients.append(client)
        seen = list(client.events(TASK, timeout=10))
    assert names(seen) == ["running", "3:1", "3:2", "3:3", "completed"]


# --- 2. the deadline holds -----------------------------------------------------------------


def test_a_hanging_poll_does_not_stretch_the_deadline(clients: List[cyberun.Client]) -> None:
    with DocServer([[status("running"), "hang"]], task_delay=6.0) as server:
        client = client_for(server)
        clients.append(client)
        started = time.monotonic()
        with pytest.raises(WaitTimeout, match="still running"):
            client.wait(TASK, timeout=1.5, mode="poll")
        assert time.monotonic() - started < 1.5 + 0.5


def test_a_slow_result_ends_in_a_timeout_that_says_the_task_completed(
    clients: List[cyberun.Client],
) -> None:
    with DocServer([[status("running"), completed()]], result_delay=6.0) as server:
        client = client_for(server)
        clients.append(client)
        started = time.monotonic()
        with pytest.raises(WaitTimeout) as info:
            client.wait(TASK, timeout=2.0)
        assert time.monotonic() - started < 2.0 + 0.5
    message = str(info.value)
    assert "completed" in message and "get_result" in message and "still running" not in message


def test_a_dripping_stream_does_not_stretch_the_deadline(clients: List[cyberun.Client]) -> None:
    data = status("running")
    drip: List[Any] = []
    for byte in data:
        drip += [bytes([byte]), 0.5]
    with DocServer([drip]) as server:
        client = client_for(server)
        clients.append(client)
        started = time.monotonic()
        with pytest.raises(WaitTimeout):
            client.wait(TASK, timeout=2.0)
        assert time.monotonic() - started < 2.0 + 0.5


@pytest.mark.parametrize("transport", ["urllib3", "urllib", "requests"])
@pytest.mark.parametrize("how", ["close", "stop"])
def test_close_and_stop_end_a_wait_within_half_a_second_while_a_request_hangs(
    clients: List[cyberun.Client], how: str, transport: str
) -> None:
    with DocServer([[status("running")]], task_delay=30.0) as server:
        client = client_for(server, timeout=cyberun.Timeout(5, 60), transport=transport)
        clients.append(client)
        stop = threading.Event()
        outcome: List[BaseException] = []

        def wait() -> None:
            try:
                client.wait(TASK, mode="poll", stop=stop)
            except BaseException as exc:
                outcome.append(exc)

        thread = threading.Thread(target=wait)
        thread.start()
        time.sleep(0.5)  # the GET of the task is hanging now
        started = time.monotonic()
        client.close() if how == "close" else stop.set()
        thread.join(5)
        assert time.monotonic() - started < 0.5
    assert isinstance(outcome[0], WaitStopped)


# --- 3. polite reconnects -------------------------------------------------------------------


@pytest.mark.slow
def test_a_stream_that_closes_after_every_event_costs_at_most_one_connect_a_second(
    clients: List[cyberun.Client],
) -> None:
    with DocServer([[status("running")]]) as server:
        client = client_for(server)  # the default reconnect settings
        clients.append(client)
        with pytest.raises(WaitTimeout):
            client.wait(TASK, timeout=10)
        assert server.count("events") <= 10


@pytest.mark.parametrize("retry", [b"retry: 10000000000000\n\n", b"retry: 86400000\n\n"])
def test_a_huge_retry_is_clamped_and_never_overflows(
    clients: List[cyberun.Client], retry: bytes
) -> None:
    with DocServer([[retry, status("running")], [completed()]]) as server:
        client = client_for(server)
        clients.append(client)
        started = time.monotonic()
        with pytest.raises(WaitTimeout):
            client.wait(TASK, timeout=1.5)  # the clamped 60 s wait ends at the deadline
        assert time.monotonic() - started < 1.5 + 0.5


@pytest.mark.parametrize("bad_id", ["\u2713", "x" * 65536])
def test_an_id_that_cannot_be_sent_is_not_sent(
    clients: List[cyberun.Client], bad_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    first = [status("running", event_id=bad_id), progress(1)]
    with DocServer([first, [progress(2), completed()]]) as server:
        client = client_for(server, reconnect_backoff=0.0)
        clients.append(client)
        seen = list(client.events(TASK, timeout=10))
        reconnect = [r for r in server.requests if r.target.endswith("/events")][1]
    assert names(seen)[-1] == "completed"
    assert "last-event-id" not in reconnect.headers
    assert any("cannot be sent" in r.getMessage() for r in caplog.records)


def test_an_empty_id_clears_last_event_id_across_reads(clients: List[cyberun.Client]) -> None:
    first = [status("running", event_id="5"), 0.1, b"id\n" + progress(1)]
    with DocServer([first, [progress(2), completed()]]) as server:
        client = client_for(server, reconnect_backoff=0.0)
        clients.append(client)
        list(client.events(TASK, timeout=10))
        reconnect = [r for r in server.requests if r.target.endswith("/events")][1]
    assert "last-event-id" not in reconnect.headers


# --- 4. only this task; 5. unknown statuses ------------------------------------------------


@pytest.mark.parametrize(
    "other",
    [
        completed(task=OTHER),
        event("failed", task=OTHER, status="failed", error="someone else's"),
        progress(9, task=OTHER),
    ],
)
def test_another_tasks_events_are_not_this_tasks(
    clients: List[cyberun.Client], other: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    with DocServer([[status("running"), other, progress(1), completed()]]) as server:
        client = client_for(server)
        clients.append(client)
        seen: List[TaskEvent] = []
        result = client.wait(TASK, on_event=seen.append, timeout=10)
    assert result.task_status == "completed" and names(seen) == ["running", "3:1", "completed"]
    assert any("another task" in r.getMessage() for r in caplog.records)


def test_an_unknown_terminal_status_ends_the_wait(clients: List[cyberun.Client]) -> None:
    with DocServer([[status("archived"), "hang"]], task_status="archived") as server:
        client = client_for(server)
        clients.append(client)
        with pytest.raises(UnknownTaskStatus, match="upgrade") as info:
            client.wait(TASK, timeout=10)
    assert info.value.status == "archived" and info.value.task_id == TASK


def test_an_unknown_status_without_completed_at_keeps_following(
    clients: List[cyberun.Client],
) -> None:
    with DocServer(
        [[status("provisioning-gpu"), 0.2, completed()]], task_status="provisioning-gpu"
    ) as server:
        client = client_for(server)
        clients.append(client)
        assert client.wait(TASK, timeout=10).task_status == "completed"


# --- 6. cancel on timeout ----------------------------------------------------------------


def test_a_failing_cancel_is_attached_to_the_timeout(clients: List[cyberun.Client]) -> None:
    with DocServer([[status("running"), "hang"]], cancel_status=500) as server:
        client = client_for(server, retry=cyberun.RetryPolicy(backoff=0.01, attempts=1))
        clients.append(client)
        started = time.monotonic()
        with pytest.raises(WaitTimeout, match="cancelling it failed") as info:
            client.wait(TASK, timeout=1.0, cancel_on_timeout=True)
        assert time.monotonic() - started < 1.0 + 0.5
    assert isinstance(info.value.cancel_error, cyberun.ServerError)
    assert server.count("cancel") == 1


# --- 7. many tasks -------------------------------------------------------------------------


def test_as_completed_survives_503_bursts_on_its_polls() -> None:
    with CyberunEmulator(time_scale=0.02) as server:
        client = cyberun.Client(
            server.api_key,
            base_url=server.base_url,
            poll_interval=0.05,
            retry=cyberun.RetryPolicy(backoff=0.0, attempts=2),
        )
        tasks = [client.run("text-to-image", {"prompt": str(n), "steps": 2}) for n in range(14)]
        server.inject("status", route="task", status=503, times=6)
        seen: List[str] = []
        done = list(
            client.as_completed(
                tasks, max_streams=0, timeout=30, on_event=lambda tid, e: seen.append(tid)
            )
        )
        client.close()
    assert sorted(c.task_id for c in done) == sorted(t.id for t in tasks)
    assert all(c.ok for c in done), [c.error for c in done if not c.ok]
    assert set(seen) == {t.id for t in tasks}


def test_as_completed_cancels_on_timeout_and_reports_each_task_once() -> None:
    with CyberunEmulator(time_scale=0.02) as server:
        client = cyberun.Client(server.api_key, base_url=server.base_url, poll_interval=0.05)
        tasks = [client.run("slow-render") for _ in range(3)]
        done = list(client.as_completed(tasks, max_streams=1, timeout=0.5, cancel_on_timeout=True))
        statuses = [client.get_task(t.id).task_status for t in tasks]
        client.close()
    assert sorted(c.task_id for c in done) == sorted(t.id for t in tasks)
    assert all(isinstance(c.error, WaitTimeout) for c in done)
    assert statuses == ["cancelled"] * 3


def test_abandoned_event_iterators_release_everything() -> None:
    with CyberunEmulator(time_scale=0.02) as server:
        client = cyberun.Client(server.api_key, base_url=server.base_url)
        task = client.run("slow-render")
        for _ in range(50):
            for _event in client.events(task.id):
                break
        gc.collect()
        assert len(client._controls) == 0
        client.close()
