"""The run record: ``cyberun-task.json``, written beside a task's downloaded outputs.

The API keeps no logs a user can fetch later, and a folder of images says
nothing of how it was made. The record does: the workflow (id and
``slug@version``), the parameters (each uploaded input as its name, size and
SHA-256), the task's id, GPU, agent, times (created, started, completed; the
seconds queued and running), the outputs' keys with their file names, and
every Nerfstudio ``stage``/``message`` the follow saw. It is written
atomically (a temporary file renamed into place), after the outputs.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from .models import ProgressEvent, Task, TaskEvent, Workflow

__all__ = ["RECORD_NAME", "EventLog", "build_record", "write_record"]

RECORD_NAME = "cyberun-task.json"
#: The record keeps at most this many stage/message lines (the latest win).
MAX_LOG_LINES = 10000


class EventLog:
    """Collects the stage and message lines of a task's progress events."""

    def __init__(self) -> None:
        self.lines: List[Dict[str, Any]] = []

    def __call__(self, event: TaskEvent) -> None:
        """Note one event (anything but a progress event with a stage or message is ignored)."""
        if not isinstance(event, ProgressEvent) or not (event.stage or event.message):
            return
        line: Dict[str, Any] = {"stage": event.stage, "message": event.message}
        if event.progress is not None:
            line["progress"] = event.progress
        if event.timestamp is not None:
            line["timestamp"] = _iso(event.timestamp)
        if self.lines and self.lines[-1] == line:
            return
        self.lines.append(line)
        if len(self.lines) > MAX_LOG_LINES:
            del self.lines[0]


def _iso(value: Any) -> Optional[str]:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return str(value)


def build_record(
    task: Task,
    *,
    workflow: Optional[Workflow],
    parameters: Mapping[str, Any],
    inputs: Mapping[str, Mapping[str, Any]],
    outputs: Sequence[Tuple[str, Path]],
    log: Sequence[Mapping[str, Any]],
) -> Dict[str, Any]:
    """The record's JSON object.

    Args:
        task: the task as fetched after it ended.
        workflow: its definition, when known (for ``slug@version``).
        parameters: the run parameters as sent (file keys for inputs).
        inputs: per uploaded input parameter, its name, size and SHA-256.
        outputs: ``(key, path)`` of each downloaded output.
        log: the stage/message lines seen.
    """
    slug = None
    if workflow is not None and workflow.workflow_slug:
        slug = workflow.workflow_slug
        if workflow.version is not None:
            slug = f"{slug}@{workflow.version}"
    shown: Dict[str, Any] = {}
    for key, value in parameters.items():
        shown[key] = {"file_key": value, **inputs[key]} if key in inputs else value
    return {
        "task_id": task.id,
        "workflow": {"id": task.workflow_id or (workflow.id if workflow else None), "slug": slug},
        "status": None if task.task_status is None else str(task.task_status),
        "parameters": shown,
        "gpu_type": task.gpu_type,
        "agent_id": task.agent_id,
        "created_at": _iso(task.created_at),
        "started_at": _iso(task.started_at),
        "completed_at": _iso(task.completed_at),
        "queue_seconds": task.queue_seconds,
        "run_seconds": task.run_seconds,
        "outputs": [{"key": key, "file": path.name} for key, path in outputs],
        "log": list(log),
    }


def write_record(folder: Path, record: Mapping[str, Any]) -> Path:
    """Write ``record`` as ``folder/cyberun-task.json`` atomically; return its path."""
    from .strategies._destination import create_temp

    final = folder / RECORD_NAME
    fd, temp = create_temp(folder, RECORD_NAME)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump(record, file, indent=2, ensure_ascii=False, default=str)
            file.write("\n")
        os.replace(str(temp), str(final))
    except BaseException:
        try:
            temp.unlink()
        except OSError:
            pass
        raise
    return final
