r"""A sans-I/O, incremental Server-Sent Events parser.

Bytes go in with [`SSEParser.feed`][cyberun.sse.SSEParser.feed], complete
events come out; the end of the stream is an explicit
[`SSEParser.close`][cyberun.sse.SSEParser.close]. The parser never reads a
socket, never sleeps and never starts a thread, so it works under any
transport (and in any test) the caller likes:

```python
from cyberun.sse import SSEParser

chunks = [b"event: progress\nda", b'ta: {"progress": 0.5}\n', b"\n: keep-alive\n"]
parser = SSEParser()
for chunk in chunks:  # for example response.iter_content(None) with requests
    for event in parser.feed(chunk):
        print(event.event, event.data)  # progress {"progress": 0.5}
parser.close()
```

It implements the WHATWG HTML Living Standard, section 9.2 "Server-sent
events" (https://html.spec.whatwg.org/multipage/server-sent-events.html),
subsections 9.2.5 "Parsing an event stream" and 9.2.6 "Interpreting an event
stream", exactly: UTF-8 decoding with replacement, one leading BOM removed,
CR, LF and CRLF line ends (also when a CR and its LF arrive in different
chunks), comments, fields with or without a colon and one optional space,
``data`` lines joined with LF, ``event`` defaulting to ``message``, ``id``
values containing NUL ignored, ``retry`` only when all ASCII digits, unknown
fields ignored, an empty data buffer dispatching nothing, and an unterminated
event discarded at the end of the stream.

Any split of the same bytes into chunks yields the same events. Every buffer
is bounded: a line or event larger than the configured limit raises
[`SSELimitError`][cyberun.SSELimitError] instead of growing without end.

This module imports nothing but [`cyberun.errors`][cyberun.errors]; it is usable on its own.
"""

from __future__ import annotations

from itertools import repeat
from typing import (
    Callable,
    Generator,
    Iterable,
    Iterator,
    List,
    NamedTuple,
    NoReturn,
    Optional,
    Tuple,
)

from .errors import SSELimitError, StreamError

__all__ = [
    "DEFAULT_MAX_EVENT_SIZE",
    "DEFAULT_MAX_LINE_SIZE",
    "SSEParser",
    "ServerSentEvent",
    "iter_events",
]

#: Default limit on one line, in bytes. Real data lines of 1 MiB and more exist.
DEFAULT_MAX_LINE_SIZE = 16 * 1024 * 1024
#: Default limit on one event (all its lines), in bytes.
DEFAULT_MAX_EVENT_SIZE = 64 * 1024 * 1024

_BOM = b"\xef\xbb\xbf"
_LF = 10
_CR = 13
# A retry value must fit the 64-bit integer browsers parse it into; longer
# digit strings are ignored like any other invalid value (and never reach
# int(), which refuses very long strings on recent Pythons).
_MAX_RETRY = 2**64 - 1
_MAX_RETRY_DIGITS = len(str(_MAX_RETRY))
# Regions up to this size (in characters) are interpreted line by line.
# Longer ones are split at blank lines and the shapes live streams send
# (named events, one-line data events) are built in batches: for shorter
# regions the checks cost more than they save.
_BATCH_SIZE = 256
# Every single byte but CR and LF, as a one-byte bytes object.
_PLAIN_BYTES = frozenset(bytes([byte]) for byte in range(256)) - {b"\r", b"\n"}
# iter_events feeds a chunk in slices once a chunk has completed more events
# than this: creating that many events at once, all alive until delivered,
# sets off the garbage collector again and again and holds memory for nothing.
_EVENTS_PER_FEED = 256
# Parts of a region longer than this are decoded through a memoryview: a
# large bytes slice costs more (a fresh allocation, page faults) than it saves.
_DECODE_IN_PLACE = 4096


