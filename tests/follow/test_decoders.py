"""The per-type event decoders agree with the converter on any payload."""

from __future__ import annotations

import json
from typing import Any, Dict

from hypothesis import given
from hypothesis import strategies as st

from cyberun import DecodeError
from cyberun._convert import _EVENT_CLASSES, decode_event, structure
from cyberun.sse import ServerSentEvent

values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 30),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.text(max_size=4),
    st.sampled_from(["2026-02-01T14:30:05Z", "...", "2026-02-01 14:30:05.123456789+02:00"]),
    st.lists(st.integers(), max_size=2),
)
fields = st.sampled_from(
    ["task_id", "progress", "step_current", "step_total", "current_node", "stage", "message",
     "timestamp", "status", "extra"]
)  # fmt: skip


@given(kind=st.sampled_from(["progress", "status"]), payload=st.dictionaries(fields, values))
def test_the_fast_decoders_agree_with_the_converter(kind: str, payload: Dict[str, Any]) -> None:
    sse = ServerSentEvent(event=kind, data=json.dumps(payload), id="4", own_id="4")
    try:
        expected: Any = structure(json.loads(sse.data), _EVENT_CLASSES[kind])
    except DecodeError:
        expected = DecodeError
    try:
        got: Any = decode_event(sse)
    except DecodeError:
        got = DecodeError
    assert got == expected
    if got is not DecodeError:
        assert got.timestamp == expected.timestamp and got.event_id == "4"
        assert dict(got.raw) == json.loads(sse.data)
