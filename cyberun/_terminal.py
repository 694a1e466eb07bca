"""Text that is safe to show on a terminal: the one place server text is made visible.

Text that comes from the server (task errors, messages, workflow names) can
hold escape sequences that retitle the window, clear the screen or write the
clipboard (OSC 52), and bidi overrides that make text read as something
else. Everything the command line or the SDK's log handler shows passes
through ``visible`` first. Imports only ``re``.
"""

from __future__ import annotations

import re

__all__ = ["visible", "visible_json", "visible_lines"]

# C0 controls (ESC included), DEL, C1 controls (CSI U+009B, OSC U+009D...), and the
# invisible format characters that reorder or hide text (bidi overrides,
# zero-width characters, the BOM).
_INVISIBLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")
# The same, less the C0 controls JSON already escapes.
_INVISIBLE_IN_JSON = re.compile("[\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group(0)
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: object) -> str:
    r"""``text`` with every control, escape and invisible format character shown as an escape.

    An ESC character becomes the four characters ``\x1b``: printed, an escape
    sequence reads as what it is instead of retitling the terminal. Newlines
    and tabs are shown as ``\n`` and ``\t``, so one value is always one line.
    """
    return _INVISIBLE.sub(_escape, str(text))


def visible_json(encoded: str) -> str:
    r"""A JSON document with the characters ``json.dumps`` leaves raw escaped as ``\uXXXX``.

    ``json.dumps(..., ensure_ascii=False)`` escapes C0 controls but not DEL,
    C1 controls or bidi overrides; such characters only occur inside strings,
    where an escape means the same thing.
    """
    return _INVISIBLE_IN_JSON.sub(lambda m: f"\\u{ord(m.group(0)):04x}", encoded)


def visible_lines(text: str) -> str:
    """Like ``visible``, line by line: the line breaks of ``text`` stay line breaks."""
    return "\n".join(visible(line) for line in text.split("\n"))
