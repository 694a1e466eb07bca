"""Example tests for every rule of the standard, each run three ways.

`parse` feeds the input whole, then one byte at a time, then whole followed by
an unterminated event that must stay buffered (and come out once finished),
and asserts that all three agree before returning the events. Each way also
feeds empty chunks in every state the parser passes through (before and
after every byte, so also with a BOM undecided, a CR pending, inside a line
and inside an event): they must return ``[]`` and change nothing.
"""

from __future__ import annotations

from typing import Iterator, List, Optional

import pytest

from cyberun.errors import SSELimitError, StreamError
from cyberun.sse import (
    DEFAULT_MAX_EVENT_SIZE,
    DEFAULT_MAX_LINE_SIZE,
    ServerSentEvent,
    SSEParser,
    iter_events,
)

TRAILER = b"data: still buffered"


def _whole(data: bytes, **limits: int) -> List[ServerSentEvent]:
    parser = SSEParser(**limits)
    return parser.feed(data) + parser.close()


def _bytewise(data: bytes, **limits: int) -> List[ServerSentEvent]:
    parser = SSEParser(**limits)
    events: List[ServerSentEvent] = []
    for i in range(len(data)):
        events += parser.feed(data[i : i + 1])
    return events + parser.close()


def _feed_with_empty_chunks(parser: SSEParser, chunks: List[bytes]) -> List[ServerSentEvent]:
    """Feed ``chunks`` with an empty chunk before, between and after them."""
    events: List[ServerSentEvent] = []
    for chunk in chunks:
        assert parser.feed(b"") == []
        events += parser.feed(chunk)
    assert parser.feed(b"") == []
    return events


def parse(data: bytes) -> List[ServerSentEvent]:
    whole = _whole(data)
    assert _bytewise(data) == whole, "byte-at-a-time differs from whole input"
    parser = SSEParser()
    assert _feed_with_empty_chunks(parser, [data]) + parser.close() == whole
    parser = SSEParser()
    bytewise = [data[i : i + 1] for i in range(len(data))]
    assert _feed_with_empty_chunks(parser, bytewise) == whole, "empty chunks changed the events"
    assert parser.close() == []
    assert parser.feed(b"") == [], "an empty chunk after close"
    # Trailing data must stay buffered, then complete normally. The trailer is
    # only meaningful after a line end, so give it one if the input lacks it.
    parser = SSEParser()
    prefix = data if data.endswith((b"\n", b"\r")) else data + b"\n"
    head = _feed_with_empty_chunks(parser, [prefix])
    pending = _feed_with_empty_chunks(parser, [TRAILER])
    assert pending == []
    assert head == _whole(prefix)
    finished = _feed_with_empty_chunks(parser, [b"\n\n"])
    assert [e.data for e in finished][-1:] == ["still buffered"]
    return whole


def ev(
    data: str,
    event: str = "message",
    id: str = "",
    retry: Optional[int] = None,
    own_id: Optional[str] = None,
) -> ServerSentEvent:
    return ServerSentEvent(event=event, data=data, id=id, retry=retry, own_id=own_id)


# --- the event value ---------------------------------------------------------


def test_event_defaults_and_immutability() -> None:
    event = ServerSentEvent()
    assert (event.event, event.data, event.id, event.retry, event.own_id) == (
        "message",
        "",
        "",
        None,
        None,
    )
    with pytest.raises(AttributeError):
        event.data = "x"  # type: ignore[misc]


# --- line framing (9.2.5) ----------------------------------------------------


@pytest.mark.parametrize("end", [b"\n", b"\r\n", b"\r"])
def test_line_ends_lf_crlf_and_cr(end: bytes) -> None:
    stream = b"event: a" + end + b"data: 1" + end + end
    assert parse(stream) == [ev("1", event="a")]


def test_mixed_line_ends_in_one_stream() -> None:
    assert parse(b"data: a\r\ndata: b\rdata: c\n\r\n") == [ev("a\nb\nc")]


