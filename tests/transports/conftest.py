"""Fixtures shared by the transport tests."""

from __future__ import annotations

from typing import Iterator

import pytest
from netfixtures import NETWORK, make_transport

from cyberun.transports import Transport


@pytest.fixture(params=NETWORK)
def transport(request: pytest.FixtureRequest) -> Iterator[Transport]:
    """Each network transport in turn, closed after the test."""
    made: Transport = make_transport(request.param)
    yield made
    made.close()
