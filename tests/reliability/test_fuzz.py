"""Hypothesis fuzzing of the parser and event decoding with a large budget (``-m slow``).

The same entry points have atheris targets in ``benchmarks/fuzz.py`` (not in
CI: atheris needs clang or a wheel for the interpreter). A crash found by
either becomes a regression test here.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cyberun._convert import decode_event
from cyberun.errors import DecodeError, SSELimitError
from cyberun.sse import ServerSentEvent, iter_events

EVENT_TYPES = ["status", "progress", "completed", "failed", "cancelled", "error", "", "other"]
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "task_id": JSON_VALUES,
        "status": JSON_VALUES | st.sampled_from(["running", "completed", "paused"]),
        "progress": JSON_VALUES | st.floats(0, 1),
        "step_current": JSON_VALUES | st.integers(0, 100),
        "step_total": JSON_VALUES,
        "timestamp": JSON_VALUES | st.just("2026-01-01T00:00:00Z"),
        "error": JSON_VALUES,
        "output": JSON_VALUES,
        "message": JSON_VALUES,
    },
)


def fuzz_decode(event: str, data: str) -> None:
    try:
        decoded = decode_event(ServerSentEvent(event, data))
    except DecodeError:
        return
    assert decoded.type in [*EVENT_TYPES, "unknown"]


def fuzz_pipeline(stream: bytes) -> None:
    try:
        for raw in iter_events(
            [stream[i : i + 7] for i in range(0, len(stream), 7)],
            max_line_size=256,
            max_event_size=512,
        ):
            fuzz_decode(raw.event, raw.data)
    except SSELimitError:
        pass


data_strategy = st.one_of(
    st.text(max_size=200), FIELDS.map(json.dumps), JSON_VALUES.map(json.dumps)
)


@given(event=st.sampled_from(EVENT_TYPES), data=data_strategy)
def test_decoding_never_crashes(event: str, data: str) -> None:
    fuzz_decode(event, data)


@given(stream=st.binary(max_size=400))
def test_parse_and_decode_never_crash(stream: bytes) -> None:
    fuzz_pipeline(stream)


@pytest.mark.slow
@settings(max_examples=5_000)
@given(event=st.sampled_from(EVENT_TYPES), data=data_strategy)
def test_decoding_never_crashes_large_budget(event: str, data: str) -> None:
    fuzz_decode(event, data)


@pytest.mark.slow
@settings(max_examples=5_000)
@given(
    stream=st.binary(max_size=400)
    | data_strategy.map(lambda d: f"event: progress\ndata: {d}\n\n".encode())
)
def test_parse_and_decode_never_crash_large_budget(stream: bytes) -> None:
    fuzz_pipeline(stream)
