"""Benchmark: cyberun's SSE parser against the Python SSE parsers people use.

Every parser gets the same corpora, pre-split into the same chunks, in the
same run, and is driven through its own real code path:

- cyberun      ``cyberun.sse.SSEParser``
- floor        a bare ``bytes.split`` parser (LF only, no id/retry, tuples out):
               the speed limit for pure-Python parsing, not a correct parser
- ld           launchdarkly-eventsource's public API: ``SSEClient(...).events``
- ld-reader    its private ``_BufferedLineReader`` + ``_SSEReader`` alone (a
               reference: faster than its public API, but no user calls them)
- httpx-sse    ``SSEDecoder`` behind the line splitting httpx-sse uses
               (httpx's incremental UTF-8 text decoding, then ``SSELineDecoder``)
- sseclient    sseclient-py's ``SSEClient``
- requests-sse ``requests_sse.EventSource`` over requests' ``iter_lines``
- naive        the ``iter_lines`` + ``startswith`` loop from the Cyberun docs

Every corpus runs twice: as it is, and with an ``id:`` line on every event
(``+id``), as servers with ids send it. Each row's parsers run in turns for
several rounds (the machine is noisy; times are the process's CPU time);
throughput is the median round, and a
ratio is the median over the rounds of the fastest correct peer's time over
the parser's. Peak memory comes
from a separate tracemalloc pass. Every parser's events are compared with
cyberun's: a peer that yields different events is reported as wrong.

    python benchmarks/sse_parsers.py            # full run
    python benchmarks/sse_parsers.py --quick    # smaller corpora
    python benchmarks/sse_parsers.py --corpus tiny --parser cyberun-feed --parser ld
"""

from __future__ import annotations

import argparse
import codecs
import gc
import json
import platform
import statistics
import sys
import time
import tracemalloc
from collections import deque
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

Event = Tuple[str, str]  # (type, data): what every parser can report

# --- corpora ----------------------------------------------------------------


def cyberun_stream(tasks: int, crlf: bool = False) -> bytes:
    """Realistic task streams: status changes, progress ticks, keep-alives, completion."""
    out: List[str] = []
    for t in range(tasks):
        task_id = f"019abc12-9012-7890-abcd-{t:012d}"
        for status in ("pending", "waiting", "queued", "running"):
            payload = {"task_id": task_id, "status": status, "timestamp": "2026-02-01T14:30:05Z"}
            out.append(f"event: status\ndata: {json.dumps(payload)}\n\n")
        for step in range(1, 201):
            payload = {
                "task_id": task_id,
                "progress": round(step / 200, 4),
                "step_current": step,
                "step_total": 200,
                "current_node": "3",
                "timestamp": "2026-02-01T14:30:10.123456Z",
            }
            out.append(f"event: progress\ndata: {json.dumps(payload)}\n\n")
            if step % 20 == 0:
                out.append(": keep-alive\n\n")
        done = {
            "task_id": task_id,
            "status": "completed",
            "completed_at": "2026-02-01T14:31:30Z",
            "output": {"storage_key": f"tasks/{task_id}/output_00001_.png", "image_count": 1},
        }
        out.append(f"event: completed\ndata: {json.dumps(done)}\n\n")
    text = "".join(out)
    if crlf:
        text = text.replace("\n", "\r\n")
    return text.encode()


def with_ids(data: bytes) -> bytes:
    """The same stream with an ``id:`` line first in every event, as servers with ids send."""
    line_end = b"\r\n" if b"\r\n" in data else b"\n"
    blank = line_end * 2
    blocks = data.split(blank)
    return blank.join(
        b"id: %d" % i + line_end + block if block and not block.startswith(b":") else block
        for i, block in enumerate(blocks)
    )


def corpora(quick: bool) -> Dict[str, bytes]:
    """Every corpus, and each again with an id line on every event (``+id``)."""
    plain = base_corpora(quick)
    both: Dict[str, bytes] = {}
    for name, data in plain.items():
        both[name] = data
        both[name + "+id"] = with_ids(data)
    return both


