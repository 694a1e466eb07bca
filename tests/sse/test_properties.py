"""Hypothesis properties of the SSE parser.

Each property runs with the default example budget in the normal suite and
with a much larger one under the ``slow`` marker (run once by .ci/run).
"""

from __future__ import annotations

from typing import Callable, List, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cyberun.errors import SSELimitError
from cyberun.sse import ServerSentEvent, SSEParser, iter_events

from .reference import reference_parse, serialise

LARGE = settings(max_examples=5_000)

# Bytes that exercise every rule: field names, separators, every line end,
# BOMs, NUL, digits, multi-byte characters, invalid and truncated UTF-8.
TOKENS = [
    b"data",
    b"event",
    b"id",
    b"retry",
    b"foo",
    b":",
    b" ",
    b"  ",
    b"\n",
    b"\r",
    b"\r\n",
    b"\n\n",
    b"\xef\xbb\xbf",
    b"\x00",
    b"x",
    b'{"a": 1}',
    b"123",
    "☃".encode(),
    "😀".encode(),
    b"\xff",
    b"\xe2\x82",
    b"\xc3",
    b"\t",
]
sse_like = st.lists(st.one_of(st.sampled_from(TOKENS), st.binary(max_size=8)), max_size=60).map(
    b"".join
)


def split(data: bytes, cuts: Sequence[int]) -> List[bytes]:
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in zip(points, points[1:])]


def run(chunks: List[bytes], **limits: int) -> List[ServerSentEvent]:
    parser = SSEParser(**limits)
    events: List[ServerSentEvent] = []
    for chunk in chunks:
        events += parser.feed(chunk)
    return events + parser.close()


cuts = st.lists(st.integers(min_value=0, max_value=10_000), max_size=30)


def _both_budgets(strategies: dict, body: Callable[..., None]):  # type: ignore[no-untyped-def]
    normal = given(**strategies)(body)
    large = pytest.mark.slow(LARGE(given(**strategies)(body)))
    return normal, large


# (1) Chunking invariance: any split gives the same events, including single
# bytes and splits inside CRLF pairs and UTF-8 sequences.
def _chunking_invariance(data: bytes, cuts: List[int]) -> None:
    whole = run([data])
    assert run(split(data, cuts)) == whole
    bytewise = [data[i : i + 1] for i in range(len(data))]
    assert run(bytewise) == whole
    assert list(iter_events(split(data, cuts))) == whole
    assert list(iter_events(bytewise)) == whole


test_chunking_invariance, test_chunking_invariance_large_budget = _both_budgets(
    {"data": sse_like, "cuts": cuts}, _chunking_invariance
)

# (2) Round trip: events written by a reference serialiser come back unchanged.
field_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00"),
    max_size=20,
)
data_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r"), max_size=40
)
events_strategy = st.lists(
    st.tuples(
        field_text.filter(bool),  # type (never empty: empty means "message")
        data_text,
        st.none() | field_text,  # the event's own id line, if any
        st.none() | st.integers(min_value=0, max_value=2**64 - 1),  # retry
    ),
    max_size=8,
)


def _round_trip(events: list, line_end: str, cuts: List[int]) -> None:  # type: ignore[type-arg]
    # An event without an id line of its own inherits the last one.
    expected = []
    last_id = ""
    for event_type, data, own_id, retry in events:
        last_id = last_id if own_id is None else own_id
        expected.append(ServerSentEvent(event_type, data, last_id, retry, own_id))
    stream = serialise([tuple(e) for e in expected], line_end)
    assert run(split(stream, cuts)) == expected


test_round_trip, test_round_trip_large_budget = _both_budgets(
    {"events": events_strategy, "line_end": st.sampled_from(["\n", "\r\n", "\r"]), "cuts": cuts},
    _round_trip,
)


