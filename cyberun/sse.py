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

import re
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
    Union,
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
# The framer hands the interpreter at most this many bytes of lines at a
# time (more only for one longer line), so that the strings made from one
# piece stay small however many lines a huge chunk or event holds.
_PIECE_SIZE = 64 * 1024
# The interpreter looks for a run of one-line data events only in texts
# longer than this: in shorter ones the check costs more than it saves.
_BATCH_SIZE = 256
# An open event's data values are joined into one string once they number
# more than this: an event of millions of tiny data lines would otherwise
# hold millions of small strings (some 50 bytes each) until it ends.
_DATA_VALUES = 1024
# Every single byte but CR and LF, as a one-byte bytes object.
_PLAIN_BYTES = frozenset(bytes([byte]) for byte in range(256)) - {b"\r", b"\n"}
# iter_events feeds a chunk in slices once a chunk has completed more events
# than this: creating that many events at once, all alive until delivered,
# sets off the garbage collector again and again and holds memory for nothing.
_EVENTS_PER_FEED = 256


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


# The interpreter's state between calls: data values, how many of them are
# already joined, event type, last event ID, the event's retry and own id.
_EventState = Tuple[List[str], int, str, str, Optional[int], Optional[str]]

# One block of a live task stream's usual shape, at a line start: an
# ``event: NAME`` and a ``data: VALUE`` line (after one ``id: ID`` line
# without NUL, or not), or a comment line; then a blank line, which the end
# of the text stands for at its end (the lines are joined with LF).
_named_blocks = re.compile(
    r"^(?:(id: )([^\n\x00]*)\n)?event: ([^\n]*)\ndata: ([^\n]*)\n(?:\n|\Z)|^(:)[^\n]*\n(?:\n|\Z)",
    re.MULTILINE,
).findall

# Building the tuple directly skips the Python-level __new__ that NamedTuple
# generates: dispatching is the parser's innermost operation.
_new_event = tuple.__new__


