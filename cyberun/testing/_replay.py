"""Replaying a recording as a workflow: the recorded bytes, paced, with the new task's id."""

from __future__ import annotations

import json
from typing import Any, Callable, List, Optional, Tuple

from ._recording import Answer, Recording, placeholder
from ._records import TERMINAL, Entry

__all__ = ["Replay"]

_STATUSES = ("pending", "waiting", "provisioning", "queued", "running")


class Replay:
    """What the emulator needs from a recording to act out its task again."""

    def __init__(self, recording: Recording) -> None:
        self.recording = recording
        self.start = recording.start()
        self.streams: List[Answer] = recording.of("events")
        if not self.streams:
            raise ValueError(f"{recording.path} records no event stream to replay")
        self.tasks = [(a.t - self.start, a.body) for a in recording.of("task")]
        self.results = [(a.t - self.start, a.body) for a in recording.of("result")]
        self.output_keys = self._output_keys()
        self.workflow: Any = None  # the recorded workflow definition, if any
        for answer in recording.answers:
            data = _json(answer.body) if "/workflows/" in answer.path else None
            if answer.method == "GET" and isinstance(data, dict) and "parameters" in data:
                self.workflow = data

    def _output_keys(self) -> List[str]:
        for _, body in reversed(self.results):
            data = _json(body)
            if isinstance(data, dict):
                urls = data.get("download_urls")
                if isinstance(urls, dict) and urls:
                    return list(urls)
                if data.get("download_url"):
                    return [""]
        return []

    # -- the task's states over time (for the task, result and webhook routes) ------------

    def entries(self, task_id: str) -> List[Entry]:
        """Status changes and the terminal event, times relative to the task's creation."""
        found: List[Entry] = []
        for answer in self.streams:
            for at, name, data in _events(answer):
                status = data.get("status") if isinstance(data, dict) else None
                if name == "status" and status in _STATUSES:
                    found.append(Entry(at - self.start, "status", {}, str(status)))
                elif name in TERMINAL:
                    found.append(Entry(at - self.start, name, dict(data), name))
        if not any(e.event in TERMINAL for e in found):
            for at, body in self.tasks:
                data = _json(body)
                status = data.get("task_status") if isinstance(data, dict) else None
                if status in TERMINAL:
                    error = {"error": data.get("task_error", "")} if status == "failed" else {}
                    found.append(Entry(at, str(status), error, str(status)))
                    break
        found.sort(key=lambda e: e.time)
        entries = [Entry(0.0, "status", {}, "pending")]
        for entry in found:
            entries.append(Entry(max(entry.time, 0.0), entry.event, entry.data, entry.status))
            if entry.event in TERMINAL:
                break
        for entry in entries:
            entry.data = json.loads(self.swap(json.dumps(entry.data).encode(), task_id))
        return entries

    # -- the recorded bytes -----------------------------------------------------------------

    def swap(self, body: bytes, task_id: str) -> bytes:
        """``body`` with the recorded task id replaced by ``task_id``."""
        return body.replace(self.recording.task_id.encode(), task_id.encode())

    def stream(self, number: int) -> Answer:
        """The recorded stream the ``number``-th (from 0) stream of a task replays."""
        return self.streams[min(number, len(self.streams) - 1)]

    def task_body(self, task_id: str, age: float) -> bytes:
        """The task JSON recorded last before ``age`` seconds into the task (else the first)."""
        return self.swap(_at(self.tasks, age), task_id) if self.tasks else b""

    def result_body(
        self, task_id: str, age: float, sign: Callable[[str], Tuple[str, str]]
    ) -> bytes:
        """The result JSON recorded last before ``age``, its placeholders signed afresh.

        ``sign(key)`` returns ``(url, expires_at)`` for the output ``key``.
        """
        if not self.results:
            return b""
        body = self.swap(_at(self.results, age), task_id)
        data = _json(body)
        if not isinstance(data, dict):
            return body
        expires: Optional[str] = None
        if data.get("download_url") == placeholder(""):
            data["download_url"], expires = sign("")
        urls = data.get("download_urls")
        if isinstance(urls, dict):
            for key in list(urls):
                if urls[key] == placeholder(key):
                    urls[key], expires = sign(key)
        if expires is not None and "expires_at" in data:
            data["expires_at"] = expires
        return json.dumps(data, separators=(",", ":")).encode()


def _at(snapshots: List[Tuple[float, bytes]], age: float) -> bytes:
    chosen = snapshots[0][1]
    for at, body in snapshots:
        if at <= age:
            chosen = body
    return chosen


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


def _events(answer: Answer) -> List[Tuple[float, str, Any]]:
    """(time its block completed, event name, data JSON) for each event of a stream."""
    found: List[Tuple[float, str, Any]] = []
    buffer = b""
    for at, piece in answer.reads:
        buffer += piece
        text = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        *blocks, rest = text.split(b"\n\n")
        buffer = rest
        for block in blocks:
            name, data = "message", []
            for line in block.decode("utf-8", "replace").split("\n"):
                field, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if field == "event":
                    name = value
                elif field == "data":
                    data.append(value)
            if data:
                parsed = _json("\n".join(data).encode())
                found.append((at, name, parsed if parsed is not None else {}))
    return found