# (3) Equivalence with the obviously-correct reference parser, on any bytes.
def _matches_reference(data: bytes, cuts: List[int]) -> None:
    expected_events, expected_id, expected_retry = reference_parse(data)
    parser = SSEParser()
    events: List[ServerSentEvent] = []
    for chunk in split(data, cuts):
        events += parser.feed(chunk)
    events += parser.close()
    assert [tuple(e) for e in events] == expected_events
    assert parser.last_event_id == expected_id
    assert parser.retry == expected_retry
    assert [tuple(e) for e in iter_events(split(data, cuts))] == expected_events


test_matches_reference, test_matches_reference_large_budget = _both_budgets(
    {"data": sse_like | st.binary(max_size=200), "cuts": cuts}, _matches_reference
)


# (3b) The same under any chunking, empty chunks included (a repeated cut
# point makes one), checked after every chunk: the events so far, the last
# event id and the reconnection time are the reference's for the bytes fed.
def split_keeping_empty(data: bytes, cuts: Sequence[int]) -> List[bytes]:
    points = sorted([0, len(data), *(c % (len(data) + 1) for c in cuts)])
    return [data[a:b] for a, b in zip(points, points[1:])]


def _matches_reference_after_every_chunk(data: bytes, cuts: List[int]) -> None:
    chunks = split_keeping_empty(data, cuts)
    parser = SSEParser()
    events: List[ServerSentEvent] = []
    fed = b""
    for chunk in chunks:
        events += parser.feed(chunk)
        fed += chunk
        expected_events, expected_id, expected_retry = reference_parse(fed)
        assert [tuple(e) for e in events] == expected_events
        assert parser.last_event_id == expected_id
        assert parser.retry == expected_retry
    assert parser.close() == []
    assert list(iter_events(chunks)) == events


cuts_with_repeats = st.lists(st.integers(min_value=0, max_value=60), max_size=40)

test_matches_reference_after_every_chunk, test_matches_reference_after_every_chunk_large_budget = (
    _both_budgets(
        {"data": sse_like | st.binary(max_size=200), "cuts": cuts_with_repeats},
        _matches_reference_after_every_chunk,
    )
)


def test_empty_chunks_are_made_by_the_chunking_strategy() -> None:
    # The property above is only as good as its chunkings: repeated cut
    # points must give empty chunks, at the start, inside and at the end.
    assert split_keeping_empty(b"abc", [0, 1, 1, 3]) == [b"", b"a", b"", b"bc", b""]


# Streams made mostly of one-line data events, long enough for the parser's
# batch path, with any token slipped in between: still the reference's events.
data_block = st.text(st.characters(blacklist_characters="\r\n"), max_size=12).map(
    lambda value: f"data: {value}\n\n".encode("utf-8", "surrogatepass")
)
mostly_data = st.lists(
    st.one_of(data_block, data_block, data_block, st.sampled_from(TOKENS)),
    min_size=30,
    max_size=120,
).map(b"".join)

test_data_batches_match_reference, test_data_batches_match_reference_large_budget = _both_budgets(
    {"data": mostly_data, "cuts": cuts}, _matches_reference
)

# Streams made mostly of named events ("event: T", then one or more data
# lines), long enough for the parser's path for such blocks, with comments,
# id lines, data-only events and any token slipped in between.
line_value = st.text(st.characters(blacklist_characters="\r\n"), max_size=12)
typed_block = st.tuples(line_value, st.lists(line_value, min_size=1, max_size=3)).map(
    lambda block: (
        f"event: {block[0]}\n" + "".join(f"data: {value}\n" for value in block[1]) + "\n"
    ).encode("utf-8", "surrogatepass")
)
mostly_typed = st.lists(
    st.one_of(
        typed_block,
        typed_block,
        typed_block,
        data_block,
        st.sampled_from([b": keep-alive\n\n", b": comment\n", b"id: 7\n", b"\n", b"event: \n"]),
        st.sampled_from(TOKENS),
    ),
    min_size=20,
    max_size=80,
).map(b"".join)

test_typed_blocks_match_reference, test_typed_blocks_match_reference_large_budget = _both_budgets(
    {"data": mostly_typed, "cuts": cuts}, _matches_reference
)


