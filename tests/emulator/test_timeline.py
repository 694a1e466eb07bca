"""Every Timeline step, observed over plain http.client (never the SDK's parser)."""

from __future__ import annotations

import http.client
import socket
from typing import Any, Dict, Iterator, List

import pytest
from rawhttp import Emu

from cyberun.testing import CyberunEmulator, ManualClock, Step, Timeline

from .wire import WireEvent, blocks, events, open_stream, read_all


@pytest.fixture
def manual() -> Iterator[CyberunEmulator]:
    with CyberunEmulator(clock=ManualClock()) as emulator:
        yield emulator


def whole_stream(server: CyberunEmulator, timeline: Timeline, **run: Any) -> bytes:
    """Add a workflow with ``timeline``, run it, and read its stream from the start."""
    server.add_workflow("scripted", timeline=timeline)
    api = Emu(server)
    task_id = api.run("scripted", run.get("parameters", {}))
    response, conn = open_stream(api.url(f"/tasks/{task_id}/events"), api.headers())
    try:
        data = response.read1(65536)  # the opening status (time 0)
        server.advance(timeline.duration + 1)
        while True:
            try:
                chunk = response.read1(65536)
            except (http.client.IncompleteRead, ConnectionError):
                break
            if not chunk:
                break
            data += chunk
    finally:
        conn.close()
    return data


def kinds(found: List[WireEvent]) -> List[str]:
    return [f"{e.event}:{e.json().get('status', '')}" if e.event == "status" else str(e.event)
            for e in found]  # fmt: skip


def test_status_changes_and_ticks_carry_node_stage_and_message(manual: CyberunEmulator) -> None:
    timeline = (
        Timeline()
        .status("waiting", after=0.5)
        .status("provisioning", after=5.0)
        .status("queued", after=30.0)
        .status("running", after=1.0)
        .progress(0.25, after=1, current_node="3", step_current=1, step_total=4)
        .progress(0.5, after=1, stage="train", message="training step 50/100")
        .complete(after=1)
    )
    found = events(whole_stream(manual, timeline))
    assert kinds(found) == [
        "status:pending",
        "status:waiting",
        "status:provisioning",
        "status:queued",
        "status:running",
        "progress",
        "progress",
        "completed",
    ]
    first, second = (e.json() for e in found[5:7])
    assert {k: first[k] for k in ("progress", "current_node", "step_current", "step_total")} == {
        "progress": 0.25, "current_node": "3", "step_current": 1, "step_total": 4
    }  # fmt: skip
    assert "stage" not in first and "message" not in first
    assert (second["stage"], second["message"]) == ("train", "training step 50/100")
    assert "current_node" not in second and "step_current" not in second


def test_two_sampler_nodes_restart_progress(manual: CyberunEmulator) -> None:
    timeline = Timeline.queue().ticks(3, current_node="3").ticks(3, current_node="7").complete()
    ticks = [e.json() for e in events(whole_stream(manual, timeline)) if e.event == "progress"]
    assert [(t["current_node"], t["step_current"]) for t in ticks] == [
        ("3", 1), ("3", 2), ("3", 3), ("7", 1), ("7", 2), ("7", 3)
    ]  # fmt: skip
    assert [t["progress"] for t in ticks] == [0.3333, 0.6667, 1.0] * 2


def test_server_error_events_anywhere_and_the_stream_goes_on(manual: CyberunEmulator) -> None:
    timeline = (
        Timeline.queue()
        .ticks(2)
        .error("failed to fetch task status", after=0.1)
        .ticks(2)
        .error("redis timeout")
        .complete()
    )
    found = events(whole_stream(manual, timeline))
    names = [e.event for e in found]
    assert names[-7:] == ["progress", "progress", "error", "progress", "progress", "error",
                          "completed"]  # fmt: skip
    errors = [e.json() for e in found if e.event == "error"]
    assert errors == [{"message": "failed to fetch task status"}, {"message": "redis timeout"}]


def test_keepalive_steps_write_comments_between_events(manual: CyberunEmulator) -> None:
    timeline = Timeline.queue().keepalive(after=1).keepalive(after=1).ticks(1).complete()
    data = whole_stream(manual, timeline)
    parts = blocks(data)
    comments = [i for i, b in enumerate(parts) if b.comments == ["keep-alive"]]
    assert len(comments) == 2
    running = next(i for i, b in enumerate(parts) if b.is_event and b.data.find("running") > 0)
    assert running < comments[0] < comments[1] < len(parts) - 2  # then a tick, then completed


