"""Following tasks end to end: outcomes, events, request counts, every fault, stopping."""

from __future__ import annotations

import io
import logging
import threading
import time
from typing import List

import pytest
from idmodes import IDS, SSE_IDS

import cyberun
from cyberun import (
    CancelledEvent,
    CompletedEvent,
    ErrorEvent,
    FailedEvent,
    ProgressEvent,
    StatusEvent,
    TaskCancelled,
    TaskEvent,
    TaskFailed,
    WaitStopped,
    WaitTimeout,
)
from cyberun.testing import CyberunEmulator, ManualClock

from .conftest import ClientFactory, routes


def types(events: List[TaskEvent]) -> List[str]:
    return [e.type for e in events]


def steps(events: List[TaskEvent]) -> List[int]:
    return [e.step_current for e in events if isinstance(e, ProgressEvent)]  # type: ignore[misc]


# --- outcomes ---------------------------------------------------------------------------------


def test_wait_returns_the_result_of_a_completed_task(
    server: CyberunEmulator, make_client: ClientFactory
) -> None:
    client = make_client(server)
    seen: List[TaskEvent] = []
    task = client.run("slow-render", {"steps": 8})  # long enough to watch
    result = task.wait(on_event=seen.append)
    assert result.task_status == "completed" and result.download_url
    lifecycle = ["pending", "waiting", "queued", "running"]
    statuses = [str(e.status) for e in seen if isinstance(e, StatusEvent)]
    assert statuses == lifecycle[lifecycle.index(statuses[0]) :]  # from the current status on
    progress = steps(seen)
    assert progress == list(range(progress[0], 9))
    assert isinstance(seen[-1], CompletedEvent) and seen[-1].output == {
        "storage_key": result.task_output["storage_key"],
        "image_count": 1,
    }  # type: ignore[index]


def test_a_healthy_stream_costs_one_events_request_and_one_result_request(
    server: CyberunEmulator, make_client: ClientFactory
) -> None:
    client = make_client(server)
    task = client.run("text-to-image", {"prompt": "x", "steps": 5})
    server.clear_logs()
    task.wait()
    assert [r.route for r in server.requests] == ["events", "result"]


def test_failed_task_raises_task_failed_with_the_server_message(
    server: CyberunEmulator, make_client: ClientFactory
) -> None:
    with pytest.raises(TaskFailed, match="CUDA out of memory") as info:
        make_client(server).run("always-fails").wait()
    assert "CUDA out of memory" in info.value.error and info.value.task_id


def test_cancelled_task_raises_task_cancelled(
    server: CyberunEmulator, make_client: ClientFactory
) -> None:
    client = make_client(server)
    task = client.run("slow-render")
    threading.Timer(0.2, task.cancel).start()
    with pytest.raises(TaskCancelled):
        task.wait()
    assert client.get_task(task.id).task_status == "cancelled"


def test_wait_timeout_says_the_task_still_runs(
    server: CyberunEmulator, make_client: ClientFactory
) -> None:
    client = make_client(server)
    task = client.run("slow-render")
    started = time.monotonic()
    with pytest.raises(WaitTimeout, match="still running on the server") as info:
        task.wait(timeout=0.5)
    assert time.monotonic() - started < 5  # the deadline ends the wait, not the task
    assert isinstance(info.value, TimeoutError) and info.value.task_id == task.id
    assert client.get_task(task.id).task_status not in ("completed", "failed", "cancelled")


def test_cancel_on_timeout_stops_the_remote_task(
    server: CyberunEmulator, make_client: ClientFactory
) -> None:
    client = make_client(server)
    task = client.run("slow-render")
    with pytest.raises(WaitTimeout, match="cancelled"):
        task.wait(timeout=0.3, cancel_on_timeout=True)
    assert client.get_task(task.id).task_status == "cancelled"


