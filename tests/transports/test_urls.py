"""The one URL parser: what it accepts, how it writes it, what it refuses."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cyberun._url import InvalidURL, parse_url


@pytest.mark.parametrize(
    ("given_url", "canonical", "origin"),
    [
        (
            "https://core.cyberun.cloud",
            "https://core.cyberun.cloud/",
            ("https", "core.cyberun.cloud", 443),
        ),
        (
            "HTTP://Example.COM:80/a?b=c#frag",
            "http://example.com/a?b=c",
            ("http", "example.com", 80),
        ),
        ("http://127.0.0.1:8080/x", "http://127.0.0.1:8080/x", ("http", "127.0.0.1", 8080)),
        ("http://[::1]:9/x", "http://[::1]:9/x", ("http", "::1", 9)),
        ("http://[0:0::1]/", "http://[::1]/", ("http", "::1", 80)),
        (
            "https://bücher.example/é?q=ü",
            "https://xn--bcher-kva.example/%C3%A9?q=%C3%BC",
            ("https", "xn--bcher-kva.example", 443),
        ),
        ("http://host:/p", "http://host/p", ("http", "host", 80)),
        (
            "https://s3.test/k?X-Amz-Signature=ab%2Fc",
            "https://s3.test/k?X-Amz-Signature=ab%2Fc",
            ("https", "s3.test", 443),
        ),
    ],
)
def test_urls_are_parsed_and_written_in_one_canonical_form(
    given_url: str, canonical: str, origin: tuple
) -> None:  # type: ignore[type-arg]
    parsed = parse_url(given_url)
    assert str(parsed) == canonical
    assert parsed.origin == origin
    assert parse_url(str(parsed)) == parsed  # canonical is a fixed point


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("http://127.0.0.2:9\\@127.0.0.1:8/x", "backslash"),
        ("http:\\\\127.0.0.2/x", "backslash"),
        ("http://user:pw@127.0.0.1/x", "user info"),
        ("http://127.0.0.1:8@127.0.0.2:9/x", "user info"),
        ("http://127.0.0.1:99999/x", "port"),
        ("http://127.0.0.1:0/x", "port"),
        ("http://127.0.0.1:8a/x", "port"),
        ("http://[::1/x", "bracket"),
        ("http://[::g]/x", "IPv6"),
        ("http://[fe80::1%25eth0]/", "zone"),
        ("http://a\u2100b.example/x", "host"),  # NFKC makes a "/" of it
        ("http://exa mple.com/", "space"),
        ("http://example.com/a\tb", "control"),
        ("http://example.com/\r\nX: y", "control"),
        ("http://0x7f.1/", "IPv4"),
        ("http://127.1/", "IPv4"),
        ("http://ex%41mple.com/", "percent"),
        ("http://exa!mple.com/", "host"),
        ("http:///path", "no host"),
        ("ftp://example.com/", "http"),
        ("//example.com/x", "http"),
        ("example.com/x", "http"),
    ],
)
def test_ambiguous_or_broken_urls_are_refused(bad: str, reason: str) -> None:
    with pytest.raises(InvalidURL, match=reason):
        parse_url(bad)


@given(st.text(max_size=60))
def test_whatever_it_accepts_every_parser_reads_the_same_way(tail: str) -> None:
    try:
        parsed = parse_url("http://" + tail)
    except InvalidURL:
        return
    canonical = str(parsed)
    parts = urlsplit(canonical)
    assert (parts.hostname, parts.port or 80) == (parsed.host, parsed.port)
    assert canonical.isascii() and "\\" not in canonical and "@" not in canonical.split("/")[2]
    try:
        import urllib3.util
    except ImportError:  # pragma: no cover - the minimal environment
        return
    theirs = urllib3.util.parse_url(canonical)
    assert (theirs.host or "").strip("[]") == parsed.host
    assert (theirs.port or 80) == parsed.port
