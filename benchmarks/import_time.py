"""Benchmark: start-up costs, each against a peer measured in the same run.

- ``import cyberun`` and ``from cyberun import Client`` against ``import cattrs``
  (targets: at most 0.5x and 1.5x). Each statement runs in a fresh
  interpreter under ``-X importtime``; its cost is the sum of the top-level
  imports it triggers.
- ``cyberun --help`` against ``python -c pass`` (target: under 2.5x), wall
  clock of the whole process.
- that constructing a ``Client`` imports no HTTP library (requests,
  urllib3, http.client): the transport is chosen and imported at the first
  request.

Runs are interleaved, so that load changes hit every statement alike, and
the median is reported. Only the ratios mean anything on a shared machine.

    python benchmarks/import_time.py [--runs 15]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Optional

IMPORTS = {
    "import cattrs": "import cattrs",
    "import cyberun": "import cyberun",
    "from cyberun import Client": "from cyberun import Client",
}
TARGETS = {"import cyberun": 0.5, "from cyberun import Client": 1.5}
HELP_TARGET = 2.5
HTTP_LIBRARIES = ("requests", "urllib3", "http.client", "httpx")


# Bytecode caches are written (a first run per statement warms them), as pip
# leaves them at install time: without them every run would compile the
# package's sources and measure the compiler.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def top_level_imports(statement: str) -> Dict[str, int]:
    """Each top-level import of a fresh interpreter running ``statement``, in microseconds."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement],
        env=ENV,
        capture_output=True,
        text=True,
        check=True,
    )
    found: Dict[str, int] = {}
    for line in result.stderr.splitlines():
        # "import time: self [us] | cumulative | imported package"; nesting is
        # shown by indentation of the last column: the top level has one space.
        parts = line.split("|")
        if len(parts) != 3 or not parts[1].strip().isdigit():
            continue
        name = parts[2]
        if name.startswith(" ") and not name.startswith("  "):
            found[name.strip()] = int(parts[1])
    return found


#: What the interpreter imports before running any statement (site, encodings...).
STARTUP = frozenset(top_level_imports("pass"))


def import_microseconds(statement: str) -> int:
    """The summed cumulative time of the top-level imports ``statement`` triggers."""
    total = sum(t for name, t in top_level_imports(statement).items() if name not in STARTUP)
    if total == 0:
        raise RuntimeError(f"no importtime lines for {statement!r}")
    return total


def wall_seconds(args: List[str]) -> float:
    started = time.perf_counter()
    subprocess.run(args, check=True, capture_output=True, env=ENV)
    return time.perf_counter() - started


def http_libraries_after_client() -> List[str]:
    """The HTTP libraries loaded once a Client is constructed (no request made)."""
    code = (
        "import sys, json; import cyberun; cyberun.Client('sk-benchmark'); "
        f"print(json.dumps([m for m in {list(HTTP_LIBRARIES)!r} if m in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    return list(json.loads(out))


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args(argv)
    imports: Dict[str, List[int]] = {name: [] for name in IMPORTS}
    walls: Dict[str, List[float]] = {"python -c pass": [], "cyberun --help": []}
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "cyberun --help": [sys.executable, "-m", "cyberun", "--help"],
    }
    for statement in IMPORTS.values():  # warm the bytecode caches
        top_level_imports(statement)
    for command in commands.values():
        wall_seconds(command)
    for _ in range(args.runs):
        for name, statement in IMPORTS.items():
            imports[name].append(import_microseconds(statement))
        for name, command in commands.items():
            walls[name].append(wall_seconds(command))
    medians = {name: statistics.median(values) for name, values in imports.items()}
    peer = medians["import cattrs"]
    print(f"# start-up, Python {sys.version.split()[0]}, median of {args.runs} interleaved runs")
    print(f"# command: python benchmarks/import_time.py --runs {args.runs}")
    ok = True
    for name, median in medians.items():
        line = f"{name}: {median / 1000:.1f} ms"
        if name in TARGETS:
            ratio = median / peer
            ok &= ratio <= TARGETS[name]
            line += f" = {ratio:.2f}x import cattrs (target: at most {TARGETS[name]:.1f}x)"
        print(line)
    base = statistics.median(walls["python -c pass"])
    cli = statistics.median(walls["cyberun --help"])
    print(f"python -c pass: {base * 1000:.1f} ms (wall)")
    print(
        f"cyberun --help: {cli * 1000:.1f} ms (wall) = {cli / base:.2f}x python -c pass "
        f"(target: under {HELP_TARGET:.1f}x)"
    )
    ok &= cli / base < HELP_TARGET
    loaded = http_libraries_after_client()
    print(f"HTTP libraries imported by constructing a Client: {', '.join(loaded) or 'none'}")
    ok &= not loaded
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