def base_corpora(quick: bool) -> Dict[str, bytes]:
    scale = 1 if quick else 4
    return {
        "cyberun": cyberun_stream(10 * scale),
        "cyberun-crlf": cyberun_stream(10 * scale, crlf=True),
        "tiny": b"data: x\n\n" * (50_000 * scale),
        "large-lines": b"".join(
            b"data: " + bytes([97 + i % 26]) * (256 * 1024) + b"\n\n" for i in range(2 * scale)
        ),
        "multiline": b"".join(
            b"event: log\n"
            + b"".join(
                b"data: line %d of a multi-line event, padded to size\n" % j for j in range(10)
            )
            + b"\n"
            for _ in range(2_000 * scale)
        ),
        "small": cyberun_stream(1)[:65536].rsplit(b"\n\n", 1)[0] + b"\n\n",
    }


# "event" delivers one event per chunk: what a live server's writes look like.
CHUNK_SIZES: Dict[str, List[object]] = {
    "cyberun": ["event", 64, 1024, 8192, 65536],
    "cyberun-crlf": ["event", 64, 8192],
    "tiny": ["event", 64, 1024, 8192, 65536],
    "large-lines": [64, 8192, 65536],
    "multiline": [64, 8192],
    "small": [1],
}


def chunked(data: bytes, size: object) -> List[bytes]:
    if size == "event":
        blank = b"\r\n\r\n" if b"\r\n" in data else b"\n\n"
        return [block + blank for block in data.split(blank)[:-1]]
    assert isinstance(size, int)
    return [data[i : i + size] for i in range(0, len(data), size)]


# --- parsers ------------------------------------------------------------------
# Each entry makes an iterator of the parser's own native output from the
# chunks (timed), and turns one item into a (type, data) pair or None for
# non-events such as comments (used only for the correctness check).

Native = Callable[[Sequence[bytes]], Iterator[object]]


def native_cyberun(chunks: Sequence[bytes]) -> Iterator[object]:
    """cyberun's parser through iter_events, its API for chunk iterables."""
    from cyberun.sse import iter_events

    return iter_events(chunks)


def native_cyberun_feed(chunks: Sequence[bytes]) -> Iterator[object]:
    """cyberun's parser through SSEParser.feed, one call per chunk."""
    from cyberun.sse import SSEParser

    parser = SSEParser()
    feed = parser.feed
    for chunk in chunks:
        yield from feed(chunk)
    parser.close()


def native_floor(chunks: Sequence[bytes]) -> Iterator[object]:
    """The split floor: one split per chunk, LF only, no id/retry. Not spec-complete."""
    pending = b""
    for chunk in chunks:
        buffer = pending + chunk if pending else chunk
        end = buffer.rfind(b"\n\n")
        if end < 0:
            pending = buffer
            continue
        pending = buffer[end + 2 :]
        for block in buffer[:end].decode("utf-8", "replace").split("\n\n"):
            event_type = "message"
            data = []
            for line in block.split("\n"):
                if line.startswith("data:"):
                    data.append(line[6:] if line[5:6] == " " else line[5:])
                elif line.startswith("event:"):
                    event_type = line[7:] if line[6:7] == " " else line[6:]
            if data:
                yield event_type, "\n".join(data)


def native_ld(chunks: Sequence[bytes]) -> Iterator[object]:
    """launchdarkly-eventsource's public API: SSEClient(...).events over the chunks."""
    from ld_eventsource import SSEClient
    from ld_eventsource.config import ConnectionClient, ConnectionResult, ConnectStrategy
    from ld_eventsource.config.error_strategy import ErrorStrategy

    class Client(ConnectionClient):
        def connect(self, last_event_id: Optional[str]) -> ConnectionResult:
            return ConnectionResult(iter(chunks), None)

    class Strategy(ConnectStrategy):
        def create_client(self, logger: object) -> ConnectionClient:
            return Client()

    client = SSEClient(connect=Strategy(), error_strategy=ErrorStrategy.always_fail())
    return iter(client.events)