def test_events_iterator_ends_with_the_terminal_event(make_client: ClientFactory) -> None:
    # Slow enough to see every stage.
    with CyberunEmulator(time_scale=0.1) as server:
        client = make_client(server)
        images = client.upload_file(io.BytesIO(b"zip"))
        events = list(client.run("gaussian-splat", {"images": images}).events())
    lifecycle = ["pending", "waiting", "provisioning", "queued", "running"]
    statuses = [str(e.status) for e in events if isinstance(e, StatusEvent)]
    assert statuses == lifecycle[lifecycle.index(statuses[0]) :]  # from the current status on
    stages = [e.stage for e in events if isinstance(e, ProgressEvent)]
    assert list(dict.fromkeys(stages)) == ["download", "process_data", "train", "export", "upload"]
    assert isinstance(events[-1], CompletedEvent)


def test_poll_mode_emits_status_changes_and_the_same_terminal_event(
    server: CyberunEmulator, make_client: ClientFactory
) -> None:
    client = make_client(server)
    task = client.run("text-to-image", {"prompt": "x", "steps": 5})
    events = list(task.events(mode="poll"))
    statuses = [str(e.status) for e in events if isinstance(e, StatusEvent)]
    assert statuses == sorted(set(statuses), key=statuses.index)  # each status once
    assert isinstance(events[-1], CompletedEvent)
    assert not any(isinstance(e, ProgressEvent) for e in events)
    assert routes(server, "events") == 0
    failing = client.run("always-fails")
    assert isinstance(list(failing.events(mode="poll"))[-1], FailedEvent)


def test_polling_respects_the_interval() -> None:
    with CyberunEmulator(time_scale=0.05) as server:
        client = cyberun.Client(server.api_key, base_url=server.base_url, poll_interval=0.2)
        task = client.run("text-to-image", {"prompt": "x", "steps": 5})
        started = time.monotonic()
        task.wait(mode="poll")
        elapsed = time.monotonic() - started
        polls = routes(server, "task")
        client.close()
    assert polls <= elapsed / (0.2 * 0.9) + 2


# --- the stream's faults ----------------------------------------------------------------------


@pytest.mark.parametrize("after", [1, 30, 150, 400, 900])
def test_a_drop_at_any_offset_loses_and_duplicates_nothing_with_ids(
    make_client: ClientFactory, after: int
) -> None:
    with CyberunEmulator(time_scale=0.02, sse_ids=True) as server:
        client = make_client(server)
        task = client.run("slow-render", {"steps": 20})
        server.inject("drop", route="events", task_id=task.id, after_bytes=after)
        events = list(task.events())
        progress = steps(events)
        assert progress == sorted(set(progress))  # in order, never twice
        assert progress[-1] == 20 and len(progress) == len(range(progress[0], 21))
        assert sum(isinstance(e, CompletedEvent) for e in events) == 1
        assert routes(server, "events") == 2


@pytest.mark.parametrize("after", [1, 30, 150, 400, 900])
def test_without_ids_a_drop_at_any_offset_repeats_nothing(
    make_client: ClientFactory, after: int
) -> None:
    # The documented server: no ids, a reconnect restates the current status
    # and goes on live, so what happened in between is not sent again.
    with CyberunEmulator(time_scale=0.02) as server:
        client = make_client(server)
        task = client.run("slow-render", {"steps": 20})
        server.inject("drop", route="events", task_id=task.id, after_bytes=after)
        events = list(task.events())
        progress = steps(events)
        statuses = [str(e.status) for e in events if isinstance(e, StatusEvent)]
        assert progress == sorted(set(progress))  # in order, never twice
        assert statuses == sorted(set(statuses), key=statuses.index)  # each status once
        assert [e.type for e in events].count("completed") == 1
        assert isinstance(events[-1], CompletedEvent) and events[-1].output is not None
        assert routes(server, "events") == 2


