"""Fixtures for the client tests: an emulator and clients without real backoff delays."""

from __future__ import annotations

from typing import Any, Callable, Iterator

import pytest
from idmodes import IDS, SSE_IDS

import cyberun
from cyberun.testing import CyberunEmulator


@pytest.fixture(params=SSE_IDS, ids=IDS)
def server(request: pytest.FixtureRequest) -> Iterator[CyberunEmulator]:
    # Without ids (the documented server, the emulator's default) and with them.
    with CyberunEmulator(time_scale=0.02, sse_ids=request.param) as emulator:
        yield emulator


ClientFactory = Callable[..., cyberun.Client]


@pytest.fixture
def make_client() -> Iterator[ClientFactory]:
    made = []

    def make(server: CyberunEmulator, **overrides: Any) -> cyberun.Client:
        settings: dict = {
            "base_url": server.base_url,
            "poll_interval": 0.05,
            "reconnect_backoff": 0.0,
            "retry": cyberun.RetryPolicy(backoff=0.0, retry_after_max=0.2),
            "timeout": cyberun.Timeout(5, 5),
        }
        settings.update(overrides)
        client = cyberun.Client(settings.pop("api_key", server.api_key), **settings)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def routes(server: CyberunEmulator, name: str) -> int:
    """How many API requests hit a route."""
    return sum(1 for r in server.requests if r.route == name)
