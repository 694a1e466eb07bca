"""Record and replay: RecordingTransport, CyberunEmulator.add_recording, watch --record-stream."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

import cyberun
from cyberun import cli
from cyberun.testing import CyberunEmulator, ManualClock, RecordingTransport
from cyberun.testing._recording import Recording
from cyberun.transports import UrllibTransport

from .wire import events

EXAMPLES = Path(__file__).parent.parent / "recordings"

#: Every built-in workflow that accepts tasks, with small parameters.
BUILTINS: Dict[str, Dict[str, Any]] = {
    "text-to-image": {"prompt": "a fox", "steps": 4},
    "multi-output": {"prompt": "foxes", "steps": 3},
    "always-fails": {},
    "slow-render": {"steps": 3},
    "gaussian-splat": {"iterations": 200},
}


def record(server: CyberunEmulator, workflow: str, path: Path, like: str = "") -> str:
    """Follow one task of ``workflow`` (run like ``like``) through a RecordingTransport."""
    transport = RecordingTransport(UrllibTransport(), path)
    with cyberun.Client(server.api_key, base_url=server.base_url, transport=transport) as client:
        parameters = dict(BUILTINS[like or workflow])
        if (like or workflow) == "gaussian-splat":
            parameters["images"] = client.upload_file(io.BytesIO(b"PK zip"))
        task = client.run(workflow, parameters)
        try:
            task.wait()
        except cyberun.TaskFailed:
            pass
    return task.id


def stream_bytes(path: Path) -> Tuple[bytes, List[str]]:
    """The first recorded event stream (task id made neutral) and its event names."""
    recording = Recording(path)
    body = recording.of("events")[0].body.replace(recording.task_id.encode(), b"TASK")
    return body, [str(e.event) for e in events(body)]


@pytest.mark.parametrize("workflow", sorted(BUILTINS))
def test_a_recording_of_every_builtin_workflow_round_trips(tmp_path: Path, workflow: str) -> None:
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    # The whole history on the first stream, whenever it opens: every event is in it.
    with CyberunEmulator(time_scale=0.005, sse_history="full") as server:
        original = record(server, workflow, first)
    with CyberunEmulator(time_scale=0.005, seed=1) as server:
        server.add_recording(first, slug=f"{workflow}-replayed")
        replayed = record(server, f"{workflow}-replayed", second, like=workflow)
        assert replayed != original
        assert server.task_status(replayed) == ("failed" if workflow == "always-fails" else
                                                "completed")  # fmt: skip
    body, names = stream_bytes(first)
    again, names_again = stream_bytes(second)
    assert names[-1] in ("completed", "failed") and names.count("status") >= 4
    assert again == body and names_again == names  # byte for byte, but for the task id
    assert Recording(second).task_id == replayed


def test_a_recording_holds_no_credential_and_no_signature(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    with CyberunEmulator(time_scale=0.005) as server:
        record(server, "multi-output", path)
        secrets = [server.api_key, server.storage_url]
    text = path.read_text(encoding="utf-8")
    assert all(secret not in text for secret in secrets)
    assert "X-Amz-Signature" not in text and "Bearer" not in text
    results = Recording(path).of("result")
    urls = json.loads(results[-1].body)["download_urls"]
    assert urls == {k: f"cyberun-recording:output/{k}" for k in urls}


def test_a_replayed_result_has_fresh_local_links(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    with CyberunEmulator(time_scale=0.005) as server:
        record(server, "text-to-image", path)
    with CyberunEmulator(time_scale=0.005) as server:
        server.add_recording(path)
        with cyberun.Client(server.api_key, base_url=server.base_url) as client:
            outcome = client.run_and_wait(
                "r", BUILTINS["text-to-image"], download_to=tmp_path / "out"
            )
    (file,) = outcome.files
    assert file.read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize(("name", "status"), [("text-to-image", "completed"),
                                              ("always-fails", "failed")])  # fmt: skip
def test_the_example_recordings_replay(name: str, status: str) -> None:
    with CyberunEmulator(time_scale=0.01) as server:
        server.add_recording(EXAMPLES / f"{name}.jsonl", slug="example")
        with cyberun.Client(server.api_key, base_url=server.base_url) as client:
            task = client.run("example", BUILTINS[name])
            seen: List[Any] = []
            errors: List[str] = []
            try:
                task.wait(on_event=seen.append)
            except cyberun.TaskFailed as failure:
                errors.append(failure.error)
            assert client.get_task(task.id).task_status == status
    assert len(errors) == (0 if status == "completed" else 1)
    assert all("CUDA out of memory" in error for error in errors)
    assert seen and all(getattr(e, "task_id", task.id) == task.id for e in seen)


def test_watch_record_stream_writes_a_replayable_recording(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "watched.jsonl"
    with CyberunEmulator(time_scale=0.01) as server:
        monkeypatch.setenv("CYBERUN_API_KEY", server.api_key)
        monkeypatch.setenv("CYBERUN_BASE_URL", server.base_url)
        task_id = server.create_task("text-to-image", {"prompt": "x", "steps": 3})
        out, err = io.StringIO(), io.StringIO()
        code = cli.main(["watch", task_id, "--record-stream", str(path)], stdout=out, stderr=err)
        assert code == 0, err.getvalue()
    recording = Recording(path)
    assert recording.task_id == task_id and recording.of("events")
    with CyberunEmulator(clock=ManualClock()) as server:
        server.add_recording(path, slug="watched")
        replayed = server.create_task("watched")
        server.advance(server.finish_time(replayed))
        assert server.task_status(replayed) == "completed"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "is empty"),
        ('{"hello": 1}\n', "not a cyberun recording"),
        ('{"format": "cyberun-recording", "version": 9}\n', "version 9 recording"),
        ('{"format": "cyberun-recording", "version": 1}\n{"type": "read"}\n', "line 2"),
        ('{"format": "cyberun-recording", "version": 1}\n', "no request about a task"),
    ],
)
def test_what_is_not_a_recording_is_refused_in_one_line(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content, encoding="utf-8")
    with CyberunEmulator() as server, pytest.raises(ValueError, match=message) as caught:
        server.add_recording(path)
    assert "\n" not in str(caught.value)
