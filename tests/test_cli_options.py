"""The cyberun command's structure, run as a real process: help, global options, pipes, extras.

argparse gives a subcommand's defaults priority over options parsed before
the subcommand's name, so every global option is checked here with a value
that is not its default, before and after the command, in a real process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.util import find_spec
from typing import Callable, Dict, Iterator, List, Tuple

import pytest

from cyberun.testing import CyberunEmulator


@pytest.fixture(scope="module")
def server() -> Iterator[CyberunEmulator]:
    with CyberunEmulator(time_scale=0.01) as emulator:
        yield emulator


def cyberun(
    args: List[str], env: Dict[str, str], *, prelude: str = ""
) -> subprocess.CompletedProcess[str]:
    """Run the command in a fresh interpreter (``prelude`` runs first, in the same process)."""
    code = f"{prelude}\nimport sys\nfrom cyberun.cli import main\nsys.exit(main())"
    base = {k: v for k, v in os.environ.items() if not k.startswith("CYBERUN_")}
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_plain_cyberun_prints_help(server: CyberunEmulator) -> None:
    result = cyberun([], {})
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.startswith("usage: cyberun")
    for command in ("run", "watch", "status", "result", "cancel", "tasks", "workflows", "demo"):
        assert f"    {command} " in result.stdout
    assert "global options (before or after the command)" in result.stdout


# Each global option: the environment it runs in, its non-default value, and a check
# that passes only when the value reached the client (and fails with the default).
Check = Callable[["subprocess.CompletedProcess[str]", CyberunEmulator], None]


def _ok(result: subprocess.CompletedProcess[str], server: CyberunEmulator) -> None:
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("task ")


def _transport_used(result: subprocess.CompletedProcess[str], server: CyberunEmulator) -> None:
    assert result.returncode == 0, result.stderr
    agents = [r.header("User-Agent") or "" for r in server.requests]
    assert agents and agents[-1].endswith("UrllibTransport"), agents[-1:]


def _refused_http_not_raised(
    result: subprocess.CompletedProcess[str], server: CyberunEmulator
) -> None:
    # Allowed, the command tries to connect (and 0.0.0.0:9 refuses: this machine only).
    assert result.returncode == 5, result.stderr
    assert "refusing plain http" not in result.stderr and "could not connect" in result.stderr


def _json(result: subprocess.CompletedProcess[str], server: CyberunEmulator) -> None:
    import json

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["task_status"]


def _debug(result: subprocess.CompletedProcess[str], server: CyberunEmulator) -> None:
    assert result.returncode == 5
    assert "Traceback" in result.stderr and server.api_key not in result.stderr


def global_cases(
    server: CyberunEmulator, task_id: str
) -> Dict[str, Tuple[Dict[str, str], List[str], List[str], Check]]:
    """name -> (environment, option and value, command, check)."""
    good = {"CYBERUN_API_KEY": server.api_key, "CYBERUN_BASE_URL": server.base_url}
    status = ["status", task_id]
    return {
        "api-key": (
            {**good, "CYBERUN_API_KEY": "sk-not-the-right-key"},
            ["--api-key", server.api_key],
            status,
            _ok,
        ),
        "team-id": (
            {**good, "CYBERUN_API_KEY": server.jwt},
            ["--team-id", server.team_id],
            status,
            _ok,
        ),
        "base-url": (
            {**good, "CYBERUN_BASE_URL": "http://127.0.0.1:9"},
            ["--base-url", server.base_url],
            status,
            _ok,
        ),
        "transport": (good, ["--transport", "urllib"], status, _transport_used),
        "allow-insecure-http": (
            {**good, "CYBERUN_BASE_URL": "http://0.0.0.0:9"},
            ["--allow-insecure-http"],
            status,
            _refused_http_not_raised,
        ),
        "json": (good, ["--json"], status, _json),
        "debug": (good, ["--debug"], ["status", "00000000-0000-4000-8000-000000000000"], _debug),
    }


GLOBAL_OPTIONS = [
    "api-key",
    "team-id",
    "base-url",
    "transport",
    "allow-insecure-http",
    "json",
    "debug",
]


@pytest.mark.parametrize("position", ["before", "after"])
@pytest.mark.parametrize("option", GLOBAL_OPTIONS)
def test_every_global_option_works_before_and_after_the_command(
    server: CyberunEmulator, option: str, position: str
) -> None:
    if option == "transport" and find_spec("requests") is None and find_spec("urllib3") is None:
        pytest.skip("only the standard library transport is installed: auto already means urllib")
    task_id = server.create_task("text-to-image", {"prompt": "x"})
    env, flag, command, check = global_cases(server, task_id)[option]
    args = flag + command if position == "before" else command + flag
    server.clear_logs()
    check(cyberun(args, env), server)


@pytest.mark.parametrize("option", ["api-key", "team-id", "base-url", "allow-insecure-http"])
def test_without_the_option_the_check_fails(server: CyberunEmulator, option: str) -> None:
    """The checks above tell the option's value from its default."""
    task_id = server.create_task("text-to-image", {"prompt": "x"})
    env, _flag, command, check = global_cases(server, task_id)[option]
    with pytest.raises(AssertionError):
        check(cyberun(command, env), server)