def test_cr_and_lf_in_different_chunks_are_one_line_end() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: x\r") == []
    # The LF completes the CRLF started by the CR: still only one line end.
    assert parser.feed(b"\n") == []
    assert parser.feed(b"\r") == [ev("x")]
    assert parser.feed(b"\n") == []


def test_cr_then_cr_is_two_line_ends() -> None:
    assert parse(b"data: x\r\r") == [ev("x")]


def test_event_ending_in_cr_is_dispatched_without_waiting_for_more() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: x\r\r") == [ev("x")]


def test_utf8_decoded_with_replacement() -> None:
    assert parse(b"data: caf\xc3\xa9 \xff \xe2\x82\n\n") == [ev("café \ufffd \ufffd")]


def test_multibyte_character_split_across_chunks() -> None:
    snowman = "☃".encode()
    parser = SSEParser()
    assert parser.feed(b"data: " + snowman[:1]) == []
    assert parser.feed(snowman[1:2]) == []
    assert parser.feed(snowman[2:] + b"\n\n") == [ev("☃")]


def test_one_leading_bom_is_stripped() -> None:
    assert parse(b"\xef\xbb\xbfdata: x\n\n") == [ev("x")]


def test_bom_split_across_chunks_is_stripped() -> None:
    parser = SSEParser()
    assert parser.feed(b"\xef") == []
    assert parser.feed(b"\xbb") == []
    assert parser.feed(b"\xbfdata: x\n\n") == [ev("x")]


def test_second_bom_is_kept_as_part_of_the_field_name() -> None:
    # After the first BOM is stripped, a second one starts the field name
    # "\ufeffdata", which is unknown and ignored.
    assert parse(b"\xef\xbb\xbf\xef\xbb\xbfdata: x\n\ndata: y\n\n") == [ev("y")]


def test_bom_later_in_the_stream_is_kept() -> None:
    assert parse(b"data: \xef\xbb\xbfx\n\n") == [ev("\ufeffx")]


def test_partial_bom_that_is_not_a_bom_is_decoded() -> None:
    assert parse(b"\xef\xbbdata: x\n\ndata: y\n\n") == [ev("y")]


# --- interpretation (9.2.6) --------------------------------------------------


def test_comment_lines_are_ignored() -> None:
    assert parse(b": keep-alive\n:\ndata: x\n: inside\n\n") == [ev("x")]


def test_comment_only_stream_dispatches_nothing() -> None:
    assert parse(b": ping\n\n: ping\n\n") == []


def test_field_without_colon_has_empty_value() -> None:
    assert parse(b"data\n\n") == [ev("")]
    assert parse(b"data\ndata\n\n") == [ev("\n")]


def test_one_leading_space_is_removed_and_only_one() -> None:
    assert parse(b"data:x\n\n") == [ev("x")]
    assert parse(b"data: x\n\n") == [ev("x")]
    assert parse(b"data:  x\n\n") == [ev(" x")]
    assert parse(b"data:\tx\n\n") == [ev("\tx")]


def test_value_keeps_later_colons() -> None:
    assert parse(b'data: {"a":"b:c"}\n\n') == [ev('{"a":"b:c"}')]


def test_multiline_data_is_joined_with_lf() -> None:
    assert parse(b"data: a\ndata:\ndata: c\n\n") == [ev("a\n\nc")]


def test_empty_data_line_dispatches_an_empty_event() -> None:
    assert parse(b"data:\n\n") == [ev("")]


def test_event_type_defaults_to_message() -> None:
    assert parse(b"data: x\n\n")[0].event == "message"


def test_empty_event_type_means_message() -> None:
    assert parse(b"event:\ndata: x\n\n") == [ev("x")]


def test_event_type_is_reset_after_each_event() -> None:
    assert parse(b"event: a\ndata: 1\n\ndata: 2\n\n") == [ev("1", event="a"), ev("2")]


def test_empty_data_dispatches_nothing_but_resets_the_type() -> None:
    assert parse(b"event: a\n\ndata: x\n\n") == [ev("x")]


def test_field_names_are_case_sensitive() -> None:
    assert parse(b"Data: x\nEVENT: y\ndata: z\n\n") == [ev("z")]


