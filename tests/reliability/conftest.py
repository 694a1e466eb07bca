"""Fixtures shared by the reliability tests."""

from __future__ import annotations

import pytest

TRANSPORTS = ["requests", "urllib3", "urllib"]


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    """The name of each network transport in turn (skipped when not installed)."""
    if request.param != "urllib":
        pytest.importorskip(request.param)
    return str(request.param)
