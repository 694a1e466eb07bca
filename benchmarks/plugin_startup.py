"""Benchmark: what the ``cyberun`` pytest plugin adds to a pytest start-up.

Runs ``pytest --co`` on a one-test folder, alternating with the plugin
loaded (through its entry point, as every user who installs cyberun gets
it) and with ``-p no:cyberun``, and prints the medians and their difference
(the machine is noisy: both are measured in the same run, interleaved).

    python benchmarks/plugin_startup.py                 # 20 rounds
    python benchmarks/plugin_startup.py --rounds 40
    python benchmarks/plugin_startup.py --source DIR    # another cyberun source tree
                                                        # (e.g. main's, via git archive)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple


def one_run(folder: Path, extra: List[str], env: Dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "pytest", "--co", "-q", "-p", "no:cacheprovider", *extra],
        cwd=folder,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def plugin_import(folder: Path, env: Dict[str, str]) -> Tuple[float, int]:
    """(seconds, modules) to import the plugin in a fresh interpreter that has pytest."""
    code = (
        "import sys, time, pytest; before = set(sys.modules); t = time.perf_counter(); "
        "import cyberun.testing._pytest_plugin; t = time.perf_counter() - t; "
        "print(t, len(set(sys.modules) - before))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=folder, env=env, capture_output=True, text=True
    )
    seconds, modules = done.stdout.split()
    return float(seconds), int(modules)


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--source", help="put this cyberun source tree first on sys.path")
    args = parser.parse_args(argv)
    env = dict(os.environ)
    if args.source:
        env["PYTHONPATH"] = args.source + os.pathsep + env.get("PYTHONPATH", "")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "test_one.py").write_text("def test_one():\n    pass\n")
        one_run(folder, [], env)  # warm the file system cache
        with_plugin: List[float] = []
        without: List[float] = []
        for _ in range(args.rounds):
            with_plugin.append(one_run(folder, [], env))
            without.append(one_run(folder, ["-p", "no:cyberun"], env))
        imports = [plugin_import(folder, env) for _ in range(args.rounds)]
    a, b = statistics.median(with_plugin), statistics.median(without)
    imported = statistics.median(seconds for seconds, _ in imports)
    added = imports[0][1]
    source = args.source or "installed"
    print(f"python {sys.version.split()[0]}, {args.rounds} rounds, source: {source}")
    print(f"pytest --co, plugin loaded:   median {a * 1000:.1f} ms")
    print(f"pytest --co, -p no:cyberun:   median {b * 1000:.1f} ms")
    print(f"difference: {(a - b) * 1000:+.1f} ms ({a / b:.3f}x)")
    print(f"importing the plugin after pytest: median {imported * 1000:.2f} ms, {added} modules")


if __name__ == "__main__":
    main()
