"""Record what a server sent while following a task, and read such a recording back.

A recording is a JSON Lines file (UTF-8, one JSON object per line):

- line 1, the header: ``{"format": "cyberun-recording", "version": 1}``;
- ``{"type": "response", "n": N, "t": T, "method": "GET", "path": "/api/v1/r/tasks/ID",
  "status": 200, "headers": {...}}``: the N-th answer's head arrived T seconds after
  the recording began (only ``Content-Type`` and ``Retry-After`` are kept);
- ``{"type": "read", "n": N, "t": T, "data": "..."}``: one piece of answer N's body as
  the transport handed it over (text, UTF-8; bytes that are not UTF-8 are kept as
  ``"b64": "..."`` instead of ``"data"``);
- ``{"type": "end", "n": N, "t": T, "error": "..."}``: answer N's body ended
  (``error`` is present when the connection broke).

What is removed at recording time: every request header (the credential among
them), the query string of every URL, and in JSON bodies every presigned URL
(``download_url``, ``download_urls`` values, ``upload_url``), replaced by
``"cyberun-recording:output/<key>"`` placeholders (``<key>`` is ``""`` for the
primary output). Storage requests (downloads, uploads) are not recorded.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Dict, Iterator, List, Optional, Tuple, Union
from urllib.parse import urlsplit

from ..transports._base import BaseTransport, Request, Response, Timeout, Transport

__all__ = ["FORMAT", "VERSION", "Recording", "RecordingTransport", "placeholder"]

FORMAT = "cyberun-recording"
VERSION = 1
_KEPT_HEADERS = ("content-type", "retry-after")
_TASK_PATH = re.compile(r"/api/v1/r/tasks/([^/?#]+)")


def placeholder(key: str) -> str:
    """The text that stands for a presigned output URL in a recording."""
    return f"cyberun-recording:output/{key}"


def _scrub(value: Any) -> Any:
    """A JSON body with presigned URLs replaced by placeholders."""
    if isinstance(value, dict):
        scrubbed = {k: _scrub(v) for k, v in value.items()}
        if isinstance(value.get("download_url"), str):
            scrubbed["download_url"] = placeholder("")
        if isinstance(value.get("download_urls"), dict):
            scrubbed["download_urls"] = {k: placeholder(k) for k in value["download_urls"]}
        if isinstance(value.get("upload_url"), str):
            scrubbed["upload_url"] = placeholder("upload")
        if isinstance(value.get("upload_headers"), dict):
            scrubbed["upload_headers"] = {}
        return scrubbed
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


class RecordingTransport(BaseTransport):
    """Wraps any transport and records the API's answers to a file, for replay.

    Use it to capture what a real server sent while following a task; the
    emulator replays the file with
    [`add_recording`][cyberun.testing.CyberunEmulator.add_recording]:

    ```python
    import cyberun
    from cyberun.testing import CyberunEmulator, RecordingTransport
    from cyberun.transports import UrllibTransport

    with CyberunEmulator(time_scale=0.01) as server:
        recorder = RecordingTransport(UrllibTransport(), "render.jsonl")
        with cyberun.Client(
            server.api_key, base_url=server.base_url, transport=recorder
        ) as client:
            client.run("text-to-image", {"prompt": "a fox", "steps": 3}).wait()
    with open("render.jsonl") as file:
        print(file.readline().strip())  # {"format":"cyberun-recording","version":1}
    ```

    Only answers from ``/api/v1/...`` paths are recorded; credentials and
    presigned signatures never reach the file (see the format in
    ``cyberun.testing._recording``). Closing the transport closes the file and
    the inner transport.

    Args:
        inner: the transport that really sends the requests.
        path: the file to write (replaced if it exists).
    """

    def __init__(self, inner: Transport, path: Union[str, Path]) -> None:
        self.inner: Transport = inner
        self.path: Path = Path(path)
        self._file: Optional[IO[str]] = self.path.open("w", encoding="utf-8")
        self._lock = threading.Lock()
        self._count = 0
        self._start = time.monotonic()
        self._write({"format": FORMAT, "version": VERSION})

    def __repr__(self) -> str:
        return f"RecordingTransport({self.inner!r}, {str(self.path)!r})"

    def _write(self, record: Dict[str, Any]) -> None:
        with self._lock:
            if self._file is not None:
                self._file.write(json.dumps(record, separators=(",", ":")) + "\n")
                self._file.flush()

    def _now(self) -> float:
        return round(time.monotonic() - self._start, 6)

    def send(self, request: Request, *, timeout: Timeout) -> Response:
        """Send through the inner transport; record the answer as it is read."""
        response = self.inner.send(request, timeout=timeout)
        path = urlsplit(request.url).path
        if not path.startswith("/api/v1/"):
            return response
        with self._lock:
            self._count += 1
            number = self._count
        headers = {k.lower(): v for k, v in response.headers.items()}
        self._write(
            {
                "type": "response",
                "n": number,
                "t": self._now(),
                "method": request.method,
                "path": path,
                "status": response.status,
                "headers": {k: headers[k] for k in _KEPT_HEADERS if k in headers},
            }
        )
        is_json = headers.get("content-type", "").startswith("application/json")
        return Response(
            response.status,
            response.headers,
            stream=self._reads(response, number, is_json),
            close=response.close,
            url=response.url,
        )

    def _reads(self, response: Response, number: int, is_json: bool) -> Iterator[bytes]:
        pieces: List[bytes] = []
        error: Optional[str] = None
        try:
            for piece in response.iter_bytes():
                if is_json:
                    pieces.append(piece)
                else:
                    self._write({"type": "read", "n": number, "t": self._now(), **_text(piece)})
                yield piece
        except Exception as exc:
            error = type(exc).__name__
            raise
        finally:
            if is_json and pieces:
                body = b"".join(pieces)
                try:
                    body = json.dumps(_scrub(json.loads(body)), separators=(",", ":")).encode()
                except ValueError:
                    pass  # not JSON after all: kept as it came
                self._write({"type": "read", "n": number, "t": self._now(), **_text(body)})
            end: Dict[str, Any] = {"type": "end", "n": number, "t": self._now()}
            if error is not None:
                end["error"] = error
            self._write(end)

    def close(self) -> None:
        """Close the file and the inner transport."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
        self.inner.close()