class SSEParser:
    """Incremental parser: feed it bytes, get back the events they complete.

    Two parts, as in h11: a line framer ([`feed`][cyberun.sse.SSEParser.feed]:
    bytes in, complete lines out, limits enforced) and one interpreter that
    alone applies the field rules, builds events and moves the last event id.

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
        "_event",
        "_event_bytes",
        "_head",
        "_line_start",
        "_max_event_size",
        "_max_line_size",
        "_pending_cr",
        "_piece_size",
        "_slow",
        "_split_size",
        "_tail",
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
        # No piece of lines larger than this reaches the interpreter, so any
        # line or event wholly inside one is within both limits.
        self._split_size = min(max_line_size, max_event_size)
        self._piece_size = min(_PIECE_SIZE, self._split_size)
        # Framing state (9.2.5).
        self._head: Optional[bytes] = b""  # bytes held until the BOM is decided; None after
        # The bytes after the last blank line not yet interpreted: complete
        # lines of the event in progress, then from _line_start on the
        # unterminated last line.
        self._tail = bytearray()
        self._line_start = 0
        self._pending_cr = False  # the last chunk ended in CR; a leading LF is its pair
        self._closed = False
        # One flag for the three rare states above (BOM undecided, CR pending,
        # closed), so that feed() checks a single attribute in the common case.
        self._slow = True
        self._event_bytes = 0  # bytes of the event in progress, for the event limit
        # Interpretation state (9.2.6), in one tuple so that the interpreter
        # loads and stores it once per call: the data buffer (its values, the
        # first ``joined`` of them already joined from many lines), the event
        # type and last event ID buffers, and the event's own retry and id.
        self._event: _EventState = ([], 0, "", "", None, None)
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
            and len(data) <= self._piece_size
        ):
            # The live case, a chunk of whole events with nothing pending:
            # the whole chunk is one piece (the steps below, most skipped).
            events: List[ServerSentEvent] = []
            self._interpret(data[:-1].decode("utf-8", "replace"), events)
            return events
        if self._slow:
            data = self._settle(data)
        if _LF not in data and _CR not in data:
            # No line ends here: the bytes extend the unterminated line.
            # (Appending to a bytearray costs no copy of what it holds.)
            tail = self._tail
            tail += data
            if len(tail) - self._line_start > self._max_line_size:
                self._fail("line", [])
            return []
        if _CR in data:
            # 9.2.5: a line ends at CRLF, LF or CR. Normalise to LF; a CR at
            # the very end already ends its line, and may still meet its LF.
            if data[-1] == _CR:
                self._pending_cr = self._slow = True
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        tail = self._tail
        line_start = self._line_start
        events = []
        # Lines are interpreted an event at a time: everything up to the end
        # of the last blank line here goes to the interpreter at once.
        cut = data.rfind(b"\n\n") + 2
        if cut == 1:
            # No blank line inside; a leading LF is one if no line is open.
            cut = 1 if data[0] == _LF and line_start == len(tail) else 0
        if cut:
            size = len(data)
            if tail:
                tail += data[:cut] if cut < size else data
                region: Union[bytes, bytearray] = tail
                self._tail = tail = bytearray()
                self._line_start = line_start = 0
            else:
                region = data[:cut] if cut < size else data
            if len(region) <= self._piece_size:
                # The common case: one piece (the same steps as _frame's; the
                # region ends with a blank line, so no event is open after it).
                if self._event_bytes:
                    if region[0] != _LF:
                        self._check_open_event(region, 0, len(region), events)
                    self._event_bytes = 0
                self._interpret(region[:-1].decode("utf-8", "replace"), events)
            else:
                self._frame(region, events)
            if cut == size:
                return events
            data = data[cut:]
        # Hold the rest: the complete lines of an event not ended yet, then
        # the unterminated line.
        held = len(tail)
        tail += data
        last = data.rfind(b"\n")
        if last >= 0:
            end = held + last + 1
            if self._event_bytes + end > self._piece_size or b"retry" in tail:
                # Interpret them now: too many to hold (the limits apply to
                # them at once), or a retry field, which 9.2.6 applies at once
                # (or so it seems: the word may be elsewhere, or in the
                # unterminated line; interpreting early is always right).
                region = tail[:end]
                del tail[:end]
                end = 0
                self._frame(region, events)
            line_start = end
        self._line_start = line_start
        if len(tail) - line_start > self._max_line_size:
            self._fail("line", events)
        return events

    def close(self) -> List[ServerSentEvent]:
        """Mark the end of the stream.

        An unterminated event (no blank line after it) is discarded, as the
        standard requires. Calling ``close`` again is harmless.

        Returns:
            An empty list, for symmetry with [`feed`][cyberun.sse.SSEParser.feed].
        """
        self._closed = self._slow = True
        self._tail = bytearray()
        self._line_start = 0
        # 9.2.5: pending data is discarded; the last event ID buffer is kept.
        self._event = ([], 0, "", self._event[3], None, None)
        self._event_bytes = 0
        return []

    def buffered_size(self) -> int:
        """The number of bytes held for the unterminated last line.

        A line grows until it ends; a caller that gathers bytes before
        feeding them (as [`iter_events`][cyberun.sse.iter_events] does) can
        gather ``max_line_size - buffered_size()`` bytes without a line end
        before the line limit is due.

        Returns:
            The bytes held, line ends normalised; 0 right after a line end.
        """
        return len(self._tail) - self._line_start

    def _settle(self, data: bytes) -> bytes:
        """Deal with the rare states before ``data`` is framed; returns what is left."""
        if not data:
            return data  # an empty chunk changes nothing, in any state
        if self._closed:
            raise StreamError("SSEParser.feed() was called after close(); create a new parser")
        if self._head is not None:
            # 9.2.5 decodes with UTF-8 decode, which removes one leading BOM.
            # The BOM may itself arrive split across chunks.
            head = self._head + data
            if len(head) < len(_BOM) and _BOM.startswith(head):
                self._head = head
                return b""
            self._head = None
            data = head[len(_BOM) :] if head.startswith(_BOM) else head
        if self._pending_cr and data:
            # 9.2.5: CRLF is one line end even when split across chunks.
            self._pending_cr = False
            if data[0] == _LF:
                data = data[1:]
        self._slow = self._pending_cr
        return data

    def _frame(self, region: Union[bytes, bytearray], events: List[ServerSentEvent]) -> None:
        """Interpret ``region`` (complete lines) in pieces of at most ``_piece_size`` bytes.

        Each piece ends at a line end; a longer piece holds one line only.
        """
        start = 0
        total = len(region)
        size = self._piece_size
        view = memoryview(region)
        while start < total:
            stop = (
                total
                if total - start <= size
                else region.rfind(b"\n", start, start + size + 1) + 1
            )
            opened = self._event_bytes
            if stop <= start:
                # One line longer than a piece: within the limits, or not.
                stop = region.find(b"\n", start) + 1
                if stop - start > self._split_size:
                    kind = "line" if stop - 1 - start > self._max_line_size else "event"
                    self._fail(kind, events)
                opened += stop - start  # one line, not blank: it extends the open event
            else:
                # The event limit, as in feed.
                if opened and region[start] != _LF:
                    self._check_open_event(region, start, stop, events)
                blank = region.rfind(b"\n\n", start, stop)
                if blank >= 0:
                    opened = stop - blank - 2
                elif region[start] == _LF:
                    opened = stop - start - 1
                else:
                    opened += stop - start
            # Line ends are ASCII and never occur inside a UTF-8 sequence, so
            # decoding whole lines gives exactly what decoding the stream would.
            text = str(view[start : stop - 1], "utf-8", "replace")
            if stop == total and isinstance(region, bytearray):
                # The parser's own buffer (a line gathered from many chunks):
                # free it before the line's strings are made.
                view.release()
                del region[:]
            self._interpret(text, events)
            self._event_bytes = opened
            if opened > self._max_event_size:
                self._fail("event", events)
            start = stop

    def _check_open_event(
        self, region: Union[bytes, bytearray], start: int, stop: int, events: List[ServerSentEvent]
    ) -> None:
        """Fail if the event open before ``region[start:stop]`` ends in it too large.

        The piece's other events are checked by the caller once it is
        interpreted, so that the events it completes first are delivered.
        """
        blank = region.find(b"\n\n", start, stop)
        if blank >= 0 and self._event_bytes + blank + 1 - start > self._max_event_size:
            self._fail("event", events)

    def _interpret(self, text: str, events: List[ServerSentEvent]) -> None:
        """Interpret complete lines per 9.2.6: ``text`` is the lines joined with LF.

        The one place that applies the field rules, builds events (appended
        to ``events``) and moves the last event ID.
        """
        data, joined, event_type, last_id, event_retry, own_id = self._event
        boundary_id = self.last_event_id
        # The recognisers below apply to long texts with no event open before them.
        fresh = len(text) > _BATCH_SIZE and not (
            data or event_type or event_retry is not None or own_id is not None
        )
        if (
            fresh
            and text.startswith("data: ")
            and text.find("\n", 6, _BATCH_SIZE) > 0  # not one long line
            and (stop := _data_only_end(text))
        ):
            # Recogniser: a run of events that are one "data: " line each,
            # with nothing open before them, has fields known without reading
            # it line by line (and the same last event ID at every boundary).
            events += map(
                _new_event,
                repeat(ServerSentEvent),
                zip(
                    repeat("message"),
                    text[6:stop].split("\n\ndata: "),
                    repeat(last_id),
                    repeat(None),
                    repeat(None),
                ),
            )
            boundary_id = last_id
            # Then the lines after their last blank line, if any.
            lines = text[stop + 2 :].split("\n") if stop + 2 <= len(text) else []
        elif (
            fresh
            and text[0] in "ei:"
            # At most one data line per block (a cheap test that spares the
            # regex pass on events of many data lines, which never match).
            and text.count("\ndata: ") <= text.count("\n\n") + 1
        ):
            # Recogniser: a run of blocks of the live shape (see _named_blocks),
            # each field line in the spelling the rules below read as "id",
            # "event" and "data" with the optional space removed. The blocks
            # found start at line starts, so they are the whole text exactly
            # when they account for all its line ends; if not, nothing built
            # here is kept and the lines are read one by one.
            built = len(events)
            line_ends = 0
            run_id = last_id
            for has_id, value, name, payload, comment in _named_blocks(text):
                if comment:
                    line_ends += 2  # a comment, then a blank line: nothing to dispatch
                    continue
                line_ends += 3
                if has_id:
                    line_ends += 1
                    run_id = value  # the id rule (the pattern admits no NUL)
                events.append(
                    _new_event(
                        ServerSentEvent,
                        (name or "message", payload, run_id, None, value if has_id else None),
                    )
                )
            if line_ends == text.count("\n") + 1:
                last_id = boundary_id = run_id
                lines = []
            else:
                del events[built:]
                lines = text.split("\n")
        else:
            lines = text.split("\n")
        for line in lines:
            if line.startswith("data: "):
                # The commonest line, field "data" with its optional space:
                # the data rule below.
                data.append(line[6:])
            elif not line:
                # 9.2.6 "If the line is empty": dispatch the event. Step 1:
                # the last event ID string becomes the buffer's value.
                boundary_id = last_id
                if data:
                    # Steps 2-7: an empty data buffer dispatches nothing;
                    # values are joined with LF (no trailing LF); the type
                    # is the event type buffer or "message".
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
                    joined = 0
                event_type = ""
                event_retry = own_id = None
            elif line.startswith("event: "):
                event_type = line[7:]  # the event rule below, with its optional space
            elif line.startswith("id: ") and "\x00" not in line:
                last_id = own_id = line[4:]  # the id rule below, with its optional space
            elif line[0] == ":":
                continue  # 9.2.6 "If the line starts with a U+003A COLON": a comment.
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
                    # Ignored when the value contains NUL.
                    if "\x00" not in value:
                        last_id = own_id = value
                elif name == "retry":
                    # Only ASCII digits; beyond 64 bits, ignored like any invalid value.
                    if (
                        value.isdigit()
                        and value.isascii()
                        and len(value) <= _MAX_RETRY_DIGITS
                        and int(value) <= _MAX_RETRY
                    ):
                        event_retry = int(value)
                        self.retry = event_retry
                # Any other field name is ignored.
        if data and len(data) > joined + _DATA_VALUES:
            # Bound the memory of an event of many data lines: join the
            # values gathered since the last time into one string.
            data[joined:] = ["\n".join(data[joined:])]
            joined += 1
        self._event = (data, joined, event_type, last_id, event_retry, own_id)
        self.last_event_id = boundary_id

    def _fail(self, kind: str, events: List[ServerSentEvent]) -> NoReturn:
        self.close()
        limit = self._max_line_size if kind == "line" else self._max_event_size
        raise SSELimitError(
            f"an SSE {kind} exceeded the limit of {limit} bytes; the stream is malformed or "
            f"hostile (raise max_{kind}_size if such {kind}s are expected)",
            limit=limit,
            kind=kind,
            events=events,
        )


def _data_only_end(text: str) -> int:
    """Where the values of a run of one-line data events at the start of ``text`` end.

    ``text`` (lines joined with LF) starts with ``"data: "``. Returns the
    index of the line end after the last value of the longest run of
    events of the shape ``data: V``, blank line; 0 if there is none.
    """
    # Each such event but the last accounts for two line ends ("\n\ndata: "
    # after it); the last one for one more, its own. Any other line end
    # means some event has another shape.
    if text[-1] == "\n" and text.count("\n") == 2 * text.count("\n\ndata: ") + 1:
        return len(text) - 1  # every line (the last line is the blank line)
    blank = text.rfind("\n\n")
    if blank < 0 or text.count("\n", 0, blank) != 2 * text.count("\n\ndata: ", 0, blank):
        return 0
    return blank


def iter_events(
    chunks: Iterable[bytes],
    *,
    max_line_size: int = DEFAULT_MAX_LINE_SIZE,
    max_event_size: int = DEFAULT_MAX_EVENT_SIZE,
) -> Iterator[ServerSentEvent]:
    """Yield the events of a stream given as an iterable of byte chunks.

    Each event is yielded as soon as the chunk completing it is consumed.
    Chunks of one byte that ends no line (a stream read a byte at a time)
    are gathered and fed with the chunk that ends their line, which cannot
    delay any event (only a line end completes one) and saves a parser call
    per byte. Once chunks complete hundreds of events each, large ones are
    fed in slices cut after blank lines, so that their events are not all
    created, and alive, at once.

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
    room = 0  # bytes the current line may still grow by, while gathering
    slice_size = 0  # when set, feed larger chunks in slices of about this size
    try:
        for chunk in chunks:
            if len(chunk) == 1 and chunk in _PLAIN_BYTES:
                if not gathered:
                    room = max_line_size - parser.buffered_size()
                gathered.append(chunk)
                if len(gathered) <= room:
                    continue
                # Hand over what we hold so the parser enforces its limit.
                chunk = b""
            if gathered:
                gathered.append(chunk)
                chunk = b"".join(gathered)
                gathered = []
            if slice_size and len(chunk) > slice_size:
                count = yield from _feed_in_slices(feed, chunk, slice_size)
                if count < _EVENTS_PER_FEED:
                    slice_size = 0  # events got larger: feed whole chunks again
            else:
                events = feed(chunk)
                if len(events) > _EVENTS_PER_FEED:
                    slice_size = len(chunk) * _EVENTS_PER_FEED // len(events)
                yield from events
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
