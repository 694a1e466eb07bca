"""Coverage-guided fuzzing of the SSE parser with atheris (optional, never in CI).

atheris has wheels for some CPython versions only and otherwise needs clang
to build, so it is not a dependency. Where it installs:

    python -m pip install atheris
    python benchmarks/fuzz.py sse -atheris_runs=1000000

Any input that raises something other than SSELimitError, or makes
chunked parsing disagree with whole-input parsing, is a crash: atheris saves
it as ``crash-<hash>``; turn it into a regression test in tests/sse/.
CI runs the same properties with hypothesis instead (``pytest -m slow``).
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


TARGETS: Dict[str, Callable[[bytes], None]] = {"sse": fuzz_sse}


def main() -> None:
    import atheris

    name = sys.argv.pop(1) if len(sys.argv) > 1 and sys.argv[1] in TARGETS else "sse"
    with atheris.instrument_imports():
        import cyberun.sse  # noqa: F401
    atheris.Setup(sys.argv, TARGETS[name])
    atheris.Fuzz()


if __name__ == "__main__":
    main()
