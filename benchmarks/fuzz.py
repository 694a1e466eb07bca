"""Coverage-guided fuzzing of the SSE parser and event decoding with atheris.

Optional and never in CI: atheris has wheels for some CPython versions only
and otherwise needs clang to build, so it is not a dependency. Where it
installs:

    python -m pip install atheris
    python benchmarks/fuzz.py sse -atheris_runs=1000000      # the parser
    python benchmarks/fuzz.py events -atheris_runs=1000000   # parser + event decoding

A crash is any exception other than the documented ones (``SSELimitError``
from the parser, ``DecodeError`` from decoding), or chunked parsing that
disagrees with whole-input parsing. atheris saves the input as
``crash-<hash>``; turn it into a regression test in tests/sse/ or
tests/reliability/test_fuzz.py. CI runs the same entry points with
hypothesis and a large example budget instead (``pytest -m slow``).
"""

from __future__ import annotations

import sys
from typing import Callable, Dict, List


def fuzz_sse(data: bytes) -> None:
    from cyberun.errors import SSELimitError
    from cyberun.sse import SSEParser, iter_events

    if not data:
        return
    # The first byte picks a chunk size and small limits, the rest is the stream.
    step = data[0] % 17 + 1
    stream = data[1:]
    chunks = [stream[i : i + step] for i in range(0, len(stream), step)]
    limits = {"max_line_size": 64 + data[0], "max_event_size": 128 + 2 * data[0]}

    def outcome(parts: List[bytes]) -> object:
        try:
            return list(iter_events(parts, **limits)), None
        except SSELimitError as exc:
            return None, exc.kind

    whole = outcome([stream])
    assert outcome(chunks) == whole, "chunking changed the outcome"
    parser = SSEParser(**limits)
    try:
        for chunk in chunks:
            parser.feed(chunk)
    except SSELimitError:
        pass


EVENT_TYPES = ["status", "progress", "completed", "failed", "cancelled", "error", "", "other"]


def fuzz_events(data: bytes) -> None:
    """Parse the input as a stream and decode every event it yields."""
    from cyberun._convert import decode_event
    from cyberun.errors import DecodeError, SSELimitError
    from cyberun.sse import ServerSentEvent, iter_events

    if not data:
        return
    # The first byte either picks a known event type for raw data, or says "parse it".
    selector, rest = data[0], data[1:]
    if selector < 128:
        raw = [
            ServerSentEvent(
                EVENT_TYPES[selector % len(EVENT_TYPES)], rest.decode("utf-8", "replace")
            )
        ]
    else:
        try:
            raw = list(iter_events([rest], max_line_size=4096, max_event_size=8192))
        except SSELimitError:
            return
    for event in raw:
        try:
            decoded = decode_event(event)
        except DecodeError:
            continue
        assert decoded.type in [*EVENT_TYPES, "unknown"], decoded


TARGETS: Dict[str, Callable[[bytes], None]] = {"sse": fuzz_sse, "events": fuzz_events}


def main() -> None:
    import atheris

    name = sys.argv.pop(1) if len(sys.argv) > 1 and sys.argv[1] in TARGETS else "sse"
    with atheris.instrument_imports():
        import cyberun._convert
        import cyberun.sse  # noqa: F401
    atheris.Setup(sys.argv, TARGETS[name])
    atheris.Fuzz()


if __name__ == "__main__":
    main()
