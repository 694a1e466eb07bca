"""The tox environments really are what they claim (checked only inside them)."""

from __future__ import annotations

import importlib.util
import os

import pytest


@pytest.mark.skipif(not os.environ.get("CYBERUN_EXPECT_MINIMAL"), reason="only in tox -e minimal")
def test_minimal_environment_has_no_http_library() -> None:
    assert importlib.util.find_spec("requests") is None
    assert importlib.util.find_spec("urllib3") is None
    from cyberun.transports import UrllibTransport, default_transport

    transport = default_transport()
    assert isinstance(transport, UrllibTransport)
    transport.close()


@pytest.mark.skipif(
    not os.environ.get("CYBERUN_EXPECT_URLLIB3"),
    reason="only in tox -e urllib3v1 and the lowest-* environments",
)
def test_legacy_environment_runs_urllib3_one() -> None:
    import urllib3

    assert urllib3.__version__.startswith("1.26.")