def test_a_quiet_spell_sends_nothing_until_its_time(manual: CyberunEmulator) -> None:
    manual.add_workflow("quiet", timeline=Timeline.queue().quiet(600).ticks(1).complete())
    api = Emu(manual)
    task_id = api.run("quiet", {})
    manual.advance(1.0)  # running
    response, conn = open_stream(api.url(f"/tasks/{task_id}/events"), api.headers(), timeout=0.5)
    try:
        opening = events(response.read1(65536))
        assert [e.json()["status"] for e in opening] == ["running"]
        manual.advance(599)
        with pytest.raises((TimeoutError, socket.timeout)):  # one class from 3.10 on
            response.read1(65536)  # 600 s of silence: not one byte
    finally:
        conn.close()
    manual.advance(2)
    assert manual.task_status(task_id) == "completed"


def test_a_server_side_retry_counts_and_restarts_from_queued(manual: CyberunEmulator) -> None:
    timeline = (
        Timeline.queue().ticks(3).retry(after=0.5).status("running", after=0.5).ticks(3).complete()
    )
    manual.add_workflow("retried", timeline=timeline)
    api = Emu(manual)
    task_id = api.run("retried", {})
    manual.advance(1.0 + 0.3)
    assert api.call("GET", f"/tasks/{task_id}").json()["retry_count"] == 0
    manual.advance(0.6)  # the retry happened
    task = api.call("GET", f"/tasks/{task_id}").json()
    assert (task["task_status"], task["retry_count"]) == ("queued", 1)
    manual.advance(100)
    assert api.call("GET", f"/tasks/{task_id}").json()["retry_count"] == 1
    found = events(read_all(api.url(f"/tasks/{task_id}/events"), api.headers()))
    assert [e.event for e in found] == ["completed"]
    full = events(whole_stream(manual, timeline))
    statuses = [e.json()["status"] for e in full if e.event == "status"]
    assert statuses == ["pending", "waiting", "queued", "running", "queued", "running"]
    steps = [e.json()["step_current"] for e in full if e.event == "progress"]
    assert steps == [1, 2, 3, 1, 2, 3]


def test_a_drop_step_cuts_the_stream_once_and_a_reconnect_carries_on(
    manual: CyberunEmulator,
) -> None:
    timeline = Timeline.queue().ticks(2).drop().ticks(2).complete()
    manual.add_workflow("dropping", timeline=timeline)
    api = Emu(manual)
    task_id = api.run("dropping", {})
    response, conn = open_stream(api.url(f"/tasks/{task_id}/events"), api.headers())
    try:
        data = response.read1(65536)  # the opening status: the stream has started
        manual.advance(1.0 + 0.25)  # running, two ticks, then the drop
        cut = False
        while True:
            try:
                chunk = response.read1(65536)
            except http.client.IncompleteRead:  # a clean end would not raise
                cut = True
                break
            if not chunk:
                break
            data += chunk
    finally:
        conn.close()
    assert cut and [e.event for e in events(data)][-2:] == ["progress", "progress"]
    manual.advance(100)
    again = events(read_all(api.url(f"/tasks/{task_id}/events"), api.headers()))
    assert [e.event for e in again] == ["completed"]


def test_an_event_for_another_task_has_another_task_id(manual: CyberunEmulator) -> None:
    timeline = Timeline.queue().other_task("progress", data={"progress": 0.9}).complete()
    found = events(whole_stream(manual, timeline))
    ours = found[0].json()["task_id"]
    (stranger,) = [e.json() for e in found if e.event == "progress"]
    assert stranger["task_id"] != ours and stranger["progress"] == 0.9
    assert all(e.json()["task_id"] == ours for e in found if e.event != "progress")


def test_the_terminal_step_carries_its_output_into_the_result(manual: CyberunEmulator) -> None:
    output = {"storage_key": "tasks/x/out.png", "image_count": 1, "seed": 42}
    manual.add_workflow("custom-output", timeline=Timeline.queue().complete(output=output))
    api = Emu(manual)
    task_id = api.run("custom-output", {})
    manual.advance(5)
    (completed,) = events(read_all(api.url(f"/tasks/{task_id}/events"), api.headers()))
    assert completed.json()["output"] == output
    result = api.call("GET", f"/tasks/{task_id}/result").json()
    assert result["task_output"] == output and result["download_url"]


