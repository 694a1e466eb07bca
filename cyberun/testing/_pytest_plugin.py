"""The pytest plugin: the ``cyberun_server`` fixtures (registered through an entry point).

It imports nothing but pytest until a test asks for a fixture, so having
cyberun installed costs other test suites nothing; ``-p no:cyberun`` turns
it off entirely.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

import pytest

if TYPE_CHECKING:  # pragma: no cover
    from ._emulator import CyberunEmulator

_SESSION_SERVER = pytest.StashKey["CyberunEmulator"]()


@pytest.fixture
def cyberun_server() -> Iterator[CyberunEmulator]:
    """A running [`CyberunEmulator`][cyberun.testing.CyberunEmulator] at 50x real time.

    Point a client at it with ``cyberun.Client(cyberun_server.api_key,
    base_url=cyberun_server.base_url)``. Each test gets its own server,
    stopped afterwards. For other settings, create ``CyberunEmulator(...)``
    in your own fixture.
    """
    from ._emulator import CyberunEmulator

    with CyberunEmulator(time_scale=0.02) as server:
        yield server


@pytest.fixture(scope="session")
def cyberun_session_server(request: pytest.FixtureRequest) -> Iterator[CyberunEmulator]:
    """One [`CyberunEmulator`][cyberun.testing.CyberunEmulator] (50x real time) for the session.

    Started once, for every test that asks for it; after each such test its
    faults and logs are reset ([`reset`][cyberun.testing.CyberunEmulator.reset]),
    while tasks and added workflows stay. Being session-scoped, it can be
    used by hypothesis ``@given`` tests (the reset is per test, not per
    example: call ``reset()`` in the test to start each example clean).
    """
    from ._emulator import CyberunEmulator

    with CyberunEmulator(time_scale=0.02) as server:
        request.config.stash[_SESSION_SERVER] = server
        try:
            yield server
        finally:
            del request.config.stash[_SESSION_SERVER]


def pytest_runtest_teardown(item: pytest.Item) -> None:
    """Reset the session server's faults and logs after each test that used it."""
    server = item.config.stash.get(_SESSION_SERVER, None)
    if server is not None and "cyberun_session_server" in getattr(item, "fixturenames", ()):
        server.reset()
