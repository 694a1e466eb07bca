"""Redaction of secrets in URLs, headers and free text: the one place it happens.

Presigned URLs carry their signature in the query string, and URLs may carry
user:password; both are secrets. Everything the SDK puts in a log record, an
exception or a ``repr`` goes through these functions first.
"""

from __future__ import annotations

import re
from typing import Iterable, Mapping, Tuple
from urllib.parse import urlsplit, urlunsplit

__all__ = ["SENSITIVE_HEADERS", "redact_headers", "redact_text", "redact_url"]

REDACTED = "[redacted]"

#: Headers whose values are credentials.
SENSITIVE_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "x-team-id", "cookie", "set-cookie", "x-api-key"}
)

_TOKEN = re.compile(
    r"(?i)\b(?:bearer\s+)?(?:sk|dk|whsec)[-_][A-Za-z0-9._\-]{6,}"  # API keys, webhook secrets
    r"|\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"  # JWTs
)
_URL = re.compile(r"https?://[^\s\"'<>]+")


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


def redact_text(text: str) -> str:
    """Redact URLs, API keys, webhook secrets and JWTs found in free text."""
    text = _URL.sub(lambda match: redact_url(match.group(0)), text)
    return _TOKEN.sub(REDACTED, text)


def redact_headers(headers: Iterable[Tuple[str, str]]) -> Mapping[str, str]:
    """Return a copy of ``headers`` with credential values replaced."""
    return {
        name: (REDACTED if name.lower() in SENSITIVE_HEADERS else value) for name, value in headers
    }
