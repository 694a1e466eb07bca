"""Reading the emulator's event streams without the SDK's parser.

The emulator's own tests observe its streams over ``http.client`` and read
them with this deliberately small reader, so that a bug shared by the SDK's
parser and the emulator cannot hide itself. It handles what the emulator
writes (``field: value`` lines, comments, LF or CRLF line ends) and nothing
cleverer.
"""

from __future__ import annotations

import http.client
import json
import time
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Tuple
from urllib.parse import urlsplit


@dataclass
class WireEvent:
    """One blank-line-terminated block of a stream."""

    event: Optional[str] = None
    data_lines: List[str] = field(default_factory=list)
    id: Optional[str] = None
    retry: Optional[str] = None
    comments: List[str] = field(default_factory=list)

    @property
    def data(self) -> str:
        return "\n".join(self.data_lines)

    def json(self) -> Any:
        return json.loads(self.data)

    @property
    def is_event(self) -> bool:
        """A block with data (not a lone comment or retry line)."""
        return bool(self.data_lines)


def blocks(data: bytes) -> List[WireEvent]:
    """Every complete block of ``data`` (an unterminated tail is left out)."""
    text = data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
    found = []
    for raw in text.split("\n\n")[:-1]:
        block = WireEvent()
        for line in raw.split("\n"):
            if line.startswith(":"):
                block.comments.append(line[1:].strip())
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                block.data_lines.append(value)
            elif name == "event":
                block.event = value
            elif name == "id":
                block.id = value
            elif name == "retry":
                block.retry = value
        found.append(block)
    return found


def events(data: bytes) -> List[WireEvent]:
    """The blocks that are events (they carry data)."""
    return [b for b in blocks(data) if b.is_event]


def names(data: bytes) -> List[Optional[str]]:
    """The event names, in order."""
    return [e.event for e in events(data)]


def open_stream(
    url: str,
    headers: Optional[Dict[str, str]] = None,
    *,
    http10: bool = False,
    timeout: float = 10.0,
) -> Tuple[http.client.HTTPResponse, http.client.HTTPConnection]:
    """Send a GET and return the response with its headers read."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    if http10:
        conn._http_vsn = 10  # type: ignore[attr-defined]
        conn._http_vsn_str = "HTTP/1.0"  # type: ignore[attr-defined]
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    conn.request("GET", path, headers=headers or {})
    return conn.getresponse(), conn


def reads(response: http.client.HTTPResponse) -> Iterator[Tuple[float, bytes]]:
    """Each piece of body as it arrives, with its arrival time; tolerates an abrupt end."""
    while True:
        try:
            chunk = response.read1(65536)
        except (http.client.IncompleteRead, ConnectionError):
            return
        if not chunk:
            return
        yield time.monotonic(), chunk


def read_all(url: str, headers: Optional[Dict[str, str]] = None, **kw: Any) -> bytes:
    """Every byte of a stream, tolerating an abrupt end."""
    response, conn = open_stream(url, headers, **kw)
    try:
        return b"".join(chunk for _, chunk in reads(response))
    finally:
        conn.close()
