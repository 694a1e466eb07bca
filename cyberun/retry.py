"""The retry policy for ordinary API requests: one immutable value, applied in one place.

The request pipeline (and only it) consults a [`RetryPolicy`][cyberun.RetryPolicy] for
every request, in its one retry decision. The event stream has its own
reconnect loop and the downloader its own refresh of expired URLs; the three
never stack.
"""

from __future__ import annotations

import random
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Dict, FrozenSet, Iterable, Optional, Union

import attrs

if TYPE_CHECKING:  # pragma: no cover
    from .transports._base import CancelToken

__all__ = ["RetryPolicy"]

# A private generator: drawing jitter must not shift the sequence of a user
# who seeded the global `random` module for their own purposes.
_RNG = random.Random()

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRY_STATUSES = frozenset({429, 502, 503, 504})


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _method_set(methods: Iterable[str]) -> FrozenSet[str]:
    return frozenset(method.upper() for method in methods)


def _whole(instance: object, attribute: attrs.Attribute[int], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"RetryPolicy.{attribute.name} must be an integer, not {value!r}")


def _number(instance: object, attribute: attrs.Attribute[float], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"RetryPolicy.{attribute.name} must be a number, not {value!r}")


@attrs.frozen
class RetryPolicy:
    """When and how long to wait before retrying a request.

    Every field is also a constructor argument: ``RetryPolicy(attempts=8, backoff=1.0)``.

    Attributes:
        attempts: the most times a request is sent, the first one included;
            ``1`` means never retry.
        backoff: the base delay in seconds. Retry *n* waits a random time in
            ``[0, min(backoff_max, backoff * 2 ** (n - 1))]`` ("full jitter").
        backoff_max: the cap on the exponential delay, in seconds.
        retry_after_max: the longest ``Retry-After`` the SDK honours, in
            seconds; longer requests are capped to this.
        total_wait_max: the most seconds spent waiting between the attempts
            of one request, all retries together; a retry whose wait would
            pass it is not made (the error at hand is raised instead).
        statuses: HTTP statuses that are retried (for requests that may be).
        methods: HTTP methods that are safe to repeat.
        sleep: how to wait (injectable for tests).
        random: a source of floats in ``[0, 1)`` for the jitter (injectable).
        now: the current time, for ``Retry-After`` HTTP dates (injectable).

    What is retried (see the retries guide for the whole table): a request
    that provably was not accepted (no connection, a TLS handshake or proxy
    failure, a 429, a 503 with ``Retry-After``), for any method; anything
    else that failed before a whole answer arrived, only for a request that
    may be repeated. A request that starts a task is never sent again once
    it may have been accepted: that would start a second, billed task.
    """

    attempts: int = attrs.field(default=4, validator=[_whole, attrs.validators.ge(1)])
    backoff: float = attrs.field(default=0.5, validator=[_number, attrs.validators.ge(0)])
    backoff_max: float = attrs.field(default=20.0, validator=[_number, attrs.validators.ge(0)])
    retry_after_max: float = attrs.field(
        default=120.0, validator=[_number, attrs.validators.ge(0)]
    )
    total_wait_max: float = attrs.field(default=300.0, validator=[_number, attrs.validators.ge(0)])
    statuses: FrozenSet[int] = attrs.field(default=RETRY_STATUSES, converter=frozenset)
    methods: FrozenSet[str] = attrs.field(default=IDEMPOTENT_METHODS, converter=_method_set)
    sleep: Callable[[float], None] = attrs.field(
        default=time.sleep, eq=False, repr=False, validator=attrs.validators.is_callable()
    )
    random: Callable[[], float] = attrs.field(
        default=_RNG.random, eq=False, repr=False, validator=attrs.validators.is_callable()
    )
    now: Callable[[], datetime] = attrs.field(
        default=_utcnow, eq=False, repr=False, validator=attrs.validators.is_callable()
    )

    @classmethod
    def never(cls) -> RetryPolicy:
        """A policy that sends every request exactly once."""
        return cls(attempts=1)

    @classmethod
    def from_value(cls, value: Union[RetryPolicy, int, bool, None]) -> RetryPolicy:
        """Normalise what users pass: a policy, a number of attempts, or False/None for none."""
        if isinstance(value, RetryPolicy):
            return value
        if value is None or value is False:
            return cls.never()
        if value is True:
            return cls()
        if isinstance(value, int):
            return cls(attempts=value)
        raise TypeError(f"retry must be a RetryPolicy, an int, True, False or None, not {value!r}")

    def replace(
        self,
        *,
        attempts: Optional[int] = None,
        backoff: Optional[float] = None,
        backoff_max: Optional[float] = None,
        retry_after_max: Optional[float] = None,
        total_wait_max: Optional[float] = None,
        statuses: Optional[Iterable[int]] = None,
        methods: Optional[Iterable[str]] = None,
        sleep: Optional[Callable[[float], None]] = None,
        random: Optional[Callable[[], float]] = None,
        now: Optional[Callable[[], datetime]] = None,
    ) -> RetryPolicy:
        """Return a copy with the given fields changed (the fields left out, or None, stay).

        Raises:
            ValueError: a value out of range; the message names the field.
            TypeError: a value of the wrong type; the message names the field.
        """
        changes: Dict[str, Any] = {
            name: value
            for name, value in (
                ("attempts", attempts),
                ("backoff", backoff),
                ("backoff_max", backoff_max),
                ("retry_after_max", retry_after_max),
                ("total_wait_max", total_wait_max),
                ("statuses", statuses),
                ("methods", methods),
                ("sleep", sleep),
                ("random", random),
                ("now", now),
            )
            if value is not None
        }
        return attrs.evolve(self, **changes)

    # -- what may be repeated ---------------------------------------------------------

    def method_may_repeat(self, method: str, idempotent: Optional[bool] = None) -> bool:
        """Whether a request may be sent again once it may have reached the server.

        Args:
            method: the HTTP method.
            idempotent: an explicit answer from the caller that overrides the
                method (for example ``True`` for cancelling a task, a POST
                that is safe to repeat).
        """
        if idempotent is not None:
            return idempotent
        return method.upper() in self.methods

    # -- waiting -------------------------------------------------------------------

    def pause(self, seconds: float, cancel: Optional[CancelToken] = None) -> bool:
        """Wait ``seconds`` before a retry; return False at once if ``cancel`` fires.

        With the default ``sleep`` the wait is on the token itself, so a
        cancel from another thread ends it at once; an injected ``sleep`` (a
        test's fake clock) is called as it is and the token checked after.
        """
        if cancel is None:
            self.sleep(seconds)
            return True
        if self.sleep is time.sleep:
            return not cancel.wait(seconds)
        self.sleep(seconds)
        return not cancel.cancelled

    # -- timing (pure) -----------------------------------------------------------

    def backoff_time(self, retry: int) -> float:
        """The jittered delay before retry number ``retry`` (1 for the first retry)."""
        ceiling = min(self.backoff_max, self.backoff * 2.0 ** max(retry - 1, 0))
        return self.random() * ceiling

    def parse_retry_after(self, value: Optional[str]) -> Optional[float]:
        """Seconds to wait from a ``Retry-After`` header (seconds or HTTP date), capped.

        Returns ``None`` when the header is missing or unreadable.
        """
        if value is None:
            return None
        value = value.strip()
        try:
            seconds = float(value)
        except ValueError:
            # Imported here: email.utils loads socket, a cost at import for a rare header form.
            from email.utils import parsedate_to_datetime

            try:
                when: Optional[datetime] = parsedate_to_datetime(value)
            except (TypeError, ValueError, IndexError):
                return None
            if when is None:  # pragma: no cover - Python < 3.10 returns None for junk
                return None
            if when.tzinfo is None:
                when = when.replace(tzinfo=timezone.utc)
            seconds = (when - self.now()).total_seconds()
        if seconds != seconds:  # NaN
            return None
        return min(max(seconds, 0.0), self.retry_after_max)

    def delay(self, retry: int, retry_after: Optional[float] = None) -> float:
        """How long to wait before retry number ``retry``.

        A server's ``Retry-After`` (already parsed and capped) wins over the
        backoff schedule: the server knows best when it will be ready.
        """
        if retry_after is not None:
            return min(retry_after, self.retry_after_max)
        return self.backoff_time(retry)
