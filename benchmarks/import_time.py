"""Benchmark: the cost of ``import cyberun`` against ``import cattrs``.

Each import runs in a fresh interpreter under ``-X importtime``; the figure is
the cumulative time of the top-level package, the median of several runs,
interleaved so that load changes hit both alike. The target is at most 1.2x
``import cattrs`` (which cyberun itself only needs once models are used).

    python benchmarks/import_time.py [--runs 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from typing import Dict, List, Optional


def import_microseconds(module: str) -> int:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        check=True,
    )
    for line in result.stderr.splitlines():
        # "import time: self [us] | cumulative | imported package"
        parts = [p.strip() for p in line.split("|")]
        if len(parts) == 3 and parts[2] == module:
            return int(parts[1])
    raise RuntimeError(f"no importtime line for {module}")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args(argv)
    samples: Dict[str, List[int]] = {"cyberun": [], "cattrs": []}
    for _ in range(args.runs):
        for module in samples:
            samples[module].append(import_microseconds(module))
    medians = {m: statistics.median(v) for m, v in samples.items()}
    ratio = medians["cyberun"] / medians["cattrs"]
    print(f"# import time, Python {sys.version.split()[0]}, median of {args.runs} runs")
    print(f"# command: python benchmarks/import_time.py --runs {args.runs}")
    for module, median in medians.items():
        print(f"import {module}: {median / 1000:.1f} ms")
    print(f"ratio cyberun / cattrs: {ratio:.2f} (target: at most 1.20)")
    return 0 if ratio <= 1.2 else 1


if __name__ == "__main__":
    sys.exit(main())
