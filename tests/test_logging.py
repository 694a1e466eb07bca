"""Logging: silent without configuration (NullHandler), CYBERUN_LOG=debug|info, redaction."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import textwrap
from typing import Dict, Iterator

import pytest

import cyberun
from cyberun._logging import RedactingFormatter, enable, install
from cyberun.testing import CyberunEmulator

# A scenario that logs at every level: a stream that is not text/event-stream
# makes the SDK warn and follow by polling; the result has a presigned link.
SCENARIO = textwrap.dedent(
    """
    import sys
    import cyberun
    from cyberun.testing import CyberunEmulator

    with CyberunEmulator(time_scale=0.01) as server:
        server.inject("wrong_content_type", route="events", times=None)
        client = cyberun.Client(server.api_key, base_url=server.base_url, poll_interval=0.05)
        with client:
            outcome = client.run_and_wait("text-to-image", {"prompt": "x", "steps": 2})
            print(outcome.result.task_status)
            print(outcome.result.download_url, file=sys.__stdout__)
            print(server.api_key)
    """
)


def run_scenario(env: Dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k != "CYBERUN_LOG"}
    return subprocess.run(
        [sys.executable, "-c", SCENARIO],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_an_application_without_logging_sees_nothing_on_stderr() -> None:
    result = run_scenario({})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "completed"
    assert result.stderr == ""  # the polling WARNING went to the NullHandler


def test_the_null_handler_is_on_the_cyberun_logger() -> None:
    handlers = logging.getLogger("cyberun").handlers
    assert any(isinstance(h, logging.NullHandler) for h in handlers)
    install()  # idempotent
    assert sum(isinstance(h, logging.NullHandler) for h in handlers) == 1


@pytest.mark.parametrize("value", ["debug", "DEBUG", "info"])
def test_cyberun_log_shows_the_sdk_records_redacted(value: str) -> None:
    result = run_scenario({"CYBERUN_LOG": value})
    assert result.returncode == 0, result.stderr
    _status, link, key = result.stdout.splitlines()
    assert "X-Amz-Signature" in link  # the scenario did fetch a signed link ...
    assert "X-Amz-Signature" not in result.stderr and key not in result.stderr  # ... never logged
    assert " cyberun WARNING " in result.stderr and "polling" in result.stderr
    assert " cyberun INFO started task " in result.stderr
    assert (" cyberun DEBUG GET " in result.stderr) is (value.lower() == "debug")


def test_an_unknown_cyberun_log_value_warns_and_changes_nothing() -> None:
    logger = logging.getLogger("cyberun")
    before = list(logger.handlers)
    with pytest.warns(RuntimeWarning, match="CYBERUN_LOG='loud' is not one of debug, info"):
        install({"CYBERUN_LOG": "loud"})
    assert logger.handlers == before


@pytest.fixture
def sdk_handler() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    logger = logging.getLogger("cyberun")
    level = logger.level
    handler = enable(logging.INFO, stream)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_the_handler_redacts_and_makes_control_characters_visible(
    sdk_handler: io.StringIO,
) -> None:
    logger = logging.getLogger("cyberun")
    logger.info(
        "key %s url %s text %s",
        "sk-live-0123456789abcdef",
        "https://s3.example/out.png?X-Amz-Signature=abc",
        "\x1b]0;pwned\x07",
    )
    try:
        raise ValueError("Bearer sk-live-0123456789abcdef\x1b[2J")
    except ValueError:
        logger.exception("failed")
    text = sdk_handler.getvalue()
    assert "sk-live-0123456789abcdef" not in text and "abc" not in text.split("url ")[1][:40]
    assert "\x1b" not in text and "\\x1b]0;pwned\\x07" in text
    assert "Traceback" in text and "\n" in text  # line breaks of a traceback stay


def test_enable_replaces_its_own_handler(sdk_handler: io.StringIO) -> None:
    second = io.StringIO()
    handler = enable(logging.INFO, second)
    try:
        logging.getLogger("cyberun").info("once")
        assert sdk_handler.getvalue() == "" and second.getvalue().count("once") == 1
    finally:
        logging.getLogger("cyberun").removeHandler(handler)


def test_formatter_is_a_plain_logging_formatter() -> None:
    record = logging.LogRecord("cyberun", logging.INFO, __file__, 1, "dk-%s", ("secret99",), None)
    assert RedactingFormatter("%(message)s").format(record) == "[redacted]"
    assert cyberun.__name__ == "cyberun"


def test_cli_debug_uses_the_redacting_handler(server_env: Dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cyberun", "--debug", "tasks", "--limit", "1"],
        env={**os.environ, **server_env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert " cyberun DEBUG GET " in result.stderr
    assert server_env["CYBERUN_API_KEY"] not in result.stderr


@pytest.fixture(scope="module")
def server_env() -> Iterator[Dict[str, str]]:
    with CyberunEmulator(time_scale=0.01) as server:
        yield {"CYBERUN_API_KEY": server.api_key, "CYBERUN_BASE_URL": server.base_url}