def test_without_ids_nothing_terminal_is_lost_and_nothing_goes_backwards(
    make_client: ClientFactory,
) -> None:
    with CyberunEmulator(time_scale=0.02, sse_ids=False) as server:
        client = make_client(server)
        task = client.run("text-to-image", {"prompt": "x", "steps": 20})
        server.inject("drop", route="events", task_id=task.id, times=3, after_events=4)
        events = list(task.events())
    progress = steps(events)
    assert progress == sorted(set(progress))
    ranks = ["pending", "waiting", "queued", "running"]
    statuses = [ranks.index(str(e.status)) for e in events if isinstance(e, StatusEvent)]
    assert statuses == sorted(set(statuses))
    assert types(events).count("completed") == 1 and types(events)[-1] == "completed"


def test_a_stalled_stream_is_reconnected(make_client: ClientFactory) -> None:
    # Slow enough that the task is still running when the stall is noticed;
    # with ids, so that no tick is lost whatever the timing under load.
    with CyberunEmulator(time_scale=0.2, sse_ids=True) as server:
        client = make_client(server, timeout=cyberun.Timeout(5, 0.3))
        task = client.run("text-to-image", {"prompt": "x", "steps": 10})
        server.inject("stall", route="events", task_id=task.id, seconds=2.0, after_events=2)
        events = list(task.events())
        assert routes(server, "events") == 2  # one stalled connection, one reconnect
        assert routes(server, "task") == 1  # the check after the stall
    assert steps(events)[-1] == 10 and types(events)[-1] == "completed"


@pytest.mark.parametrize("sse_ids", SSE_IDS, ids=IDS)
def test_a_task_that_ends_during_a_stall_is_found_by_the_check(
    make_client: ClientFactory, sse_ids: bool
) -> None:
    # A manual clock: the task ends exactly while the stream stalls, however
    # loaded the machine (on a running clock it could end before the stream
    # opened, and then there is no stall to find it in).
    with CyberunEmulator(clock=ManualClock(), sse_ids=sse_ids) as server:
        client = make_client(server, timeout=cyberun.Timeout(5, 0.3))
        task = client.run("text-to-image", {"prompt": "x", "steps": 3})
        server.inject("stall", route="events", task_id=task.id, seconds=3.0, after_events=1)

        def end_during_the_stall() -> None:
            give_up = time.monotonic() + 10
            while routes(server, "events") < 1 and time.monotonic() < give_up:
                time.sleep(0.01)
            time.sleep(0.1)  # the first event is out, the stall (3 s) has begun
            server.advance(100)

        ender = threading.Thread(target=end_during_the_stall)
        ender.start()
        events = list(task.events())
        ender.join()
        assert types(events).count("completed") == 1 and types(events)[-1] == "completed"
        assert routes(server, "task") == 1  # the check after the stall
        assert routes(server, "events") == 2  # then the stream again, for the real end


def test_with_ids_a_task_that_ended_while_disconnected_is_replayed_in_full(
    make_client: ClientFactory,
) -> None:
    with CyberunEmulator(clock=ManualClock(), sse_ids=True) as server:
        client = make_client(server, timeout=cyberun.Timeout(5, 0.3))
        task = client.run("text-to-image", {"prompt": "x", "steps": 5})
        server.inject("stall", route="events", task_id=task.id, seconds=3.0, after_events=1)
        threading.Timer(0.1, lambda: server.advance(100)).start()  # it ends during the stall
        events = list(task.events())
        assert routes(server, "task") == 1 and routes(server, "events") == 2
    assert steps(events) == [1, 2, 3, 4, 5]  # nothing missed, nothing twice
    completed = events[-1]
    assert isinstance(completed, CompletedEvent) and completed.output is not None  # the real one


def test_keepalives_for_a_finished_task_do_not_hang_the_caller(
    server: CyberunEmulator, make_client: ClientFactory
) -> None:
    client = make_client(server, liveness_interval=0.3)
    task = client.run("text-to-image", {"prompt": "x", "steps": 3})
    server.inject("keepalive_only", route="events", task_id=task.id, interval=0.02, times=None)
    started = time.monotonic()
    assert task.wait().task_status == "completed"
    assert time.monotonic() - started < 10