def test_unknown_fields_are_ignored() -> None:
    assert parse(b"foo: bar\ndata: x\nbaz\n\n") == [ev("x")]


def test_id_persists_across_events() -> None:
    assert parse(b"id: 1\ndata: a\n\ndata: b\n\nid: 2\ndata: c\n\n") == [
        ev("a", id="1", own_id="1"),
        ev("b", id="1"),
        ev("c", id="2", own_id="2"),
    ]


def test_empty_id_resets_the_last_event_id() -> None:
    assert parse(b"id: 1\ndata: a\n\nid\ndata: b\n\n") == [
        ev("a", id="1", own_id="1"),
        ev("b", id="", own_id=""),
    ]


def test_id_with_nul_is_ignored() -> None:
    assert parse(b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n") == [
        ev("a", id="1", own_id="1"),
        ev("b", id="1"),  # the ignored id line is no id line of its own
    ]


def test_retry_with_ascii_digits_sets_reconnection_time() -> None:
    events = parse(b"retry: 1500\ndata: a\n\ndata: b\n\n")
    assert events == [ev("a", retry=1500), ev("b")]


@pytest.mark.parametrize(
    "value",
    [b"", b"  10", b" 10 ", b"1.5", b"-1", b"+1", b"1e3", "٣".encode(), b"18446744073709551616"],
)
def test_retry_that_is_not_all_ascii_digits_is_ignored(value: bytes) -> None:
    parser = SSEParser()
    events = parser.feed(b"retry:" + value + b"\ndata: x\n\n")
    assert events == [ev("x")]
    assert parser.retry is None


def test_largest_retry_is_accepted() -> None:
    assert parse(b"retry: 18446744073709551615\ndata: x\n\n")[0].retry == 2**64 - 1


def test_very_long_retry_value_is_ignored_without_error() -> None:
    parser = SSEParser()
    assert parser.feed(b"retry: " + b"9" * 10_000 + b"\ndata: x\n\n") == [ev("x")]
    assert parser.retry is None


def test_retry_applies_even_to_an_event_that_is_not_dispatched() -> None:
    parser = SSEParser()
    parser.feed(b"retry: 700\n\n")
    assert parser.retry == 700


def test_unterminated_event_is_discarded_at_close() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: done\n\ndata: partial\n") == [ev("done")]
    assert parser.close() == []


def test_unterminated_last_line_is_discarded_at_close() -> None:
    assert list(iter_events([b"data: a\n\ndata: b"])) == [ev("a")]


def test_feed_after_close_raises_a_clear_error() -> None:
    parser = SSEParser()
    parser.close()
    with pytest.raises(StreamError, match="after close"):
        parser.feed(b"data: x\n\n")


def test_close_twice_is_harmless() -> None:
    parser = SSEParser()
    assert parser.close() == []
    assert parser.close() == []


def test_empty_chunks_are_harmless() -> None:
    parser = SSEParser()
    assert parser.feed(b"") == []
    assert parser.feed(b"data: x\n") == []
    assert parser.feed(b"") == []
    assert parser.feed(b"\n") == [ev("x")]


@pytest.mark.parametrize(
    "before",
    [
        b"",
        b"\xef",
        b"\xef\xbb",
        b"data: a\r",
        b"data: a\r\n\r",
        b"data: a",
        b"data: a\n",
        b": c\r",
    ],
)
def test_an_empty_chunk_returns_nothing_in_every_state(before: bytes) -> None:
    # Regression: after a chunk ending in CR, feed(b"") raised IndexError.
    parser = SSEParser()
    delivered = parser.feed(before)
    assert parser.feed(b"") == []
    assert delivered + parser.feed(b"\n\n") == _whole(before + b"\n\n")


def test_an_empty_chunk_after_close_or_a_limit_error_returns_nothing() -> None:
    parser = SSEParser()
    parser.close()
    assert parser.feed(b"") == []
    parser = SSEParser(max_line_size=4)
    with pytest.raises(SSELimitError):
        parser.feed(b"data: toolong")
    assert parser.feed(b"") == []