def native_ld_reader(chunks: Sequence[bytes]) -> Iterator[object]:
    """launchdarkly's private reader classes alone: a reference, not what users run."""
    from ld_eventsource.reader import _BufferedLineReader, _SSEReader

    return _SSEReader(_BufferedLineReader.lines_from(chunks)).events_and_comments()


def _ld_pair(item: object) -> Optional[Event]:
    from ld_eventsource.actions import Event as LDEvent

    return (item.event, item.data) if isinstance(item, LDEvent) else None  # type: ignore[attr-defined]


def _httpx_text(chunks: Iterable[bytes]) -> Iterator[str]:
    # httpx's Response.iter_text(): an incremental UTF-8 decoder with replacement.
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    for chunk in chunks:
        text = decoder.decode(chunk)
        if text:
            yield text
    tail = decoder.decode(b"", True)
    if tail:
        yield tail


def native_httpx_sse(chunks: Sequence[bytes]) -> Iterator[object]:
    """httpx-sse's EventSource.iter_sse() pipeline over the same text decoding."""
    from httpx_sse._decoders import SSEDecoder, SSELineDecoder

    lines = SSELineDecoder()
    decoder = SSEDecoder()
    for text in _httpx_text(chunks):
        for line in lines.decode(text):
            sse = decoder.decode(line.rstrip("\n"))
            if sse is not None:
                yield sse


def native_sseclient(chunks: Sequence[bytes]) -> Iterator[object]:
    import sseclient

    return sseclient.SSEClient(iter(chunks)).events()


def _requests_response(chunks: Sequence[bytes]):  # type: ignore[no-untyped-def]
    import requests

    response = requests.Response()
    response.status_code = 200
    response.iter_content = lambda chunk_size=1, decode_unicode=False: iter(chunks)  # type: ignore[method-assign]
    return response


def native_requests_sse(chunks: Sequence[bytes]) -> Iterator[object]:
    from datetime import timedelta

    from requests_sse.client import EventSource, ReadyState

    source = EventSource.__new__(EventSource)
    source._response = _requests_response(chunks)
    source._data_generator = source._response.iter_lines()
    source._event_type = source._event_data = None
    source._event_id = source._last_event_id = ""
    source._origin = ""
    source._on_open = source._on_message = source._on_error = None
    source._ready_state = ReadyState.OPEN
    source._reconnection_time = source._orginal_reconnection_time = timedelta(0)
    source._max_connect_retry = 0
    source._url = "http://bench.invalid"

    def end_of_stream(*args: object) -> None:
        raise StopIteration  # instead of reconnecting at the end of the corpus

    source.connect = end_of_stream
    return iter(source)


def native_naive(chunks: Sequence[bytes]) -> Iterator[object]:
    """The loop from the Cyberun documentation (seed 002), without json.loads."""
    event_type = None
    for raw in _requests_response(chunks).iter_lines():
        line = raw.decode()
        if not line:
            continue
        if line.startswith("event:"):
            event_type = line[6:].strip()
        elif line.startswith("data:"):
            yield event_type or "message", line[5:].strip()


def _event_data(item: object) -> Optional[Event]:
    return (item.event, item.data)  # type: ignore[attr-defined]


def _same(item: object) -> Optional[Event]:
    return item  # type: ignore[return-value]


PARSERS: Dict[str, Tuple[Native, Callable[[object], Optional[Event]]]] = {
    "cyberun": (native_cyberun, _event_data),
    "cyberun-feed": (native_cyberun_feed, _event_data),
    "floor": (native_floor, _same),
    "ld": (native_ld, _ld_pair),
    "ld-reader": (native_ld_reader, _ld_pair),
    "httpx-sse": (native_httpx_sse, _event_data),
    "sseclient": (native_sseclient, _event_data),
    "requests-sse": (native_requests_sse, lambda e: (e.type, e.data)),  # type: ignore[attr-defined]
    "naive": (native_naive, _same),
}
# The existing parsers the targets compare with, each through the API its
# users call. Reported too, with their own ratios: launchdarkly's private
# reader classes (faster than its public API, but no user calls them) and
# the naive loop (not a parser: one "event" per data line, no multi-line
# data; but it is what the Cyberun docs suggest).
PEERS = ["ld", "httpx-sse", "sseclient", "requests-sse"]