def test_a_global_option_after_a_run_command_with_its_own_options(
    server: CyberunEmulator,
) -> None:
    env = {"CYBERUN_API_KEY": "sk-wrong", "CYBERUN_BASE_URL": "http://127.0.0.1:9"}
    result = cyberun(
        [
            "--json",
            "run",
            "text-to-image",
            "-p",
            "prompt=x",
            "--api-key",
            server.api_key,
            "--wait",
            "--base-url",
            server.base_url,
        ],
        env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].startswith('{"type": "result"')


def test_a_missing_optional_dependency_is_one_line_naming_the_extra(
    server: CyberunEmulator,
) -> None:
    env = {"CYBERUN_API_KEY": server.api_key, "CYBERUN_BASE_URL": server.base_url}
    hide = "import sys; sys.modules['requests'] = None  # as if requests were not installed"
    result = cyberun(["--transport", "requests", "tasks"], env, prelude=hide)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        "cyberun: transport 'requests' needs the optional 'requests' package, which is not "
        "installed: pip install 'cyberun[requests]'\n"
    )


def _read_one_line_then_close(args: List[str], env: Dict[str, str]) -> Tuple[int, str, str]:
    code = "import sys\nfrom cyberun.cli import main\nsys.exit(main())"
    process = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stderr is not None
    first = process.stdout.readline()
    process.stdout.close()  # the reader goes away, as `| head -1` does
    try:
        _out, err = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        _out, err = process.communicate()
        pytest.fail(f"the command went on writing into a closed pipe; its stderr:\n{err}")
    return process.returncode, first, err


def test_a_closed_pipe_ends_with_141_and_nothing_on_stderr(server: CyberunEmulator) -> None:
    task_id = server.create_task("slow-render", {"steps": 400})  # events keep coming
    env = {"CYBERUN_API_KEY": server.api_key, "CYBERUN_BASE_URL": server.base_url}
    code, first, err = _read_one_line_then_close(["watch", task_id, "--json"], env)
    assert first.startswith("{")
    assert (code, err) == (141, "")
    assert server.task_status(task_id) != "cancelled"  # a closed pipe does not cancel


def test_tasks_piped_into_head(server: CyberunEmulator) -> None:
    for n in range(150):  # more output than a pipe holds
        server.create_task("text-to-image", {"prompt": f"task {n}"})
    env = {
        **os.environ,
        "CYBERUN_API_KEY": server.api_key,
        "CYBERUN_BASE_URL": server.base_url,
    }
    script = (
        'set -o pipefail; "$PYTHON" -m cyberun tasks --json --limit 150 | head -1; '
        'echo "status=${PIPESTATUS[0]}"'
    )
    result = subprocess.run(
        ["bash", "-c", script],
        env={**env, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = result.stdout.splitlines()
    assert lines[0].startswith("{") and lines[-1] == "status=141"
    assert result.stderr == ""
