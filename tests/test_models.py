"""Models and the converter: the documented examples, forward compatibility, round trips."""

from __future__ import annotations

import json
import pickle
import typing
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Dict

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cyberun._convert import decode_event, parse_timestamp, structure, unstructure
from cyberun.errors import DecodeError
from cyberun.models import (
    CancelledEvent,
    CompletedEvent,
    ErrorEvent,
    FailedEvent,
    OpenEnum,
    Page,
    ParameterDef,
    ProgressEvent,
    StatusEvent,
    Task,
    TaskResult,
    TaskStatus,
    ToolType,
    UnknownEvent,
    UploadTarget,
    Webhook,
    WebhookDelivery,
    Workflow,
)
from cyberun.sse import ServerSentEvent

SEEDS = Path(__file__).resolve().parents[2] / "shared" / "seeds"


def _seed_example(name: str) -> Dict[str, Any]:
    text = next(SEEDS.glob(f"{name}_*.txt")).read_text()
    start = text.index("\n{\n") + 1
    depth = 0
    for index, char in enumerate(text[start:], start):
        depth += {"{": 1, "}": -1}.get(char, 0)
        if depth == 0:
            return json.loads(text[start : index + 1])  # type: ignore[no-any-return]
    raise AssertionError("no JSON example")


# The documented examples, verbatim (also kept here so the tests run without ../shared).
SEED_003_TASK = {
    "id": "019abc12-9012-7890-abcd-ef1234567896",
    "workflow_id": "019abc12-8901-7890-abcd-ef1234567895",
    "created_at": "2025-02-10T14:00:00Z",
    "task_error": "",
    "retry_count": 0,
    "started_at": "2025-02-10T14:00:05Z",
    "completed_at": "2025-02-10T14:01:30Z",
    "agent_id": "agent-gpu-01",
    "agent_labels": ["gpu", "a100"],
    "gateway_id": "gw-a1b2c3d4",
    "gpu_type": "NVIDIA GeForce RTX 4090",
    "dispatch_target": "agent",
    "target_pool": "team",
    "tool_type": "comfyui",
}
SEED_004_RESULT = {
    "id": "019abc12-9012-7890-abcd-ef1234567896",
    "task_output": {
        "storage_key": "tasks/019c65a0-1234-7000-8000-abcdef123456/output_00001_.png",
        "image_count": 1,
    },
    "download_url": "https://s3.example.com/tasks/019c65a0-.../output.png?X-Amz-Expires=3600&...",
    "download_urls": {
        "9.images.0": "https://s3.example.com/outputs/.../image.png?X-Amz-Expires=3600&..."
    },
    "expires_at": "2025-02-10T15:01:30Z",
    "task_error": "",
    "completed_at": "2025-02-10T14:01:30Z",
}
UTC = timezone.utc


@pytest.mark.skipif(not SEEDS.is_dir(), reason="the seeds live in ../shared beside the repository")
def test_the_embedded_examples_are_the_seeds_verbatim() -> None:
    assert _seed_example("003") == SEED_003_TASK
    assert _seed_example("004") == SEED_004_RESULT


def test_seed_003_task_decodes_verbatim() -> None:
    task = structure(SEED_003_TASK, Task)
    assert task.id == "019abc12-9012-7890-abcd-ef1234567896"
    assert task.workflow_id == "019abc12-8901-7890-abcd-ef1234567895"
    assert task.task_status is None and task.task_source is None  # omitted by the example
    assert task.created_at == datetime(2025, 2, 10, 14, 0, tzinfo=UTC)
    assert task.started_at == datetime(2025, 2, 10, 14, 0, 5, tzinfo=UTC)
    assert task.completed_at == datetime(2025, 2, 10, 14, 1, 30, tzinfo=UTC)
    assert (task.task_error, task.retry_count) == ("", 0)
    assert task.agent_labels == ["gpu", "a100"]
    assert (task.agent_id, task.gateway_id) == ("agent-gpu-01", "gw-a1b2c3d4")
    assert task.gpu_type == "NVIDIA GeForce RTX 4090"
    assert (task.dispatch_target, task.target_pool, task.tool_type) == ("agent", "team", "comfyui")
    assert task.is_terminal is False