def test_own_id_is_none_when_the_event_has_no_id_line() -> None:
    assert parse(b"data: a\n\n") == [ev("a")]
    assert parse(b"data: a\n\n")[0].own_id is None


def test_own_id_is_the_last_id_line_that_counted() -> None:
    assert parse(b"id: 1\nid: 2\ndata: a\n\n") == [ev("a", id="2", own_id="2")]
    assert parse(b"id: 1\nid: 2\x00\ndata: a\n\n") == [ev("a", id="1", own_id="1")]
    assert parse(b"id: 1\nid:\ndata: a\n\n") == [ev("a", id="", own_id="")]


def test_own_id_of_a_block_without_data_does_not_reach_the_next_event() -> None:
    # The id line sets the last event id, but it belongs to a block that
    # dispatched nothing: the next event inherits it and has none of its own.
    assert parse(b"id: 5\n\ndata: x\n\n") == [ev("x", id="5")]
    assert parse(b"id: 5\nevent: e\nretry: 9\n\ndata: x\n\n") == [ev("x", id="5")]


def test_own_id_after_an_id_line_in_an_earlier_chunk() -> None:
    for rest in (b"data: d\n\n", b"event: e\ndata: d\n\n", b"data: d\n\n" + b"data: n\n\n" * 60):
        parser = SSEParser()
        assert parser.feed(b"id: 4\n") == []
        events = parser.feed(rest)
        assert events[0].own_id == "4" and events[0].id == "4"
        assert all(e.own_id is None and e.id == "4" for e in events[1:])


def _with_ids(stream: bytes) -> bytes:
    # An id line at the start of every event: what a server with ids sends.
    blocks = stream.split(b"\n\n")
    return b"\n\n".join(
        b"id: %d\n" % i + block if block else block for i, block in enumerate(blocks)
    )


_ID_STREAMS = {
    "named": b"".join(
        b'event: progress\ndata: {"step": %d}\n\n: ping\n\n' % i for i in range(300)
    ),
    "data-only": b"".join(b"data: %d\n\n" % i for i in range(600)),
    "multi-line": b"event: log\ndata: a\ndata: b\n\n" * 200,
}


@pytest.mark.parametrize("ids", ["none", "every event", "every other event", "empty"])
@pytest.mark.parametrize("shape", sorted(_ID_STREAMS))
@pytest.mark.parametrize("size", [1, 7, 64, 1024, 8192, None])
def test_own_id_on_every_path_matches_the_reference(shape: str, ids: str, size: object) -> None:
    from .reference import reference_parse

    stream = _ID_STREAMS[shape]
    if ids == "every event":
        stream = _with_ids(stream)
    elif ids == "every other event":
        blocks = stream.split(b"\n\n")
        stream = b"\n\n".join(
            b"id: x%d\n" % i + b if i % 2 and b else b for i, b in enumerate(blocks)
        )
    elif ids == "empty":
        stream = stream.replace(b"\n\n", b"\n\nid\n", 50)
    stream = stream.replace(b"\n", b"\r\n") if size == 7 else stream
    if size is None:
        chunks = [block + b"\n\n" for block in stream.split(b"\n\n")[:-1]]  # an event per chunk
    else:
        assert isinstance(size, int)
        chunks = [stream[i : i + size] for i in range(0, len(stream), size)]
    expected, last_id, _ = reference_parse(stream)
    parser = SSEParser()
    events: List[ServerSentEvent] = []
    for chunk in chunks:
        events += parser.feed(chunk)
    assert [tuple(e) for e in events] == expected
    assert parser.last_event_id == last_id
    assert [tuple(e) for e in iter_events(chunks)] == expected


# --- state for the reconnecting layer ----------------------------------------


def test_last_event_id_follows_event_boundaries() -> None:
    parser = SSEParser()
    parser.feed(b"id: 1\ndata: a\n\n")
    assert parser.last_event_id == "1"
    # An id line in an event that has not completed does not count yet.
    parser.feed(b"id: 2\ndata: b\n")
    assert parser.last_event_id == "1"
    parser.feed(b"\n")
    assert parser.last_event_id == "2"


