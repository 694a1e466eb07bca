"""Hostile output names stay inside the destination; Ctrl-C leaves nothing behind."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, List

import pytest

import cyberun
from cyberun.testing import CyberunEmulator, ManualClock

HOSTILE_KEYS = [
    "../../etc/passwd",
    "/etc/shadow",
    "C:\\Windows\\System32\\drivers\\etc\\hosts",
    "..\\..\\boot.ini",
    "name\x00with\x00nul.png",
    "CON",
    "nul.txt",
    "COM1.png",
    "lpt9",
    "x" * 500 + ".png",
    "é" * 300,
    ".bashrc",
    "..",
    "",
    "ok/../../../escape.png",
]


def test_hostile_output_keys_are_written_safely_inside_the_destination(tmp_path: Path) -> None:
    dest = tmp_path / "inside" / "out"
    outside_before = sorted(p.name for p in tmp_path.iterdir())
    with CyberunEmulator(
        clock=ManualClock(),
    ) as server, cyberun.Client(server.api_key, base_url=server.base_url) as client:
        server.add_workflow("hostile-names", output_keys=HOSTILE_KEYS, steps=1)
        task = client.run("hostile-names")
        server.advance(10)
        paths = client.download(task, dest)
    assert len(paths) == len(HOSTILE_KEYS)
    assert len({p.name.lower() for p in paths}) == len(paths)  # all distinct
    for path in paths:
        assert path.parent == dest
        assert (
            path.resolve().is_relative_to(dest.resolve())
            if hasattr(Path, "is_relative_to")
            else str(path.resolve()).startswith(str(dest.resolve()))
        )
        assert "\x00" not in path.name and "/" not in path.name and "\\" not in path.name
        assert not path.name.startswith(".") and path.name not in ("..", "")
        assert path.name.split(".")[0].upper() not in {"CON", "NUL", "COM1", "LPT9"}
        assert len(path.name.encode()) <= 200
        assert path.read_bytes().startswith(b"\x89PNG")
    assert sorted(p.name for p in tmp_path.iterdir()) == [*outside_before, "inside"]
    assert sorted(os.listdir(dest)) == sorted(p.name for p in paths)  # nothing else either


def api_connections(server: CyberunEmulator) -> int:
    api = server._servers[0][0]
    with api.connections_lock:
        return len(api.connections)


def test_ctrl_c_while_streaming_surfaces_cleanly_and_closes_the_connection() -> None:
    with CyberunEmulator(time_scale=0.02) as server:
        client = cyberun.Client(server.api_key, base_url=server.base_url, transport="urllib")
        task = client.run("slow-render")
        seen: List[Any] = []

        def on_event(event: Any) -> None:
            seen.append(event)
            if len(seen) == 3:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            task.wait(on_event=on_event)
        deadline = time.monotonic() + 5
        while api_connections(server) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert api_connections(server) == 0  # the stream was closed, not leaked
        assert client.get_task(task.id).task_status != "cancelled"  # and the task runs on
        client.close()


def test_ctrl_c_during_a_download_leaves_no_partial_file(tmp_path: Path) -> None:
    with CyberunEmulator(time_scale=0.01) as server:
        client = cyberun.Client(server.api_key, base_url=server.base_url, transport="urllib")
        task = client.run("multi-output", {"prompt": "x"})
        task.wait()
        server.inject("slow_drip", route="download", delay=0.0, times=None)
        calls = []

        def on_progress(name: str, done: int, total: Any) -> None:
            calls.append(name)
            if len(calls) == 40:  # in the middle of the first file
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            task.download(tmp_path, on_progress=on_progress)
        assert list(tmp_path.iterdir()) == []
        client.close()
