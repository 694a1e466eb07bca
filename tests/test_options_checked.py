"""Options are checked when they are given, and the message names the bad field."""

from __future__ import annotations

import inspect
from typing import Any, Dict, Type

import pytest

import cyberun
from cyberun import DEFAULT, ConfigurationError, DefaultType, RetryPolicy, Timeout


@pytest.mark.parametrize(
    ("fields", "error", "names"),
    [
        ({"attempts": 0}, ValueError, "attempts"),
        ({"attempts": "3"}, TypeError, "attempts"),
        ({"attempts": True}, TypeError, "attempts"),
        ({"backoff": -1}, ValueError, "backoff"),
        ({"backoff_max": "20"}, TypeError, "backoff_max"),
        ({"retry_after_max": -0.5}, ValueError, "retry_after_max"),
        ({"sleep": 3}, TypeError, "sleep"),
        ({"random": 5}, TypeError, "random"),
    ],
)
def test_retry_policy_fields_are_checked(
    fields: Dict[str, Any], error: Type[Exception], names: str
) -> None:
    with pytest.raises(error, match=names):
        RetryPolicy(**fields)
    with pytest.raises(error, match=names):
        RetryPolicy().replace(**fields)


def test_replace_takes_only_the_fields_and_keeps_the_others() -> None:
    policy = RetryPolicy(attempts=6, backoff=2.0)
    changed = policy.replace(backoff=0.1)
    assert (changed.attempts, changed.backoff) == (6, 0.1) and policy.backoff == 2.0
    assert changed.replace(statuses=[500]).statuses == frozenset({500})
    with pytest.raises(TypeError, match="atempts"):
        policy.replace(atempts=3)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("kwargs", "names"),
    [({"connect": "5"}, "connect"), ({"read": -1}, "read"), ({"connect": 0}, "connect")],
)
def test_timeout_values_are_checked(kwargs: Dict[str, Any], names: str) -> None:
    with pytest.raises(ValueError, match=names):
        Timeout(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "error", "names"),
    [
        ({"poll_interval": 0}, ConfigurationError, "poll_interval must be greater than 0"),
        ({"poll_interval": "3"}, TypeError, "poll_interval must be a number"),
        ({"liveness_interval": -1}, ConfigurationError, "liveness_interval"),
        ({"max_stream_failures": 0}, ConfigurationError, "max_stream_failures must be at least 1"),
        ({"max_stream_failures": 1.5}, TypeError, "max_stream_failures must be an integer"),
        ({"reconnect_backoff": -0.1}, ConfigurationError, "reconnect_backoff"),
        ({"transport": object()}, TypeError, "transport must be a Transport"),
        ({"transport": "curl"}, ValueError, "unknown transport 'curl'"),
        ({"retry": "often"}, TypeError, "retry must be"),
        ({"timeout": "long"}, ValueError, "timeout"),
    ],
)
def test_client_options_are_checked_naming_the_option(
    kwargs: Dict[str, Any], error: Type[Exception], names: str
) -> None:
    with pytest.raises(error, match=names):
        cyberun.Client("sk-x", **kwargs)


def test_with_options_is_checked_as_the_constructor_is() -> None:
    client = cyberun.Client("sk-x", transport="urllib")
    with pytest.raises(ConfigurationError, match="liveness_interval"):
        client.with_options(liveness_interval=0)
    patient = client.with_options(poll_interval=10)
    assert type(patient) is cyberun.Client and patient.poll_interval == 10


def test_the_default_sentinel_is_public_and_shown_by_name() -> None:
    assert DEFAULT is DefaultType.DEFAULT and repr(DEFAULT) == "DEFAULT"
    assert list(DefaultType) == [DEFAULT]
    parameters = inspect.signature(cyberun.Client).parameters
    assert parameters["timeout"].default is DEFAULT and parameters["retry"].default is DEFAULT
    assert "DefaultType" in str(parameters["timeout"].annotation)
    assert "_Default" not in str(inspect.signature(cyberun.Client))
    assert Timeout(DEFAULT, DEFAULT) == Timeout()
    assert DefaultType.__doc__ and "documented default" in DefaultType.__doc__
