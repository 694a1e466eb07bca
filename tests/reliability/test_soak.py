"""Soak: many tasks followed at once from threads through one Client, with random faults.

Every task must end correctly; afterwards the memory held by the SDK's own
code, the open file descriptors and the threads must be back to where they
started. The default run soaks 40 tasks; ``-m slow`` soaks 200.
"""

from __future__ import annotations

import gc
import os
import random
import threading
import tracemalloc
from typing import Dict, List, Tuple

import pytest

import cyberun
from cyberun.testing import CyberunEmulator

SDK_FILES = [
    tracemalloc.Filter(True, "*/cyberun/*"),
    tracemalloc.Filter(False, "*/cyberun/testing/*"),
]


def open_fds() -> int:
    return len(os.listdir(f"/proc/{os.getpid()}/fd"))


def sdk_memory() -> int:
    snapshot = tracemalloc.take_snapshot().filter_traces(SDK_FILES)
    return sum(stat.size for stat in snapshot.statistics("filename"))


def soak(count: int, seed: int = 1) -> Dict[str, float]:
    rng = random.Random(seed)
    with CyberunEmulator(time_scale=0.02) as server:
        client = cyberun.Client(
            server.api_key,
            base_url=server.base_url,
            transport="urllib",
            reconnect_backoff=0.0,
            retry=cyberun.RetryPolicy(backoff=0.0),
        )
        tasks = [
            client.run("text-to-image", {"prompt": f"soak {n}", "steps": 4}) for n in range(count)
        ]
        for task in tasks:
            roll = rng.random()
            if roll < 0.3:
                server.inject(
                    "drop", route="events", task_id=task.id, after_bytes=rng.randrange(1, 800)
                )
            elif roll < 0.45:
                server.inject("status", route="events", task_id=task.id, status=503)
            elif roll < 0.55:
                server.inject("status", route="result", task_id=task.id, status=503)
        outcomes: List[Tuple[str, str]] = []
        errors: List[BaseException] = []

        def follow(task: cyberun.TaskHandle) -> None:
            try:
                outcomes.append((task.id, str(task.wait(timeout=120).task_status)))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=follow, args=(t,)) for t in tasks]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(180)
        client.close()
        requests = len(server.requests)
    assert errors == []
    assert sorted(outcomes) == sorted((t.id, "completed") for t in tasks)
    return {"tasks": count, "requests": requests}


def run_measured(count: int) -> Dict[str, float]:
    soak(2)  # warm up: lazy imports, caches, the converter
    gc.collect()
    threads_before = set(threading.enumerate())
    fds_before = open_fds()
    tracemalloc.start()
    try:
        before = sdk_memory()
        figures = soak(count)
        gc.collect()
        after = sdk_memory()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    leaked = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
    assert leaked == [], leaked
    assert open_fds() <= fds_before + 2
    assert after - before < 256 * 1024, f"SDK memory grew by {after - before} bytes"
    figures.update(sdk_growth=after - before, peak=peak)
    return figures


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors through /proc")
def test_soak_40_tasks() -> None:
    run_measured(40)


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors through /proc")
def test_soak_200_tasks() -> None:
    figures = run_measured(200)
    print(f"\nsoak figures: {figures}")
