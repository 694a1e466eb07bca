"""The sans-I/O follower on a fake clock: scripted inputs in, expected actions out. No sockets."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional

import pytest

from cyberun import (
    CompletedEvent,
    ProgressEvent,
    ReadError,
    ReadTimeoutError,
    ServerError,
    StatusEvent,
    Task,
    TaskEvent,
    TaskResult,
    TaskStatus,
)
from cyberun.errors import NotFound
from cyberun.strategies.follow import (
    CloseStream,
    Deliver,
    Finish,
    Follower,
    GetResult,
    GetTask,
    OpenStream,
    ReadStream,
    Sleep,
    StreamSettings,
)

TASK = "019abc12-9012-7890-abcd-ef1234567896"
OTHER = "019abc12-0000-7890-abcd-ef1234567896"


def sse(event: str, data: Dict[str, Any], event_id: Optional[str] = None) -> bytes:
    lines = [] if event_id is None else [f"id: {event_id}"]
    lines += [f"event: {event}", f"data: {json.dumps(data)}"]
    return ("\n".join(lines) + "\n\n").encode()


def status(value: str, ts: str = "t", task: str = TASK, **kw: Any) -> bytes:
    return sse("status", {"task_id": task, "status": value, "timestamp": ts}, **kw)


def progress(step: int, node: str = "3", task: str = TASK, **kw: Any) -> bytes:
    data = {"task_id": task, "progress": step / 10, "step_current": step, "current_node": node}
    return sse("progress", data, **kw)


def completed(task: str = TASK, **kw: Any) -> bytes:
    return sse("completed", {"task_id": task, "status": "completed", "output": {"n": 1}}, **kw)


def snapshot(value: str, completed_at: bool = False) -> Task:
    return Task(
        id=TASK,
        task_status=TaskStatus(value),
        completed_at=datetime(2026, 1, 1, tzinfo=timezone.utc) if completed_at else None,
    )


RESULT = TaskResult(id=TASK, task_status=TaskStatus("completed"))


class Run:
    """A follower on a fake clock, with helpers that answer its actions."""

    def __init__(
        self, deadline: Optional[float] = None, rand: float = 0.5, **settings: Any
    ) -> None:
        self.now = 0.0
        poll = settings.pop("poll", False)
        fetch = settings.pop("fetch_result", True)
        self.f = Follower(
            TASK,
            now=0.0,
            deadline=deadline,
            poll=poll,
            fetch_result=fetch,
            settings=StreamSettings(**settings),
            poll_interval=3.0,
            random=lambda: rand,
        )
        self.delivered: List[TaskEvent] = []
        self.opens: List[float] = []
        self.sent_ids: List[Optional[str]] = []
        self.gets = 0

    def next(self) -> Any:
        """The next action that is not a delivery (deliveries are collected)."""
        while True:
            action = self.f.next_action(self.now)
            if isinstance(action, Deliver):
                self.delivered.extend(action.events)
                continue
            if isinstance(action, OpenStream):
                self.opens.append(self.now)
                self.sent_ids.append(action.last_event_id)
            if isinstance(action, GetTask):
                self.gets += 1
            return action

    def expect(self, kind: type) -> Any:
        action = self.next()
        assert isinstance(action, kind), action
        return action

    def connect(self, content_type: str = "text/event-stream") -> None:
        while True:
            action = self.next()
            if isinstance(action, Sleep):
                self.now += action.seconds
                continue
            assert isinstance(action, OpenStream), action
            self.f.opened(self.now, content_type)
            return

    def feed(self, *chunks: bytes) -> None:
        for chunk in chunks:
            self.expect(ReadStream)
            self.f.received(self.now, chunk)

    def end(self, error: Any = None) -> None:
        self.expect(ReadStream)
        self.f.ended(self.now, error)

    def answer_task(self, task: Task) -> None:
        self.expect(GetTask)
        self.f.task_seen(self.now, task)

    def finish(self) -> Any:
        while True:
            action = self.next()
            if isinstance(action, CloseStream):
                continue
            if isinstance(action, GetResult):
                self.f.result_seen(self.now, RESULT)
                continue
            assert isinstance(action, Finish), action
            return action.outcome

    def kinds(self) -> List[str]:
        return [
            f"{e.type}:{e.status}"
            if isinstance(e, StatusEvent)
            else f"p{e.step_current}"
            if isinstance(e, ProgressEvent)
            else e.type
            for e in self.delivered
        ]


# --- 1. delivery ------------------------------------------------------------------------------


def test_progress_that_goes_back_and_a_return_to_queued_are_delivered_as_sent() -> None:
    run = Run()
    run.connect()
    stream = [status("running"), progress(1), progress(2), status("queued"), status("running")]
    stream += [progress(1), progress(2), progress(3), completed()]
    run.feed(*stream)
    assert run.finish().kind == "completed"
    assert run.kinds() == [
        "status:running",
        "p1",
        "p2",
        "status:queued",
        "status:running",
        "p1",
        "p2",
        "p3",
        "completed",
    ]


def test_a_second_sampler_node_restarting_progress_is_delivered() -> None:
    run = Run()
    run.connect()
    run.feed(*[progress(n, "3") for n in (1, 2, 3)], *[progress(n, "10") for n in (1, 2, 3)])
    run.feed(completed())
    run.finish()
    assert run.kinds() == ["p1", "p2", "p3", "p1", "p2", "p3", "completed"]


def test_inherited_ids_are_not_taken_for_the_events_own() -> None:
    run = Run()
    run.connect()
    run.feed(status("running", event_id="7"), progress(1), progress(2))
    run.feed(sse("queue_position", {"task_id": TASK, "position": 2}), completed())
    outcome = run.finish()
    assert run.kinds() == ["status:running", "p1", "p2", "unknown", "completed"]
    assert isinstance(outcome.event, CompletedEvent) and outcome.event.output == {"n": 1}


def test_an_events_own_repeated_id_is_a_replay_and_withheld() -> None:
    run = Run()
    run.connect()
    run.feed(status("running", event_id="1"), progress(1, event_id="2"))
    run.end(ReadError("cut"))
    run.answer_task(snapshot("running"))
    run.connect()
    assert run.sent_ids[-1] == "2"
    run.feed(progress(1, event_id="2"), progress(2, event_id="3"), completed(event_id="4"))
    run.finish()
    assert run.kinds() == ["status:running", "p1", "p2", "completed"]


def test_an_id_less_reconnect_restating_the_state_is_withheld_up_to_the_first_difference() -> None:
    run = Run()
    run.connect()
    run.feed(status("running", ts="a"), progress(1), progress(2))
    run.end()
    run.answer_task(snapshot("running"))
    run.connect()
    # The same status (another timestamp) and the same last progress: a restatement.
    run.feed(status("running", ts="b"), progress(2), progress(2), progress(3), completed())
    run.finish()
    assert run.kinds() == ["status:running", "p1", "p2", "p2", "p3", "completed"]


def test_an_id_less_server_replaying_its_whole_history_is_withheld() -> None:
    run = Run()
    run.connect()
    run.feed(status("queued"), status("running"), progress(1))
    run.end()
    run.answer_task(snapshot("running"))
    run.connect()
    run.feed(status("queued"), status("running"), progress(1), progress(2), completed())
    run.finish()
    assert run.kinds() == ["status:queued", "status:running", "p1", "p2", "completed"]


def test_a_terminal_state_seen_by_a_get_brings_the_real_terminal_event_once() -> None:
    run = Run()
    run.connect()
    run.feed(status("running"))
    run.end(ReadTimeoutError("stalled"))
    run.answer_task(snapshot("completed", completed_at=True))
    run.connect()  # one more connect for the replay of the end
    run.feed(completed())
    run.finish()
    assert run.kinds() == ["status:running", "completed"]
    assert run.delivered[-1].output == {"n": 1}  # type: ignore[attr-defined]


def test_without_the_replay_the_terminal_event_is_built_from_the_task_once() -> None:
    run = Run()
    run.connect()
    run.feed(status("running"))
    run.end()
    run.answer_task(snapshot("failed", completed_at=True))
    run.connect()
    run.end()  # closed again without the terminal event
    outcome = run.finish()
    assert run.kinds() == ["status:running", "failed"] and outcome.kind == "failed"


# --- 2. deadline ------------------------------------------------------------------------------


def test_no_sleep_outlasts_the_deadline_and_it_ends_in_a_timeout() -> None:
    run = Run(deadline=2.0, reconnect_backoff=5.0)
    run.connect()
    run.feed(status("running"))
    run.end()
    run.answer_task(snapshot("running"))
    sleep = run.expect(Sleep)
    assert run.now + sleep.seconds <= 2.0
    run.now += sleep.seconds
    outcome = run.finish()
    assert outcome.kind == "timeout" and outcome.event is None


def test_a_result_that_misses_the_deadline_is_a_timeout_that_knows_the_task_completed() -> None:
    run = Run(deadline=4.0)
    run.connect()
    run.feed(completed())
    run.expect(CloseStream)
    run.expect(GetResult)
    run.now = 4.0
    run.f.result_failed(run.now, ReadTimeoutError("deadline"))
    outcome = run.finish()
    assert outcome.kind == "timeout" and isinstance(outcome.event, CompletedEvent)


# --- 3. reconnects ------------------------------------------------------------------------------


@pytest.mark.parametrize("rand", [0.0, 0.5, 0.999])
def test_the_storm_costs_at_most_one_connect_per_second(rand: float) -> None:
    run = Run(rand=rand)
    while run.now < 60:
        run.connect()
        run.feed(status("running", ts=str(run.now)))  # one event, then the server closes
        run.end()
        run.answer_task(snapshot("running"))
    for start in run.opens:
        assert sum(1 for t in run.opens if start <= t < start + 10) <= 10
    assert len(run.opens) <= 60 / 1.0 + 1


def test_the_backoff_grows_with_short_connections_and_resets_after_a_healthy_one() -> None:
    run = Run(rand=0.999, reconnect_backoff=0.5)
    gaps = []
    for _ in range(5):
        run.connect()
        run.feed(progress(1))
        run.end()
        run.answer_task(snapshot("running"))
        sleep = run.expect(Sleep)
        gaps.append(sleep.seconds)
        run.now += sleep.seconds
    assert gaps == sorted(gaps) and gaps[-1] > 4
    run.connect()
    run.feed(progress(2))
    run.now += 61  # a healthy connection
    run.end()
    run.answer_task(snapshot("running"))
    action = run.next()
    assert isinstance(action, OpenStream)  # no backoff after a healthy connection


@pytest.mark.parametrize(
    ("retry", "expected"), [("10000000000000", 60.0), ("86400000", 60.0), ("1", 0.5)]
)
def test_retry_is_honoured_within_its_documented_range(retry: str, expected: float) -> None:
    run = Run(rand=0.0, reconnect_backoff=0.0)
    run.connect()
    run.feed(f"retry: {retry}\n\n".encode(), progress(1))
    run.end()
    run.answer_task(snapshot("running"))
    assert run.expect(Sleep).seconds == pytest.approx(expected)


def test_an_empty_id_clears_last_event_id_even_in_a_later_read() -> None:
    run = Run(reconnect_backoff=0.0)
    run.connect()
    run.feed(progress(1, event_id="5"))
    run.feed(b"id\n", progress(2)[:-1], b"\n")  # "id" with no value: the reset
    run.end()
    run.answer_task(snapshot("running"))
    run.connect()
    assert run.sent_ids == [None, None]


def test_an_unsendable_id_is_not_sent_and_said_once(caplog: pytest.LogCaptureFixture) -> None:
    run = Run(reconnect_backoff=0.0)
    with caplog.at_level(logging.WARNING, logger="cyberun"):
        for event_id in ("\u2713", "x" * 2000):
            run.connect()
            run.feed(progress(1, event_id=event_id))
            run.end()
            run.answer_task(snapshot("running"))
        run.connect()
    assert run.sent_ids == [None, None, None]
    assert sum("cannot be sent" in r.getMessage() for r in caplog.records) == 1


def test_connects_that_give_nothing_switch_to_polling(caplog: pytest.LogCaptureFixture) -> None:
    run = Run(reconnect_backoff=0.0)
    with caplog.at_level(logging.WARNING, logger="cyberun"):
        for _ in range(3):
            run.expect(OpenStream)
            run.f.refused(run.now, ServerError("busy", status=503))
            run.answer_task(snapshot("running"))
    assert any("3 failed connects in a row" in r.getMessage() for r in caplog.records)
    assert run.f.polling


def test_a_stream_that_is_not_an_event_stream_is_polled_at_once() -> None:
    run = Run()
    run.connect(content_type="text/html")
    run.expect(CloseStream)
    run.answer_task(snapshot("running"))
    assert run.f.polling and len(run.opens) == 1


def test_a_refusal_that_retrying_cannot_help_ends_following() -> None:
    run = Run()
    run.expect(OpenStream)
    run.f.refused(run.now, NotFound("no such task", status=404))
    assert run.finish().kind == "error"


# --- liveness and polling -------------------------------------------------------------------


def test_keepalives_for_a_long_time_bring_one_get_of_the_task() -> None:
    run = Run(liveness_interval=15.0)
    run.connect()
    run.feed(status("running"))
    for _ in range(14):
        run.now += 1
        run.feed(b": keep-alive\n\n")
    run.now += 1
    run.feed(b": keep-alive\n\n")
    run.answer_task(snapshot("running"))
    run.expect(ReadStream)  # the stream stays open
    assert run.gets == 1


def test_polling_a_62_second_task_every_3_seconds() -> None:
    run = Run(poll=True)
    while True:
        action = run.next()
        if isinstance(action, Sleep):
            run.now += action.seconds
            continue
        if isinstance(action, GetTask):
            run.f.task_seen(
                run.now, snapshot("completed" if run.now >= 62 else "running", run.now >= 62)
            )
            continue
        if isinstance(action, GetResult):
            run.f.result_seen(run.now, RESULT)
            continue
        assert isinstance(action, Finish)
        break
    assert action.outcome.kind == "completed"
    assert 20 <= run.gets <= 24 and not run.opens
    assert run.kinds() == ["status:running", "completed"]


def test_transient_errors_while_polling_never_end_the_task() -> None:
    run = Run(poll=True)
    for _ in range(6):
        run.expect(GetTask)
        run.f.task_failed(run.now, ServerError("busy", status=503))
        run.now += run.expect(Sleep).seconds
    run.answer_task(snapshot("completed", completed_at=True))
    assert run.finish().kind == "completed"


# --- 4. only this task; 5. unknown statuses ---------------------------------------------------


def test_events_about_another_task_are_skipped_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    run = Run()
    run.connect()
    with caplog.at_level(logging.WARNING, logger="cyberun"):
        run.feed(status("running"), completed(task=OTHER), progress(1, task=OTHER), progress(1))
        run.feed(sse("failed", {"task_id": OTHER, "status": "failed", "error": "theirs"}))
        run.feed(completed())
    assert run.finish().kind == "completed"
    assert run.kinds() == ["status:running", "p1", "completed"]
    assert sum("another task" in r.getMessage() for r in caplog.records) == 3


def test_an_unknown_status_with_completed_at_ends_the_follow() -> None:
    run = Run()
    run.connect()
    run.feed(status("archived"))
    run.answer_task(
        Task(id=TASK, task_status=TaskStatus("archived"), completed_at=datetime.now(timezone.utc))
    )
    outcome = run.finish()
    assert outcome.kind == "unknown" and outcome.task.task_status == "archived"


def test_an_unknown_status_without_completed_at_keeps_following() -> None:
    run = Run()
    run.connect()
    run.feed(status("provisioning-gpu"))
    run.answer_task(snapshot("provisioning-gpu"))
    run.feed(completed())
    assert run.finish().kind == "completed"