class ServerSentEvent(NamedTuple):
    r"""One dispatched event: an immutable value.

    Attributes:
        event: the event type; ``"message"`` when the stream named none.
        data: the data lines joined with ``"\n"``.
        id: the last event id at dispatch (ids persist across events, as the
            standard says); ``""`` when the stream never set one.
        retry: the reconnection time in milliseconds set by this event's own
            ``retry:`` field, or ``None`` when it had none. The latest value
            seen on the stream is the parser's ``retry`` attribute.
        own_id: the value of this event's own ``id:`` line: ``None`` when the
            event had none (its ``id`` was inherited from an earlier event),
            ``""`` when an empty ``id:`` line reset the last event id.
            An ``id:`` value containing NUL is ignored, as the standard
            says, so it counts as no ``id:`` line. When an event has several
            ``id:`` lines, the last one that counted.
    """

    event: str = "message"
    data: str = ""
    id: str = ""
    retry: Optional[int] = None
    own_id: Optional[str] = None


# Building the tuple directly skips the Python-level __new__ that NamedTuple
# generates: dispatching is the parser's innermost operation.
_new_event = tuple.__new__


class SSEParser:
    """Incremental parser: feed it bytes, get back the events they complete.

    Args:
        max_line_size: the longest line accepted, in bytes, excluding its line
            end. Longer lines raise [`SSELimitError`][cyberun.SSELimitError].
        max_event_size: the largest event accepted, in bytes: everything
            since the previous blank line, field names included, each line
            end counted as one byte.

    Attributes:
        last_event_id: the stream's last event id as of the latest event
            boundary (blank line); send it as ``Last-Event-ID`` to resume. An
            ``id:`` line in an event that never completed does not count.
        retry: the latest valid reconnection time (milliseconds) the stream
            asked for with ``retry:``, or ``None``.
    """

    __slots__ = (
        "_closed",
        "_data",
        "_event_bytes",
        "_event_retry",
        "_event_type",
        "_head",
        "_id",
        "_max_event_size",
        "_max_line_size",
        "_own_id",
        "_pending_cr",
        "_slow",
        "_split_size",
        "_tail",
        "_tail_size",
        "last_event_id",
        "retry",
    )

    def __init__(
        self,
        max_line_size: int = DEFAULT_MAX_LINE_SIZE,
        max_event_size: int = DEFAULT_MAX_EVENT_SIZE,
    ) -> None:
        for name, value in (("max_line_size", max_line_size), ("max_event_size", max_event_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int (bytes), got {value!r}")
        self._max_line_size = max_line_size
        self._max_event_size = max_event_size
        # A region larger than this is cut into pieces no larger, each ending
        # at a line end, so that no single line or event can slip past a limit.
        self._split_size = min(max_line_size, max_event_size)
        # Framing state.
        self._head: Optional[bytes] = b""  # bytes held until the BOM is decided; None after
        self._tail: List[bytes] = []  # fragments of the unterminated last line
        self._tail_size = 0
        self._pending_cr = False  # the last chunk ended in CR; a leading LF is its pair
        self._closed = False
        # One flag for the three rare states above (BOM undecided, CR pending,
        # closed), so that feed() checks a single attribute in the common case.
        self._slow = True
        # Interpretation state (9.2.6): the data, event type and last event ID buffers.
        self._data: List[str] = []
        self._event_type = ""
        self._id = ""
        self._event_retry: Optional[int] = None
        self._own_id: Optional[str] = None  # the event in progress's own id line
        self._event_bytes = 0  # bytes of the event in progress, for the event limit
        self.last_event_id: str = ""
        self.retry: Optional[int] = None

    def feed(self, data: bytes) -> List[ServerSentEvent]:
        """Parse the next chunk of the stream.

        Args:
            data: the bytes that arrived, split anywhere (inside a line, a
                CRLF pair or a multi-byte character).

        Returns:
            The events completed by these bytes, in order; often empty.

        Raises:
            SSELimitError: a line or event exceeded the configured limit. The
                events this chunk completed before that point are in the
                error's ``events``; the parser is closed afterwards.
            StreamError: [`close`][cyberun.sse.SSEParser.close] was already
                called (an empty chunk is accepted in every state, and
                returns ``[]``).
        """
        if (
            not (self._slow or self._tail or self._event_bytes)
            and data.endswith(b"\n\n")
            and _CR not in data
        ):
            # Most chunks of a live stream are one whole event, and arrive
            # when nothing is pending.
            event = _single_event(data, data.find(_LF))
            if event is not None and len(data) <= self._split_size:
                self.last_event_id = self._id
                return [_new_event(ServerSentEvent, (*event, self._id, None, None))]
        if self._slow:
            data = self._settle(data)
            if not data:
                return []
        if _CR in data:
            # 9.2.5: a line ends at CRLF, LF or CR. Normalise to LF; a CR at
            # the very end already ends its line, and may still meet its LF.
            if data[-1] == _CR:
                self._pending_cr = self._slow = True
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        end = data.rfind(b"\n") + 1
        if not end:
            if data:
                self._append_tail(data, [])
            return []
        size = len(data)
        if self._tail:
            self._tail.append(data[:end] if end < size else data)
            region = b"".join(self._tail)
            self._tail = []
            self._tail_size = 0
        else:
            region = data[:end] if end < size else data
        # Interpret in stream order: the complete lines first, then whatever
        # follows them becomes the new partial line.
        events: List[ServerSentEvent] = []
        if len(region) <= self._split_size:
            self._interpret(region, events)
        else:
            self._interpret_large(region, events)
        if end < size:
            self._append_tail(data[end:], events)
        return events

    def close(self) -> List[ServerSentEvent]:
        """Mark the end of the stream.

        An unterminated event (no blank line after it) is discarded, as the
        standard requires. Calling ``close`` again is harmless.

        Returns:
            An empty list, for symmetry with [`feed`][cyberun.sse.SSEParser.feed].
        """
        self._closed = self._slow = True
        self._tail = []
        self._tail_size = 0
        self._data = []
        self._own_id = None
        self._event_bytes = 0
        return []

    def _settle(self, data: bytes) -> bytes:
        """Deal with the rare states before ``data`` is framed; returns what is left."""
        if not data:
            return data  # an empty chunk changes nothing, in any state
        if self._closed:
            raise StreamError("SSEParser.feed() was called after close(); create a new parser")
        if self._head is not None:
            data = self._strip_bom(data)
            if not data:
                return data
        if self._pending_cr:
            # 9.2.5: CRLF is one line end even when split across chunks.
            self._pending_cr = False
            if data[0] == _LF:
                data = data[1:]
        self._slow = self._head is not None
        return data

    def _extend_line(self, fragments: List[bytes], size: int) -> None:
        """Feed chunks that hold no CR or LF, without joining them first.

        Such chunks only extend the partial line, so they can join it as they
        are; the parser joins everything once, when the line ends.
        """
        if self._head is not None or self._closed or not size:
            self.feed(b"".join(fragments))  # the general path (BOM, errors)
            return
        self._pending_cr = self._slow = False  # a CR followed by something other than LF
        self._tail += fragments
        self._tail_size += size
        if self._tail_size > self._max_line_size:
            self._fail("line", [])

    def _strip_bom(self, data: bytes) -> bytes:
        # 9.2.5 decodes with UTF-8 decode, which removes one leading BOM. The
        # BOM may itself arrive split across chunks.
        head = self._head
        assert head is not None
        buffered = head + data if head else data
        if len(buffered) < len(_BOM) and _BOM.startswith(buffered):
            self._head = buffered
            return b""
        self._head = None
        return buffered[len(_BOM) :] if buffered.startswith(_BOM) else buffered

    def _append_tail(self, fragment: bytes, events: List[ServerSentEvent]) -> None:
        # Fragments are joined once, when their line ends: appending to one
        # growing bytes object would copy it again for every chunk.
        self._tail.append(fragment)
        self._tail_size += len(fragment)
        if self._tail_size > self._max_line_size:
            self._fail("line", events)

    def _interpret_large(self, region: bytes, events: List[ServerSentEvent]) -> None:
        start = 0
        limit = self._split_size
        total = len(region)
        while start < total:
            stop = (
                total
                if total - start <= limit
                else region.rfind(b"\n", start, start + limit + 1) + 1
            )
            if stop <= start:
                # One line longer than the split size: a line (or event) too large.
                line_end = region.find(b"\n", start)
                self._fail("line" if line_end - start > self._max_line_size else "event", events)
            self._interpret(region[start:stop], events)
            start = stop

    def _interpret(self, region: bytes, events: List[ServerSentEvent]) -> None:
        """Interpret complete lines (``region`` ends with LF) per 9.2.6.

        Completed events are appended to ``events``.
        """
        first_lf = region.find(_LF)
        if first_lf == len(region) - 1:
            # Small chunks arrive a line at a time.
            self._interpret_line(region, events)
            return
        if self._event_bytes:
            self._check_spanning_event(region, events)
        # Whether an event begun in an earlier region is still open.
        continuing = bool(
            self._data
            or self._event_type
            or self._event_retry is not None
            or self._own_id is not None
        )
        if not continuing:
            # One whole event, begun in an earlier chunk.
            event = _single_event(region, first_lf)
            if event is not None:
                events.append(_new_event(ServerSentEvent, (*event, self._id, None, None)))
                self.last_event_id = self._id
                self._event_bytes = 0
                return
        # Line ends are ASCII and never occur inside a UTF-8 sequence, so
        # decoding whole lines gives exactly what decoding the stream would.
        self._interpret_decoded(region.decode("utf-8", "replace"), continuing, events)
        self._count_event_bytes(region, events)

    def _interpret_decoded(
        self, text: str, continuing: bool, events: List[ServerSentEvent]
    ) -> None:
        """Interpret ``text`` (complete lines); ``continuing``: an event is open."""
        if len(text) <= _BATCH_SIZE:
            # A few lines: interpreting them one by one costs least.
            lines = text.split("\n")
            lines.pop()  # the empty string after the final LF
            self._interpret_lines(lines, events)
        elif (continuing or not text.startswith("data: ")) and "\n\nevent: " in text:
            self._interpret_typed(text, continuing, events)
        else:
            # Unnamed events (a stream of them starts with "data: ") or
            # shapes the path for named ones does not know.
            self._interpret_text(text, continuing, events)

    def _interpret_typed(self, text: str, continuing: bool, events: List[ServerSentEvent]) -> None:
        r"""Interpret ``text``, which holds at least one ``event:`` line after a blank line.

        Live streams name their events, so most blocks are ``event: T``,
        ``data: D``: splitting at each blank line followed by ``event: ``
        gives pieces ``T\ndata: D`` that a single partition takes apart.
        Any other piece, and what comes before the first or after the last
        such split, takes the general path.
        """
        pieces = text.split("\n\nevent: ")
        last = pieces.pop()
        first = pieces[0]
        if not continuing and first.startswith("event: "):
            pieces[0] = first[7:]
        else:
            self._interpret_decoded(first + "\n\n", continuing, events)
            pieces[0] = ""
        last_id = self._id
        append = events.append
        for piece in pieces:
            value, data_field, data = piece.partition("\ndata: ")
            if data_field and "\n" not in value:
                joined = _more_data(data) if "\n" in data else data
                if joined is not None:
                    append(
                        _new_event(
                            ServerSentEvent, (value or "message", joined, last_id, None, None)
                        )
                    )
                    continue
            if piece:
                self._interpret_block(f"event: {piece}", events)
                last_id = self._id
        # Step 1 of dispatch at the last blank line so far.
        self.last_event_id = last_id
        self._interpret_decoded(f"event: {last}", False, events)

    def _interpret_text(self, text: str, continuing: bool, events: List[ServerSentEvent]) -> None:
        r"""Interpret ``text``: complete lines, more than ``_BATCH_SIZE`` characters.

        ``continuing``: an event begun earlier is still open. Splitting at
        blank lines (``"\n\n"``) gives blocks that each end an event; the
        part after the last blank line has not ended yet.
        """
        if not continuing and text.startswith("data: "):
            done = _data_only_end(text)
            if done:
                last_id = self._id
                self.last_event_id = last_id
                events += map(
                    _new_event,
                    repeat(ServerSentEvent),
                    zip(
                        repeat("message"),
                        text[6 : done - 2].split("\n\ndata: "),
                        repeat(last_id),
                        repeat(None),
                        repeat(None),
                    ),
                )
                text = text[done:]
        blocks = text.split("\n\n")
        del text  # large events: hold no more copies than needed
        rest = blocks.pop()
        if blocks:
            if continuing:
                # The first block continues the open event.
                self._interpret_block(blocks[0], events)
                blocks[0] = ""  # done: leave nothing for the loop below
            last_id = self._id
            append = events.append
            for block in blocks:
                # Fast paths for the shapes real streams send, valid because
                # every block here starts with empty buffers (a blank line
                # just reset them). Anything else takes the general path.
                head, newline, line = block.partition("\n")
                if not newline:
                    if head.startswith("data: "):
                        append(
                            _new_event(ServerSentEvent, ("message", head[6:], last_id, None, None))
                        )
                        continue
                    if not head or head[0] == ":":
                        continue  # a blank line or a comment: nothing to dispatch
                elif head.startswith("event: ") and line.startswith("data: ") and "\n" not in line:
                    value = head[7:] or "message"
                    append(_new_event(ServerSentEvent, (value, line[6:], last_id, None, None)))
                    continue
                self._interpret_block(block, events)
                last_id = self._id
            # Step 1 of dispatch at the region's last blank line.
            self.last_event_id = last_id
        if rest:
            lines = rest.split("\n")
            lines.pop()  # the empty string after the final LF
            self._interpret_lines(lines, events)

    def _interpret_line(self, line: bytes, events: List[ServerSentEvent]) -> None:
        """Interpret one complete line (``line`` ends with its only LF) per 9.2.6."""
        size = len(line)
        if size == 1:
            self._interpret_lines([""], events)  # a blank line: dispatch
            self._event_bytes = 0
            return
        self._event_bytes += size
        if self._event_bytes > self._max_event_size:
            self._fail("event", events)
        if line.startswith(b"data: "):
            self._data.append(_decode(line, 6, size - 1))
        elif line.startswith(b"event: "):
            self._event_type = _decode(line, 7, size - 1)
        else:
            self._interpret_lines([_decode(line, 0, size - 1)], events)

    def _interpret_block(self, block: str, events: List[ServerSentEvent]) -> None:
        lines = block.split("\n")
        lines.append("")  # the blank line that ended the block
        self._interpret_lines(lines, events)

    def _interpret_lines(self, lines: List[str], events: List[ServerSentEvent]) -> None:
        data = self._data
        event_type = self._event_type
        last_id = self._id
        boundary_id = self.last_event_id
        event_retry = self._event_retry
        own_id = self._own_id
        for line in lines:
            if line.startswith("data: "):
                # The common cases first: "data" and "event" with their one
                # optional space.
                data.append(line[6:])
            elif line.startswith("event: "):
                event_type = line[7:]
            elif not line:
                # 9.2.6 "If the line is empty": dispatch the event. Step 1
                # sets the stream's last event ID, whether or not it fires.
                boundary_id = last_id
                if data:
                    events.append(
                        _new_event(
                            ServerSentEvent,
                            (
                                event_type or "message",
                                "\n".join(data),
                                last_id,
                                event_retry,
                                own_id,
                            ),
                        )
                    )
                    data = []
                event_type = ""
                event_retry = None
                own_id = None
            elif line[0] == ":":
                # 9.2.6 "If the line starts with a U+003A COLON": a comment.
                continue
            else:
                colon = line.find(":")
                if colon < 0:
                    # 9.2.6 "Otherwise, the string is not empty but does not
                    # contain a colon": the whole line is the field name.
                    name = line
                    value = ""
                else:
                    # 9.2.6 "If the line contains a colon": split at the first
                    # one; remove one leading space from the value.
                    name = line[:colon]
                    value = line[colon + 1 :]
                    if value[:1] == " ":
                        value = value[1:]
                # 9.2.6 "process the field".
                if name == "data":
                    data.append(value)
                elif name == "event":
                    event_type = value
                elif name == "id":
                    if "\x00" not in value:
                        last_id = own_id = value
                elif name == "retry":
                    if (
                        value.isdigit()
                        and value.isascii()
                        and len(value) <= _MAX_RETRY_DIGITS
                        and int(value) <= _MAX_RETRY
                    ):
                        event_retry = int(value)
                        self.retry = event_retry
                # Any other field name is ignored.
        self._data = data
        self._event_type = event_type
        self._id = last_id
        self.last_event_id = boundary_id
        self._event_retry = event_retry
        self._own_id = own_id

    def _check_spanning_event(self, region: bytes, events: List[ServerSentEvent]) -> None:
        # An event begun in an earlier region may end in this one: count its
        # bytes up to the first blank line here.
        if region[0] == _LF:
            return
        blank = region.find(b"\n\n")
        if blank >= 0 and self._event_bytes + blank + 1 > self._max_event_size:
            self._fail("event", events)

    def _count_event_bytes(self, region: bytes, events: List[ServerSentEvent]) -> None:
        # Bytes of the event in progress: everything after the region's last
        # blank line, or the whole region added to what came before it.
        blank = region.rfind(b"\n\n")
        if blank >= 0:
            self._event_bytes = len(region) - blank - 2
        elif region[0] == _LF:
            self._event_bytes = len(region) - 1
        else:
            self._event_bytes += len(region)
        if self._event_bytes > self._max_event_size:
            self._fail("event", events)

    def _fail(self, kind: str, events: List[ServerSentEvent]) -> NoReturn:
        self._closed = self._slow = True
        limit = self._max_line_size if kind == "line" else self._max_event_size
        raise SSELimitError(
            f"an SSE {kind} exceeded the limit of {limit} bytes; the stream is malformed or "
            f"hostile (raise max_{kind}_size if such {kind}s are expected)",
            limit=limit,
            kind=kind,
            events=events,
        )


def _single_event(region: bytes, first_lf: int) -> Optional[Tuple[str, str]]:
    """``(type, data)`` if ``region`` is exactly one simple event, else None.

    Simple means ``data: D`` or ``event: T`` then ``data: D``, then the blank line.
    """
    end = len(region) - 2
    if first_lf == end:
        if region.startswith(b"data: "):
            return "message", _decode(region, 6, end)
    elif (
        region.startswith(b"event: ")
        and region.startswith(b"data: ", first_lf + 1)
        and region.find(_LF, first_lf + 1) == end
    ):
        return _decode(region, 7, first_lf) or "message", _decode(region, first_lf + 7, end)
    return None


def _more_data(rest: str) -> Optional[str]:
    r"""The data of a named event's block, from its first data value on, or None.

    ``rest`` holds a line end, which is fine in two common shapes: more data
    lines (``a\ndata: b``), or a comment line in a block of its own after
    the event (``a\n\n: keep-alive``). Any other shape gives None.
    """
    if rest.count("\n") == rest.count("\ndata: "):
        return rest.replace("\ndata: ", "\n")
    data, _, others = rest.partition("\n\n")
    if "\n" not in data and others[:1] == ":" and "\n" not in others:
        return data
    return None


def _decode(data: bytes, start: int, end: int) -> str:
    """``data[start:end]`` decoded; large parts without copying the bytes first."""
    if end - start < _DECODE_IN_PLACE:
        return data[start:end].decode("utf-8", "replace")
    return str(memoryview(data)[start:end], "utf-8", "replace")


def _data_only_end(text: str) -> int:
    """The end of the last blank line if every event before it is one data line, else 0.

    ``text`` starts with ``"data: "``.
    """
    # The blocks that start with "data: " account for two line ends each
    # (their own and the blank line after); any other line end means some
    # block has another shape.
    blank = text.rfind("\n\n")
    if blank < 0 or text.count("\n", 0, blank) != 2 * text.count("\n\ndata: ", 0, blank):
        return 0
    return blank + 2


def iter_events(
    chunks: Iterable[bytes],
    *,
    max_line_size: int = DEFAULT_MAX_LINE_SIZE,
    max_event_size: int = DEFAULT_MAX_EVENT_SIZE,
) -> Iterator[ServerSentEvent]:
    """Yield the events of a stream given as an iterable of byte chunks.

    Each event is yielded as soon as the chunk completing it is consumed.
    This is the fastest way to parse a chunk iterator: chunks without a line
    end are gathered and fed to the parser together with the chunk that
    ends their line, which cannot delay any event (only a line end completes
    one) and saves a parser call per small chunk. Once chunks complete
    hundreds of events each, large ones are fed in slices cut after blank
    lines, so that their events are not all created, and alive, at once.

    Args:
        chunks: the stream's bytes in any chunking, for example a response's
            ``iter_bytes()``.
        max_line_size: see [`SSEParser`][cyberun.sse.SSEParser].
        max_event_size: see [`SSEParser`][cyberun.sse.SSEParser].

    Raises:
        SSELimitError: a line or event exceeded its limit.
    """
    parser = SSEParser(max_line_size=max_line_size, max_event_size=max_event_size)
    feed = parser.feed
    gathered: List[bytes] = []
    gathered_size = 0
    room = max_line_size  # bytes the current line may still grow by
    slice_size = 0  # when set, feed larger chunks in slices of about this size
    try:
        for chunk in chunks:
            if len(chunk) == 1 and chunk in _PLAIN_BYTES:
                # One byte that ends no line: streams read a byte at a time
                # are nothing but these, so they get the shortest path.
                gathered.append(chunk)
                gathered_size += 1
            elif _LF in chunk or _CR in chunk:
                if gathered:
                    # Join the line's fragments once: in the parser if the
                    # line began there, here otherwise.
                    if parser._tail:
                        parser._extend_line(gathered, gathered_size)
                    else:
                        gathered.append(chunk)
                        chunk = b"".join(gathered)
                    gathered = []
                    gathered_size = 0
                if slice_size and len(chunk) > slice_size:
                    count = yield from _feed_in_slices(feed, chunk, slice_size)
                    if count < _EVENTS_PER_FEED:
                        slice_size = 0  # events got larger: feed whole chunks again
                else:
                    events = feed(chunk)
                    if len(events) > _EVENTS_PER_FEED:
                        slice_size = len(chunk) * _EVENTS_PER_FEED // len(events)
                    yield from events
                room = max_line_size - parser._tail_size
                continue
            else:
                gathered.append(chunk)
                gathered_size += len(chunk)
            if gathered_size > room:
                # Hand over what we hold so the parser enforces its limit.
                feed(b"".join(gathered))
                gathered = []
                gathered_size = 0
                room = max_line_size - parser._tail_size
    except SSELimitError as exc:
        # Deliver what the failing chunk completed before the limit, then fail.
        undelivered, exc.events = exc.events, []
        yield from undelivered
        raise
    yield from parser.close()


def _feed_in_slices(
    feed: Callable[[bytes], List[ServerSentEvent]], chunk: bytes, size: int
) -> Generator[ServerSentEvent, None, int]:
    """Feed ``chunk`` in slices of about ``size`` bytes, each cut after a blank line.

    Yields the events as each slice completes them; returns their number.
    """
    count = 0
    start = 0
    end = len(chunk)
    while start < end:
        cut = chunk.find(b"\n\n", start + size) + 2
        if cut < 2:
            cut = end  # no blank line left: the rest in one piece
        events = feed(chunk[start:cut])
        count += len(events)
        yield from events
        start = cut
    return count
