r"""File names for downloaded outputs: safe on every common file system, and unique on all of them.

The rule (documented in the results guide):

1. Only the last path component is kept; ``/`` and ``\`` separate components.
2. The name is NFC-normalised; control characters (C0, DEL, C1), format
   characters (bidi overrides and isolates, zero-width characters, the BOM)
   and line/paragraph separators are removed, so a name displays as what it is.
3. ``<>:"|?*`` become ``_``; leading and trailing spaces and trailing dots
   are removed (Windows drops them, which would merge two names).
4. A leading dot becomes ``_`` (no hidden files), an empty name becomes
   ``output``.
5. A Windows device name (``CON``, ``PRN``, ``AUX``, ``NUL``, ``COM0``-``COM9``,
   ``LPT0``-``LPT9``, also with the superscript digits ``¹²³``, ``CONIN$``,
   ``CONOUT$``) before the first dot, whatever follows it and whatever the
   case, gets a leading ``_``: ``CON .png`` becomes ``_CON .png``.
6. At most 200 bytes of UTF-8, the extension kept.
7. Two names are the same when they are equal after case folding and
   normalisation (as on Windows and macOS, where ``A.png``/``a.png`` and the
   NFC/NFD spellings of ``é.png`` are one file); later ones get ``-1``,
   ``-2``... before the extension. Names reserved by the SDK itself
   (``cyberun-task.json``) take part.
"""

from __future__ import annotations

import os
import re
import unicodedata
from typing import Iterable, List, Set, Tuple
from urllib.parse import unquote, urlsplit

__all__ = ["fold", "output_names", "safe_file_name", "url_file_name"]

_DEVICE_NAMES = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"{p}{d}" for p in ("COM", "LPT") for d in "0123456789\u00b9\u00b2\u00b3"}
)
_UNSAFE = re.compile(r'[<>:"|?*]')
# Cc: C0, DEL, C1; Cf: bidi controls, zero-width characters, BOM; Zl/Zp: U+2028/2029;
# Cs: lone surrogates (from a percent-decoded or surrogateescape'd name).
_REMOVED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
MAX_NAME_BYTES = 200
_EXTENSION = re.compile(r"\.[A-Za-z0-9]{1,12}")


def fold(name: str) -> str:
    """The form in which two names are the same file on a case-insensitive, normalising system."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFD", name).casefold())


def _clean(text: str) -> str:
    text = unicodedata.normalize("NFC", text)
    return "".join(ch for ch in text if unicodedata.category(ch) not in _REMOVED_CATEGORIES)


def _truncate(name: str, limit: int = MAX_NAME_BYTES) -> str:
    if len(name.encode("utf-8")) <= limit:
        return name
    stem, ext = os.path.splitext(name)
    if not stem or len(ext) > 16:
        stem, ext = name, ""
    budget = limit - len(ext.encode("utf-8"))
    stem = stem.encode("utf-8")[:budget].decode("utf-8", "ignore")
    return stem + ext


def safe_file_name(name: str, default: str = "output") -> str:
    """Make ``name`` safe as one file name on any platform (rules 1-6 of the module docstring)."""
    name = _clean(name.replace("\\", "/").split("/")[-1])
    name = _UNSAFE.sub("_", name).strip(" ").rstrip(". ")
    if not name.strip("._ "):
        name = default
    if name.startswith("."):
        name = "_" + name[1:]
    if name.split(".")[0].rstrip(" ").upper() in _DEVICE_NAMES:
        name = "_" + name
    return _truncate(name).rstrip(". ") or default


def url_file_name(url: str) -> str:
    """The file name in a URL's path (percent-decoded), or ``""``."""
    try:
        return unquote(urlsplit(url).path).rsplit("/", 1)[-1]
    except ValueError:  # a malformed link: named after its key; the request refuses it
        return ""


def _with_counter(name: str, counter: int) -> str:
    stem, suffix = os.path.splitext(name)
    if not stem:
        stem, suffix = name, ""
    tail = f"-{counter}{suffix}"
    budget = MAX_NAME_BYTES - len(tail.encode("utf-8"))
    return stem.encode("utf-8")[:budget].decode("utf-8", "ignore") + tail


def output_names(
    pairs: List[Tuple[str, str]], *, reserved: Iterable[str] = ()
) -> List[Tuple[str, str, str]]:
    """Give each ``(key, url)`` output a safe, unique file name: ``(key, url, name)``.

    ``download_urls`` entries are named after their key plus the extension of
    the URL's file (``9.images.0`` -> ``9.images.0.png``); the primary
    ``download_url`` is named after the URL's file. Names equal after
    [`fold`][] to an earlier one, or to one of ``reserved``, get ``-1``,
    ``-2``... in order.
    """
    named = []
    used: Set[str] = {fold(name) for name in reserved}
    for key, url in pairs:
        url_name = url_file_name(url)
        if key:
            extension = os.path.splitext(url_name)[1]
            extension = extension if _EXTENSION.fullmatch(extension) else ""
            base = key if key.lower().endswith(extension.lower()) else key + extension
        else:
            base = url_name
        name = safe_file_name(base)
        candidate = name
        counter = 1
        while fold(candidate) in used:
            candidate = _with_counter(name, counter)
            counter += 1
        used.add(fold(candidate))
        named.append((key, url, candidate))
    return named