def test_a_failing_timeline_fails_with_its_error(manual: CyberunEmulator) -> None:
    manual.add_workflow("broken", timeline=Timeline.queue().ticks(1).fail("node 9 crashed"))
    api = Emu(manual)
    task_id = api.run("broken", {})
    manual.advance(5)
    (failed,) = events(read_all(api.url(f"/tasks/{task_id}/events"), api.headers()))
    assert failed.event == "failed" and failed.json()["error"] == "node 9 crashed"
    task = api.call("GET", f"/tasks/{task_id}").json()
    assert (task["task_status"], task["task_error"]) == ("failed", "node 9 crashed")


def test_a_timeline_without_an_end_runs_until_cancelled(manual: CyberunEmulator) -> None:
    manual.add_workflow("forever", timeline=Timeline.queue().ticks(2))
    api = Emu(manual)
    task_id = api.run("forever", {})
    manual.advance(10_000)
    assert manual.task_status(task_id) == "running"
    response, conn = open_stream(api.url(f"/tasks/{task_id}/events"), api.headers())
    try:
        assert [e.json()["status"] for e in events(response.read1(65536))] == ["running"]
        api.call("POST", f"/tasks/{task_id}/cancel")
        rest = events(response.read())
    finally:
        conn.close()
    assert [e.event for e in rest] == ["cancelled"]


def test_a_timeline_function_sees_the_run_parameters(manual: CyberunEmulator) -> None:
    def build(parameters: Dict[str, Any]) -> Timeline:
        return Timeline.queue().ticks(int(parameters["count"])).complete()

    manual.add_workflow("counted", timeline=build)
    api = Emu(manual)
    task_id = api.run("counted", {"count": 4})
    manual.advance(100)
    assert manual.finish_time(task_id) == pytest.approx(1.0 + 4 * 0.1)


def test_nerfstudio_workflows_get_stage_timelines_by_default(manual: CyberunEmulator) -> None:
    manual.add_workflow("my-splat", tool_type="nerfstudio", steps=1000)
    api = Emu(manual)
    task_id = api.run("my-splat", {})
    response, conn = open_stream(api.url(f"/tasks/{task_id}/events"), api.headers())
    try:
        response.read1(65536)
        manual.advance(100)
        ticks = [e.json() for e in events(response.read()) if e.event == "progress"]
    finally:
        conn.close()
    stages = [t["stage"] for t in ticks]
    assert list(dict.fromkeys(stages)) == ["download", "process_data", "train", "export", "upload"]
    assert all(t["message"] for t in ticks)
    train = [t for t in ticks if t["stage"] == "train"]
    assert train[-1]["step_current"] == train[-1]["step_total"] == 1000
    assert "current_node" not in ticks[0]


def test_the_builtin_workflows_are_timelines() -> None:
    rendered = Timeline.comfyui(20).entries("t")
    assert [e.event for e in rendered][:4] == ["status"] * 4
    assert sum(e.event == "progress" for e in rendered) == 20
    assert rendered[-1].event == "completed"
    assert rendered[-1].time == pytest.approx(1.0 + 2.0 + 0.3)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Timeline().status("completed"), "complete/fail/cancel"),
        (lambda: Timeline().complete().ticks(2), "already ends"),
        (lambda: Timeline().progress(0.5, after=-1), "after must be"),
        (lambda: Timeline((Step("teleport"),)), "unknown timeline step"),
        (lambda: Timeline((Step("completed"), Step("status", data={"status": "queued"}))),
         "nothing may follow"),
        (lambda: Timeline().ticks(0), "count must be"),
    ],
)  # fmt: skip
def test_bad_timelines_are_refused_with_one_line(build: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        build()
    assert "\n" not in str(caught.value)


def test_add_workflow_refuses_a_timeline_of_the_wrong_type(manual: CyberunEmulator) -> None:
    with pytest.raises(TypeError, match="Timeline"):
        manual.add_workflow("x", timeline="status running")  # type: ignore[arg-type]
