"""The command line's downloads: unfinished tasks, the destination checked first, SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Iterator

import pytest
from cliutil import cli

from cyberun.cli import EXIT_ERROR, EXIT_FAILED, EXIT_TERMINATED
from cyberun.strategies._destination import is_temp_name
from cyberun.testing import CyberunEmulator, ManualClock


@pytest.fixture
def server() -> Iterator[CyberunEmulator]:
    with CyberunEmulator(time_scale=0.01) as emulator:
        yield emulator


def runs(server: CyberunEmulator) -> int:
    return sum(1 for r in server.requests if r.route == "run")


def test_result_download_of_an_unfinished_task_fails_naming_its_status(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with CyberunEmulator(clock=ManualClock()) as server:  # time stands still: it stays pending
        monkeypatch.setenv("CYBERUN_API_KEY", server.api_key)
        monkeypatch.setenv("CYBERUN_BASE_URL", server.base_url)
        task_id = server.create_task("text-to-image", {"prompt": "x"})
        code, _, err = cli("result", task_id, "--download", str(tmp_path / "out"))
    assert code == EXIT_ERROR
    assert "is pending, not completed" in err and f"cyberun watch {task_id}" in err
    assert not (tmp_path / "out").exists()


def test_result_download_of_a_failed_task_exits_as_failed(
    env: Dict[str, str], server: CyberunEmulator, tmp_path: Path
) -> None:
    task_id = server.create_task("always-fails")
    while server.task_status(task_id) != "failed":
        time.sleep(0.02)
    code, _, err = cli("result", task_id, "--download", str(tmp_path))
    assert code == EXIT_FAILED and "failed" in err


def test_run_download_implies_wait(
    env: Dict[str, str], server: CyberunEmulator, tmp_path: Path
) -> None:
    code, out, err = cli("run", "text-to-image", "-p", "prompt=x", "--download", str(tmp_path))
    assert code == 0, err
    assert (tmp_path / "output_00001_.png").is_file()
    assert "saved" in out


def test_run_timeout_implies_wait(env: Dict[str, str], server: CyberunEmulator) -> None:
    code, out, err = cli("run", "slow-render", "-p", "steps=400", "--timeout", "0.2")
    assert code == 4, (out, err)  # it waited, and the wait timed out


def test_run_refuses_a_used_download_folder_before_starting_a_task(
    env: Dict[str, str], server: CyberunEmulator, tmp_path: Path
) -> None:
    (tmp_path / "keep.png").write_bytes(b"mine")
    code, _, err = cli(
        "run", "text-to-image", "-p", "prompt=x", "--wait", "--download", str(tmp_path)
    )
    assert code == EXIT_ERROR and "already holds files" in err and "--overwrite" in err
    (tmp_path / "a-file").write_bytes(b"")
    code, _, err = cli(
        "run", "text-to-image", "-p", "prompt=x", "--download", str(tmp_path / "a-file")
    )
    assert code == EXIT_ERROR and "not a folder" in err
    assert runs(server) == 0
    assert (tmp_path / "keep.png").read_bytes() == b"mine"


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM is POSIX")
def test_sigterm_during_a_download_leaves_no_partial_file(
    env: Dict[str, str], server: CyberunEmulator, tmp_path: Path
) -> None:
    task_id = server.create_task("text-to-image", {"prompt": "x"})
    while server.task_status(task_id) != "completed":
        time.sleep(0.02)
    server.inject("slow_drip", route="download", times=None, delay=0.02)
    folder = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, "-m", "cyberun", "result", task_id, "--download", str(folder)],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if folder.exists() and any(is_temp_name(p.name) for p in folder.iterdir()):
                break
            time.sleep(0.02)
        else:
            pytest.fail("the download never started")
        time.sleep(0.2)  # some bytes are in the temporary file
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == EXIT_TERMINATED, err
    assert "terminated" in err
    assert list(folder.iterdir()) == []
