"""The follower against a model server, driven by hypothesis (a RuleBasedStateMachine).

The model server has a task timeline (statuses, progress, a server-side
retry that sends the status back to ``queued`` and restarts progress, a
terminal event) and streams it as a documented server might: with ids on
all, some or no events; on an id-less reconnect it restates the current
state, replays the whole history, or neither. At every step hypothesis
picks what the network does with the follower's next action (the answer
comes, the stream drops, stalls, sends keep-alives, a connect is refused, a
GET fails), on a fake clock. Invariants at every step: events in server
order with no provable replay repeated, at most one terminal event and
exactly one once following ended with a terminal outcome, the deadline never
overrun, at most one connect per second.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional, Tuple

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from cyberun import ReadError, ReadTimeoutError, ServerError, Task, TaskResult, TaskStatus
from cyberun.strategies.follow import (
    CloseStream,
    Deliver,
    Finish,
    Follower,
    GetResult,
    GetTask,
    OpenStream,
    Outcome,
    ReadStream,
    Sleep,
    StreamSettings,
)

TASK = "019abc12-9012-7890-abcd-ef1234567896"
READ_TIMEOUT = 30.0
TERMINAL = ("completed", "failed", "cancelled")


def timeline(
    steps: int, retry: bool, end: str, gap: float
) -> List[Tuple[float, str, Dict[str, Any]]]:
    kinds: List[Tuple[str, Dict[str, Any]]] = [
        ("status", {"status": s}) for s in ("waiting", "queued", "running")
    ]
    kinds += [("progress", {"step_current": n, "step_total": steps}) for n in range(1, steps + 1)]
    if retry:
        kinds += [("status", {"status": "queued"}), ("status", {"status": "running"})]
        kinds += [
            ("progress", {"step_current": n, "step_total": steps}) for n in range(1, steps + 1)
        ]
    kinds.append((end, {"status": end, "error": "boom"} if end == "failed" else {"status": end}))
    return [
        (i * gap, kind, {"task_id": TASK, **data, "timestamp": f"s{i}"})
        for i, (kind, data) in enumerate(kinds)
    ]


class Connection:
    def __init__(self, upfront: List[int], live: int) -> None:
        self.upfront = upfront
        self.live = live
        self.ended = False


class FollowerAgainstModel(RuleBasedStateMachine):
    @initialize(
        steps=st.integers(1, 4),
        retry=st.booleans(),
        end=st.sampled_from(TERMINAL),
        gap=st.sampled_from([0.2, 1.0, 4.0]),
        ids=st.sampled_from(["all", "some", "none"]),
        replay=st.sampled_from(["restate", "full", "none"]),
        deadline=st.one_of(st.none(), st.floats(5, 120)),
        liveness=st.sampled_from([2.0, 15.0]),
    )
    def start(
        self,
        steps: int,
        retry: bool,
        end: str,
        gap: float,
        ids: str,
        replay: str,
        deadline: Optional[float],
        liveness: float,
    ) -> None:
        self.events = timeline(steps, retry, end, gap)
        self.ids = ids
        self.replay = replay
        self.deadline = deadline
        self.now = 0.0
        self.follower = Follower(
            TASK,
            now=0.0,
            deadline=deadline,
            settings=StreamSettings(liveness_interval=liveness),
            random=lambda: 0.3,
        )
        self.connection: Optional[Connection] = None
        self.delivered: List[Any] = []
        self.opens: List[float] = []
        self.outcome: Optional[Outcome] = None

    # -- the model server --------------------------------------------------------------

    def happened(self) -> int:
        return sum(1 for t, _, _ in self.events if t <= self.now)

    def snapshot(self) -> Task:
        status, done = "pending", False
        for t, kind, data in self.events:
            if t <= self.now and "status" in data:
                status, done = data["status"], kind in TERMINAL
        return Task(
            id=TASK,
            task_status=TaskStatus(status),
            task_error="boom" if status == "failed" else "",
            completed_at=datetime.now(timezone.utc) if done else None,
        )

    def open(self, last_event_id: Optional[str]) -> Connection:
        count = self.happened()
        if self.ids != "none" and last_event_id is not None:
            return Connection([], int(last_event_id) + 1)
        if count and self.events[count - 1][1] in TERMINAL:
            return Connection([count - 1], count)
        if self.replay == "full" or self.ids != "none":
            return Connection(list(range(count)), count)
        if self.replay == "restate":
            statuses = [i for i in range(count) if self.events[i][1] == "status"]
            return Connection(statuses[-1:], count)
        return Connection([], count)

    def wire(self, index: int) -> bytes:
        _, kind, data = self.events[index]
        lines = []
        if self.ids == "all" or (self.ids == "some" and index % 2 == 0):
            lines.append(f"id: {index}")
        lines += [f"event: {kind}", f"data: {json.dumps(data)}"]
        return ("\n".join(lines) + "\n\n").encode()

    def limit(self, until: float) -> float:
        return until if self.deadline is None else min(until, self.deadline)

    # -- one step: the follower's next action, answered as the network chooses ----------

    @rule(
        network=st.sampled_from(
            ["ok", "ok", "ok", "ok", "drop", "stall", "keepalive", "fail", "half"]
        )
    )
    def step(self, network: str) -> None:
        if self.outcome is not None:
            return
        action = self.follower.next_action(self.now)
        if isinstance(action, Deliver):
            self.delivered.extend(action.events)
        elif isinstance(action, Sleep):
            assert action.seconds > 0
            self.now += action.seconds
        elif isinstance(action, Finish):
            self.outcome = action.outcome
        elif isinstance(action, GetTask):
            if network == "fail":
                self.follower.task_failed(self.now, ServerError("busy", status=503))
            else:
                self.follower.task_seen(self.now, self.snapshot())
        elif isinstance(action, GetResult):
            self.follower.result_seen(self.now, TaskResult(id=TASK))
        elif isinstance(action, CloseStream):
            self.connection = None
        elif isinstance(action, OpenStream):
            self.opens.append(self.now)
            if network == "fail":
                self.follower.refused(self.now, ServerError("busy", status=503))
            else:
                self.connection = self.open(action.last_event_id)
                self.follower.opened(self.now, "text/event-stream")
        else:
            assert isinstance(action, ReadStream)
            self.read(network)

    def read(self, network: str) -> None:
        connection = self.connection
        assert connection is not None
        follower = self.follower
        if network == "drop" or connection.ended:
            self.connection = None
            follower.ended(self.now, ReadError("cut") if network == "drop" else None)
            return
        if network == "stall":
            self.now = self.limit(self.now + READ_TIMEOUT)
            self.connection = None
            follower.ended(self.now, ReadTimeoutError("stalled"))
            return
        if network == "keepalive":
            self.now = self.limit(self.now + 1.0)
            follower.received(self.now, b": keep-alive\n\n")
            return
        if connection.upfront:
            index = connection.upfront.pop(0)
        elif connection.live < len(self.events):
            when = self.events[connection.live][0]
            if when > self.now:
                # The server has nothing yet: a keep-alive every 5 s until it has.
                self.now = self.limit(min(when, self.now + 5.0))
                if self.now < when:
                    follower.received(self.now, b": keep-alive\n\n")
                    return
            index = connection.live
            connection.live += 1
        else:
            self.connection = None
            follower.ended(self.now, None)
            return
        data = self.wire(index)
        if self.events[index][1] in TERMINAL:
            connection.ended = True
        if network == "half":
            follower.received(self.now, data[: len(data) // 2])
            follower.received(self.now, data[len(data) // 2 :])
        else:
            follower.received(self.now, data)

    # -- invariants -----------------------------------------------------------------------

    def sequence(self) -> List[Tuple[int, str]]:
        """(timeline index, own id) of each delivered event that came from the stream."""
        found = []
        for event in self.delivered:
            stamp = event.raw.get("timestamp") if event.raw else None
            if isinstance(stamp, str) and stamp.startswith("s"):
                found.append((int(stamp[1:]), event.event_id))
        return found

    @invariant()
    def in_server_order_with_no_provable_replay(self) -> None:
        if not hasattr(self, "follower"):
            return
        indexes = [index for index, _ in self.sequence()]
        if self.ids in ("all", "none"):
            assert indexes == sorted(set(indexes)), indexes
        own = [index for index, event_id in self.sequence() if event_id and index % 2 == 0]
        if self.ids == "some":
            assert len(own) == len(set(own)), own

    @invariant()
    def one_terminal_outcome(self) -> None:
        if not hasattr(self, "follower"):
            return
        terminal = [e for e in self.delivered if e.is_terminal]
        assert len(terminal) <= 1
        if self.outcome is not None and self.outcome.kind in TERMINAL:
            assert len(terminal) == 1 and terminal[0].type == self.outcome.kind
            assert self.outcome.kind == self.events[-1][1]

    @invariant()
    def the_deadline_holds(self) -> None:
        if getattr(self, "deadline", None) is not None:
            assert self.now <= self.deadline + 1e-9

    @invariant()
    def at_most_one_connect_per_second(self) -> None:
        opens = getattr(self, "opens", [])
        for start in opens:
            assert sum(1 for t in opens if start <= t < start + 10.0) <= 10, opens


FollowerAgainstModel.TestCase.settings = settings(max_examples=150, stateful_step_count=80)
test_follower_against_a_model_server = FollowerAgainstModel.TestCase
