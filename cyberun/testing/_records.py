"""Plain records the emulator keeps: requests, deliveries, workflows, tasks and stored objects.

Nothing here does I/O or knows about HTTP handlers; every other module of
the emulator may import it.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Set, Tuple

__all__ = [
    "TERMINAL",
    "DeliveryRecord",
    "Entry",
    "OutputFile",
    "RecordedRequest",
    "StoredObject",
    "TaskRecord",
    "WorkflowSpec",
    "signature_header",
]

TERMINAL = ("completed", "failed", "cancelled")


@dataclass
class RecordedRequest:
    """One request the emulator received, credentials redacted.

    ``headers`` keeps every header name; the values of ``Authorization``,
    ``X-Team-ID`` and cookies are replaced by ``"[redacted]"``, so a test can
    assert a credential was (or was not) sent without seeing it. ``body`` is
    the request body on the API listener (run parameters, webhook settings);
    storage uploads are not kept here.
    """

    listener: str  # "api" or "storage"
    method: str
    path: str
    query: Dict[str, str]
    headers: Dict[str, str]
    route: str = ""
    task_id: Optional[str] = None
    status: Optional[int] = None
    time: float = field(default_factory=time.monotonic)
    body: Optional[bytes] = None

    def header(self, name: str) -> Optional[str]:
        """A header's (possibly redacted) value, looked up case-insensitively."""
        lowered = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == lowered), None)


def signature_header(secret: str, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 of the raw body keyed with the whole secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass
class DeliveryRecord:
    """One webhook delivery attempt the emulator made."""

    webhook_id: str
    task_id: str
    event_type: str
    attempt: int
    url: str
    body: bytes
    signature: str
    status: Optional[int] = None
    error: str = ""
    time: float = field(default_factory=time.monotonic)

    @property
    def ok(self) -> bool:
        """True when the receiver answered 2xx."""
        return self.status is not None and 200 <= self.status < 300


@dataclass
class Entry:
    """One thing that happens to a task at an emulated time.

    ``action`` says what a stream does with it: ``"event"`` writes an SSE
    event, ``"foreign"`` writes an event about another task (it changes
    nothing here), ``"keepalive"`` writes a comment, ``"drop"`` cuts the
    connection of every stream that reaches it (once).
    """

    time: float
    event: str  # status | progress | completed | failed | cancelled | error ("" for the rest)
    data: Dict[str, Any]
    status: str  # the task's status from this entry on
    retry_count: int = 0  # the task's retry count from this entry on
    action: str = "event"

    @property
    def is_terminal(self) -> bool:
        """Whether this entry ends the task."""
        return self.action == "event" and self.event in TERMINAL

    @property
    def writes_event(self) -> bool:
        """Whether a stream writes this entry as an SSE event."""
        return self.action in ("event", "foreign")


@dataclass
class OutputFile:
    """A result file in emulated storage."""

    key: str  # the output key: "" for the primary download_url, else e.g. "9.images.0"
    storage_key: str  # the object's path in the bucket
    content: bytes
    content_type: str


@dataclass
class StoredObject:
    """An object in emulated storage: in memory, spooled to a file, or only its size."""

    size: int
    content_type: str
    etag: str
    content: Optional[bytes] = None  # None: spooled to ``path``, or discarded
    path: Optional[Path] = None
    expires: Optional[float] = None  # emulated time it is deleted (retention)

    def chunks(self, start: int = 0, end: Optional[int] = None) -> Iterator[bytes]:
        """The bytes ``start..end`` (inclusive), in pieces of at most 64 KiB."""
        stop = self.size if end is None else end + 1
        if self.content is not None:
            for offset in range(start, stop, 65536):
                yield self.content[offset : min(offset + 65536, stop)]
        elif self.path is not None:
            with self.path.open("rb") as file:
                file.seek(start)
                left = stop - start
                while left > 0:
                    piece = file.read(min(65536, left))
                    if not piece:
                        return
                    left -= len(piece)
                    yield piece

    @property
    def readable(self) -> bool:
        """False for a discarded upload: only its size and checksum were kept."""
        return self.content is not None or self.path is not None


@dataclass
class WorkflowSpec:
    """A workflow the emulator can run, with how its tasks unfold."""

    slug: str
    display_name: str
    description: str
    tool_type: str
    parameters: List[Dict[str, Any]]
    # (task id, parameters) -> the task's timeline entries, times relative to its creation
    script: Callable[[str, Dict[str, Any]], List[Entry]]
    outputs: Callable[[TaskRecord], List[OutputFile]]
    version: int = 1
    dispatch_target: str = "agent"
    workflow_status: str = "active"
    task_timeout: int = 0
    id: str = ""
    created_at: float = 0.0
    replay: Any = None  # a _replay.Replay: the task acts out a recording

    def __post_init__(self) -> None:
        if not self.id:
            self.id = str(
                uuid.uuid5(uuid.NAMESPACE_URL, f"cyberun-emulator/{self.slug}@{self.version}")
            )


@dataclass
class TaskRecord:
    """A task: its request, its timeline, and (once done) its files."""

    id: str
    workflow: WorkflowSpec
    parameters: Dict[str, Any]
    created: float  # emulated time
    source: str  # "api_key" or "jwt"
    team_id: str
    seed: int
    options: Dict[str, Any] = field(default_factory=dict)
    timeline: List[Entry] = field(default_factory=list)
    outputs: List[OutputFile] = field(default_factory=list)
    fired_drops: Set[int] = field(default_factory=set)
    streams_opened: int = 0

    def entries_until(self, now: float) -> List[Entry]:
        """The timeline entries that have happened by ``now``."""
        return [entry for entry in self.timeline if entry.time <= now]

    def current(self, now: float) -> Tuple[str, Optional[Entry], int]:
        """(status, terminal entry or None, retry count) at ``now``."""
        status, terminal, retries = "pending", None, 0
        for entry in self.entries_until(now):
            status, retries = entry.status, entry.retry_count
            if entry.is_terminal:
                terminal = entry
        return status, terminal, retries

    def time_of(self, status: str) -> Optional[float]:
        """When the task first entered ``status``."""
        return next((e.time for e in self.timeline if e.status == status), None)

    def terminal(self) -> Optional[Entry]:
        """The entry that ends the task (whenever it happens), if any."""
        return next((e for e in self.timeline if e.is_terminal), None)

    def cancel(self, now: float) -> bool:
        """Cancel at ``now`` unless already terminal; True when it changed anything."""
        _, terminal, retries = self.current(now)
        if terminal is not None:
            return False
        self.timeline = [e for e in self.timeline if e.time <= now]
        self.timeline.append(
            Entry(
                now,
                "cancelled",
                {"task_id": self.id, "status": "cancelled"},
                "cancelled",
                retries,
            )
        )
        return True
