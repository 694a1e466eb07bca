"""Run every benchmark and print its report; used by ``tox -e bench``.

    python benchmarks/run.py            # everything, full size
    python benchmarks/run.py --quick    # smaller corpora, fewer repeats

Exits non-zero if a benchmark misses a hard target it checks itself.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = [
    ("import time", ["import_time.py"]),
    ("SSE parsers", ["sse_parsers.py"]),
    ("transports", ["transports.py"]),
    ("redirect memory", ["redirect_memory.py"]),
    ("end to end", ["end_to_end.py"]),
]


def main() -> int:
    quick = "--quick" in sys.argv[1:]
    failed = []
    for title, command in BENCHMARKS:
        print(f"\n## {title}\n", flush=True)
        extra = ["--quick"] if quick and command[0] != "import_time.py" else []
        status = subprocess.call([sys.executable, str(HERE / command[0]), *command[1:], *extra])
        if status:
            failed.append(title)
    if failed:
        print(f"\nmissed a target: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
