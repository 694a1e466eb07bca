"""as_completed: many tasks from a bounded pool of streams, the rest polled."""

from __future__ import annotations

import threading
import time
from typing import Any, List

import cyberun
from cyberun import TaskCancelled, TaskFailed, WaitTimeout
from cyberun.testing import CyberunEmulator
from cyberun.transports import Request, Response, Timeout, UrllibTransport

from .conftest import ClientFactory


class CountingTransport(UrllibTransport):
    """Counts event streams open at once."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.open_streams = 0
        self.most_streams = 0

    def send(self, request: Request, *, timeout: Timeout) -> Response:
        response = super().send(request, timeout=timeout)
        if not request.url.endswith("/events"):
            return response
        with self.lock:
            self.open_streams += 1
            self.most_streams = max(self.most_streams, self.open_streams)
        close = response._close

        def counted_close() -> None:
            with self.lock:
                self.open_streams -= 1
            if close is not None:
                close()

        response._close = counted_close
        return response


def test_many_tasks_through_a_few_streams(
    server: CyberunEmulator, make_client: ClientFactory
) -> None:
    transport = CountingTransport()
    client = make_client(server, transport=transport)
    tasks = [client.run("text-to-image", {"prompt": str(n), "steps": 3}) for n in range(24)]
    tasks.append(client.run("always-fails"))
    cancelled = client.run("slow-render")
    cancelled.cancel()
    tasks.append(cancelled)
    done = list(client.as_completed(tasks, max_streams=3))
    assert sorted(c.task_id for c in done) == sorted(t.id for t in tasks)
    assert transport.most_streams <= 3
    by_id = {c.task_id: c for c in done}
    assert isinstance(by_id[tasks[-2].id].error, TaskFailed)
    assert isinstance(by_id[cancelled.id].error, TaskCancelled)
    ok = [c for c in done if c.ok]
    assert len(ok) == 24 and all(c.get().task_status == "completed" for c in ok)


def test_poll_only(server: CyberunEmulator, make_client: ClientFactory) -> None:
    client = make_client(server)
    ids = [client.run("text-to-image", {"prompt": str(n), "steps": 2}).id for n in range(5)]
    done = list(client.as_completed(ids, max_streams=0))
    assert {c.task_id for c in done} == set(ids) and all(c.ok for c in done)
    assert not any(r.route == "events" for r in server.requests)


def test_unfinished_tasks_time_out(server: CyberunEmulator, make_client: ClientFactory) -> None:
    client = make_client(server)
    slow = [client.run("slow-render").id for _ in range(3)]
    quick = client.run("text-to-image", {"prompt": "x", "steps": 2}).id
    started = time.monotonic()
    done = list(client.as_completed([*slow, quick], max_streams=2, timeout=1.0))
    assert time.monotonic() - started < 10
    by_id = {c.task_id: c for c in done}
    assert by_id[quick].ok
    for task_id in slow:
        error: Any = by_id[task_id].error
        assert isinstance(error, WaitTimeout) and "still running" in str(error)


def test_stopping_early_stops_every_thread(
    server: CyberunEmulator, make_client: ClientFactory
) -> None:
    client = make_client(server)
    before = set(threading.enumerate())
    ids = [client.run("slow-render").id for _ in range(4)] + [
        client.run("text-to-image", {"prompt": "x", "steps": 2}).id
    ]
    iterator = client.as_completed(ids, max_streams=2)
    first = next(iterator)
    assert first.ok
    iterator.close()  # type: ignore[attr-defined]
    time.sleep(0.2)
    leftover: List[threading.Thread] = [
        t for t in threading.enumerate() if t not in before and t.name.startswith("cyberun-")
    ]
    assert leftover == []


def test_handles_and_duplicates_are_accepted(
    server: CyberunEmulator, make_client: ClientFactory
) -> None:
    client = make_client(server)
    task = client.run("text-to-image", {"prompt": "x", "steps": 2})
    done = list(client.as_completed([task, task.id, task]))
    assert [c.task_id for c in done] == [task.id]


def test_as_completed_with_a_real_default_client(server: CyberunEmulator) -> None:
    with cyberun.Client(server.api_key, base_url=server.base_url, poll_interval=0.05) as client:
        ids = [client.run("multi-output", {"prompt": str(n)}).id for n in range(3)]
        assert all(c.ok for c in client.as_completed(ids, max_streams=2))


def test_a_task_that_does_not_exist_is_reported_not_lost(
    server: CyberunEmulator, make_client: ClientFactory
) -> None:
    client = make_client(server)
    good = client.run("text-to-image", {"prompt": "x", "steps": 2})
    missing = "00000000-0000-4000-8000-000000000000"
    for max_streams in (0, 2):  # found missing by the poller, then by a stream worker
        done = {
            c.task_id: c for c in client.as_completed([missing, good], max_streams=max_streams)
        }
        assert done[good.id].ok and done[good.id].get().task_status == "completed"
        assert isinstance(done[missing].error, cyberun.NotFound)