# --- measurement --------------------------------------------------------------


def events_of(name: str, chunks: Sequence[bytes]) -> List[Event]:
    native, to_pair = PARSERS[name]
    return [pair for pair in map(to_pair, native(chunks)) if pair is not None]


def interleaved_times(
    parsers: Dict[str, Native], chunks: Sequence[bytes], rounds: int
) -> Dict[str, List[float]]:
    """Each parser's time in each of ``rounds`` rounds; every round runs them all in turn.

    Interleaving makes a change of load on the machine hit every parser alike;
    the time is this process's CPU time, which other processes' load disturbs
    far less than the wall clock (the machine this runs on is shared).
    """
    times: Dict[str, List[float]] = {name: [] for name in parsers}
    for _ in range(rounds):
        for name, parser in parsers.items():
            gc.collect()
            start = time.process_time()
            deque(parser(chunks), maxlen=0)
            times[name].append(time.process_time() - start)
    return times


def peak_memory(parser: Native, chunks: Sequence[bytes]) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        deque(parser(chunks), maxlen=0)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def check(name: str, events: List[Event], expected: List[Event]) -> Optional[str]:
    if events == expected:
        return None
    if len(events) != len(expected):
        return f"{len(events)} events instead of {len(expected)}"
    first = next(i for i, (a, b) in enumerate(zip(events, expected)) if a != b)
    return f"event {first} differs: {events[first]!r:.60} vs {expected[first]!r:.60}"


def run(quick: bool, only: Optional[List[str]], parsers: Optional[List[str]], rounds: int) -> int:
    selected = [name for name in PARSERS if not parsers or name in parsers]
    command = "python benchmarks/sse_parsers.py" + (" --quick" if quick else "")
    if rounds != DEFAULT_ROUNDS:
        command += f" --rounds {rounds}"
    print(f"# SSE parser benchmark: Python {platform.python_version()} on {platform.machine()}")
    print(f"# command: {command}")
    print(f"# MB/s and events/s: median of {rounds} interleaved rounds; 'x fastest peer': median")
    print("# over the rounds of the ratio to the peer fastest in that row that produced the right")
    print("# events (launchdarkly's public API, httpx-sse, sseclient, requests-sse); '-' = wrong.")
    print()
    columns = ["corpus", "chunk", "parser", "MB/s", "events/s", "peak KiB"]
    columns += ["x fastest peer", "x naive", "notes"]
    print("| " + " | ".join(columns) + " |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---|")
    failures = 0
    data_sets = corpora(quick)
    quadratic: Dict[int, float] = {}
    for corpus, data in data_sets.items():
        if only and corpus not in only:
            continue
        for size in CHUNK_SIZES[corpus.split("+")[0]]:
            chunks = chunked(data, size)
            expected = events_of("cyberun", chunks)
            problems: Dict[str, Optional[str]] = {}
            crashed: Dict[str, str] = {}
            for name in selected:
                try:
                    problems[name] = check(name, events_of(name, chunks), expected)
                except Exception as exc:  # a peer that crashes is reported, not fatal
                    crashed[name] = f"crashed: {type(exc).__name__}: {exc}"[:80]
            runnable = {n: PARSERS[n][0] for n in problems}
            times = interleaved_times(runnable, chunks, rounds)
            medians = {name: statistics.median(values) for name, values in times.items()}
            peers = [n for n in runnable if n in PEERS and problems[n] is None]
            fastest = min(peers, key=medians.__getitem__) if peers else None
            naive = "naive" if "naive" in runnable and problems["naive"] is None else None
            for name in selected:
                if name in crashed:
                    print(f"| {corpus} | {size} | {name} | - | - | - | - | - | {crashed[name]} |")
                    continue
                seconds = medians[name]
                problem = problems[name]
                mbps = len(data) / seconds / 1e6
                eps = len(expected) / seconds
                ratio = versus_naive = "-"
                if problem is None and fastest:
                    ratio = f"{median_ratio(times[fastest], times[name]):.2f}"
                if problem is None and naive:
                    versus_naive = f"{median_ratio(times[naive], times[name]):.2f}"
                note = f"WRONG: {problem}" if problem else ""
                if name == "floor" and problem:
                    note = f"(not spec-complete) {problem}"
                peak = peak_memory(runnable[name], chunks)
                print(
                    f"| {corpus} | {size} | {name} | {mbps:.1f} | {eps:,.0f} | "
                    f"{peak / 1024:,.0f} | {ratio} | {versus_naive} | {note} |"
                )
                if name == "cyberun" and corpus == "large-lines":
                    quadratic[size] = seconds  # type: ignore[index]
            sys.stdout.flush()
    if 64 in quadratic and 65536 in quadratic:
        share = quadratic[65536] / quadratic[64]
        print()
        print(
            f"Quadratic check: 256 KiB lines in 64-byte chunks run at {share:.0%} of the "
            "speed of 64 KiB chunks (target: at least 10%)."
        )
        failures += share < 0.10
    return failures