def test_seed_004_result_decodes_verbatim() -> None:
    result = structure(SEED_004_RESULT, TaskResult)
    assert result.task_output == SEED_004_RESULT["task_output"]
    assert result.download_url == SEED_004_RESULT["download_url"]
    assert result.download_urls == SEED_004_RESULT["download_urls"]
    assert result.expires_at == datetime(2025, 2, 10, 15, 1, 30, tzinfo=UTC)
    assert result.task_status is None
    assert [key for key, _ in result.urls()] == ["", "9.images.0"]


# --- open enumerations -------------------------------------------------------------


def test_task_status_known_values_and_terminal_states() -> None:
    assert [str(s) for s in TaskStatus.known()] == [
        "pending", "waiting", "provisioning", "queued", "running",
        "completed", "failed", "cancelled",
    ]  # fmt: skip
    assert {s for s in TaskStatus.known() if s.is_terminal} == {"completed", "failed", "cancelled"}
    assert TaskStatus.PROVISIONING == "provisioning"
    assert TaskStatus.RUNNING.is_known and not TaskStatus.RUNNING.is_terminal


def test_unknown_enum_values_keep_their_raw_string() -> None:
    task = structure({"id": "t", "task_status": "paused", "tool_type": "blender"}, Task)
    assert isinstance(task.task_status, TaskStatus) and task.task_status == "paused"
    assert task.task_status.value == "paused" and not task.task_status.is_known
    assert not task.task_status.is_terminal
    assert isinstance(task.tool_type, ToolType) and task.tool_type == "blender"
    assert repr(task.task_status) == "TaskStatus('paused')"


def test_open_enums_behave_like_strings_and_pickle() -> None:
    status = TaskStatus("running")
    assert status == "running" and hash(status) == hash("running")
    assert f"{status}" == "running" and json.dumps(status) == '"running"'
    assert TaskStatus(status) is status
    assert pickle.loads(pickle.dumps(status)) == status
    assert type(pickle.loads(pickle.dumps(status))) is TaskStatus
    with pytest.raises(TypeError):
        TaskStatus(3)  # type: ignore[arg-type]


# --- forward compatibility ---------------------------------------------------------


def test_unknown_fields_are_ignored_but_kept_in_raw() -> None:
    data = dict(SEED_003_TASK, priority=7, region="eu")
    task = structure(data, Task)
    assert task.raw["priority"] == 7 and task.raw["region"] == "eu"
    with pytest.raises(TypeError):
        task.raw["priority"] = 8  # type: ignore[index]
    assert unstructure(task)["priority"] == 7  # survives a round trip


def test_raw_is_not_part_of_equality_or_repr() -> None:
    one = structure({"id": "t", "x": 1}, Task)
    two = structure({"id": "t", "x": 2}, Task)
    assert one == two
    assert "raw" not in repr(one)


def test_nulls_and_missing_fields() -> None:
    task = structure(
        {"id": "t", "task_error": None, "retry_count": None, "started_at": None}, Task
    )
    assert (task.task_error, task.retry_count, task.started_at) == ("", 0, None)
    assert task.agent_labels is None and task.created_at is None


def test_a_missing_id_is_a_decode_error() -> None:
    with pytest.raises(DecodeError, match="Task contract") as info:
        structure({"task_status": "running"}, Task)
    assert info.value.what == "Task"


@pytest.mark.parametrize(
    "data",
    [
        {"id": 5},
        {"id": "t", "retry_count": "3"},
        {"id": "t", "retry_count": True},
        {"id": "t", "created_at": "yesterday"},
        {"id": "t", "agent_labels": "gpu"},
        {"id": "t", "task_status": 1},
        ["not", "an", "object"],
        "text",
    ],
)
def test_wrong_types_are_decode_errors_not_silent_coercions(data: Any) -> None:
    with pytest.raises(DecodeError):
        structure(data, Task)


