"""The ``/tasks/{id}/events`` stream: a task's timeline written as Server-Sent Events."""

from __future__ import annotations

import json
import time
from typing import Dict, List, Optional, Tuple

from ._faults import Fault
from ._http import Dropped, Handler, StreamWriter
from ._records import Entry, TaskRecord
from ._world import World

__all__ = ["serve_events"]

_STREAM_FAULTS = (
    "drop",
    "stall",
    "keepalive_only",
    "wrong_content_type",
    "malformed_json",
    "error_event",
    "no_terminal",
    "slow_drip",
    "reset",
)


def serve_events(handler: Handler, record: TaskRecord) -> None:
    """Answer an events request for ``record`` (faults included) until the stream ends."""
    world = handler.world
    faults: Dict[str, Fault] = {
        f.kind: f
        for f in world.faults.take(
            _STREAM_FAULTS,
            "events",
            record.id,
            # A reset without after_bytes happens before answering (the handler's).
            where=lambda f: f.kind != "reset" or f.get("after_bytes") is not None,
        )
    }
    if "wrong_content_type" in faults:
        content_type = faults["wrong_content_type"].get("content_type", "text/html; charset=utf-8")
        handler.send_bytes(200, b"<html><body>Gateway login required</body></html>", content_type)
        return
    # RFC 9112 section 6.1: no chunked transfer coding to an HTTP/1.0 client;
    # its stream is delimited by closing the connection.
    chunked = world.stream.framing == "chunked" and handler.request_version != "HTTP/1.0"
    handler.record.status = 200
    handler.send_response(200)
    handler.send_header("Content-Type", "text/event-stream; charset=utf-8")
    handler.send_header("Cache-Control", "no-cache")
    handler.send_header("X-Request-ID", handler.request_id)
    if chunked:
        handler.send_header("Transfer-Encoding", "chunked")
    # The server closes the connection once the stream ends, and says so.
    handler.send_header("Connection", "close")
    handler.close_connection = True
    handler.end_headers()
    cut = faults.get("drop") or faults.get("reset")
    writer = StreamWriter(
        handler,
        chunked=chunked,
        cut_after=cut.get("after_bytes") if cut else None,
        cut_how="reset" if cut is not None and cut.kind == "reset" else "drop",
        drip_delay=float(faults["slow_drip"].get("delay", 0.001))
        if "slow_drip" in faults
        else None,
        stopping=world.stopping,
    )
    if record.workflow.replay is not None:
        _replay(world, record, writer)
    else:
        _Stream(handler, world, record, writer, faults).run()
    writer.finish()


def _replay(world: World, record: TaskRecord, writer: StreamWriter) -> None:
    """Write a recorded stream again: each read at its recorded pace, with this task's id."""
    replay = record.workflow.replay
    number, record.streams_opened = record.streams_opened, record.streams_opened + 1
    answer = replay.stream(number)
    opened = world.now()
    for at, piece in answer.reads:
        due = opened + (at - answer.t)
        world.clock.wait_until(due, interrupted=world.stopping)
        if world.stopping():
            raise Dropped()
        writer.write(replay.swap(piece, record.id))
    if answer.error is not None:
        writer.cut()  # the recorded connection broke here