def test_last_event_id_set_by_a_block_without_data() -> None:
    parser = SSEParser()
    assert parser.feed(b"id: 5\n\n") == []
    assert parser.last_event_id == "5"


def test_last_event_id_survives_an_interrupted_event_across_chunks() -> None:
    parser = SSEParser()
    parser.feed(b"id: 1\ndata: a\n\nid: 2\n")
    assert parser.last_event_id == "1"
    parser.feed(b"data: b\n\nid: 3\ndata: c\n")
    assert parser.last_event_id == "2"


# --- whole events in one chunk, large ones included --------------------------------


@pytest.mark.parametrize("head", [b"", b"event: big\n", b"event: \n"])
def test_a_large_event_with_multibyte_and_invalid_utf8_is_decoded_with_replacement(
    head: bytes,
) -> None:
    value = "é☃😀" * 3000
    stream = head + b"data: " + value.encode() + b"\xff\xe2\x82\n\n"
    event_type = "big" if head == b"event: big\n" else "message"
    assert parse(stream) == [ev(value + "\ufffd\ufffd", event=event_type)]


def test_a_whole_event_in_one_chunk_after_an_id_in_the_previous_one() -> None:
    parser = SSEParser()
    assert parser.feed(b"id: 4\n") == []
    assert parser.feed(b"event: e\ndata: d\n\n") == [ev("d", event="e", id="4", own_id="4")]
    assert parser.last_event_id == "4"
    assert parser.feed(b"data: x\n\n") == [ev("x", id="4")]


# --- many one-line data events in one chunk (built in one batch) ---------------


def test_a_chunk_of_only_data_events_keeps_the_id_and_the_boundary() -> None:
    values = [f"value {i}: x" for i in range(100)]
    stream = b"id: 7\n\n" + "".join(f"data: {v}\n\n" for v in values).encode()
    parser = SSEParser()
    assert parser.feed(b"id: 7\n\n") == []
    events = parser.feed(stream[len(b"id: 7\n\n") :])
    assert events == [ev(v, id="7") for v in values]
    assert parse(stream) == events and parser.last_event_id == "7"


def test_a_data_batch_followed_by_other_shapes_and_a_partial_event() -> None:
    batch = b"data: a\n\n" * 60
    stream = batch + b"event: done\nid: 9\ndata: b\n\n: note\n\ndata: c\n"
    parser = SSEParser()
    events = parser.feed(stream)
    assert events == [ev("a")] * 60 + [ev("b", event="done", id="9", own_id="9")]
    assert parser.last_event_id == "9"
    assert parser.feed(b"\n") == [ev("c", id="9")]


@pytest.mark.parametrize(
    "odd_block",
    [b"data: x\ndata: y\n\n", b"id: 3\n\n", b"\n", b"retry: 5\n\n", b"data:x\n\n", b": c\n\n"],
)
def test_a_batch_with_one_block_of_another_shape_is_parsed_in_full(odd_block: bytes) -> None:
    stream = b"data: a\n\n" * 40 + odd_block + b"data: z\n\n" * 40
    events = parse(stream)
    assert (
        events
        == _whole(b"data: a\n\n") * 40 + _whole(odd_block) + [ev("z", id=events[-1].id)] * 40
    )
    assert events[-1].id == ("3" if odd_block.startswith(b"id") else "")


def test_a_batch_continuing_an_event_begun_in_the_previous_chunk() -> None:
    parser = SSEParser()
    assert parser.feed(b"event: log\ndata: first\n") == []
    events = parser.feed(b"data: second\n\n" + b"data: n\n\n" * 50)
    assert events[0] == ev("first\nsecond", event="log")
    assert events[1:] == [ev("n")] * 50


# --- many named events in one chunk (split at "event:" blocks) ------------------


