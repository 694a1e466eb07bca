"""Benchmark: how closely the emulator replays a recording at its recorded pace.

Records one task of a built-in workflow through ``RecordingTransport`` (the
emulator at ``time_scale=1``, so the events are a tenth of a second apart),
then replays the recording with ``CyberunEmulator.add_recording`` at several
time scales and reads the replayed event stream over plain ``http.client``
(not the SDK), noting when each piece arrives. For each replay it prints,
over the gaps between consecutive pieces of the stream, the median and the
worst difference between the replayed gap and the recorded gap x
``time_scale``, in milliseconds and as a share of the whole scaled stream.

    python benchmarks/replay_pacing.py
    python benchmarks/replay_pacing.py --scales 1 0.5 0.1 --steps 20
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import List, Tuple
from urllib.parse import urlsplit

import cyberun
from cyberun.testing import CyberunEmulator, RecordingTransport
from cyberun.transports import UrllibTransport


def record(path: Path, steps: int) -> List[float]:
    """Record one text-to-image task; return the arrival times of its stream's pieces."""
    with CyberunEmulator(time_scale=1.0) as server:
        recorder = RecordingTransport(UrllibTransport(), str(path))
        client = cyberun.Client(server.api_key, base_url=server.base_url, transport=recorder)
        with client:
            client.run("text-to-image", {"prompt": "pacing", "steps": steps}).wait()
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()[1:]]
    streams = [r["n"] for r in rows if r["type"] == "response" and r["path"].endswith("/events")]
    first = streams[0]
    return [r["t"] for r in rows if r["type"] == "read" and r["n"] == first]


def replay(path: Path, scale: float) -> List[float]:
    """Replay the recording at ``scale``; return the arrival times of the stream's pieces."""
    with CyberunEmulator(time_scale=scale) as server:
        server.add_recording(str(path), slug="recorded")
        task_id = server.create_task("recorded")
        parts = urlsplit(server.base_url)
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        connection.request(
            "GET",
            f"/api/v1/r/tasks/{task_id}/events",
            headers={"Authorization": f"Bearer {server.api_key}", "Accept": "text/event-stream"},
        )
        response = connection.getresponse()
        arrivals: List[float] = []
        while True:
            piece = response.read1(65536)
            if not piece:
                break
            arrivals.append(time.perf_counter())
            if b"event: completed" in piece or b"event: failed" in piece:
                break
        connection.close()
    return arrivals


def errors(recorded: List[float], replayed: List[float], scale: float) -> Tuple[float, float, int]:
    """(median, worst) |replayed gap - recorded gap x scale| in seconds, and the gaps compared."""
    count = min(len(recorded), len(replayed))
    diffs = [
        abs((replayed[i] - replayed[i - 1]) - (recorded[i] - recorded[i - 1]) * scale)
        for i in range(1, count)
    ]
    return statistics.median(diffs), max(diffs), len(diffs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 0.5, 0.1])
    parser.add_argument("--steps", type=int, default=20, help="ticks of the recorded task")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "pacing.jsonl"
        recorded = record(path, args.steps)
        span = recorded[-1] - recorded[0]
        print(f"recorded: {len(recorded)} pieces over {span:.2f} s")
        print("| time_scale | pieces | gaps | median error | worst error | worst / scaled span |")
        print("|---:|---:|---:|---:|---:|---:|")
        for scale in args.scales:
            replayed = replay(path, scale)
            median, worst, gaps = errors(recorded, replayed, scale)
            print(
                f"| {scale:g} | {len(replayed)} | {gaps} | {median * 1000:.1f} ms "
                f"| {worst * 1000:.1f} ms | {worst / (span * scale):.1%} |"
            )


if __name__ == "__main__":
    main()
