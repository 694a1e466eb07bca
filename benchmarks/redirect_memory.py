"""Benchmark: peak memory of following a 302 whose body is 400 MiB, per transport.

A loopback server answers the first GET with ``302 Found``, a
``Content-Length`` of 400 MiB and that many bytes behind it, and the
redirect target with a small JSON task. Each client runs in a fresh process
and reports its peak RSS (``ru_maxrss``) before and after the request; the
server counts the bytes it managed to write before the client hung up.
The reference row is plain requests (``Session.request`` with
``allow_redirects=False``, then the redirect followed by hand), which reads
the whole redirect body before returning.

    python benchmarks/redirect_memory.py
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from typing import Dict, List

MiB = 1024 * 1024
BODY = 400 * MiB
TASK = "019abc12-9012-7890-abcd-ef1234567896"

_SDK = r"""
import json, resource, sys
import cyberun
client = cyberun.Client("sk-bench-0123456789", base_url=sys.argv[1], transport=sys.argv[2])
client.get_task("warm-up")
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
client.get_task(sys.argv[3])
print(json.dumps([before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss]))
"""

_PLAIN_REQUESTS = r"""
import json, resource, sys
import requests
session = requests.Session()
session.get(sys.argv[1] + "/warm-up").content
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
url = sys.argv[1] + "/api/v1/r/tasks/" + sys.argv[3]
first = session.request("GET", url, allow_redirects=False, stream=True)
session.get(sys.argv[1] + first.headers["Location"]).content
print(json.dumps([before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss]))
"""


def serve(sent: Dict[str, int]) -> socket.socket:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)

    def answer(conn: socket.socket) -> None:
        with conn:
            head = b""
            while b"\r\n\r\n" not in head:
                data = conn.recv(65536)
                if not data:
                    return
                head += data
            target = head.split(b" ")[1]
            if b"hop" in target or b"warm-up" in target:
                body = json.dumps({"id": TASK, "task_status": "running"}).encode()
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
                )
                return
            conn.sendall(
                b"HTTP/1.1 302 Found\r\nLocation: %s?hop=1\r\nConnection: close\r\n"
                b"Content-Length: %d\r\n\r\n" % (target, BODY)
            )
            chunk = b"\0" * MiB
            try:
                for _ in range(BODY // MiB):
                    conn.sendall(chunk)
                    sent["bytes"] += len(chunk)
            except OSError:
                pass

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=answer, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return listener


def measure(code: str, *args: str) -> List[float]:
    sent = {"bytes": 0}
    listener = serve(sent)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    try:
        done = subprocess.run(
            [sys.executable, "-c", code, url, *args, TASK],
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        listener.close()
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    before, after = json.loads(done.stdout.strip().splitlines()[-1])
    return [after / 1024, (after - before) / 1024, sent["bytes"] / MiB]


def main() -> None:
    rows = [("cyberun " + name, measure(_SDK, name)) for name in ("requests", "urllib3", "urllib")]
    rows.append(("plain requests (reference)", measure(_PLAIN_REQUESTS, "requests")))
    print(f"{'client':<28} {'peak RSS':>10} {'growth':>10} {'body sent':>10}")
    for name, (peak, growth, sent) in rows:
        print(f"{name:<28} {peak:>7.1f} MiB {growth:>7.1f} MiB {sent:>6.0f} MiB")


if __name__ == "__main__":
    main()
