"""Receiving Cyberun webhooks: signature verification, typed deliveries, idempotency.

Cyberun POSTs ``task.completed`` and ``task.failed`` deliveries as JSON with
an ``X-Webhook-Signature-256: sha256=<hex>`` header, where ``<hex>`` is the
HMAC-SHA256 of the raw body keyed with the whole ``whsec_...`` secret.
Verify the *raw* bytes before parsing anything:

```python
import os

from cyberun.webhooks import InvalidSignature, parse_delivery

WEBHOOK_SECRET = os.environ.get("CYBERUN_WEBHOOK_SECRET", "whsec_...")


def handle(body: bytes, headers) -> int:
    try:
        delivery = parse_delivery(body, headers, secret=WEBHOOK_SECRET)
    except InvalidSignature:
        return 401
    print(delivery.task_id, delivery.event_type)  # act on it, once
    return 200
```

Deliveries are retried up to 4 times (immediately, then after 5 s, 30 s and
2 min), so a receiver must be idempotent: ``(task_id, event_type)``
identifies a delivery across its retries
([`DeliveryDeduplicator`][cyberun.DeliveryDeduplicator] remembers them in
memory; use a unique key in your database when several processes receive
webhooks).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time
from collections import OrderedDict
from datetime import datetime, timezone
from typing import Any, Callable, Optional, Sequence, Tuple, Union

from ._convert import structure
from .errors import ConfigurationError, DecodeError, InvalidSignature
from .models import WebhookDelivery

__all__ = [
    "SIGNATURE_HEADER",
    "DeliveryDeduplicator",
    "InvalidSignature",
    "parse_delivery",
    "sign",
    "sign_webhook",
    "verify_signature",
]

#: The header that carries the signature.
SIGNATURE_HEADER = "X-Webhook-Signature-256"
_WSGI_KEY = "HTTP_X_WEBHOOK_SIGNATURE_256"
_HEX = re.compile(r"[0-9a-fA-F]{64}")

Secret = Union[str, Sequence[str]]


def sign(body: bytes, secret: str) -> str:
    """The signature header value Cyberun sends for ``body``: ``sha256=<hex>``.

    Useful to test your own receiver.
    """
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


#: [`sign`][cyberun.webhooks.sign], as ``cyberun.sign_webhook``.
sign_webhook = sign


def verify_signature(body: bytes, header: Optional[str], secret: Secret) -> None:
    """Check that ``body`` was signed with ``secret``; raise if not.

    Args:
        body: the request body exactly as received (bytes, not re-encoded JSON).
        header: the ``X-Webhook-Signature-256`` header's value (None if missing).
        secret: the webhook's ``whsec_...`` secret, or several (old and new,
            while your deployment rolls a rotation out).

    Raises:
        InvalidSignature: the header is missing, uses another scheme, is not
            64 hex digits, or does not match: do not trust the body.
        ConfigurationError: no secret was given.
    """
    secrets = [secret] if isinstance(secret, str) else list(secret)
    if not secrets or not all(isinstance(s, str) and s for s in secrets):
        raise ConfigurationError("verify_signature needs the webhook's secret (whsec_...)")
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise TypeError("verify the raw request body as bytes, before any parsing")
    if header is None or not header.strip():
        raise InvalidSignature(f"the {SIGNATURE_HEADER} header is missing")
    scheme, separator, digest = header.strip().partition("=")
    if not separator or scheme.strip().lower() != "sha256":
        raise InvalidSignature(
            f"unsupported signature scheme {scheme.strip()[:20]!r}; expected sha256=<hex>"
        )
    digest = digest.strip()
    if not _HEX.fullmatch(digest):
        raise InvalidSignature("malformed signature: expected 64 hexadecimal digits after sha256=")
    given = digest.lower().encode("ascii")
    valid = False
    for candidate in secrets:
        expected = hmac.new(candidate.encode("utf-8"), bytes(body), hashlib.sha256).hexdigest()
        # Compare with every secret, in constant time, without stopping early.
        valid |= hmac.compare_digest(expected.encode("ascii"), given)
    if not valid:
        raise InvalidSignature("signature mismatch: the body was altered, or the secret is wrong")


def _header(headers: Any, name: str) -> Optional[str]:
    """A header from a mapping of headers (any case) or a WSGI environ."""
    if headers is None:
        return None
    getter = getattr(headers, "get", None)
    if getter is not None:
        for key in (name, name.lower(), _WSGI_KEY):
            value = getter(key)
            if value is not None:
                return str(value)
    try:
        items = headers.items()
    except AttributeError:
        items = headers
    wanted = name.lower()
    for key, value in items:
        if str(key).lower() in (wanted, _WSGI_KEY.lower()):
            return str(value)
    return None


def parse_delivery(
    body: bytes,
    headers: Any,
    secret: Secret,
    *,
    tolerance: Optional[float] = None,
    now: Optional[Callable[[], datetime]] = None,
) -> WebhookDelivery:
    """Verify a delivery's signature, then decode it.

    Args:
        body: the raw request body.
        headers: the request headers, as a mapping (looked up in any case),
            a list of (name, value) pairs, or a WSGI ``environ``.
        secret: the webhook's secret (or several; see
            [`verify_signature`][cyberun.verify_signature]).
        tolerance: if given, refuse a delivery whose ``timestamp`` is more
            than this many seconds away from now. Retries arrive up to about
            2.5 minutes after the first attempt, so choose more than that
            (for example 600). Cyberun documents no replay window; this is
            an optional extra check.
        now: the current time (injectable for tests).

    Returns:
        A [`WebhookDelivery`][cyberun.WebhookDelivery]; an event type this SDK does
        not know is kept as it is.

    Raises:
        InvalidSignature: the signature is missing or wrong, or the delivery
            is older (or newer) than ``tolerance``.
        DecodeError: the signed body is not the documented JSON.
    """
    verify_signature(body, _header(headers, SIGNATURE_HEADER), secret)
    try:
        payload = json.loads(bytes(body))
    except (ValueError, RecursionError) as exc:
        raise DecodeError(
            f"the webhook body is not JSON: {exc}",
            what="WebhookDelivery",
            snippet=bytes(body[:200]).decode("utf-8", "replace"),
        ) from exc
    delivery = structure(payload, WebhookDelivery)
    if tolerance is not None:
        if delivery.timestamp is None:
            raise InvalidSignature("the delivery has no timestamp to check its age against")
        current = (now or _utcnow)()
        age = abs((current - delivery.timestamp).total_seconds())
        if age > tolerance:
            raise InvalidSignature(
                f"stale delivery: its timestamp is {age:.0f}s away (tolerance {tolerance:.0f}s)"
            )
    return delivery


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class DeliveryDeduplicator:
    """Remembers deliveries already handled, so retries are processed once.

    In memory and thread-safe; suitable for one process. Several processes
    (or restarts) need a shared store: a unique index on
    ``(task_id, event_type)`` in your database does the same job.

    Args:
        max_entries: the most deliveries remembered (oldest forgotten first).
        ttl: seconds a delivery is remembered; retries end about 2.5
            minutes after the first attempt, so the default day is ample.
    """

    def __init__(
        self,
        max_entries: int = 100_000,
        ttl: float = 24 * 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_entries = max_entries
        self.ttl = ttl
        self._clock = clock
        self._seen: OrderedDict[Tuple[str, str], float] = OrderedDict()
        self._lock = threading.Lock()

    def first_time(self, delivery: WebhookDelivery) -> bool:
        """True the first time a delivery is seen (and remember it); False for a retry."""
        key = delivery.delivery_key
        now = self._clock()
        with self._lock:
            while self._seen:
                oldest_key, when = next(iter(self._seen.items()))
                if now - when <= self.ttl and len(self._seen) < self.max_entries:
                    break
                del self._seen[oldest_key]
            if key in self._seen:
                return False
            self._seen[key] = now
            return True

    def forget(self, delivery: WebhookDelivery) -> None:
        """Forget a delivery (for example when handling it failed and a retry should run)."""
        with self._lock:
            self._seen.pop(delivery.delivery_key, None)