def test_a_chunk_of_named_events_with_comments_ids_and_multi_line_data() -> None:
    named = b"".join(b'event: progress\ndata: {"step": %d}\n\n' % i for i in range(30))
    stream = (
        named
        + b": keep-alive\n\n"
        + b"event: log\ndata: one\ndata: two\n\n"
        + b"event: log\nid: 5\ndata: three\n\n"
        + b"event: \ndata: untyped\n\n"
        + b"event: log\n: a comment inside\ndata: four\n\n"
        + named
    )
    parser = SSEParser()
    events = parser.feed(stream + b"id: 6\nevent: last\ndata: partial\n")
    progress = [ev(f'{{"step": {i}}}', event="progress") for i in range(30)]
    assert events == progress + [
        ev("one\ntwo", event="log"),
        ev("three", event="log", id="5", own_id="5"),
        ev("untyped", id="5"),
        ev("four", event="log", id="5"),
    ] + [e._replace(id="5") for e in progress]
    # The id line of the unfinished event does not count yet.
    assert parser.last_event_id == "5"
    assert parser.feed(b"\n") == [ev("partial", event="last", id="6", own_id="6")]
    assert parser.last_event_id == "6"
    assert parse(stream) == events


def test_named_events_continuing_an_event_begun_in_the_previous_chunk() -> None:
    parser = SSEParser()
    assert parser.feed(b"event: log\ndata: first\n") == []
    events = parser.feed(b"data: second\n\n" + b"event: e\ndata: n\n\n" * 30)
    assert events == [ev("first\nsecond", event="log")] + [ev("n", event="e")] * 30
    assert parser.feed(b"\nevent: e\ndata: n\n\n" * 30) == [ev("n", event="e")] * 30


# --- documented streams --------------------------------------------------------


def test_the_documented_cyberun_stream() -> None:
    stream = (
        b'event: status\ndata: {"task_id":"...","status":"running","timestamp":"..."}\n\n'
        b'event: progress\ndata: {"task_id":"...","progress":0.35,"current_node":"3",'
        b'"step_current":7,"step_total":20,"timestamp":"..."}\n\n'
        b'event: completed\ndata: {"task_id":"...","status":"completed","output":{}}\n\n'
    )
    events = parse(stream)
    assert [e.event for e in events] == ["status", "progress", "completed"]
    assert events[1].data.startswith('{"task_id":"...","progress":0.35')


def test_pretty_printed_json_from_the_docs_follows_the_standard() -> None:
    # Seed 002 shows JSON spread over lines without a data: prefix on each.
    # By the standard those lines are fields with unknown names: ignored.
    stream = b'event: progress\ndata: {\n"task_id":"...",\n"progress":0.35\n}\n\n'
    assert parse(stream) == [ev("{", event="progress")]


# --- limits -----------------------------------------------------------------


def test_defaults_are_generous() -> None:
    assert DEFAULT_MAX_LINE_SIZE >= 16 * 1024 * 1024
    assert DEFAULT_MAX_EVENT_SIZE >= DEFAULT_MAX_LINE_SIZE


def test_a_one_mebibyte_data_line_is_fine_by_default() -> None:
    payload = b"x" * (1024 * 1024)
    assert list(iter_events([b"data: ", payload, b"\n\n"])) == [ev(payload.decode())]


@pytest.mark.parametrize("feed", [_whole, _bytewise])
def test_line_at_the_limit_is_accepted(feed) -> None:  # type: ignore[no-untyped-def]
    line = b"data: " + b"x" * 94  # exactly 100 bytes
    assert feed(line + b"\n\n", max_line_size=100) == [ev("x" * 94)]


@pytest.mark.parametrize("feed", [_whole, _bytewise])
def test_line_over_the_limit_raises(feed) -> None:  # type: ignore[no-untyped-def]
    line = b"data: " + b"x" * 95  # 101 bytes
    with pytest.raises(SSELimitError, match="line exceeded the limit of 100 bytes") as info:
        feed(line + b"\n\n", max_line_size=100)
    assert (info.value.kind, info.value.limit) == ("line", 100)


