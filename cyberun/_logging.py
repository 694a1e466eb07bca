"""The SDK's logging: silent by default, ``CYBERUN_LOG=debug|info`` to see its records.

Every module logs on the logger named ``cyberun``. A ``NullHandler`` on it
keeps an application that configured no logging free of the SDK's records
(Python would otherwise print WARNING records on stderr through its "last
resort" handler). Setting ``CYBERUN_LOG`` (as ``OPENAI_LOG`` and
``STRIPE_LOG`` do for those SDKs) attaches one handler that writes the
SDK's records to stderr, with secrets redacted and control characters made
visible; the ``cyberun`` command's ``--debug`` uses the same handler.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from typing import IO, Mapping, Optional

__all__ = ["ENVIRONMENT_VARIABLE", "LEVELS", "RedactingFormatter", "enable", "install"]

LOGGER_NAME = "cyberun"
ENVIRONMENT_VARIABLE = "CYBERUN_LOG"
#: The values CYBERUN_LOG accepts (case-insensitive).
LEVELS: Mapping[str, int] = {"debug": logging.DEBUG, "info": logging.INFO}
FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"


class RedactingFormatter(logging.Formatter):
    """Formats a record, then redacts secrets and makes control characters visible.

    Redaction runs on the whole formatted text, traceback included, so a
    record built from an exception message or a URL cannot leak an API key
    or a presigned link's signature.
    """

    def format(self, record: logging.LogRecord) -> str:
        # Imported here: `import cyberun` loads this module, and must stay cheap.
        from ._redact import redact_text
        from ._terminal import visible_lines

        return visible_lines(redact_text(super().format(record)))


class _SDKHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler ``enable`` attaches; marked so that it is attached once."""


def enable(level: int, stream: Optional[IO[str]] = None) -> logging.Handler:
    """Show the SDK's records of ``level`` and above on ``stream`` (stderr by default).

    Calling it again replaces the handler it attached before.

    Args:
        level: a ``logging`` level, for example ``logging.DEBUG``.
        stream: where to write; default ``sys.stderr`` at the time of each record.

    Returns:
        The handler attached to the ``cyberun`` logger.
    """
    logger = logging.getLogger(LOGGER_NAME)
    for handler in list(logger.handlers):
        if isinstance(handler, _SDKHandler):
            logger.removeHandler(handler)
    handler = _SDKHandler(stream) if stream is not None else _StderrHandler()
    handler.setFormatter(RedactingFormatter(FORMAT))
    handler.setLevel(level)
    logger.addHandler(handler)
    logger.setLevel(level)
    return handler


class _StderrHandler(_SDKHandler):
    """Writes to whatever ``sys.stderr`` is when a record arrives (as ``logging.lastResort``)."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)  # no fixed stream: see the property below

    @property  # type: ignore[override]
    def stream(self) -> IO[str]:
        return sys.stderr


def install(environ: Optional[Mapping[str, str]] = None) -> None:
    """Attach the ``NullHandler``, then honour ``CYBERUN_LOG`` (called when ``cyberun`` loads)."""
    logger = logging.getLogger(LOGGER_NAME)
    if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
        logger.addHandler(logging.NullHandler())
    value = (environ if environ is not None else os.environ).get(ENVIRONMENT_VARIABLE, "")
    if not value.strip():
        return
    level = LEVELS.get(value.strip().lower())
    if level is None:
        warnings.warn(
            f"{ENVIRONMENT_VARIABLE}={value!r} is not one of {', '.join(LEVELS)}; ignored",
            RuntimeWarning,
            stacklevel=2,
        )
        return
    enable(level)