def per_call(rounds: int) -> None:
    """The fixed cost of one chunk: ``feed`` on an empty and a one-byte chunk, and ld's.

    What bounds the rows where chunks are tiny: each chunk is a method call
    for cyberun, a generator step for launchdarkly.
    """
    from cyberun.sse import SSEParser

    count = 20_000
    cases: Dict[str, List[bytes]] = {"empty": [b""] * count, "one byte": [b"x"] * count}

    def feed(chunks: Sequence[bytes]) -> None:
        parser = SSEParser()
        parser.feed(b"data: ")
        call = parser.feed
        for chunk in chunks:
            call(chunk)

    def ld_lines(chunks: Sequence[bytes]) -> None:
        from ld_eventsource.reader import _BufferedLineReader

        deque(_BufferedLineReader.lines_from([b"data: ", *chunks]), maxlen=0)

    def ld_public(chunks: Sequence[bytes]) -> None:
        deque(native_ld([b"data: ", *chunks]), maxlen=0)

    print()
    print("Per-chunk cost (ns, median of interleaved rounds, CPU time):")
    print()
    print("| chunk | cyberun feed() | ld line reader | ld public API | cost: feed / ld public |")
    print("|---|---:|---:|---:|---:|")
    for label, chunks in cases.items():
        runners = {"feed": feed, "ld lines": ld_lines, "ld public": ld_public}
        times: Dict[str, List[float]] = {name: [] for name in runners}
        for _ in range(rounds):
            for name, runner in runners.items():
                gc.collect()
                start = time.process_time()
                runner(chunks)
                times[name].append((time.process_time() - start) / count * 1e9)
        cost = {name: statistics.median(values) for name, values in times.items()}
        print(
            f"| {label} | {cost['feed']:.0f} | {cost['ld lines']:.0f} | {cost['ld public']:.0f} | "
            f"{median_ratio(times['feed'], times['ld public']):.2f} |"
        )


def median_ratio(peer: List[float], own: List[float]) -> float:
    """The median over the rounds of the peer's time divided by our own (above 1: faster)."""
    return statistics.median(p / o for p, o in zip(peer, own))


DEFAULT_ROUNDS = 7


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller corpora")
    parser.add_argument("--corpus", action="append", help="run only this corpus (repeatable)")
    parser.add_argument("--parser", action="append", help="run only this parser (repeatable)")
    parser.add_argument(
        "--rounds", type=int, default=DEFAULT_ROUNDS, help="interleaved rounds (at least 5)"
    )
    parser.add_argument(
        "--per-call",
        action="store_true",
        help="only the fixed cost of one (empty or 1-byte) chunk",
    )
    args = parser.parse_args(argv)
    if args.rounds < 5:
        parser.error("--rounds must be at least 5: the figures are medians")
    if args.per_call:
        per_call(args.rounds)
        return 0
    failures = run(args.quick, args.corpus, args.parser, args.rounds)
    if not args.corpus and not args.parser:
        per_call(args.rounds)
    return failures


if __name__ == "__main__":
    sys.exit(main())
