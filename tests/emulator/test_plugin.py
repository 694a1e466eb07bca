"""The pytest plugin: free until used, a session fixture with per-test reset, an off switch.

Each check runs a fresh interpreter or a fresh pytest (through the entry
point, as users get it), never this process's already-imported modules.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

HEAVY = ["http.server", "socketserver", "ssl", "http.client", "cyberun.testing._emulator"]


def test_importing_the_plugin_imports_nothing_heavy() -> None:
    # What importing the plugin adds beyond pytest (pytest 7 on 3.8 imports ssl itself).
    code = textwrap.dedent(
        f"""
        import json, sys
        before = set(sys.modules)
        import pytest
        with_pytest = set(sys.modules)
        import cyberun.testing._pytest_plugin
        added = sorted(set(sys.modules) - with_pytest)
        print(json.dumps({{"added": added, "heavy": [m for m in {HEAVY!r} if m in added]}}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    report = json.loads(done.stdout)
    assert report["heavy"] == [], report
    assert all(m == "cyberun" or m.startswith("cyberun.") for m in report["added"]), report
    assert "cyberun.testing._clock" not in report["added"]


def test_names_load_on_first_use() -> None:
    code = (
        "import sys, cyberun.testing as t; a = 'cyberun.testing._emulator' in sys.modules; "
        "t.Timeline; b = 'cyberun.testing._emulator' in sys.modules; t.CyberunEmulator; "
        "print(a, b, 'cyberun.testing._emulator' in sys.modules, sorted(dir(t)) == sorted("
        "set(dir(t))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.split() == ["False", "False", "True", "True"]


def run_pytest(folder: Path, body: str, *args: str) -> subprocess.CompletedProcess[str]:
    (folder / "test_user.py").write_text(textwrap.dedent(body), encoding="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args, "test_user.py"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


SESSION_TESTS = """
    import http.client
    from urllib.parse import urlsplit

    from hypothesis import given, settings, strategies as st

    SEEN = []


    def get_workflows(server):
        parts = urlsplit(server.base_url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        auth = {"Authorization": "Bearer " + server.api_key}
        conn.request("GET", "/api/v1/r/workflows", headers=auth)
        status = conn.getresponse().status
        conn.close()
        return status


    def test_first_leaves_a_fault_and_a_log(cyberun_session_server):
        SEEN.append(cyberun_session_server.base_url)
        cyberun_session_server.inject("status", route="task", times=None)
        assert get_workflows(cyberun_session_server) == 200
        assert len(cyberun_session_server.requests) == 1


    def test_second_starts_clean_on_the_same_server(cyberun_session_server):
        assert SEEN == [cyberun_session_server.base_url]
        assert cyberun_session_server.faults.active() == []
        assert cyberun_session_server.requests == []


    @settings(max_examples=4, deadline=None)
    @given(count=st.integers(1, 3))
    def test_hypothesis_accepts_the_session_server(cyberun_session_server, count):
        cyberun_session_server.reset()
        for _ in range(count):
            assert get_workflows(cyberun_session_server) == 200
        assert len(cyberun_session_server.requests) == count
"""


def test_the_session_server_is_shared_reset_per_test_and_hypothesis_friendly(
    tmp_path: Path,
) -> None:
    done = run_pytest(tmp_path, SESSION_TESTS, "-p", "no:randomly")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 passed" in done.stdout


def test_no_cyberun_turns_the_plugin_off(tmp_path: Path) -> None:
    body = """
        def test_uses_it(cyberun_server):
            pass
    """
    assert run_pytest(tmp_path, body).returncode == 0
    done = run_pytest(tmp_path, body, "-p", "no:cyberun")
    assert done.returncode != 0 and "fixture 'cyberun_server' not found" in done.stdout
