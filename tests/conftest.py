"""Suite-wide configuration."""

from __future__ import annotations

import os
import signal
from typing import TYPE_CHECKING, Dict, Iterator, Optional

import pytest
from hypothesis import HealthCheck, settings
from idmodes import IDS, SSE_IDS

if TYPE_CHECKING:
    from cyberun.testing import CyberunEmulator

# The package's own pytest plugin (the `cyberun_server` fixture) is loaded
# from here rather than through its entry point (disabled by `-p no:cyberun`
# in pyproject.toml): an entry-point plugin is imported before coverage
# starts, which would hide the package's import-time lines from the report.
# Users get it through the entry point; tests/test_docs.py runs a test file
# in a fresh pytest to check that path.
pytest_plugins = ["pytester", "cyberun.testing._pytest_plugin"]

# The machine is shared and noisy: hypothesis must not fail a test because
# one example happened to run slowly.
settings.register_profile("cyberun", deadline=None, suppress_health_check=[HealthCheck.too_slow])
# CI runs the suite in several environments; the full example budget runs in
# one of them (the README's command) and the large budgets under `-m slow`.
# The others check the same properties on their interpreter and dependency
# versions with a smaller budget (CYBERUN_HYPOTHESIS=quick, set in tox.ini).
settings.register_profile("quick", parent=settings.get_profile("cyberun"), max_examples=20)
settings.load_profile("quick" if os.environ.get("CYBERUN_HYPOTHESIS") == "quick" else "cyberun")


@pytest.fixture(params=SSE_IDS, ids=IDS)
def sse_ids(request: pytest.FixtureRequest) -> bool:
    """Each emulator id mode in turn: documented (no ids), then ids with replay."""
    return bool(request.param)


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook; unknown without it
def pytest_xdist_auto_num_workers(config: pytest.Config) -> Optional[int]:
    """``-n auto``: two workers per core, at most eight.

    The suite mostly waits (on loopback sockets, emulated clocks, deadlines),
    so one worker per core leaves the cores half idle (a load average of
    about 1 on 2 cores with 2 workers). An explicit
    ``PYTEST_XDIST_AUTO_NUM_WORKERS`` is left to pytest-xdist.
    """
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None
    return min(8, 2 * (os.cpu_count() or 1))


@pytest.fixture
def interruptible_children() -> Iterator[None]:
    """Let the subprocesses a test starts see Ctrl-C (SIGINT) as usual.

    A test run started in the background (``nohup``, ``cmd &``, some CI
    runners) inherits SIGINT *ignored*, and so would every process it
    starts: Python then never raises KeyboardInterrupt in them. A handled
    signal is reset to its default across ``exec``, so handling it here for
    the test's duration gives the children the default back.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.fixture
def env(server: CyberunEmulator, monkeypatch: pytest.MonkeyPatch) -> Dict[str, str]:
    """The CLI's environment for the module's ``server`` fixture (no team id)."""
    values = {"CYBERUN_API_KEY": server.api_key, "CYBERUN_BASE_URL": server.base_url}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("CYBERUN_TEAM_ID", raising=False)
    return values
