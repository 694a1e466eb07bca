"""register_task: one task's routes on a responses mock, from a Timeline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, List

import pytest

import cyberun
from cyberun.testing import Timeline, register_task

from .wire import events

API = "https://core.cyberun.cloud"
responses = pytest.importorskip("responses")
pytest.importorskip("requests")


def test_a_run_is_followed_and_downloaded_from_the_mock(tmp_path: Path) -> None:
    timeline = Timeline.queue().ticks(3).error("blip").complete()
    with responses.RequestsMock() as mock:
        task_id = register_task(mock, timeline)
        with cyberun.Client("sk-test", base_url=API, transport="requests") as client:
            seen: List[Any] = []
            task = client.run("text-to-image", {"prompt": "a fox"})
            result = task.wait(on_event=seen.append)
            assert client.get_task(task_id).task_status == "completed"
            (path,) = client.download(result, tmp_path)
    assert task.id == task_id and result.task_status == "completed"
    assert [e.type for e in seen].count("progress") == 3 and seen[-1].type == "completed"
    assert any(e.type == "error" for e in seen)
    assert path.read_bytes().startswith(b"\x89PNG")


def test_the_stream_is_documented_shape(tmp_path: Path) -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        task_id = register_task(mock, Timeline.queue().ticks(2).fail("boom"), workflow="w")
        import requests

        body = requests.get(f"https://core.cyberun.cloud/api/v1/r/tasks/{task_id}/events").content
        definition = requests.get("https://core.cyberun.cloud/api/v1/r/workflows/slug/w").json()
    found = events(body)
    assert [e.event for e in found] == ["status"] * 4 + ["progress"] * 2 + ["failed"]
    assert all(e.id is None for e in found) and found[-1].json()["error"] == "boom"
    assert definition["workflow_slug"] == "w" and json.dumps(definition["parameters"])


def test_several_outputs_are_a_cloud_result(tmp_path: Path) -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        register_task(mock, outputs=2, workflow="batch")
        with cyberun.Client("sk-test", base_url=API, transport="requests") as client:
            result = client.run("batch").wait()
            paths = client.download(result, tmp_path)
    assert result.download_url is None and sorted(result.download_urls or {}) == [
        "9.images.0",
        "9.images.1",
    ]
    assert len(paths) == 2
