"""The run record (cyberun-task.json) and the task's queue and run seconds."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from cyberun import Task
from cyberun.cli import main
from cyberun.testing import CyberunEmulator

from .conftest import ClientFactory


def test_task_queue_and_run_seconds() -> None:
    created = datetime(2025, 2, 10, 14, 0, 0, tzinfo=timezone.utc)
    task = Task(
        id="t",
        created_at=created,
        started_at=created + timedelta(seconds=12.5),
        completed_at=created + timedelta(seconds=72.5),
    )
    assert task.queue_seconds == 12.5 and task.run_seconds == 60.0
    waiting = Task(id="t", created_at=created)
    assert waiting.queue_seconds is None and waiting.run_seconds is None


def test_run_and_wait_writes_a_record_beside_the_outputs(
    server: CyberunEmulator, make_client: ClientFactory, tmp_path: Path
) -> None:
    archive = tmp_path / "photos.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("photo_001.jpg", b"jpeg")
    client = make_client(server)
    outcome = client.run_and_wait(
        "gaussian-splat", {"images": archive, "iterations": 100}, download_to=tmp_path / "out"
    )
    record = json.loads((tmp_path / "out" / "cyberun-task.json").read_text())
    task = client.get_task(outcome.task.id)
    assert record["task_id"] == task.id and record["status"] == "completed"
    assert record["workflow"] == {"id": task.workflow_id, "slug": "gaussian-splat@1"}
    images = record["parameters"]["images"]
    assert images["name"] == "photos.zip" and images["size"] == archive.stat().st_size
    assert images["sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert images["file_key"].startswith("inputs/")
    assert record["parameters"]["iterations"] == 100
    assert record["gpu_type"] == task.gpu_type and record["agent_id"] == task.agent_id
    assert record["queue_seconds"] == task.queue_seconds is not None
    assert record["run_seconds"] == task.run_seconds is not None
    assert record["started_at"] and record["completed_at"] and record["created_at"]
    assert [o["file"] for o in record["outputs"]] == [p.name for p in outcome.files]
    stages = {line["stage"] for line in record["log"]}
    assert {"process_data", "train", "export"} <= stages
    assert all(line["message"] for line in record["log"])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        [p.name for p in outcome.files] + ["cyberun-task.json"]
    )


def test_the_record_can_be_turned_off(
    server: CyberunEmulator, make_client: ClientFactory, tmp_path: Path
) -> None:
    client = make_client(server)
    outcome = client.run_and_wait(
        "text-to-image", {"prompt": "x"}, download_to=tmp_path, run_record=False
    )
    assert [p.name for p in tmp_path.iterdir()] == [p.name for p in outcome.files]


def test_the_user_on_event_still_sees_every_event(
    server: CyberunEmulator, make_client: ClientFactory, tmp_path: Path
) -> None:
    seen = []
    make_client(server).run_and_wait(
        "text-to-image", {"prompt": "x"}, download_to=tmp_path, on_event=seen.append
    )
    assert seen and seen[-1].is_terminal


@pytest.mark.parametrize("flag", [[], ["--no-run-record"]])
def test_the_cli_writes_the_record_unless_asked_not_to(
    server: CyberunEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flag: list
) -> None:
    monkeypatch.setenv("CYBERUN_API_KEY", server.api_key)
    monkeypatch.setenv("CYBERUN_BASE_URL", server.base_url)
    out, err = io.StringIO(), io.StringIO()
    args = ["run", "multi-output", "-p", "prompt=x", "--download", str(tmp_path), *flag]
    assert main(args, stdout=out, stderr=err) == 0, err.getvalue()
    record = tmp_path / "cyberun-task.json"
    assert record.exists() is (not flag)
    if not flag:
        data = json.loads(record.read_text())
        assert [o["key"] for o in data["outputs"]] == ["9.images.0", "9.images.1", "9.images.2"]
        assert data["workflow"]["slug"].startswith("multi-output@")


def test_the_record_hashes_a_folder_and_a_file_object_as_uploaded(
    server: CyberunEmulator, make_client: ClientFactory, tmp_path: Path
) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.jpg").write_bytes(b"a" * 5000)
    client = make_client(server)
    outcome = client.run_and_wait(
        "gaussian-splat", {"images": photos, "iterations": 100}, download_to=tmp_path / "one"
    )
    images = json.loads((tmp_path / "one" / "cyberun-task.json").read_text())["parameters"]
    uploaded = server.stored_bytes(outcome.task._uploads["images"].file_key)
    assert images["images"]["sha256"] == hashlib.sha256(uploaded).hexdigest()
    assert images["images"]["name"] == "photos.zip"
    data = b"PK\x05\x06" + b"\x00" * 18
    stream = io.BytesIO(b"header" + data)
    stream.seek(6)  # uploaded from where the file object stands
    client.run_and_wait(
        "gaussian-splat", {"images": stream, "iterations": 100}, download_to=tmp_path / "two"
    )
    record = json.loads((tmp_path / "two" / "cyberun-task.json").read_text())
    assert record["parameters"]["images"]["sha256"] == hashlib.sha256(data).hexdigest()


def test_a_file_changed_after_its_upload_is_not_given_a_wrong_hash(
    server: CyberunEmulator, make_client: ClientFactory, tmp_path: Path
) -> None:
    archive = tmp_path / "photos.zip"
    archive.write_bytes(b"PK\x05\x06" + b"\x00" * 18)
    client = make_client(server)
    task = client.run("gaussian-splat", {"images": archive, "iterations": 100})
    task.wait()
    archive.write_bytes(b"something else, written later")
    path = client.write_run_record(task, tmp_path, [])
    assert json.loads(path.read_text())["parameters"]["images"]["sha256"] is None