def event_bytes(entry: Entry, index: int, world: World, *, ids: bool, malformed: bool) -> bytes:
    """One entry as an SSE event block (timestamps added as the server adds them)."""
    data = dict(entry.data)
    if entry.event != "error":
        data.setdefault("timestamp", world.wall(entry.time))
    if entry.event == "completed" and entry.action == "event":
        data.setdefault("completed_at", world.wall(entry.time))
    text = json.dumps(data, separators=(",", ":"))
    if malformed:
        text = text[: len(text) // 2] + "{{not json"
    lines = []
    if ids:
        lines.append(f"id: {index}")
    lines.append(f"event: {entry.event}")
    lines.append(f"data: {text}")
    return ("\n".join(lines) + "\n\n").encode()


class _Stream:
    """One open stream: where it starts, what it writes next, and the faults on it."""

    def __init__(
        self,
        handler: Handler,
        world: World,
        record: TaskRecord,
        writer: StreamWriter,
        faults: Dict[str, Fault],
    ) -> None:
        self.handler = handler
        self.world = world
        self.record = record
        self.writer = writer
        self.faults = faults
        self.last_write = time.monotonic()

    def run(self) -> None:
        world, record, faults = self.world, self.record, self.faults
        if world.stream.retry is not None:
            self.writer.write(f"retry: {int(world.stream.retry)}\n\n".encode())
        if "error_event" in faults:
            message = faults["error_event"].get("message", "failed to fetch task status")
            self.writer.write(
                f"event: error\ndata: {json.dumps({'message': message})}\n\n".encode()
            )
        if "keepalive_only" in faults:
            self.keepalives_only(faults["keepalive_only"])
            return
        first, index = self.start()
        sent = 0
        stall = faults.get("stall")
        malformed = faults.get("malformed_json")
        drop = faults.get("drop")
        while True:
            if first:
                position = first.pop(0)
            else:
                position = index
                timeline = record.timeline
                due = timeline[position].time if position < len(timeline) else None
                if due is None or world.now() < due:
                    self.wait(due, timeline)
                    continue  # the time came, or the timeline changed (a cancel): look again
                index += 1
            entry = record.timeline[position]
            if entry.action == "keepalive":
                self.write(b": keep-alive\n\n")
                continue
            if entry.action == "drop":
                if position not in record.fired_drops:
                    record.fired_drops.add(position)
                    self.writer.cut()
                continue
            if entry.is_terminal and "no_terminal" in faults:
                return
            if stall is not None and sent == int(stall.get("after_events", 0)):
                if world.sleep(float(stall.get("seconds", 5.0))):
                    raise Dropped()
                stall = None
            is_malformed = malformed is not None and sent == int(malformed.get("after_events", 0))
            payload = event_bytes(
                entry, position, world, ids=world.stream.ids, malformed=is_malformed
            )
            world.record_write(record.id, position, time.monotonic())
            self.write(payload)
            sent += 1
            world.fire("event", self.handler.record, record.id, sent)
            if drop is not None and drop.get("after_events") is not None:
                if sent >= int(drop.get("after_events")):
                    self.writer.cut()
            if entry.is_terminal:
                return

    def write(self, data: bytes) -> None:
        self.writer.write(data)
        self.last_write = time.monotonic()

    def start(self) -> Tuple[List[int], int]:
        """What a new stream sends first, and where it continues live.

        With ``Last-Event-ID`` (when ids are on): nothing up front, then every
        event after that id. Otherwise, as the documentation describes a fresh
        stream: one ``status`` event for the task's current state, then live
        events (a finished task gets its terminal event and the stream ends).
        """
        world, record = self.world, self.record
        last_id = self.handler.headers.get("Last-Event-ID")
        if world.stream.ids and last_id is not None and last_id.strip().isdigit():
            return [], min(int(last_id) + 1, len(record.timeline))
        if world.stream.history == "full":
            return [], 0
        happened = record.entries_until(world.now())
        if not happened:
            return [], 0
        after = len(happened)
        if happened[-1].is_terminal:
            return [after - 1], after
        statuses = [
            i for i, e in enumerate(happened) if e.action == "event" and e.event == "status"
        ]
        return [statuses[-1]], after

    def wait(self, due: Optional[float], timeline: List[Entry]) -> None:
        """Wait for the next entry's time (or a change), writing keep-alives if asked."""
        world, record = self.world, self.record
        interval = world.stream.keepalive_interval
        max_real = None
        if interval is not None:
            max_real = max(0.0, self.last_write + interval - time.monotonic())
        reached = world.clock.wait_until(
            due if due is not None else float("inf"),
            interrupted=lambda: world.stopping() or record.timeline is not timeline,
            max_real=max_real,
        )
        if world.stopping():
            raise Dropped()
        if not reached and record.timeline is timeline and interval is not None:
            self.write(b": keep-alive\n\n")

    def keepalives_only(self, fault: Fault) -> None:
        interval = float(fault.get("interval", 0.05))
        seconds = fault.get("seconds")
        end = None if seconds is None else time.monotonic() + float(seconds)
        while end is None or time.monotonic() < end:
            self.write(b": keep-alive\n\n")
            if self.world.sleep(interval):
                raise Dropped()