@pytest.mark.parametrize(
    ("limits", "kind"), [({"max_line_size": 100}, "line"), ({"max_event_size": 100}, "event")]
)
def test_a_whole_event_over_a_limit_in_one_chunk_raises_after_earlier_events(
    limits: dict,
    kind: str,  # type: ignore[type-arg]
) -> None:
    # Once the parser has settled (BOM decided), whole events take a fast path.
    for big in (b"data: " + b"x" * 100 + b"\n\n", b"event: e\ndata: " + b"x" * 100 + b"\n\n"):
        parser = SSEParser(**limits)
        assert parser.feed(b"data: a\n\n") == [ev("a")]
        with pytest.raises(SSELimitError) as info:
            parser.feed(big)
        assert info.value.kind == kind


def test_endless_line_raises_before_growing_past_the_limit() -> None:
    parser = SSEParser(max_line_size=1000)
    fed = 0
    with pytest.raises(SSELimitError):  # noqa: PT012 - the loop is the stream
        for _ in range(100):
            fed += 64
            parser.feed(b"x" * 64)
    assert fed <= 1000 + 64


@pytest.mark.parametrize("chunk", [b"x", b"x" * 64])
def test_endless_line_through_iter_events_raises_before_growing_past_the_limit(
    chunk: bytes,
) -> None:
    sent = 0

    def endless() -> Iterator[bytes]:
        nonlocal sent
        yield b"data: a\n\n"
        while sent < 100_000:  # "endless", but a parser that never stops fails fast
            sent += len(chunk)
            yield chunk

    events = iter_events(endless(), max_line_size=1000)
    assert next(events) == ev("a")
    with pytest.raises(SSELimitError):
        next(events)
    assert sent <= 1000 + len(chunk)


@pytest.mark.parametrize("feed", [_whole, _bytewise])
def test_event_over_the_limit_raises(feed) -> None:  # type: ignore[no-untyped-def]
    stream = b"data: " + b"a" * 40 + b"\n" + b"data: " + b"b" * 40 + b"\n\n"  # 94 bytes
    assert feed(stream, max_event_size=94) == [ev("a" * 40 + "\n" + "b" * 40)]
    with pytest.raises(SSELimitError, match="event exceeded") as info:
        feed(stream, max_event_size=93)
    assert info.value.kind == "event"


def test_many_small_events_never_trip_the_event_limit() -> None:
    stream = b"data: x\n\n" * 1000
    assert len(_whole(stream, max_event_size=20, max_line_size=20)) == 1000


def test_limit_error_carries_the_events_completed_before_it() -> None:
    parser = SSEParser(max_line_size=20)
    with pytest.raises(SSELimitError) as info:
        parser.feed(b"data: a\n\ndata: b\n\ndata: " + b"x" * 30)
    assert info.value.events == [ev("a"), ev("b")]


def test_limit_error_closes_the_parser() -> None:
    parser = SSEParser(max_line_size=10)
    with pytest.raises(SSELimitError):
        parser.feed(b"data: 0123456789\n")
    with pytest.raises(StreamError):
        parser.feed(b"data: x\n\n")


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "10"])
def test_limits_must_be_positive_ints(bad: object) -> None:
    with pytest.raises(ValueError, match="positive int"):
        SSEParser(max_line_size=bad)  # type: ignore[arg-type]


# --- regressions found by the hypothesis properties ---------------------------


def test_cr_then_a_line_in_small_chunks_through_iter_events() -> None:
    # A CR at the end of one chunk, then a line arriving in pieces: the LF
    # that ends that line is not the CR's pair.
    chunks = [b"data: a\r", b"\r", b"d", b"ata: b", b"\n", b"\n"]
    assert list(iter_events(chunks)) == [ev("a"), ev("b")]


def _mixed_stream() -> bytes:
    tiny = b"".join(b"data: %d\n\n" % i for i in range(3000))
    named = b"".join(b'event: progress\ndata: {"step": %d}\n\n: ping\n\n' % i for i in range(300))
    return (
        tiny
        + b"id: 7\n"
        + named
        + tiny.replace(b"\n", b"\r\n")
        + b"event: log\ndata: a\ndata: b\n\n"
        + tiny
        + b"data: unfinished"
    )


