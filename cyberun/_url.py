r"""The one URL parser: it decides both whom a request may carry credentials to and where it goes.

URLs reach the SDK from servers (redirects, presigned download links) as
well as from users. Python's ``urlsplit``, urllib3 and WHATWG-minded
libraries disagree on odd inputs: ``http://a:1\@b:2/`` is host ``b`` to
``urlsplit`` and host ``a`` to urllib3. So the SDK parses every URL here,
refuses what parsers could read two ways (a backslash, user info, control
characters or spaces, a bad port, a host that is not a plain DNS name or IP
address after IDNA), and hands the transports a canonical form that every
library reads the same way. The credential check compares the parsed
origin, so it always names the host the connection really goes to.
"""

from __future__ import annotations

import ipaddress
import re
from typing import NamedTuple, Tuple
from urllib.parse import quote

__all__ = ["URL", "InvalidURL", "parse_url"]

DEFAULT_PORTS = {"http": 80, "https": 443}

# What may appear in a canonical host: DNS labels (underscores occur in
# real service names) and dots. Anything else is refused.
_HOST = re.compile(
    r"^[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?)*\.?$"
)
# A last label that WHATWG parsers take for (part of) an IPv4 address:
# digits, or 0x-hex. Such a host is an address or nothing, never a name.
_NUMERIC_LABEL = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)$")
# Characters of a path or query sent as they are; everything else is
# percent-encoded (non-ASCII as UTF-8), so no library re-encodes differently.
_SAFE_PATH = "/:@!$&'()*+,;=-._~%"
_SAFE_QUERY = _SAFE_PATH + "?"


class InvalidURL(ValueError):
    """A URL the SDK will not send a request to; ``str()`` says why (secrets redacted)."""


class URL(NamedTuple):
    """A parsed, checked absolute http(s) URL.

    Attributes:
        scheme: ``"http"`` or ``"https"``.
        host: lower case, IDNA-encoded, IPv6 without brackets.
        port: the port, the scheme's default filled in.
        target: the path and query, as sent in the request line (``/`` at least).
    """

    scheme: str
    host: str
    port: int
    target: str

    @property
    def origin(self) -> Tuple[str, str, int]:
        """``(scheme, host, port)``: what must match exactly for a credential to be sent."""
        return (self.scheme, self.host, self.port)

    @property
    def authority(self) -> str:
        """``host[:port]`` as written in a URL (the port only when not the default)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if DEFAULT_PORTS[self.scheme] == self.port else f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.scheme}://{self.authority}{self.target}"


def parse_url(url: str) -> URL:
    """Parse and check an absolute http(s) URL.

    Args:
        url: the URL; a fragment is dropped (it is never sent).

    Returns:
        The parsed URL; ``str()`` of it is the canonical form to send.

    Raises:
        InvalidURL: not an absolute http(s) URL, or one that parsers could
            read in more than one way (see the module docstring).
    """
    if not isinstance(url, str):
        raise InvalidURL(f"a URL must be a string, not {type(url).__name__}")
    if any(ch <= " " or ch == "\x7f" for ch in url):
        raise InvalidURL("the URL contains a space or a control character")
    if "\\" in url:
        raise InvalidURL("the URL contains a backslash, which parsers read in different ways")
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in DEFAULT_PORTS:
        raise InvalidURL("not an absolute http(s) URL")
    end = min(
        (i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0), default=len(rest)
    )
    authority, target = rest[:end], rest[end:]
    if "@" in authority:
        raise InvalidURL("the URL carries user info (user:password@), which is never sent")
    host, port = _split_authority(authority, scheme)
    return URL(scheme, host, port, _target(target))


def _split_authority(authority: str, scheme: str) -> Tuple[str, int]:
    if authority.startswith("["):
        close = authority.find("]")
        if close < 0:
            raise InvalidURL("the URL's IPv6 host has no closing bracket")
        host = _ipv6(authority[1:close])
        port_text = authority[close + 1 :]
        if port_text and not port_text.startswith(":"):
            raise InvalidURL("unexpected characters after the URL's IPv6 host")
        port_text = port_text[1:]
    else:
        host_text, _, port_text = authority.partition(":")
        host = _host(host_text)
    if not port_text:
        return host, DEFAULT_PORTS[scheme]
    if not port_text.isdigit() or not port_text.isascii() or not 0 < int(port_text) < 65536:
        raise InvalidURL(f"the URL's port {port_text[:10]!r} is not a number from 1 to 65535")
    return host, int(port_text)


def _ipv6(text: str) -> str:
    if "%" in text:
        raise InvalidURL("IPv6 zone identifiers are not supported in URLs")
    try:
        return ipaddress.IPv6Address(text).compressed
    except ValueError:
        raise InvalidURL("the URL's IPv6 host is malformed") from None


def _host(text: str) -> str:
    if not text:
        raise InvalidURL("the URL has no host")
    if "%" in text:
        raise InvalidURL("percent-encoding in a URL's host is not supported")
    if not text.isascii():
        try:
            # IDNA 2003 (nameprep applies NFKC): what http.client and requests send.
            text = text.encode("idna").decode("ascii")
        except UnicodeError:
            raise InvalidURL("the URL's host is not a valid international domain name") from None
    host = text.lower()
    if not _HOST.match(host) or len(host.rstrip(".")) > 253:
        # NFKC can turn a look-alike into a delimiter ("\u2100" becomes "a/c"): check after IDNA.
        raise InvalidURL("the URL's host is not a valid host name or IP address")
    last = host.rstrip(".").rsplit(".", 1)[-1]
    if _NUMERIC_LABEL.match(last):
        try:
            return str(ipaddress.IPv4Address(host))
        except ValueError:
            raise InvalidURL(
                "the URL's host looks like an IPv4 address but is not a plain dotted quad"
            ) from None
    return host


def _target(text: str) -> str:
    path, _, query = text.partition("#")[0].partition("?")
    target = quote(path, safe=_SAFE_PATH) or "/"
    if not target.startswith("/"):
        target = "/" + target
    if "?" in text.partition("#")[0]:
        target += "?" + quote(query, safe=_SAFE_QUERY)
    return target
