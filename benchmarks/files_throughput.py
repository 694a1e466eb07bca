"""Benchmark: download and upload throughput of one big file, per transport, against peers.

A plain loopback file server (another process; ``socket.sendfile`` for GETs,
PUT bodies read and discarded in 1 MiB pieces) serves one file from tmpfs.
Downloads: ``Client.download`` on each transport (temporary file, fsync,
rename: everything a real download does) against ``requests.get(stream=True)``
+ ``shutil.copyfileobj`` with 1 MiB chunks, and ``curl -o``. Uploads:
``Client.upload_file`` (presign + PUT) on each transport against ``curl -T``.
Each case runs ``--runs`` times; the best time counts, and every figure is a
ratio to a peer measured in the same run (the machine is shared and noisy).

    python benchmarks/files_throughput.py                 # 1 GiB, 3 runs
    python benchmarks/files_throughput.py --size-mib 256 --runs 2
    python benchmarks/files_throughput.py --multi         # 50 files of 20 MB, 50 ms to first byte

``--multi`` fetches a result of 50 outputs of 20 MB each, the server waiting
50 ms before each answer (a storage host's time to first byte), with
``Client.download`` (``max_concurrency`` 4, and 1) against ``xargs -P4 curl``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Dict, List

PIECE = 1024 * 1024


def _serve(port_queue: Any, path: str) -> None:
    size = os.path.getsize(path)

    class Handle(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            if self.path.startswith("/multi/"):
                time.sleep(0.05)  # time to first byte
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            self.wfile.flush()
            with open(path, "rb") as file:
                self.connection.sendfile(file)

        def do_POST(self) -> None:  # presign
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            port = self.server.server_address[1]
            answer = json.dumps(
                {
                    "file_key": "inputs/x/" + body["file_name"],
                    "upload_url": f"http://127.0.0.1:{port}/sink?X-Amz-Signature=s",
                    "upload_headers": {"Content-Length": str(body["file_size"])},
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def do_PUT(self) -> None:
            left = int(self.headers.get("Content-Length") or 0)
            buffer = bytearray(PIECE)
            view = memoryview(buffer)
            while left:
                got = self.rfile.readinto(view[: min(PIECE, left)])
                if not got:
                    break
                left -= got
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handle)
    server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    port_queue.put(server.server_address[1])
    server.serve_forever()


def best(runs: int, action: Callable[[], None]) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--multi", action="store_true", help="50 outputs of 20 MB instead")
    args = parser.parse_args()
    if args.multi:
        args.size_mib = 20

    import requests

    import cyberun
    from cyberun._convert import structure

    scratch = Path(tempfile.mkdtemp(prefix="cyberun-bench-", dir="/dev/shm"))
    source = scratch / "source.bin"
    with source.open("wb") as file:
        chunk = os.urandom(PIECE)
        for _ in range(args.size_mib):
            file.write(chunk)
    queue: Any = multiprocessing.Queue()
    process = multiprocessing.Process(target=_serve, args=(queue, str(source)), daemon=True)
    process.start()
    port = queue.get(timeout=30)
    base = f"http://127.0.0.1:{port}"
    url = f"{base}/bucket/output.bin?X-Amz-Signature=s"
    result = structure(
        {"id": "t", "task_status": "completed", "download_url": url}, cyberun.TaskResult
    )
    size = source.stat().st_size
    results: Dict[str, float] = {}
    if args.multi:
        try:
            multi(base, scratch, args.runs)
        finally:
            process.terminate()
            shutil.rmtree(scratch, ignore_errors=True)
        return
    try:

        def requests_copy() -> None:
            with requests.get(url, stream=True) as answer, (scratch / "peer.bin").open("wb") as f:
                shutil.copyfileobj(answer.raw, f, PIECE)

        def curl_get() -> None:
            subprocess.run(["curl", "-sS", "-o", str(scratch / "curl.bin"), url], check=True)

        results["download: requests + copyfileobj (1 MiB)"] = best(args.runs, requests_copy)
        results["download: curl -o"] = best(args.runs, curl_get)
        for transport in ("requests", "urllib3", "urllib"):
            client = cyberun.Client("sk-bench", base_url=base, transport=transport)

            def sdk_get(client: cyberun.Client = client) -> None:
                client.download(result, scratch / "sdk", overwrite=True)

            results[f"download: cyberun {transport}"] = best(args.runs, sdk_get)

            def sdk_put(client: cyberun.Client = client) -> None:
                client.upload_file(source)

            results[f"upload: cyberun {transport}"] = best(args.runs, sdk_put)
            client.close()

        def curl_put() -> None:
            subprocess.run(
                ["curl", "-sS", "-o", os.devnull, "-T", str(source), f"{base}/sink"], check=True
            )

        results["upload: curl -T"] = best(args.runs, curl_put)
    finally:
        process.terminate()
        shutil.rmtree(scratch, ignore_errors=True)

    print(f"Python {sys.version.split()[0]}, {args.size_mib} MiB, best of {args.runs}")
    rows: List[str] = []
    peer_requests = results["download: requests + copyfileobj (1 MiB)"]
    peer_curl = results["download: curl -o"]
    peer_put = results["upload: curl -T"]
    for name, seconds in results.items():
        speed = size / seconds / 2**20
        line = f"{name:<44} {seconds:7.3f} s {speed:8.0f} MiB/s"
        if name.startswith("download: cyberun"):
            line += f"  speed x{peer_requests / seconds:.2f} of requests"
            line += f", x{peer_curl / seconds:.2f} of curl"
        elif name.startswith("upload: cyberun"):
            line += f"  speed x{peer_put / seconds:.2f} of curl -T"
        rows.append(line)
    print("\n".join(rows))


def multi(base: str, scratch: Path, runs: int) -> None:
    import cyberun
    from cyberun._convert import structure

    urls = {f"9.images.{i}": f"{base}/multi/{i}.png?X-Amz-Signature=s" for i in range(50)}
    result = structure(
        {"id": "t", "task_status": "completed", "download_urls": urls}, cyberun.TaskResult
    )
    listing = "\n".join(urls.values()) + "\n"
    out = scratch / "curl"
    out.mkdir()

    def curl_parallel() -> None:
        subprocess.run(
            ["xargs", "-P4", "-n1", "curl", "-sS", "-O", "--output-dir", str(out)],
            input=listing.encode(),
            check=True,
        )

    results = {"xargs -P4 curl": best(runs, curl_parallel)}
    for transport in ("requests", "urllib3", "urllib"):
        with cyberun.Client("sk-bench", base_url=base, transport=transport) as client:
            for limit in (4, 1):

                def sdk(limit: int = limit, client: cyberun.Client = client) -> None:
                    client.download(result, scratch / "sdk", overwrite=True, max_concurrency=limit)

                results[f"cyberun {transport} max_concurrency={limit}"] = best(runs, sdk)
    peer = results["xargs -P4 curl"]
    print(f"Python {sys.version.split()[0]}, 50 x 20 MiB, 50 ms to first byte, best of {runs}")
    for name, seconds in results.items():
        print(f"{name:<40} {seconds:7.3f} s  time x{seconds / peer:.2f} of xargs -P4 curl")


if __name__ == "__main__":
    main()