def test_integral_floats_are_accepted_as_integers() -> None:
    assert structure({"id": "t", "retry_count": 2.0}, Task).retry_count == 2


# --- timestamps ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-02-10T14:00:00Z", datetime(2025, 2, 10, 14, 0, tzinfo=UTC)),
        ("2025-02-10T14:00:00z", datetime(2025, 2, 10, 14, 0, tzinfo=UTC)),
        ("2025-02-10T14:00:00.5Z", datetime(2025, 2, 10, 14, 0, 0, 500000, tzinfo=UTC)),
        ("2025-02-10T14:00:00.123456789Z", datetime(2025, 2, 10, 14, 0, 0, 123456, tzinfo=UTC)),
        ("2025-02-10T14:00:00,25+00:00", datetime(2025, 2, 10, 14, 0, 0, 250000, tzinfo=UTC)),
        ("2025-02-10 14:00:00+05:30", datetime(2025, 2, 10, 8, 30, tzinfo=UTC)),
        ("2025-02-10T14:00:00-0800", datetime(2025, 2, 10, 22, 0, tzinfo=UTC)),
        ("2025-02-10T14:00:00+02", datetime(2025, 2, 10, 12, 0, tzinfo=UTC)),
        ("2025-02-10T14:00:00", datetime(2025, 2, 10, 14, 0, tzinfo=UTC)),
        ("2025-02-10T14:00Z", datetime(2025, 2, 10, 14, 0, tzinfo=UTC)),
        ("2025-02-10", datetime(2025, 2, 10, tzinfo=UTC)),
        ("2016-12-31T23:59:60Z", datetime(2016, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
    ],
)
def test_timestamps_are_timezone_aware(text: str, expected: datetime) -> None:
    parsed = parse_timestamp(text)
    assert parsed.tzinfo is not None
    assert parsed == expected


def test_offsets_are_kept() -> None:
    assert parse_timestamp("2025-02-10T14:00:00+05:30").utcoffset() == timedelta(
        hours=5, minutes=30
    )


