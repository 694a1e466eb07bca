"""Client CPU per delivered event on one fast loopback stream (used by end_to_end.py).

A small server in this process writes the whole stream as fast as the
socket takes it; each contender reads it in the calling thread, whose CPU
time (``time.thread_time``) is what is measured, so the server's own work
is not counted. Contenders, in the same run, over the same bytes:

- ``bare parser``: the SDK's transport (``client.api.open_events``) and
  ``SSEParser.feed``, no decoding: the floor;
- ``launchdarkly + json.loads``: launchdarkly-eventsource's ``SSEClient`` over
  its own urllib3 connection, then ``json.loads`` of each event's data;
- ``wait(on_event=...)`` and ``events()``: the SDK as users call it.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, List, Tuple

import cyberun
from cyberun.sse import SSEParser

TASK = "019abc12-9012-7890-abcd-ef1234567896"


def _stream(events: int) -> bytes:
    status = {"task_id": TASK, "status": "running", "timestamp": "2026-02-01T14:30:05Z"}
    parts = [b"event: status\ndata: " + json.dumps(status).encode() + b"\n\n"]
    for n in range(events - 2):
        data = {
            "task_id": TASK,
            "progress": round((n % 20 + 1) / 20, 2),
            "step_current": n % 20 + 1,
            "step_total": 20,
            "current_node": "3",
            "timestamp": "2026-02-01T14:30:10Z",
        }
        parts.append(
            b"event: progress\ndata: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"
        )
    done = {"task_id": TASK, "status": "completed", "output": {"image_count": 1}}
    parts.append(b"event: completed\ndata: " + json.dumps(done).encode() + b"\n\n")
    return b"".join(parts)


def _server(body: bytes) -> Tuple[ThreadingHTTPServer, str]:
    task = json.dumps(
        {
            "id": TASK,
            "workflow_id": TASK,
            "task_source": "api_key",
            "task_status": "running",
            "created_at": "2026-02-01T14:30:00Z",
        }
    ).encode()
    result = json.dumps(
        {"id": TASK, "task_status": "completed", "task_output": {"image_count": 1}}
    ).encode()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            if self.path.endswith("/events"):
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                view = memoryview(body)
                for start in range(0, len(body), 65536):
                    self.wfile.write(view[start : start + 65536])
                self.close_connection = True
                return
            payload = result if self.path.endswith("/result") else task
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}"


def _timed(run: Callable[[], int]) -> Tuple[float, int]:
    started = time.thread_time()
    count = run()
    return time.thread_time() - started, count


def cpu_per_event(events: int, rounds: int = 3) -> None:
    print(f"\n## Client CPU per delivered event: one loopback stream of {events:,} events\n")
    body = _stream(events)
    httpd, url = _server(body)
    client = cyberun.Client("sk-bench", base_url=url, transport="urllib3")
    events_url = f"{url}/api/v1/r/tasks/{TASK}/events"

    def bare() -> int:
        parser = SSEParser()
        count = 0
        response = client.api.open_events(TASK)
        for chunk in response.iter_bytes():
            count += len(parser.feed(chunk))
        response.close()
        return count

    def launchdarkly() -> int:
        from ld_eventsource import SSEClient
        from ld_eventsource.actions import Event
        from ld_eventsource.config import ConnectStrategy
        from ld_eventsource.config.error_strategy import ErrorStrategy

        count = 0
        sse = SSEClient(
            connect=ConnectStrategy.http(events_url, headers={"Authorization": "Bearer sk-bench"}),
            error_strategy=ErrorStrategy.always_fail(),
        )
        for item in sse.all:
            if isinstance(item, Event):
                json.loads(item.data)
                count += 1
                if item.event == "completed":
                    break
        sse.close()
        return count

    def wait() -> int:
        seen: List[int] = [0]

        def on_event(event: cyberun.TaskEvent) -> None:
            seen[0] += 1

        client.wait(TASK, on_event=on_event)
        return seen[0]

    def iterate() -> int:
        return sum(1 for _ in client.events(TASK))

    contenders = [
        ("bare parser (SSEParser.feed over the SDK transport)", bare),
        ("launchdarkly-eventsource + json.loads", launchdarkly),
        ("cyberun wait(on_event=...)", wait),
        ("cyberun events()", iterate),
    ]
    best = {name: float("inf") for name, _ in contenders}
    for _ in range(rounds):
        for name, run in contenders:
            seconds, count = _timed(run)
            assert count == events, (name, count)
            best[name] = min(best[name], seconds)
    reference = best["launchdarkly-eventsource + json.loads"]
    floor = best["bare parser (SSEParser.feed over the SDK transport)"]
    print("| contender | µs/event | x launchdarkly + json.loads | x bare parser |")
    print("|---|---:|---:|---:|")
    for name, _ in contenders:
        print(
            f"| {name} | {best[name] / events * 1e6:.2f} | {best[name] / reference:.2f} | "
            f"{best[name] / floor:.2f} |"
        )
    print(f"\n(best of {rounds} rounds each, interleaved; thread CPU time of the reader)")
    client.close()
    httpd.shutdown()
    httpd.server_close()
