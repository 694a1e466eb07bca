"""Request and answer bodies: JSON without NaN, bodies sent again, progress, content decoding.

The pieces of the request pipeline that only handle bytes: encoding a JSON
body (NaN and infinity refused), replaying a body for a retry (bytes, or a
file that can seek), reporting upload progress, letting go of an unwanted
answer without reading a long one, and decoding a ``gzip``/``deflate``
answer as it is read, within a bound.
"""

from __future__ import annotations

import json
import zlib
from typing import Any, Callable, Iterator, Optional, Type

from ._parameters import non_finite_paths
from .errors import CyberunError, ParameterError, ReadError
from .transports._base import Body, Response, iter_body

__all__ = ["ProgressBody", "decoded", "discard", "encode_json", "rewinder"]

#: A redirect's body is read (to keep the connection) only when it is at most this long.
MAX_REDIRECT_BODY = 64 * 1024


def encode_json(value: Any) -> bytes:
    """JSON without NaN or infinity (invalid JSON the server would refuse or misread).

    Raises:
        ParameterError: a number in ``value`` is not finite; names where.
    """
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False).encode()
    except ValueError:
        problems = [
            f"{path} is {number!r}, which JSON cannot carry"
            for path, number in non_finite_paths(value)
        ]
        raise ParameterError(
            "the request has numbers that are not finite: " + "; ".join(problems),
            problems=problems,
        ) from None


def discard(response: Response) -> None:
    """Let go of a response whose body is not wanted, never reading a long one.

    A short body with a known length is read so that the connection can be
    reused; anything else is closed unread (a redirect may carry 400 MiB).
    """
    length = response.headers.get("content-length", "")
    try:
        if length.isdigit() and int(length) <= MAX_REDIRECT_BODY:
            response.read(limit=MAX_REDIRECT_BODY)
    except CyberunError:
        pass
    finally:
        response.close()


def decoded(response: Response, limit: int, error: Type[CyberunError]) -> Response:
    """``response`` with a ``gzip``/``deflate`` body decoded as it is read, up to ``limit`` bytes.

    The SDK asks for ``identity``; an intermediary may compress anyway, and
    compressed bytes must never reach a caller as if they were the answer.

    Raises:
        error: (from the body's iteration) the encoding is broken, unknown,
            or decodes to more than ``limit`` bytes.
    """
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        return response
    if encoding not in ("gzip", "x-gzip", "deflate"):

        def refuse() -> Iterator[bytes]:
            yield from ()  # a generator: raised when the body is read, as any broken body
            raise error(
                f"the answer is encoded with {encoding[:40]!r}, which the SDK cannot decode "
                "(it asks for identity; an intermediary changed the encoding)"
            )

        return _with_body(response, refuse())

    def chunks() -> Iterator[bytes]:
        # 16 + MAX_WBITS: a gzip wrapper. "deflate" should be zlib-wrapped;
        # some servers send it raw: tried when the first bytes are not zlib.
        wbits = 16 + zlib.MAX_WBITS if "gzip" in encoding else zlib.MAX_WBITS
        decoder = zlib.decompressobj(wbits)
        may_switch = encoding == "deflate"
        produced = 0
        for piece in response.iter_bytes():
            pending = piece
            while pending and not decoder.eof:
                try:
                    out = decoder.decompress(pending, 64 * 1024)  # bounded output per step
                except zlib.error as exc:
                    if may_switch:
                        decoder, may_switch = zlib.decompressobj(-zlib.MAX_WBITS), False
                        continue
                    raise error(f"the answer's {encoding} encoding is broken: {exc}") from None
                may_switch = False
                pending = decoder.unconsumed_tail
                produced += len(out)
                if produced > limit:
                    raise error(f"the answer decompresses to more than the {limit}-byte limit")
                if out:
                    yield out
        if not decoder.eof:
            raise ReadError(f"the answer's {encoding} data ended before its end marker")

    return _with_body(response, chunks())


def _with_body(response: Response, stream: Iterator[bytes]) -> Response:
    """``response`` with another body (closing it closes the original)."""
    return Response(
        response.status,
        response.headers.items(),
        stream=stream,
        close=response.close,
        url=response.url,
    )


def rewinder(body: Optional[Body]) -> Optional[Callable[[], None]]:
    """A way to send ``body`` again, or None when it cannot be replayed."""
    if body is None or isinstance(body, (bytes, bytearray)):
        return lambda: None
    if isinstance(body, ProgressBody):
        return _progressrewinder(body)
    seek = getattr(body, "seek", None)
    tell = getattr(body, "tell", None)
    if callable(seek) and callable(tell):
        try:
            start = tell()
        except (OSError, ValueError):
            return None
        return lambda: seek(start)
    return None


def _progressrewinder(body: ProgressBody) -> Optional[Callable[[], None]]:
    found = rewinder(body.inner)
    if found is None:
        return None
    rewind_inner: Callable[[], None] = found

    def rewind() -> None:
        rewind_inner()
        body.sent = 0

    return rewind


class ProgressBody:
    """An upload body that reports how many bytes have gone."""

    def __init__(self, inner: Body, total: int, callback: Callable[[int, int], None]) -> None:
        self.inner = inner
        self.total = total
        self.callback = callback
        self.sent = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in iter_body(self.inner):
            yield chunk
            self.sent += len(chunk)
            self.callback(self.sent, self.total)