@pytest.mark.parametrize(
    "text",
    [
        "",
        "...",
        "2025-13-01T00:00:00Z",
        "2025-02-10T25:00Z",
        "10/02/2025",
        "2025-02-10T14:00:00+24:00",
    ],
)
def test_invalid_timestamps_raise(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - any ValueError subclass is the contract
        parse_timestamp(text)


# --- events ---------------------------------------------------------------------------


def sse(event: str, data: Any, id: str = "") -> ServerSentEvent:
    return ServerSentEvent(event, data if isinstance(data, str) else json.dumps(data), id)


def test_the_documented_event_examples_decode() -> None:
    # seed 000 / 002 examples, placeholders included
    status = decode_event(sse("status", '{"task_id":"...","status":"running","timestamp":"..."}'))
    assert isinstance(status, StatusEvent) and status.status == "running"
    assert status.timestamp is None  # "..." is not a time: events stay lenient
    progress = decode_event(
        sse(
            "progress",
            '{"task_id":"...","progress":0.35,"current_node":"3","step_current":7,'
            '"step_total":20,"timestamp":"2026-02-01T14:30:10Z"}',
        )
    )
    assert isinstance(progress, ProgressEvent)
    assert (progress.progress, progress.step_current, progress.step_total) == (0.35, 7, 20)
    assert progress.current_node == "3" and progress.percentage == pytest.approx(35.0)
    assert progress.timestamp == datetime(2026, 2, 1, 14, 30, 10, tzinfo=UTC)
    completed = decode_event(
        sse("completed", '{"task_id":"...","status":"completed","completed_at":"...","output":{}}')
    )
    assert (
        isinstance(completed, CompletedEvent) and completed.output == {} and completed.is_terminal
    )
    failed = decode_event(
        sse("failed", '{"task_id":"...","status":"failed","error":"ComfyUI execution error: ..."}')
    )
    assert (
        isinstance(failed, FailedEvent)
        and failed.error.startswith("ComfyUI")
        and failed.is_terminal
    )
    cancelled = decode_event(sse("cancelled", '{"task_id":"...","status":"cancelled"}'))
    assert isinstance(cancelled, CancelledEvent) and cancelled.is_terminal
    error = decode_event(sse("error", '{"message":"failed to fetch task status"}'))
    assert isinstance(error, ErrorEvent) and error.message == "failed to fetch task status"
    assert not error.is_terminal


def test_nerfstudio_progress_fields() -> None:
    event = decode_event(
        sse(
            "progress",
            {"task_id": "t", "progress": 0.42, "stage": "train", "message": "step 3000/30000"},
        )
    )
    assert isinstance(event, ProgressEvent)
    assert (event.stage, event.message, event.step_current) == ("train", "step 3000/30000", None)


@pytest.mark.parametrize(
    ("fields", "percentage"),
    [
        ({"progress": 0.5}, 50.0),
        ({"progress": 1.5}, 100.0),
        ({"progress": -0.1}, 0.0),
        ({"step_current": 7, "step_total": 20}, 35.0),
        ({"step_current": 7, "step_total": 0}, None),
        ({}, None),
    ],
)
def test_progress_percentage(fields: Dict[str, Any], percentage: Any) -> None:
    assert ProgressEvent(**fields).percentage == percentage


def test_unknown_event_types_are_kept() -> None:
    event = decode_event(sse("heartbeat", {"task_id": "t", "n": 1}, id="9"))
    assert isinstance(event, UnknownEvent)
    assert (event.event, event.task_id, event.event_id) == ("heartbeat", "t", "9")
    assert json.loads(event.data) == {"task_id": "t", "n": 1}
    assert decode_event(sse("weird", "not json")).raw == {}


def test_event_ids_and_raw_are_attached() -> None:
    event = decode_event(
        sse("status", {"task_id": "t", "status": "queued", "extra": True}, id="4")
    )
    assert event.event_id == "4" and event.raw["extra"] is True


@pytest.mark.parametrize(
    "event",
    [
        sse("progress", '{"task_id": "t", "progress": 0.5'),
        sse("status", "[1, 2]"),
        sse("status", {"task_id": "t"}),
        sse("progress", {"task_id": "t", "progress": "half"}),
        sse("completed", "{" * 100_000),
    ],
)
def test_malformed_known_events_are_decode_errors(event: ServerSentEvent) -> None:
    with pytest.raises(DecodeError):
        decode_event(event)


def test_failed_event_accepts_task_error_too() -> None:
    event = decode_event(sse("failed", {"task_id": "t", "task_error": "boom"}))
    assert isinstance(event, FailedEvent) and event.error == "boom"


def test_events_unstructure_with_their_type() -> None:
    data = unstructure(ProgressEvent(task_id="t", progress=0.5, event_id="3"))
    assert data["type"] == "progress" and data["progress"] == 0.5 and data["event_id"] == "3"


# --- reprs never show secrets ------------------------------------------------------------


def test_reprs_redact_presigned_signatures_and_secrets() -> None:
    result = structure(SEED_004_RESULT, TaskResult)
    assert "X-Amz-Expires" not in repr(result) and "[redacted]" in repr(result)
    target = UploadTarget("inputs/x", "https://s3.example.com/x?X-Amz-Signature=abc", {})
    assert "abc" not in repr(target)
    hook = Webhook("h", webhook_secret="whsec_supersecret")
    assert "supersecret" not in repr(hook)


# --- small helpers ------------------------------------------------------------------------


def test_result_urls_are_deduplicated() -> None:
    result = TaskResult(
        "t",
        download_url="https://s/a?x",
        download_urls={"9.images.0": "https://s/a?x", "9.images.1": "https://s/b?y"},
    )
    assert result.urls() == [("9.images.0", "https://s/a?x"), ("9.images.1", "https://s/b?y")]
    assert TaskResult("t").urls() == []


def test_result_expiry() -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    result = TaskResult("t", expires_at=now + timedelta(seconds=30))
    assert not result.is_expired(now)
    assert result.is_expired(now, margin=60)
    assert result.is_expired(now + timedelta(minutes=1))
    assert not TaskResult("t").is_expired(now)


def test_workflow_parameter_lookup_and_select_options() -> None:
    workflow = structure(
        {
            "id": "w",
            "parameters": [
                {
                    "key": "sampler",
                    "type": "select",
                    "options": ["euler", {"label": "DPM", "value": "dpmpp"}],
                },
                {"key": "prompt", "type": "string", "required": True},
            ],
        },
        Workflow,
    )
    sampler = workflow.parameter("sampler")
    assert sampler is not None and sampler.option_values() == ["euler", "dpmpp"]
    assert workflow.parameter("nope") is None


def test_page_count() -> None:
    assert Page(items=[1, 2], per_page=2, total_count=5).page_count == 3
    assert Page(items=[], per_page=0, total_count=0).page_count == 0


def test_webhook_delivery_key() -> None:
    delivery = structure(
        {"event_type": "task.completed", "task_id": "t", "task_status": "completed"},
        WebhookDelivery,
    )
    assert delivery.delivery_key == ("t", "task.completed")


# --- properties -----------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)
OFFSETS = st.integers(-23 * 60 - 59, 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))
AWARE = st.datetimes(
    min_value=datetime(1900, 1, 1),
    max_value=datetime(2200, 1, 1),
    timezones=st.just(UTC) | OFFSETS,
)


