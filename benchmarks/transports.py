"""Benchmark: transport overhead and event delivery delay, against peer clients.

1. Overhead: 1,000 small GETs over keep-alive on loopback, per transport,
   with a bare ``http.client`` loop as the baseline measured in the same run.
2. Delivery delay: a server (in another process) writes one event every
   20 ms, stamped with the monotonic clock (system-wide on Linux) at the
   moment of the write; each client parses events and records how late each
   reaches the caller. p50 and p99, chunked and close-delimited streams.
   Peers: httpx-sse, sseclient-py over requests, requests-sse,
   launchdarkly-eventsource. A close-delimited stream is where clients that
   read ahead to fill a buffer hold events back.

    python benchmarks/transports.py            # 1,000 GETs, 300 events per case
    python benchmarks/transports.py --quick    # 300 GETs, 100 events
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import platform
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List, Optional, Tuple

from _common import percentile

GAP = 0.020  # seconds between events


# --- the servers (run in a child process) ------------------------------------------------


def _serve(port_queue: Any, events: int) -> None:
    class Handle(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def setup(self) -> None:
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def do_GET(self) -> None:
            if self.path.startswith("/small"):
                body = b'{"id":"t","task_status":"running"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            chunked = self.path.startswith("/sse/chunked")
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            if chunked:
                self.send_header("Transfer-Encoding", "chunked")
            else:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.flush()
            for n in range(events):
                time.sleep(GAP)
                data = b"event: progress\ndata: %d\nid: %d\n\n" % (time.monotonic_ns(), n)
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
                self.wfile.flush()
            # Hold the connection open a little: a client must not need the end.
            time.sleep(0.5)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
            self.close_connection = True

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handle)
    server.daemon_threads = True
    port_queue.put(server.server_address[1])
    server.serve_forever()


def start_server(events: int) -> Tuple[multiprocessing.Process, str]:
    context = multiprocessing.get_context("spawn")
    ports = context.Queue()
    process = context.Process(target=_serve, args=(ports, events), daemon=True)
    process.start()
    return process, f"http://127.0.0.1:{ports.get(timeout=30)}"


# --- 1. overhead -----------------------------------------------------------------------------


def http_client_loop(base: str, count: int) -> float:
    host, port = base.split("//")[1].split(":")
    conn = http.client.HTTPConnection(host, int(port))
    start = time.perf_counter()
    for _ in range(count):
        conn.request("GET", "/small")
        conn.getresponse().read()
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


def transport_loop(name: str) -> Callable[[str, int], float]:
    def run(base: str, count: int) -> float:
        from cyberun.transports import Request, Timeout, transport_by_name

        transport = transport_by_name(name)
        timeout = Timeout(5, 5)
        start = time.perf_counter()
        for _ in range(count):
            transport.send(Request("GET", base + "/small"), timeout=timeout).read()
        elapsed = time.perf_counter() - start
        transport.close()
        return elapsed

    return run


def client_loop(base: str, count: int) -> float:
    """The whole SDK path: Client.get_task (auth headers, retry policy, JSON, model)."""
    import cyberun
    from cyberun.transports import MockTransport  # noqa: F401 - imported for parity of imports

    client = cyberun.Client("sk-bench", base_url=base, transport="urllib")
    client._api.runtime_url = lambda path, query=None: base + "/small"  # type: ignore[method-assign]
    start = time.perf_counter()
    for _ in range(count):
        client.get_task("t")
    elapsed = time.perf_counter() - start
    client.close()
    return elapsed


def httpx_loop(base: str, count: int) -> float:
    import httpx

    with httpx.Client() as client:
        start = time.perf_counter()
        for _ in range(count):
            client.get(base + "/small").read()
        return time.perf_counter() - start


def requests_loop(base: str, count: int) -> float:
    import requests

    with requests.Session() as session:
        start = time.perf_counter()
        for _ in range(count):
            _ = session.get(base + "/small").content
        return time.perf_counter() - start


# --- 2. delivery delay -------------------------------------------------------------------------


def delays_cyberun(name: str) -> Callable[[str, int], List[float]]:
    def run(url: str, events: int) -> List[float]:
        from cyberun.sse import iter_events
        from cyberun.transports import Request, Timeout, transport_by_name

        transport = transport_by_name(name)
        response = transport.send(Request("GET", url), timeout=Timeout(5, 30))
        late = []
        for event in iter_events(response.iter_bytes()):
            late.append((time.monotonic_ns() - int(event.data)) / 1e6)
            if len(late) == events:
                break
        response.close()
        transport.close()
        return late

    return run


def delays_httpx_sse(url: str, events: int) -> List[float]:
    import httpx
    from httpx_sse import connect_sse

    late = []
    with httpx.Client(timeout=30) as client, connect_sse(client, "GET", url) as source:
        for sse in source.iter_sse():
            late.append((time.monotonic_ns() - int(sse.data)) / 1e6)
            if len(late) == events:
                break
    return late


def delays_sseclient(url: str, events: int) -> List[float]:
    import requests
    import sseclient

    late = []
    response = requests.get(url, stream=True, timeout=30)
    for event in sseclient.SSEClient(response).events():
        late.append((time.monotonic_ns() - int(event.data)) / 1e6)
        if len(late) == events:
            break
    response.close()
    return late


def delays_requests_sse(url: str, events: int) -> List[float]:
    from requests_sse import EventSource

    late = []
    with EventSource(url, timeout=30) as source:
        for event in source:
            late.append((time.monotonic_ns() - int(event.data)) / 1e6)
            if len(late) == events:
                break
    return late


def delays_ld(url: str, events: int) -> List[float]:
    from ld_eventsource import SSEClient

    late = []
    client = SSEClient(url)
    for event in client.events:
        late.append((time.monotonic_ns() - int(event.data)) / 1e6)
        if len(late) == events:
            break
    client.close()
    return late


DELAY_CLIENTS: Dict[str, Callable[[str, int], List[float]]] = {
    "cyberun/requests": delays_cyberun("requests"),
    "cyberun/urllib3": delays_cyberun("urllib3"),
    "cyberun/urllib": delays_cyberun("urllib"),
    "httpx-sse": delays_httpx_sse,
    "sseclient-py": delays_sseclient,
    "requests-sse": delays_requests_sse,
    "launchdarkly": delays_ld,
}


def run_with_timeout(
    func: Callable[[], Any], seconds: float
) -> Tuple[Optional[Any], Optional[str]]:
    box: Dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = func()
        except Exception as exc:  # a peer failing is reported, not fatal
            box["error"] = f"{type(exc).__name__}: {exc}"[:80]

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        return None, f"no result within {seconds:.0f}s"
    return box.get("value"), box.get("error")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    count = 300 if args.quick else 1000
    events = 100 if args.quick else 300
    print(f"# transports benchmark: Python {platform.python_version()}, {platform.machine()}")
    print(f"# command: python benchmarks/transports.py{' --quick' if args.quick else ''}")
    process, base = start_server(events)
    try:
        print(f"\n## Overhead: {count} small GETs over keep-alive (best of 3, round-robin)\n")
        loops: Dict[str, Callable[[str, int], float]] = {
            "http.client (baseline)": http_client_loop,
            "UrllibTransport": transport_loop("urllib"),
            "Urllib3Transport": transport_loop("urllib3"),
            "RequestsTransport": transport_loop("requests"),
            "Client.get_task (urllib, whole SDK)": client_loop,
            "httpx.Client (peer)": httpx_loop,
            "requests.Session (peer)": requests_loop,
        }
        best = dict.fromkeys(loops, float("inf"))
        for _ in range(3):
            for name, loop in loops.items():
                best[name] = min(best[name], loop(base, count))
        baseline = best["http.client (baseline)"]
        print("| client | µs per request | x http.client |")
        print("|---|---:|---:|")
        for name, seconds in best.items():
            print(f"| {name} | {seconds / count * 1e6:,.0f} | {seconds / baseline:.2f} |")
        print(f"\n## Delivery delay: {events} events written {GAP * 1000:.0f} ms apart\n")
        print("| client | framing | p50 ms | p99 ms | max ms |")
        print("|---|---|---:|---:|---:|")
        for framing in ("chunked", "close"):
            for name, measure in DELAY_CLIENTS.items():
                url = f"{base}/sse/{framing}"
                late, error = run_with_timeout(
                    lambda measure=measure, url=url: measure(url, events), events * GAP + 30
                )
                if error or not late:
                    print(f"| {name} | {framing} | - | - | - | {error or 'no events'}")
                    continue
                print(
                    f"| {name} | {framing} | {percentile(late, 0.5):.2f} | "
                    f"{percentile(late, 0.99):.2f} | {max(late):.2f} |"
                )
                sys.stdout.flush()
    finally:
        process.terminate()
        process.join(5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
