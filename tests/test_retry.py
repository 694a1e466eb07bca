"""RetryPolicy: values, Retry-After, and the backoff schedule's bounds (decisions: test_decide)."""

from __future__ import annotations

from datetime import datetime, timezone

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cyberun.retry import RetryPolicy

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)


def test_defaults() -> None:
    policy = RetryPolicy()
    assert policy.attempts == 4
    assert policy.statuses == {429, 502, 503, 504}
    assert policy.methods == {"GET", "HEAD", "OPTIONS", "PUT", "DELETE"}


def test_policies_are_immutable_values() -> None:
    policy = RetryPolicy()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        policy.attempts = 9  # type: ignore[misc]
    changed = policy.replace(attempts=2)
    assert (policy.attempts, changed.attempts) == (4, 2)
    assert RetryPolicy() == RetryPolicy()


@pytest.mark.parametrize(
    ("value", "attempts"),
    [(None, 1), (False, 1), (True, 4), (0 + 6, 6), (RetryPolicy(attempts=3), 3)],
)
def test_from_value(value: object, attempts: int) -> None:
    assert RetryPolicy.from_value(value).attempts == attempts  # type: ignore[arg-type]


def test_from_value_rejects_other_types() -> None:
    with pytest.raises(TypeError, match="RetryPolicy"):
        RetryPolicy.from_value("3")  # type: ignore[arg-type]


def test_invalid_values_are_refused() -> None:
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy(attempts=0)


def test_methods_are_normalised_to_upper_case() -> None:
    assert RetryPolicy(methods=["get"]).methods == {"GET"}


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, None),
        ("5", 5.0),
        (" 2.5 ", 2.5),
        ("-3", 0.0),
        ("100000", 120.0),
        ("Thu, 01 Jan 2026 12:00:30 GMT", 30.0),
        ("Thu, 01 Jan 2026 11:59:00 GMT", 0.0),
        ("Fri, 02 Jan 2026 12:00:00 GMT", 120.0),
        ("soon", None),
        ("nan", None),
    ],
)
def test_retry_after_seconds_or_http_date_capped(header: object, seconds: object) -> None:
    policy = RetryPolicy(now=lambda: NOW)
    assert policy.parse_retry_after(header) == seconds  # type: ignore[arg-type]


def test_retry_after_wins_over_backoff() -> None:
    policy = RetryPolicy(random=lambda: 0.5)
    assert policy.delay(1, retry_after=7.0) == 7.0
    assert policy.delay(1) == 0.25


@given(
    retry=st.integers(min_value=1, max_value=64),
    draw=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
    base=st.floats(min_value=0.0, max_value=10.0),
    cap=st.floats(min_value=0.0, max_value=300.0),
)
def test_backoff_is_full_jitter_within_its_bounds(
    retry: int, draw: float, base: float, cap: float
) -> None:
    policy = RetryPolicy(backoff=base, backoff_max=cap, random=lambda: draw)
    ceiling = min(cap, base * 2.0 ** (retry - 1))
    delay = policy.backoff_time(retry)
    assert 0.0 <= delay <= ceiling
    assert delay == pytest.approx(draw * ceiling)


@given(retries=st.lists(st.integers(min_value=1, max_value=30), min_size=1, max_size=10))
def test_the_ceiling_never_shrinks_as_retries_grow(retries: list) -> None:  # type: ignore[type-arg]
    policy = RetryPolicy(random=lambda: 0.999)
    delays = [policy.backoff_time(n) for n in sorted(retries)]
    assert delays == sorted(delays)
    assert max(delays) <= policy.backoff_max
