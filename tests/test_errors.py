"""The exception hierarchy: shape, context attributes, pickling."""

from __future__ import annotations

import pickle

import pytest

from cyberun import errors


def test_every_error_derives_from_the_root() -> None:
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, errors.CyberunError), name


@pytest.mark.parametrize(
    ("cls", "builtin"),
    [
        (errors.ConnectTimeoutError, TimeoutError),
        (errors.ReadTimeoutError, TimeoutError),
        (errors.WaitTimeout, TimeoutError),
        (errors.ConfigurationError, ValueError),
        (errors.ParameterError, ValueError),
        (errors.DecodeError, ValueError),
        (errors.InvalidSignature, ValueError),
    ],
)
def test_builtin_mixins(cls: type, builtin: type) -> None:
    assert issubclass(cls, builtin)


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, errors.BadRequest),
        (401, errors.AuthenticationError),
        (403, errors.PermissionDenied),
        (404, errors.NotFound),
        (409, errors.Conflict),
        (429, errors.RateLimited),
        (500, errors.ServerError),
        (503, errors.ServerError),
        (418, errors.APIError),
    ],
)
def test_status_maps_to_most_specific_class(status: int, cls: type) -> None:
    assert errors.api_error_class(status) is cls


def test_api_error_keeps_context_and_message() -> None:
    err = errors.RateLimited(
        "HTTP 429 for GET /x: slow down",
        status=429,
        server_message="slow down",
        code="rate_limited",
        method="GET",
        url="https://h/x",
        request_id="req-1",
        retry_after=2.5,
    )
    assert str(err) == "HTTP 429 for GET /x: slow down"
    assert (err.status, err.message, err.code) == (429, "slow down", "rate_limited")
    assert (err.method, err.url, err.request_id, err.retry_after) == (
        "GET",
        "https://h/x",
        "req-1",
        2.5,
    )


@pytest.mark.parametrize(
    "err",
    [
        errors.APIError("boom", status=500, request_id="r"),
        errors.TaskFailed("failed", task_id="t1", error="CUDA out of memory"),
        errors.ParameterError("bad", problems=["a", "b"], workflow="wf"),
        errors.ReadTimeoutError("slow", method="GET", url="https://h/"),
        errors.SSELimitError("too long", limit=10, kind="line"),
        errors.DownloadError("gone", key="9.images.0", status=403),
    ],
)
def test_errors_survive_pickling_with_context(err: errors.CyberunError) -> None:
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is type(err)
    assert str(copy) == str(err)
    assert copy.__dict__ == err.__dict__


def test_parameter_error_lists_problems_as_tuple() -> None:
    err = errors.ParameterError("2 problems", problems=["x missing", "y too big"])
    assert err.problems == ("x missing", "y too big")