def _text(piece: bytes) -> Dict[str, str]:
    try:
        return {"data": piece.decode("utf-8")}
    except UnicodeDecodeError:
        return {"b64": base64.b64encode(piece).decode("ascii")}


@dataclass
class Answer:
    """One recorded answer: its head, its reads with their times, how it ended."""

    method: str
    path: str
    status: int
    headers: Dict[str, str]
    t: float
    reads: List[Tuple[float, bytes]] = field(default_factory=list)
    error: Optional[str] = None

    @property
    def body(self) -> bytes:
        """Every read, joined."""
        return b"".join(piece for _, piece in self.reads)

    @property
    def route(self) -> str:
        """``events``, ``task``, ``result``, ``run``, or ``other``."""
        found = _TASK_PATH.match(self.path)
        if found:
            rest = self.path[found.end() :]
            return {"": "task", "/events": "events", "/result": "result"}.get(rest, "other")
        return "run" if self.path.endswith("/run") and self.method == "POST" else "other"


class Recording:
    """A recording read back: the recorded task's id and its answers, in order.

    Raises:
        ValueError: not a recording, or a version this emulator cannot read.
    """

    def __init__(self, path: Union[str, Path]) -> None:
        self.path = Path(path)
        lines = self.path.read_text(encoding="utf-8").splitlines()
        if not lines:
            raise ValueError(f"{self.path} is empty, not a cyberun recording")
        try:
            header = json.loads(lines[0])
        except ValueError:
            header = None
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise ValueError(f"{self.path} is not a cyberun recording (no {FORMAT!r} header)")
        if header.get("version") != VERSION:
            raise ValueError(
                f"{self.path} is a version {header.get('version')!r} recording; "
                f"this emulator reads version {VERSION}"
            )
        answers: Dict[int, Answer] = {}
        for number, line in enumerate(lines[1:], start=2):
            try:
                record = json.loads(line)
                kind = record["type"]
                if kind == "response":
                    answers[record["n"]] = Answer(
                        record["method"], record["path"], int(record["status"]),
                        dict(record.get("headers", {})), float(record["t"]),
                    )  # fmt: skip
                elif kind == "read":
                    data = (
                        record["data"].encode()
                        if "data" in record
                        else base64.b64decode(record["b64"])
                    )
                    answers[record["n"]].reads.append((float(record["t"]), data))
                elif kind == "end":
                    answers[record["n"]].error = record.get("error")
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(
                    f"{self.path}, line {number}: not a recording entry ({exc!r})"
                ) from None
        self.answers: List[Answer] = [answers[n] for n in sorted(answers)]
        ids = [m.group(1) for a in self.answers for m in [_TASK_PATH.match(a.path)] if m]
        if not ids:
            raise ValueError(f"{self.path} records no request about a task")
        self.task_id: str = ids[0]

    def of(self, route: str) -> List[Answer]:
        """The answers of one route, in order."""
        return [a for a in self.answers if a.route == route and a.status < 300]

    def start(self) -> float:
        """When the task began in recording time: its run answer, else the first answer."""
        runs = self.of("run")
        return runs[0].t if runs else self.answers[0].t