@pytest.mark.parametrize("size", [1000, 8192, 65536, 1 << 20])
def test_iter_events_over_chunks_of_many_events_matches_feed(size: int) -> None:
    # Once chunks complete hundreds of events each, iter_events feeds them
    # in slices: the events must be the same, in the same order.
    stream = _mixed_stream()
    chunks = [stream[i : i + size] for i in range(0, len(stream), size)]
    expected = _whole(stream)
    assert len(expected) == 9301
    assert list(iter_events(chunks)) == expected


def test_iter_events_never_holds_a_whole_large_chunk_of_events_at_once() -> None:
    # A first chunk shows how dense the events are; a 1 MiB chunk of small
    # events after it is fed in slices, so its 80,000 events never all
    # exist at once (they would take over 13 MB).
    block = b"data: event\n\n"
    chunks = [block * 1000, block * ((1 << 20) // len(block))]

    def consume() -> int:
        return sum(1 for _ in iter_events(chunks))

    count, (_, peak) = _traced(consume)
    assert count == 1000 + (1 << 20) // len(block)
    assert peak < 2 * 1024 * 1024


def test_event_size_counts_every_line_since_the_last_blank_line() -> None:
    stream = b"123\ndata\n\n"  # an ignored field, then data: 9 bytes before the blank
    for feed in (_whole, _bytewise):
        assert feed(stream, max_event_size=9) == [ev("")]
        with pytest.raises(SSELimitError):
            feed(stream, max_event_size=8)


# --- memory -----------------------------------------------------------------


def _traced(fn) -> tuple:  # type: ignore[no-untyped-def,type-arg]
    import tracemalloc

    tracemalloc.start()
    try:
        result = fn()
        return result, tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()


def test_memory_stays_flat_on_an_endless_stream_of_small_events() -> None:
    import tracemalloc

    parser = SSEParser()
    block = b'event: progress\ndata: {"progress": 0.5, "step_current": 10}\n\n: ping\n\n' * 100
    for _ in range(50):  # warm up
        parser.feed(block)
    tracemalloc.start()
    try:
        for _ in range(1000):
            parser.feed(block)
        after_1000, peak_1000 = tracemalloc.get_traced_memory()
        for _ in range(4000):
            parser.feed(block)
        after_5000, peak_5000 = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Four times more events add nothing: a leak of even one byte per call
    # (4,000 bytes here) would show.
    assert after_5000 <= after_1000 + 2048
    assert peak_5000 <= peak_1000 + 2048


def test_one_large_event_costs_at_most_about_three_times_its_size() -> None:
    size = 4 * 1024 * 1024
    chunks = [b"data: "] + [b"x" * 65536] * (size // 65536) + [b"\n\n"]

    def parse() -> int:
        return sum(len(e.data) for e in iter_events(iter(chunks)))

    parsed, (_, peak) = _traced(parse)
    assert parsed == size
    assert peak <= 3.2 * size


@pytest.mark.parametrize("line", [b"data:xy\n", b"data: ab\n", b"data\n", b"x\n"])
@pytest.mark.parametrize("via", ["feed", "iter_events"])
def test_an_event_of_many_tiny_lines_costs_under_three_times_its_size(
    line: bytes, via: str
) -> None:
    # Regression: every data line held a str object of its own (some 50
    # bytes) until the event ended; 2-character lines cost 9 times the event.
    count = (1024 * 1024) // len(line)
    stream = line * count + b"data: end\n\n"
    chunks = [stream[i : i + 65536] for i in range(0, len(stream), 65536)]
    value = {b"data:xy\n": "xy", b"data: ab\n": "ab", b"data\n": ""}.get(line)
    expected = [ev("end" if value is None else f"{value}\n" * count + "end")]

    def parse() -> List[ServerSentEvent]:
        if via == "iter_events":
            return list(iter_events(chunks))
        parser = SSEParser()
        return [event for chunk in chunks for event in parser.feed(chunk)]

    events, (_, peak) = _traced(parse)
    assert events == expected and len(events) == 1
    assert peak < 3 * len(stream)
