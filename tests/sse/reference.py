"""A small, obviously-correct SSE parser and serialiser, for comparison only.

It follows the WHATWG HTML standard's "Parsing an event stream" and
"Interpreting an event stream" steps as literally as possible, on the whole
stream at once, with no attention to speed. The SDK's parser must agree with
it on any input.
"""

from __future__ import annotations

import re
from typing import List, Optional, Tuple

# (type, data, id, retry, own_id): own_id is the value of the event's own
# id line (None when it had none; the last one when it had several).
Event = Tuple[str, str, str, Optional[int], Optional[str]]

MAX_RETRY = 2**64 - 1


def reference_parse(stream: bytes) -> Tuple[List[Event], str, Optional[int]]:
    """Return (events, last event ID string, reconnection time)."""
    text = stream.decode("utf-8", "replace")
    if text.startswith("\ufeff"):  # UTF-8 decode strips one leading BOM
        text = text[1:]
    pieces = re.split("\r\n|\r|\n", text)
    complete_lines = pieces[:-1]  # the last piece has no line end yet
    events: List[Event] = []
    data_buffer = ""
    event_type_buffer = ""
    last_event_id_buffer = ""
    last_event_id_string = ""
    reconnection_time: Optional[int] = None
    event_retry: Optional[int] = None
    own_id: Optional[str] = None
    for line in complete_lines:
        if line == "":
            last_event_id_string = last_event_id_buffer
            if data_buffer == "":
                event_type_buffer = ""
                event_retry = None
                own_id = None
                continue
            if data_buffer.endswith("\n"):
                data_buffer = data_buffer[:-1]
            events.append(
                (
                    event_type_buffer or "message",
                    data_buffer,
                    last_event_id_buffer,
                    event_retry,
                    own_id,
                )
            )
            data_buffer = ""
            event_type_buffer = ""
            event_retry = None
            own_id = None
            continue
        if line.startswith(":"):
            continue
        if ":" in line:
            field, value = line.split(":", 1)
            if value.startswith(" "):
                value = value[1:]
        else:
            field, value = line, ""
        if field == "event":
            event_type_buffer = value
        elif field == "data":
            data_buffer += value + "\n"
        elif field == "id":
            if "\0" not in value:
                last_event_id_buffer = value
                own_id = value
        elif field == "retry":
            if value != "" and all(c in "0123456789" for c in value) and int(value) <= MAX_RETRY:
                reconnection_time = int(value)
                event_retry = reconnection_time
    return events, last_event_id_string, reconnection_time


def serialise(events: List[Event], line_end: str = "\n") -> bytes:
    """Write events the way a server would: one field per line, blank line after each.

    An event's ``id:`` line is written when its ``own_id`` is not None; its
    ``id`` must then equal ``own_id`` (or the id inherited when it is None).
    """
    out = []
    for event_type, data, _event_id, retry, own_id in events:
        if event_type != "message":
            out.append(f"event: {event_type}")
        if own_id is not None:
            out.append(f"id: {own_id}")
        if retry is not None:
            out.append(f"retry: {retry}")
        out.extend(f"data: {line}" for line in data.split("\n"))
        out.append("")
    return ("".join(line + line_end for line in out)).encode("utf-8")
