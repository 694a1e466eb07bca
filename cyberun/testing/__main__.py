"""``python -m cyberun.testing serve``: run the emulator until interrupted."""

from __future__ import annotations

import argparse
import errno
import sys
import time
from typing import List, Optional

from ._emulator import CyberunEmulator


def main(argv: Optional[List[str]] = None) -> int:
    """Parse arguments and serve until Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m cyberun.testing",
        description="A local emulator of the Cyberun API, for development and tests.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the emulated API until interrupted")
    serve.add_argument("--host", default="127.0.0.1", help="API address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8765, help="API port (default 8765; 0 = any)")
    serve.add_argument("--storage-host", default="127.0.0.2", help="storage address")
    serve.add_argument(
        "--time-scale", type=float, default=1.0, help="real seconds per emulated second"
    )
    serve.add_argument("--api-key", help="the sk- key to accept (default: a random one)")
    serve.add_argument(
        "--keepalive", type=float, help="send SSE keep-alives after this many seconds"
    )
    args = parser.parse_args(argv)
    try:
        emulator = CyberunEmulator(
            host=args.host,
            port=args.port,
            storage_host=args.storage_host,
            time_scale=args.time_scale,
            api_key=args.api_key,
            keepalive_interval=args.keepalive,
        )
    except ValueError as exc:
        parser.error(str(exc))
    try:
        emulator.start()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            print(
                f"error: {args.host}:{args.port} is in use (another emulator or server?); "
                "stop it, or pass --port 0 to pick a free port",
                file=sys.stderr,
            )
        else:
            print(f"error: {exc}", file=sys.stderr)
        return 2
    # Ctrl-C may come at any point once the address is printed (even while
    # the last line is), so the whole serving time sits in the try.
    try:
        with emulator:
            print(f"Cyberun emulator listening on {emulator.base_url}", flush=True)
            print(f"  export CYBERUN_BASE_URL={emulator.base_url}", flush=True)
            print(f"  export CYBERUN_API_KEY={emulator.api_key}", flush=True)
            print("Press Ctrl-C to stop.", flush=True)
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
