"""The pytest plugin: a ``cyberun_server`` fixture (registered through an entry point).

It imports nothing heavy at collection time, so having cyberun installed
costs other test suites nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

import pytest

if TYPE_CHECKING:  # pragma: no cover
    from ._emulator import CyberunEmulator


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