def test_error_events_are_reported_and_following_continues(
    server: CyberunEmulator, make_client: ClientFactory
) -> None:
    client = make_client(server)
    task = client.run("text-to-image", {"prompt": "x", "steps": 3})
    server.inject("error_event", route="events", task_id=task.id)
    events = list(task.events())
    assert isinstance(events[0], ErrorEvent) and events[0].message == "failed to fetch task status"
    assert isinstance(events[-1], CompletedEvent)


def test_a_malformed_event_is_skipped_with_a_warning(
    server: CyberunEmulator, make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(server)
    task = client.run("slow-render", {"steps": 5})
    server.inject("malformed_json", route="events", task_id=task.id, after_events=1)
    with caplog.at_level(logging.WARNING, logger="cyberun"):
        assert task.wait().task_status == "completed"
    assert any("undecodable" in r.getMessage() for r in caplog.records)


def test_a_stream_closed_before_its_terminal_event_is_confirmed_by_a_get(
    server: CyberunEmulator, make_client: ClientFactory
) -> None:
    client = make_client(server)
    task = client.run("text-to-image", {"prompt": "x", "steps": 3})
    server.inject("no_terminal", route="events", task_id=task.id, times=None)
    assert task.wait().task_status == "completed"
    assert routes(server, "task") >= 1


def test_slow_drip_still_delivers_every_event(
    server: CyberunEmulator, make_client: ClientFactory
) -> None:
    client = make_client(server)
    task = client.run("text-to-image", {"prompt": "x", "steps": 3})
    server.inject("slow_drip", route="events", task_id=task.id, delay=0.0002)
    assert types(list(task.events()))[-1] == "completed"


def test_wrong_content_type_falls_back_to_polling_and_says_so(
    server: CyberunEmulator, make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(server)
    task = client.run("text-to-image", {"prompt": "x", "steps": 3})
    server.inject("wrong_content_type", route="events", task_id=task.id)
    with caplog.at_level(logging.WARNING, logger="cyberun"):
        assert task.wait().task_status == "completed"
    assert any("polling instead of streaming" in r.getMessage() for r in caplog.records)
    assert routes(server, "events") == 1 and routes(server, "task") >= 1


def test_repeated_stream_failures_fall_back_to_polling(
    server: CyberunEmulator, make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(server)
    task = client.run("slow-render", {"steps": 30})  # still running after three failures
    server.inject("status", route="events", task_id=task.id, status=503, times=None)
    with caplog.at_level(logging.WARNING, logger="cyberun"):
        assert task.wait().task_status == "completed"
    assert routes(server, "events") == 3  # max_stream_failures, then polling
    assert any("3 failed connects in a row" in r.getMessage() for r in caplog.records)


def test_api_errors_are_retried_by_the_policy(
    server: CyberunEmulator, make_client: ClientFactory
) -> None:
    client = make_client(server)
    server.inject("status", route="run", status=503, times=1)  # POST run: never retried
    with pytest.raises(cyberun.ServerError):
        client.run("text-to-image", {"prompt": "x"})
    task = client.run("text-to-image", {"prompt": "x", "steps": 2})
    server.inject("status", route="result", status=429, retry_after=0.01, times=2)
    assert task.wait().task_status == "completed"
    assert routes(server, "result") == 3


def test_not_found_is_not_retried(server: CyberunEmulator, make_client: ClientFactory) -> None:
    client = make_client(server)
    with pytest.raises(cyberun.NotFound):
        client.wait("00000000-0000-4000-8000-000000000000")
    assert routes(server, "events") == 1


def test_server_retry_hint_is_honoured() -> None:
    with CyberunEmulator(
        time_scale=0.02,
        sse_retry=300,
    ) as server:
        client = cyberun.Client(server.api_key, base_url=server.base_url, reconnect_backoff=0.0)
        task = client.run("slow-render", {"steps": 10})
        server.inject("drop", route="events", task_id=task.id, after_events=3)
        events = list(task.events())
        reconnect_gap = [r.time for r in server.requests if r.route == "events"]
        client.close()
    assert types(events)[-1] == "completed"
    assert reconnect_gap[1] - reconnect_gap[0] >= 0.3


# --- stopping ---------------------------------------------------------------------------------


def test_a_stop_event_ends_a_wait_and_leaves_the_task_running(
    server: CyberunEmulator, make_client: ClientFactory
) -> None:
    client = make_client(server)
    task = client.run("slow-render")
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    with pytest.raises(WaitStopped, match="keeps running"):
        task.wait(stop=stop)
    assert client.get_task(task.id).task_status != "cancelled"


def test_closing_the_client_interrupts_a_wait_on_a_silent_stream(
    server: CyberunEmulator, make_client: ClientFactory
) -> None:
    client = make_client(server, timeout=cyberun.Timeout(5, 60))
    task = client.run("slow-render")
    server.inject("stall", route="events", task_id=task.id, seconds=30, after_events=1)
    outcome: List[BaseException] = []

    def wait() -> None:
        try:
            task.wait()
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=wait)
    thread.start()
    time.sleep(0.3)
    started = time.monotonic()
    client.close()
    thread.join(5)
    assert not thread.is_alive() and time.monotonic() - started < 5
    assert isinstance(outcome[0], WaitStopped)


def test_an_event_stream_can_be_closed_from_another_thread(
    server: CyberunEmulator, make_client: ClientFactory
) -> None:
    client = make_client(server)
    task = client.run("slow-render")
    stream = task.events()
    first = next(stream)
    threading.Timer(0.2, stream.close).start()
    rest = list(stream)
    assert isinstance(first, StatusEvent)
    assert not any(e.is_terminal for e in rest)
    assert client.get_task(task.id).task_status != "cancelled"


# --- threads ----------------------------------------------------------------------------------


def test_one_client_serves_many_threads(
    server: CyberunEmulator, make_client: ClientFactory
) -> None:
    client = make_client(server)
    results: List[str] = []
    errors: List[BaseException] = []

    def job(n: int) -> None:
        try:
            task = client.run("text-to-image", {"prompt": f"job {n}", "steps": 3})
            results.append(str(task.wait().task_status))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=job, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == [] and results == ["completed"] * 20


def test_cancelled_event_when_cancelled_while_following(
    server: CyberunEmulator, make_client: ClientFactory
) -> None:
    client = make_client(server)
    task = client.run("slow-render")
    threading.Timer(0.2, task.cancel).start()
    assert isinstance(list(task.events())[-1], CancelledEvent)


def test_closing_the_client_ends_a_poll_request_in_flight(
    server: CyberunEmulator, make_client: ClientFactory
) -> None:
    # The wait's cancel token travels with every request: a GET of the task
    # that the server is sitting on ends at once, not after the read timeout.
    client = make_client(server, timeout=cyberun.Timeout(5, 5))
    task = client.run("slow-render")
    server.inject("latency", route="task", seconds=3, times=None)
    outcome: List[BaseException] = []

    def wait() -> None:
        try:
            task.wait(mode="poll")
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=wait)
    thread.start()
    time.sleep(0.3)
    started = time.monotonic()
    client.close()
    thread.join(5)
    assert not thread.is_alive() and time.monotonic() - started < 1.0
    assert isinstance(outcome[0], WaitStopped)
    server.clear_faults()


def test_a_wait_deadline_bounds_a_poll_request_in_flight(
    server: CyberunEmulator, make_client: ClientFactory
) -> None:
    client = make_client(server, timeout=cyberun.Timeout(5, 5))
    task = client.run("slow-render")
    server.inject("latency", route="task", seconds=3, times=None)
    started = time.monotonic()
    with pytest.raises(WaitTimeout, match="still running"):
        task.wait(mode="poll", timeout=0.5)
    assert time.monotonic() - started < 1.5
    server.clear_faults()