# Streams in the live shape of a task stream (an optional id line, an event
# line, one data line, a blank line; comments between), the parser's
# recogniser for such runs, with near misses slipped in: the same fields
# spelt otherwise, ids with NUL or empty, a line with a prefix, a second
# data line, a retry. Still the reference's events, ids and retry.
id_value = st.one_of(line_value, st.just(""), line_value.map(lambda value: value + "\x00"))
live_block = st.tuples(st.none() | id_value, line_value, line_value).map(
    lambda block: (
        ("" if block[0] is None else f"id: {block[0]}\n")
        + f"event: {block[1]}\ndata: {block[2]}\n\n"
    ).encode("utf-8", "surrogatepass")
)
near_miss = st.sampled_from(
    [
        b": keep-alive\n\n",
        b"xevent: a\ndata: b\n\n",
        b"event:a\ndata:b\n\n",
        b"id:1\nevent: a\ndata: b\n\n",
        b"event: a\ndata: b\ndata: c\n\n",
        b"data: b\nevent: a\n\n",
        b"event: a\nid: 9\ndata: b\n\n",
        b"retry: 5\n",
        b"id: 3\n",
        b"event: a\n",
        b"data: open\n",
        b":\n",
        b"\n",
    ]
)
live_run = st.lists(live_block, min_size=10, max_size=40).map(b"".join)
mostly_live = st.lists(
    st.one_of(live_run, live_run, live_run, live_block, near_miss, st.sampled_from(TOKENS)),
    min_size=1,
    max_size=6,
).map(b"".join)

test_live_blocks_match_reference, test_live_blocks_match_reference_large_budget = _both_budgets(
    {"data": mostly_live, "cuts": cuts}, _matches_reference
)


# (4) On arbitrary bytes nothing is raised but the documented limit error.
def _only_limit_errors(data: bytes, cuts: List[int], line: int, event: int) -> None:
    try:
        run(split(data, cuts), max_line_size=line, max_event_size=event)
    except SSELimitError:
        pass


test_only_limit_errors, test_only_limit_errors_large_budget = _both_budgets(
    {
        "data": sse_like | st.binary(max_size=200),
        "cuts": cuts,
        "line": st.integers(min_value=1, max_value=40),
        "event": st.integers(min_value=1, max_value=80),
    },
    _only_limit_errors,
)


# Limits are decided by content, not by chunking: however the input is split,
# the same events are delivered (those carried by the error included) and the
# same limit fails.
def _limits_are_chunking_invariant(data: bytes, cuts: List[int], line: int, event: int) -> None:
    def outcome(chunks: List[bytes]) -> object:
        parser = SSEParser(max_line_size=line, max_event_size=event)
        delivered: List[ServerSentEvent] = []
        try:
            for chunk in chunks:
                delivered += parser.feed(chunk)
        except SSELimitError as exc:
            return delivered + exc.events, exc.kind
        return delivered, None

    def outcome_iter(chunks: List[bytes]) -> object:
        delivered: List[ServerSentEvent] = []
        try:
            delivered.extend(iter_events(chunks, max_line_size=line, max_event_size=event))
        except SSELimitError as exc:
            # iter_events has yielded what the error carried: nothing left in it.
            return delivered + exc.events, exc.kind
        return delivered, None

    whole = outcome([data])
    bytewise = [data[i : i + 1] for i in range(len(data))]
    assert outcome(split(data, cuts)) == whole
    assert outcome(bytewise) == whole
    assert outcome_iter(split(data, cuts)) == whole
    assert outcome_iter(bytewise) == whole


test_limits_chunking_invariant, test_limits_chunking_invariant_large_budget = _both_budgets(
    {
        "data": sse_like,
        "cuts": cuts,
        "line": st.integers(min_value=1, max_value=40),
        "event": st.integers(min_value=1, max_value=80),
    },
    _limits_are_chunking_invariant,
)
