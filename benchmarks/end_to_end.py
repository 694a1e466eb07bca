"""Benchmark: the whole SDK against the emulator.

1. Requests per followed task, streaming and polling (from the emulator's log).
2. End-to-end delay: from the emulator handing an event's bytes to the
   socket (its ``stream_log``) to ``on_event`` being called in the client,
   over 1,000 progress events 20 ms apart, per transport.
3. Client CPU per delivered event (``time.thread_time`` of the consuming
   thread) over one loopback stream of 200,000 progress events written as
   fast as the socket takes them: ``wait(on_event=...)`` and ``events()``
   against the bare parser over the same transport, and against
   launchdarkly-eventsource plus ``json.loads`` on the same stream, in the
   same run.

    python benchmarks/end_to_end.py           # 1,000 events per transport; 200,000 for CPU
    python benchmarks/end_to_end.py --quick   # 200 events; 50,000 for CPU
    python benchmarks/end_to_end.py --cpu     # only the CPU comparison
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections import Counter
from typing import Dict, List, Optional

from _common import percentile
from cpu_stream import cpu_per_event

import cyberun
from cyberun.testing import CyberunEmulator


def requests_per_task() -> None:
    print("## Requests per followed task\n")
    print("| mode | task length | poll interval | run | events | task (GET) | result | total |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    # 60 emulated seconds of work, run 100x faster than real time.
    with CyberunEmulator(time_scale=0.01) as server:
        server.add_workflow("minute", steps=60, step_seconds=1.0)
        with cyberun.Client(
            server.api_key, base_url=server.base_url, poll_interval=0.03
        ) as client:
            for mode in ("stream", "poll"):
                server.clear_logs()
                client.run("minute").wait(mode=mode)
                counts = Counter(r.route for r in server.requests)
                total = sum(counts.values())
                print(
                    f"| {mode} | 62 s (emulated) | 3 s (emulated) | {counts['run']} | "
                    f"{counts['events']} | {counts['task']} | {counts['result']} | {total} |"
                )


def requests_in_a_storm(seconds: int = 10) -> None:
    print(f"\n## The storm: every stream closes after its first event, {seconds} s task\n")
    with CyberunEmulator(time_scale=1.0) as server:  # no ids: the documented server
        server.add_workflow("storm", steps=seconds, step_seconds=1.0)
        with cyberun.Client(server.api_key, base_url=server.base_url) as client:
            task = client.run("storm")
            server.clear_logs()
            server.inject("drop", route="events", task_id=task.id, after_events=1, times=None)
            started = time.monotonic()
            task.wait()
            elapsed = time.monotonic() - started
            counts = Counter(r.route for r in server.requests)
    print("| events requests | task (GET) | result | seconds | events requests per second |")
    print("|---:|---:|---:|---:|---:|")
    print(
        f"| {counts['events']} | {counts['task']} | {counts['result']} | {elapsed:.1f} | "
        f"{counts['events'] / elapsed:.2f} |"
    )


def delivery_delay(events: int) -> None:
    print(f"\n## End-to-end delay: emulator write -> on_event, {events} events 20 ms apart\n")
    print("| transport | p50 ms | p99 ms | max ms | events |")
    print("|---|---:|---:|---:|---:|")
    for transport in ("requests", "urllib3", "urllib"):
        with CyberunEmulator(time_scale=1.0, sse_ids=True) as server:  # ids: to match writes
            server.add_workflow("ticks", steps=events, step_seconds=0.02)
            with cyberun.Client(
                server.api_key, base_url=server.base_url, transport=transport
            ) as client:
                received: Dict[int, float] = {}

                def on_event(
                    event: cyberun.TaskEvent, received: Dict[int, float] = received
                ) -> None:
                    if isinstance(event, cyberun.ProgressEvent) and event.event_id:
                        received[int(event.event_id)] = time.monotonic()

                task = client.run("ticks")
                task.wait(on_event=on_event)
                written = {
                    index: when for task_id, index, when in server.stream_log if task_id == task.id
                }
        late = [(received[i] - written[i]) * 1000 for i in received if i in written]
        print(
            f"| {transport} | {percentile(late, 0.5):.2f} | {percentile(late, 0.99):.2f} | "
            f"{max(late):.2f} | {len(late)} |"
        )
        sys.stdout.flush()


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--cpu", action="store_true", help="only the CPU-per-event comparison")
    args = parser.parse_args(argv)
    flags = "".join(f" --{name}" for name in ("quick", "cpu") if getattr(args, name))
    print(f"# end-to-end benchmark: Python {platform.python_version()}, {platform.machine()}")
    print(f"# command: python benchmarks/end_to_end.py{flags}\n")
    if not args.cpu:
        requests_per_task()
        requests_in_a_storm()
        delivery_delay(200 if args.quick else 1000)
    cpu_per_event(50_000 if args.quick else 200_000)
    return 0


if __name__ == "__main__":
    sys.exit(main())