def strategy_for(tp: Any) -> st.SearchStrategy[Any]:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union:
        inner = [a for a in args if a is not type(None)]
        return st.none() | strategy_for(inner[0])
    if origin in (list, typing.List):
        return st.lists(strategy_for(args[0]), max_size=3)
    if origin in (dict, typing.Dict):
        return st.dictionaries(st.text(max_size=8), strategy_for(args[1]), max_size=3)
    if tp is Any:
        return JSON_VALUES
    if tp is str:
        return st.text(max_size=20)
    if tp is int:
        return st.integers(-(2**53), 2**53)
    if tp is float:
        return st.floats(allow_nan=False, allow_infinity=False)
    if tp is bool:
        return st.booleans()
    if tp is datetime:
        return AWARE
    if isinstance(tp, type) and issubclass(tp, OpenEnum):
        return (st.sampled_from(tp._values) | st.text(max_size=12)).map(tp)
    if attrs.has(tp):
        return model_strategy(tp)
    raise NotImplementedError(tp)


def model_strategy(cls: type) -> st.SearchStrategy[Any]:
    hints = typing.get_type_hints(cls)
    fields = {f.name: strategy_for(hints[f.name]) for f in attrs.fields(cls) if f.name != "raw"}
    return st.builds(cls, **fields)


MODELS = [Task, TaskResult, ParameterDef, Workflow, UploadTarget, Webhook, WebhookDelivery]


@pytest.mark.parametrize("cls", MODELS, ids=lambda c: c.__name__)
@given(data=st.data())
def test_structure_after_unstructure_is_identity(cls: type, data: st.DataObject) -> None:
    model = data.draw(model_strategy(cls))
    assert structure(unstructure(model), cls) == model


@pytest.mark.parametrize("cls", MODELS, ids=lambda c: c.__name__)
@given(data=st.data())
def test_decoding_arbitrary_wire_json_raises_only_decode_error(
    cls: type, data: st.DataObject
) -> None:
    names = [f.name for f in attrs.fields(cls) if f.name != "raw"]
    wire = data.draw(
        st.dictionaries(st.sampled_from(names) | st.text(max_size=6), JSON_VALUES, max_size=8)
    )
    try:
        structure(wire, cls)
    except DecodeError:
        pass


@given(
    event=st.sampled_from(
        ["status", "progress", "completed", "failed", "cancelled", "error", "other"]
    ),
    data=st.text(max_size=60) | JSON_VALUES.map(json.dumps),
)
def test_decoding_arbitrary_events_raises_only_decode_error(event: str, data: str) -> None:
    try:
        decode_event(ServerSentEvent(event, data))
    except DecodeError:
        pass
