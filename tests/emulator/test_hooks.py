"""CyberunEmulator.on: the test's callback at a point of the emulator's work."""

from __future__ import annotations

import time
from typing import Iterator, List

import pytest
from rawhttp import Emu

from cyberun.testing import CyberunEmulator, HookCall, ManualClock

from .wire import events, read_all


@pytest.fixture
def manual() -> Iterator[CyberunEmulator]:
    with CyberunEmulator(clock=ManualClock()) as emulator:
        yield emulator


def test_created_runs_after_the_task_exists_and_before_the_answer(
    manual: CyberunEmulator,
) -> None:
    seen: List[tuple] = []

    def check(call: HookCall) -> None:
        assert call.task_id is not None
        seen.append((call.route, manual.task_status(call.task_id), call.request.status))

    hook = manual.on("created", check)
    task_id = Emu(manual).run()
    assert seen == [("run", "pending", None)]
    assert [r.status for r in manual.requests if r.task_id == task_id] == [
        202
    ]  # the task existed; no answer yet
    assert hook.calls == 1 and hook.errors == []
    Emu(manual).run()
    assert hook.calls == 1  # times=1


def test_a_task_cancelled_before_its_run_is_answered(manual: CyberunEmulator) -> None:
    manual.on("created", lambda call: manual.cancel(str(call.task_id)), times=None)
    api = Emu(manual)
    task_id = api.run()
    assert api.call("GET", f"/tasks/{task_id}").json()["task_status"] == "cancelled"
    found = events(read_all(api.url(f"/tasks/{task_id}/events"), api.headers()))
    assert [e.event for e in found] == ["cancelled"]


def test_answered_sees_the_status_written(manual: CyberunEmulator) -> None:
    calls: List[HookCall] = []
    manual.on("answered", calls.append, route="task", times=None)
    api = Emu(manual)
    task_id = api.run()
    api.call("GET", f"/tasks/{task_id}")
    api.call("GET", "/tasks/nope")
    deadline = time.monotonic() + 5
    while len(calls) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)  # "answered" runs once the answer is out: maybe after the client read it
    assert [(c.route, c.request.status) for c in calls] == [("task", 200), ("task", 404)]


def test_event_after_n_events_of_a_stream(manual: CyberunEmulator) -> None:
    api = Emu(manual)
    task_id = api.run(parameters={"prompt": "x", "steps": 5})
    manual.advance(100)
    counts: List[int] = []
    manual.on("event", lambda call: counts.append(call.events), task_id=task_id, after_events=1)
    found = events(read_all(api.url(f"/tasks/{task_id}/events"), api.headers()))
    assert [e.event for e in found] == ["completed"] and counts == [1]


def test_a_failing_callback_is_kept_and_the_request_answered(manual: CyberunEmulator) -> None:
    def broken(call: HookCall) -> None:
        raise RuntimeError("test bug")

    hook = manual.on("answered", broken, route="workflows")
    assert Emu(manual).call("GET", "/workflows").status == 200
    deadline = time.monotonic() + 5
    while not hook.errors and time.monotonic() < deadline:
        time.sleep(0.01)  # "answered" runs once the answer is out: maybe after the client read it
    assert [str(e) for e in hook.errors] == ["test bug"]


def test_reset_removes_hooks(manual: CyberunEmulator) -> None:
    hook = manual.on("created", lambda call: None, times=None)
    manual.reset()
    Emu(manual).run()
    assert hook.calls == 0


@pytest.mark.parametrize(
    ("point", "options", "message"),
    [
        ("deleted", {}, "unknown hook point 'deleted'"),
        ("created", {"route": "nowhere"}, "unknown route"),
        ("created", {"after_events": 2}, 'after_events needs the point "event"'),
        ("event", {"times": 0}, "times must be"),
    ],
)
def test_bad_hooks_are_refused_in_one_line(
    manual: CyberunEmulator, point: str, options: dict, message: str
) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        manual.on(point, lambda call: None, **options)
    assert "\n" not in str(caught.value)
