"""The cyberun command: in process, and as a real subprocess (exit codes, Ctrl-C, a PTY)."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Dict, Iterator, List

import pytest
from cliutil import cli

import cyberun
from cyberun.cli import _after_cancel, main
from cyberun.testing import CyberunEmulator


@pytest.fixture(scope="module")
def server() -> Iterator[CyberunEmulator]:
    with CyberunEmulator(time_scale=0.01) as emulator:
        yield emulator


def json_lines(text: str) -> List[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in text.splitlines()]


# --- in process -------------------------------------------------------------------------------


def test_run_without_wait_prints_the_task_id(env: Dict[str, str]) -> None:
    code, out, err = cli("run", "text-to-image", "-p", "prompt=a fox")
    assert code == 0 and err == ""
    assert len(out.strip()) == 36


def test_run_wait_shows_progress_lines_and_the_result(env: Dict[str, str], tmp_path: Path) -> None:
    code, out, err = cli(
        "run",
        "slow-render",
        "-p",
        "steps=20",
        "--wait",
        "--download",
        str(tmp_path),
    )
    assert code == 0, err
    assert "following task" in out and "step 20/20" in out and "completed" in out
    assert f"saved {tmp_path}" in out and "presigned link hidden" in out
    assert (tmp_path / "output_00001_.png").exists()
    assert "X-Amz-Signature" not in out


def test_show_urls_prints_the_links(env: Dict[str, str]) -> None:
    code, out, _ = cli(
        "run", "text-to-image", "-p", "prompt=x", "-p", "steps=2", "--wait", "--show-urls"
    )
    assert code == 0 and "X-Amz-Signature" in out


def test_json_output_is_only_json_lines(env: Dict[str, str]) -> None:
    code, out, err = cli("run", "multi-output", "-p", "prompt=x", "--wait", "--json")
    assert code == 0 and err == ""
    lines = json_lines(out)
    assert [line["type"] for line in lines][-2:] == ["completed", "result"]
    assert lines[-1]["task_status"] == "completed" and len(lines[-1]["download_urls"]) == 3
    assert {line["type"] for line in lines} <= {"status", "progress", "completed", "result"}
    assert "X-Amz-Signature" not in out  # links are redacted unless --show-urls
    assert all(url.endswith("?[redacted]") for url in lines[-1]["download_urls"].values())


def test_json_output_has_usable_links_with_show_urls(env: Dict[str, str]) -> None:
    code, out, _ = cli("run", "text-to-image", "-p", "prompt=x", "--wait", "--json", "--show-urls")
    assert code == 0
    result = json_lines(out)[-1]
    assert "X-Amz-Signature=" in result["download_url"]
    no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with no_proxy.open(result["download_url"]) as response:  # the link works as printed
        assert response.read().startswith(b"\x89PNG")


def test_parameter_values_are_typed_by_the_workflow_definition(
    env: Dict[str, str], server: CyberunEmulator, tmp_path: Path
) -> None:
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"prompt": "from file", "steps": 3}))
    code, out, err = cli(
        "run",
        "text-to-image",
        "--params-file",
        str(params),
        "-p",
        "seed=42",
        "-p",
        "sampler=euler",
        "--json",
    )
    assert code == 0, err
    task_id = json_lines(out)[0]["task_id"]
    assert server.task_parameters(task_id) == {
        "prompt": "from file",
        "steps": 3,
        "seed": 42,
        "sampler": "euler",
    }
    # A string parameter keeps its text even when it looks like JSON.
    code, out, err = cli("run", "text-to-image", "-p", "prompt=42", "-p", "steps=2.5", "--json")
    assert code == 0, err
    assert server.task_parameters(json_lines(out)[0]["task_id"]) == {
        "prompt": "42",
        "steps": 2.5,
    }


def test_file_parameters_are_uploaded(env: Dict[str, str], tmp_path: Path) -> None:
    photos = tmp_path / "photos.zip"
    photos.write_bytes(b"PK\x05\x06" + b"\x00" * 18)
    code, out, err = cli("run", "gaussian-splat", "--file", f"images={photos}", "--wait", "--json")
    assert code == 0, err
    assert json_lines(out)[-1]["type"] == "result"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "text-to-image", "-p", "novalue"], "KEY=VALUE"),
        (["run", "text-to-image", "--file", "images=/no/such/file"], "no such file"),
        (["run", "text-to-image", "--params-file", "/no/such.json"], "cannot read"),
        (["tasks", "--limit", "0"], "--limit"),
        (["run", "text-to-image", "--file", "images"], "KEY=PATH"),
        (["run", "text-to-image", "--params-file", "LIST_JSON"], "must hold a JSON object"),
        (["status", ".."], "id"),
    ],
)
def test_usage_errors_exit_2(
    env: Dict[str, str], args: List[str], message: str, tmp_path: Path
) -> None:
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    code, out, err = cli(*[str(listed) if a == "LIST_JSON" else a for a in args])
    assert code == 2 and message in err and out == ""


def test_argparse_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["no-such-command"])
    assert info.value.code == 2


def test_a_missing_key_is_one_clear_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CYBERUN_API_KEY", raising=False)
    code, _out, err = cli("status", "t")
    assert code == 2
    assert (
        err.strip()
        == "cyberun: no API key: set the CYBERUN_API_KEY environment variable (or pass --api-key)"
    )


def test_failed_task_exits_1_with_one_line(env: Dict[str, str]) -> None:
    code, _out, err = cli("run", "always-fails", "--wait")
    assert code == 1
    assert err.count("\n") == 1 and "CUDA out of memory" in err and "Traceback" not in err


def test_failed_task_in_json_mode_reports_an_error_object(env: Dict[str, str]) -> None:
    code, out, _err = cli("run", "always-fails", "--wait", "--json")
    assert code == 1
    assert json_lines(out)[-1]["error"] == "TaskFailed"


def test_wait_timeout_exits_4(env: Dict[str, str]) -> None:
    code, _, err = cli("run", "slow-render", "--wait", "--timeout", "0.3")
    assert code == 4 and "still running" in err


def test_cancel_on_timeout(env: Dict[str, str], server: CyberunEmulator) -> None:
    code, _out, err = cli(
        "run", "slow-render", "--wait", "--timeout", "0.3", "--cancel-on-timeout", "--json"
    )
    assert code == 4 and "cancelled" in err


def test_cancelled_task_exits_3(env: Dict[str, str], server: CyberunEmulator) -> None:
    task_id = server.create_task("slow-render")
    assert cli("cancel", task_id)[0] == 0
    code, _, err = cli("watch", task_id)
    assert code == 3 and "cancelled" in err


def test_api_errors_exit_5(env: Dict[str, str]) -> None:
    code, _out, err = cli("status", "00000000-0000-4000-8000-000000000000")
    assert code == 5 and "HTTP 404" in err


def test_network_errors_exit_5(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CYBERUN_API_KEY", "sk-x")
    code, _, err = cli(
        "--help" if False else "status",
        "t",
        "--base-url",
        "http://127.0.0.1:9",
        "--transport",
        "urllib",
    )
    assert code == 5 and "could not connect" in err


def test_debug_shows_a_traceback_but_never_the_key(
    env: Dict[str, str], server: CyberunEmulator
) -> None:
    code, _, err = cli("status", "00000000-0000-4000-8000-000000000000", "--debug")
    assert code == 5 and "Traceback" in err
    assert server.api_key not in err


def test_status_result_cancel_tasks_workflows(
    env: Dict[str, str], server: CyberunEmulator, tmp_path: Path
) -> None:
    task_id = json_lines(
        cli("run", "text-to-image", "-p", "prompt=x", "-p", "steps=2", "--wait", "--json")[1]
    )[-1]["id"]
    code, out, _ = cli("status", task_id)
    assert code == 0 and "completed" in out and task_id in out
    assert json_lines(cli("status", task_id, "--json")[1])[0]["task_status"] == "completed"
    code, out, _ = cli("result", task_id, "--download", str(tmp_path))
    assert code == 0 and "saved" in out
    server.create_task(
        "text-to-image", {"prompt": "y", "steps": 2}
    )  # two at least, whatever ran before
    code, out, _ = cli("tasks", "--limit", "2", "--json")
    assert code == 0 and len(json_lines(out)) == 2
    code, out, _ = cli("tasks", "--status", "completed")
    assert code == 0 and "completed" in out
    code, out, _ = cli("workflows")
    assert code == 0 and "text-to-image" in out and "gaussian-splat" in out
    code, out, _ = cli("workflows", "text-to-image")
    assert code == 0 and "prompt" in out and "required" in out and "one of euler" in out
    assert json_lines(cli("workflows", "text-to-image@1", "--json")[1])[0]["version"] == 1
    failed = server.create_task("always-fails")
    time.sleep(0.1)
    assert cli("result", failed)[0] == 1


def test_json_result_lists_the_files_downloaded(env: Dict[str, str], tmp_path: Path) -> None:
    code, out, _ = cli(
        "run", "multi-output", "-p", "prompt=x", "--wait", "--json", "--download", str(tmp_path)
    )
    assert code == 0
    files = json_lines(out)[-1]["files"]
    assert sorted(Path(f).name for f in files) == [
        "9.images.0.png",
        "9.images.1.png",
        "9.images.2.png",
    ]
    assert all(Path(f).exists() for f in files)


def test_result_of_a_cancelled_task_exits_3(env: Dict[str, str], server: CyberunEmulator) -> None:
    task_id = server.create_task("slow-render")
    assert cli("cancel", task_id, "--json")[0] == 0
    code, _, err = cli("result", task_id)
    assert code == 3 and "was cancelled" in err


def test_a_download_folder_that_cannot_exist_is_a_clear_error(
    env: Dict[str, str], tmp_path: Path
) -> None:
    task_id = json_lines(cli("run", "text-to-image", "-p", "prompt=x", "--wait", "--json")[1])[-1][
        "id"
    ]
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code, _, err = cli("result", task_id, "--download", str(blocker / "out"))
    assert code == 5 and "a-file" in err and "Traceback" not in err


def test_demo_of_a_workflow_that_takes_a_file(tmp_path: Path) -> None:
    code, _, err = cli(
        "demo", "--workflow", "gaussian-splat", "--dir", str(tmp_path), "--time-scale", "0.01"
    )
    assert code == 0, err
    names = sorted(p.name for p in tmp_path.iterdir())
    assert [os.path.splitext(n)[1] for n in names] == [".json", ".ply"]
    assert names[0] == "cyberun-task.json"  # the run record, beside the output


def test_help_for_every_command_has_examples() -> None:
    for command in ("run", "watch", "status", "result", "cancel", "tasks", "workflows", "demo"):
        with pytest.raises(SystemExit) as info:
            main([command, "--help"], stdout=io.StringIO())
        assert info.value.code == 0


def test_demo_in_process(tmp_path: Path) -> None:
    code, out, err = cli("demo", "--dir", str(tmp_path), "--time-scale", "0.01")
    assert code == 0, err
    assert (tmp_path / "output_00001_.png").read_bytes().startswith(b"\x89PNG")
    assert f"The result is in {tmp_path}" in out


# --- as a real command -----------------------------------------------------------------


def run_command(args: List[str], env: Dict[str, str], **kw: object) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    return subprocess.run(
        [sys.executable, "-m", "cyberun", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        **kw,
    )  # type: ignore[call-overload,no-any-return]


def test_exit_codes_of_the_real_command(env: Dict[str, str], tmp_path: Path) -> None:
    ok = run_command(
        ["run", "text-to-image", "-p", "prompt=x", "-p", "steps=2", "--wait", "--json"], env
    )
    assert ok.returncode == 0 and json_lines(ok.stdout)[-1]["type"] == "result"
    assert run_command(["run", "always-fails", "--wait"], env).returncode == 1
    assert run_command(["status", "x", "--base-url", "https://"], env).returncode == 2
    assert run_command(["run", "slow-render", "--wait", "--timeout", "0.2"], env).returncode == 4
    assert run_command(["status", "00000000-0000-4000-8000-000000000000"], env).returncode == 5


def test_progress_on_a_pipe_is_plain_lines(env: Dict[str, str]) -> None:
    result = run_command(["run", "slow-render", "-p", "steps=80", "--wait"], env)
    assert result.returncode == 0
    assert "\r" not in result.stdout and "%|" not in result.stdout
    assert any(line.startswith("[00:") and "/80" in line for line in result.stdout.splitlines())


@pytest.mark.parametrize("cancel", [False, True])
@pytest.mark.usefixtures("interruptible_children")
def test_ctrl_c_while_following(
    env: Dict[str, str], server: CyberunEmulator, cancel: bool
) -> None:
    # 10,000 emulated seconds (100 s here): it cannot end before the Ctrl-C's cancel.
    task_id = server.create_task("slow-render", {"steps": 10_000})
    args = [sys.executable, "-m", "cyberun", "watch", task_id] + (
        ["--cancel-on-interrupt"] if cancel else []
    )
    process = subprocess.Popen(
        args, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    process.stdout.readline()  # "following task ..."
    process.stdout.readline()  # the first event: the stream is open
    process.send_signal(signal.SIGINT)
    try:
        _out, err = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()  # never leave it following the task
        _out, err = process.communicate()
        pytest.fail(f"cyberun watch ignored Ctrl-C for 30 s; its stderr:\n{err}")
    assert process.returncode == 130
    if cancel:
        assert "was cancelled" in err
        assert server.task_status(task_id) == "cancelled"
    else:
        assert "keeps running on the server" in err and f"cyberun watch {task_id}" in err
        assert server.task_status(task_id) != "cancelled"


@pytest.mark.usefixtures("interruptible_children")
def test_ctrl_c_with_cancel_on_a_task_that_already_ended_says_so(
    env: Dict[str, str], server: CyberunEmulator
) -> None:
    # The API answers a cancel of an ended task with success: the command must
    # not claim it cancelled a task that completed (and was billed).
    task_id = server.create_task("text-to-image", {"prompt": "x", "steps": 1})
    with cyberun.Client(server.api_key, base_url=server.base_url) as client:
        client.wait(task_id)
        client.cancel(task_id)  # the API's answer on an ended task: success, no-op
        assert client.get_task(task_id).task_status == "completed"
        message = _after_cancel(client, task_id)
    assert "already completed" in message and "nothing was cancelled" in message
    assert f"cyberun result {task_id}" in message


@pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")
def test_the_live_bar_renders_on_a_terminal_and_ends_cleanly(tmp_path: Path) -> None:
    pytest.importorskip("tqdm")
    import pty

    primary, secondary = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "cyberun", "demo", "--dir", str(tmp_path), "--time-scale", "0.05"],
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        close_fds=True,
    )
    os.close(secondary)
    chunks = []
    while True:
        try:
            data = os.read(primary, 65536)
        except OSError:  # EIO once the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    process.wait(30)
    os.close(primary)
    screen = b"".join(chunks).decode("utf-8", "replace")
    assert process.returncode == 0, screen
    assert "\r" in screen and "%|" in screen  # a live, redrawn bar
    assert "100%|" in screen and "completed" in screen
    assert screen.rstrip().endswith(f"The result is in {tmp_path}")
    assert (tmp_path / "output_00001_.png").exists()
