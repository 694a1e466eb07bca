"""The cyberun command speaks CLI, types -p values, refuses bad input, shows server text safely."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterator, List, Set

import pytest
from cliutil import cli

import cyberun
from cyberun.cli import CLI_TERMS, cli_terms, typed_value
from cyberun.testing import CyberunEmulator

ESCAPES = "\x1b]0;pwned\x07\x1b]52;c;aGVsbG8=\x07\x1b[2J\x9b31m\u202e"


@pytest.fixture(scope="module")
def server() -> Iterator[CyberunEmulator]:
    with CyberunEmulator(time_scale=0.01) as emulator:
        emulator.add_workflow(
            "hostile",
            display_name=f"Hostile {ESCAPES} name",
            fail_with=f"boom {ESCAPES} end",
            parameters=[{"key": "prompt", "type": "string", "label": f"P{ESCAPES}"}],
        )
        yield emulator


def no_raw_controls(text: str) -> bool:
    return not re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e]", text)


# --- hints in CLI terms ------------------------------------------------------------------------


def _sdk_python_terms() -> Set[str]:
    """Every ``name=True`` / ``name=False`` / ``name=...`` written in an SDK message."""
    root = Path(cyberun.__file__).parent
    found: Set[str] = set()
    for path in root.rglob("*.py"):
        if path.name == "cli.py" or "testing" in path.parts:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {
            id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr)
        }  # docstrings and bare expressions are not messages
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and id(node) not in docstrings
            ):
                found.update(re.findall(r"\b[a-z_]+=(?:True|False|\.\.\.)", node.value))
    return found


def test_every_python_keyword_in_an_sdk_message_has_a_cli_translation() -> None:
    terms = _sdk_python_terms()
    assert "overwrite=True" in terms  # the scan finds them
    assert terms <= set(CLI_TERMS), f"add these to cli.CLI_TERMS: {terms - set(CLI_TERMS)}"
    for term in terms:
        assert term not in cli_terms(f"pass {term} to do it")


def test_overwrite_hint_names_the_flag(env: Dict[str, str], tmp_path: Path) -> None:
    code, out, err = cli("run", "text-to-image", "-p", "prompt=x", "-p", "steps=2", "--wait")
    assert code == 0, err
    task_id = out.split()[2]
    assert cli("result", task_id, "--download", str(tmp_path))[0] == 0
    code, _, err = cli("result", task_id, "--download", str(tmp_path))
    assert code == 5 and "--overwrite" in err and "overwrite=True" not in err


def test_team_id_hint_names_the_flag(env: Dict[str, str], server: CyberunEmulator) -> None:
    code, _, err = cli("status", "x", "--api-key", server.jwt)
    assert code == 2 and "--team-id" in err and "CYBERUN_TEAM_ID" in err
    assert "team_id=" not in err


def test_plain_http_to_another_host_hints_at_the_flag(env: Dict[str, str]) -> None:
    code, _, err = cli("status", "x", "--base-url", "http://0.0.0.0:9")
    assert code == 2 and "--allow-insecure-http" in err and "allow_insecure_http" not in err


def test_a_failed_definition_fetch_names_no_validate(
    env: Dict[str, str], server: CyberunEmulator, tmp_path: Path
) -> None:
    params = tmp_path / "params.json"
    params.write_text('{"prompt": "x"}')
    server.inject("status", route="workflow", status=500, times=None)
    try:
        code, _, err = cli("run", "text-to-image", "--params-file", str(params))
    finally:
        server.clear_faults()
    assert code == 5 and "--no-validate" in err and "validate=False" not in err


def test_an_unknown_workflow_points_at_cyberun_workflows(env: Dict[str, str]) -> None:
    for args in (
        ["run", "text-to-imag", "-p", "prompt=x"],
        ["run", "text-to-imag", "--no-validate"],
        ["workflows", "text-to-imag"],
    ):
        code, _, err = cli(*args)
        assert code == 5 and "HTTP 404" in err, args
        assert "cyberun workflows" in err, args


def test_connection_refused_names_the_base_url_and_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CYBERUN_API_KEY", "sk-x")
    monkeypatch.setenv("CYBERUN_BASE_URL", "http://127.0.0.1:9")
    code, _, err = cli("--transport", "urllib", "status", "t")
    assert code == 5 and "could not connect" in err
    assert "http://127.0.0.1:9" in err and "CYBERUN_BASE_URL" in err


# --- -p values and other input -------------------------------------------------------------------


def test_values_are_typed_by_the_definition() -> None:
    from cyberun.models import ParameterDef

    def kind(type: str, **more: object) -> ParameterDef:
        return cyberun.ParameterDef(key="k", type=type, **more)  # type: ignore[arg-type]

    assert typed_value(kind("number"), "30") == 30 and isinstance(
        typed_value(kind("number"), "30"), int
    )
    assert (
        typed_value(kind("number"), "2.5") == 2.5 and typed_value(kind("number"), "1e3") == 1000.0
    )
    assert typed_value(kind("number"), "abc") == "abc"  # validation reports it
    assert (
        typed_value(kind("boolean"), "true") is True
        and typed_value(kind("boolean"), "No") is False
    )
    assert typed_value(kind("string"), "42") == "42" and typed_value(None, "42") == "42"
    assert typed_value(kind("select", options=[1, 2]), "2") == 2
    assert typed_value(kind("select", options=["euler"]), "euler") == "euler"
    assert isinstance(kind("string"), ParameterDef)


def test_bad_values_are_refused_before_anything_starts(
    env: Dict[str, str], server: CyberunEmulator
) -> None:
    server.clear_logs()
    code, out, err = cli("run", "text-to-image", "-p", "steps=999", "-p", "colour=red")
    assert code == 2 and out == ""
    assert "above its maximum" in err and "unknown parameter 'colour'" in err
    code, _, err = cli("run", "text-to-image", "-p", "prompt=x", "-p", "steps=abc")
    assert code == 2 and "must be a number" in err
    assert not [r for r in server.requests if r.route == "run"]
    code, _, err = cli(
        "run", "text-to-image", "-p", "prompt=x", "-p", "colour=red", "--no-validate"
    )
    assert code == 0, err


def test_a_local_file_given_with_p_points_at_file(env: Dict[str, str], tmp_path: Path) -> None:
    photos = tmp_path / "photos.zip"
    photos.write_bytes(b"PK\x05\x06" + b"\x00" * 18)
    code, _, err = cli("run", "gaussian-splat", "-p", f"images={photos}")
    assert code == 2 and f"--file images={photos}" in err


def test_an_unknown_status_is_refused(env: Dict[str, str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli("tasks", "--status", "bogus")
    assert info.value.code == 2
    code, _, _ = cli("tasks", "--status", "running")
    assert code == 0


def test_an_unknown_status_is_refused_with_the_choices(server: CyberunEmulator) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cyberun", "tasks", "--status", "bogus"],
        env={**os.environ, "CYBERUN_API_KEY": server.api_key, "CYBERUN_BASE_URL": server.base_url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and result.stdout == ""
    assert "unknown status 'bogus'" in result.stderr and "running" in result.stderr


# --- server text is made visible -----------------------------------------------------------------


def test_server_strings_never_reach_the_terminal_raw(env: Dict[str, str]) -> None:
    code, out, err = cli("workflows")
    assert code == 0 and "Hostile \\x1b]0;pwned\\x07" in out and no_raw_controls(out)
    code, out, err = cli("workflows", "hostile")
    assert code == 0 and no_raw_controls(out)
    code, out, err = cli("run", "hostile", "-p", "prompt=x", "--wait")
    assert code == 1 and "boom \\x1b]0;pwned\\x07\\x1b]52;c;aGVsbG8=\\x07" in err
    assert no_raw_controls(out) and no_raw_controls(err)
    code, out, err = cli("run", "hostile", "-p", "prompt=x", "--wait", "--debug")
    assert code == 1 and "Traceback" in err and no_raw_controls(err)


def test_json_output_escapes_what_json_leaves_raw(env: Dict[str, str]) -> None:
    code, out, err = cli("--json", "workflows", "hostile")
    assert code == 0 and no_raw_controls(out) and "\\u009b" in out
    assert json.loads(out)["display_name"] == f"Hostile {ESCAPES} name"  # same value, escaped
    code, out, err = cli("--json", "run", "hostile", "-p", "prompt=x", "--wait")
    assert code == 1 and no_raw_controls(out) and no_raw_controls(err)


@pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")
def test_the_task_id_is_shown_before_the_live_bar(server: CyberunEmulator) -> None:
    pytest.importorskip("tqdm")
    import pty

    primary, secondary = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "cyberun", "run", "text-to-image", "-p", "prompt=x", "--wait"],
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        close_fds=True,
        env={**os.environ, "CYBERUN_API_KEY": server.api_key, "CYBERUN_BASE_URL": server.base_url},
    )
    os.close(secondary)
    chunks: List[bytes] = []
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
    match = re.search(r"following task ([0-9a-f-]{36}) .*re-attach with: cyberun watch \1", screen)
    assert match is not None, screen
    assert "%|" in screen and match.start() < screen.index("%|")  # the id comes first
