"""Redaction of secrets in URLs, headers, free text, exceptions and log records: the one place.

Presigned URLs carry their signature in the query string, URLs may carry
user:password, and servers echo credentials back in error messages; all of
these are secrets. Everything the SDK puts in a log record, an exception or
a ``repr`` goes through these functions first, and the exceptions of the
HTTP libraries it chains (which quote the URLs they were given) are scrubbed
before they travel. [`RedactingFilter`][cyberun._redact.RedactingFilter]
does the same for log records the SDK does not write itself (urllib3's
debug records quote every request line).
"""

from __future__ import annotations

import logging
import re
from typing import Iterable, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "REDACTED",
    "SENSITIVE_HEADERS",
    "RedactingFilter",
    "redact_headers",
    "redact_text",
    "redact_url",
    "scrub_exception",
]

REDACTED = "[redacted]"

#: Headers whose values are credentials.
SENSITIVE_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "x-team-id", "cookie", "set-cookie", "x-api-key"}
)

_TOKEN = re.compile(
    r"(?i)\b(?:bearer\s+)?(?:sk|dk|whsec)[-_][A-Za-z0-9._\-]{6,}"  # API keys, webhook secrets
    r"|\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"  # JWTs
    r"|(?i:\bbearer\s+)[A-Za-z0-9._~+/=-]{8,}"  # any bearer token
)
_URL = re.compile(r"https?://[^\s\"'<>]+")
# A query string after a path that is not part of a full URL (urllib3 quotes
# request targets as "/path?X-Amz-Signature=..."), and signature parameters
# wherever they appear.
_QUERY = re.compile(r"(/[^\s?\"'<>]*)\?[^\s\"'<>)]+")
_SIGNATURE = re.compile(
    r"(?i)\b((?:x-amz-|x-goog-)?(?:signature|credential|security-token)|sig|token|key)"
    r"=[^&\s\"'<>]+"
)


def redact_url(url: str) -> str:
    """Return ``url`` with its query string and any user:password removed.

    The scheme, host, port and path stay, which is what a reader needs to
    know which endpoint or object was involved.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = REDACTED if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Redact URLs' queries, API keys, bearer tokens, JWTs and webhook secrets in free text.

    Args:
        text: the text (a server's error message, an exception's message).
        secrets: exact strings to remove as well, whatever their shape (the
            credential in use: a server may echo a token of any form).
    """
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    text = _URL.sub(lambda match: redact_url(match.group(0)), text)
    text = _QUERY.sub(lambda match: f"{match.group(1)}?{REDACTED}", text)
    text = _SIGNATURE.sub(lambda match: f"{match.group(1)}={REDACTED}", text)
    return _TOKEN.sub(REDACTED, text)


def redact_headers(headers: Iterable[Tuple[str, str]]) -> Mapping[str, str]:
    """Return a copy of ``headers`` with credential values replaced."""
    return {
        name: (REDACTED if name.lower() in SENSITIVE_HEADERS else value) for name, value in headers
    }


# Attributes of the HTTP libraries' exceptions that hold a request (with its
# headers) or a response: dropped from a chained exception.
_HEAVY_ATTRIBUTES = ("request", "response")


def scrub_exception(exc: Optional[BaseException], secrets: Sequence[str] = ()) -> None:
    """Redact, in place, an exception and the ones chained to it before it is re-raised.

    A chained cause is printed in every traceback: urllib3's and requests'
    exceptions quote the URL (a presigned link's signature) and requests'
    keep the request with its ``Authorization`` header. Their messages and
    ``url`` attributes are redacted and such attributes dropped.
    """
    seen: List[int] = []
    while exc is not None and id(exc) not in seen and len(seen) < 16:
        seen.append(id(exc))
        exc.args = tuple(_scrub_value(arg, secrets) for arg in exc.args)
        for name, value in list(getattr(exc, "__dict__", {}).items()):
            # url, _message (urllib3 2) ...: every text attribute; requests' request
            # and response objects dropped.
            if name in _HEAVY_ATTRIBUTES and value is not None:
                exc.__dict__[name] = None
            elif isinstance(value, str):
                exc.__dict__[name] = redact_text(value, secrets)
        reason = getattr(exc, "reason", None)  # urllib3's MaxRetryError keeps the cause here
        if isinstance(reason, BaseException):
            scrub_exception(reason, secrets)
        exc = exc.__cause__ or exc.__context__


def _scrub_value(value: object, secrets: Sequence[str]) -> object:
    if isinstance(value, str):
        return redact_text(value, secrets)
    if isinstance(value, BaseException):
        scrub_exception(value, secrets)
    return value


class RedactingFilter(logging.Filter):
    """A logging filter that redacts secrets in every record it sees (it never drops one).

    Attach it to a handler (it then sees the records of every logger,
    urllib3's included) while debug logging of the HTTP libraries is on:

    ```python
    import logging

    from cyberun._redact import RedactingFilter

    handler = logging.StreamHandler()
    handler.addFilter(RedactingFilter())
    ```

    The message is formatted, redacted and stored without its arguments; a
    traceback attached to the record is formatted and redacted too.

    Args:
        secrets: exact strings to redact as well (a credential in use).
    """

    def __init__(self, secrets: Sequence[str] = ()) -> None:
        super().__init__()
        self.secrets = tuple(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to the handler's error path
            return True
        record.msg = redact_text(message, self.secrets)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact_text(
                logging.Formatter().formatException(record.exc_info), self.secrets
            )
        elif record.exc_text:
            record.exc_text = redact_text(record.exc_text, self.secrets)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info, self.secrets)
        return True
