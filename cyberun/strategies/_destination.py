"""The destination folder of a download: checks before anything starts, temporary files, placing.

Temporary files are named ``.<name>.<host>-<pid>-<random>.cyberun-part``: the
SDK recognises its own. One is stale when the process that made it on this
host is gone, or when it has not been written to for an hour (another host,
a process that hung); a later download into the same folder removes stale
ones. A live download writes its file continually, so it is never taken for
stale.

Files are created with mode ``0o666`` less the process umask (what ``open``
gives a normal file), exclusively and without following symlinks; a final
name that is a symlink (even a dangling one) is replaced, never written
through, and only with ``overwrite=True``.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
import socket
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

from .._names import fold
from ..errors import DownloadError

__all__ = [
    "TEMP_SUFFIX",
    "check_destination",
    "check_targets",
    "create_temp",
    "remove_stale",
]

logger: logging.Logger = logging.getLogger("cyberun")

TEMP_SUFFIX = ".cyberun-part"
#: A temporary file untouched for this long is stale whoever made it.
STALE_AFTER = 3600.0
_TEMP = re.compile(r"^\..*\.([0-9a-f]{8})-(\d+)-[0-9a-f]{8}" + re.escape(TEMP_SUFFIX) + "$")
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_BINARY = getattr(os, "O_BINARY", 0)

PathLike = Union[str, "os.PathLike[str]"]


def _host_tag() -> str:
    return hashlib.sha256(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]


def is_temp_name(name: str) -> bool:
    """True for the name of a temporary file the SDK made."""
    return _TEMP.match(name) is not None


def check_destination(dest_dir: PathLike, *, overwrite: bool = False) -> Path:
    """Refuse, before a task is started, a folder its files could not be written into.

    The folder may not exist yet (its nearest existing parent must then be a
    writable folder). An existing one must be a writable folder, and without
    ``overwrite`` it must hold nothing but the SDK's own temporary files: the
    outputs' names are only known once the task has run, so a folder already
    in use would otherwise fail after a billed run.

    Raises:
        DownloadError: the folder cannot take the files; nothing was started.
    """
    folder = Path(dest_dir)
    if os.path.lexists(folder) and not folder.is_dir():
        raise DownloadError(f"cannot download into {folder}: it exists and is not a folder")
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise DownloadError(f"cannot download into {folder}: {probe} is not a folder")
    if not os.access(str(probe), os.W_OK | os.X_OK):
        raise DownloadError(f"cannot download into {folder}: {probe} is not writable")
    if probe == folder and not overwrite:
        used = sorted(entry.name for entry in folder.iterdir() if not is_temp_name(entry.name))
        if used:
            shown = ", ".join(used[:3]) + (", ..." if len(used) > 3 else "")
            raise DownloadError(
                f"{folder} already holds files ({shown}); download into an empty or new "
                "folder, or pass overwrite=True to replace files of the same name"
            )
    return folder


def check_targets(folder: Path, names: List[str], *, overwrite: bool) -> None:
    """Refuse final names that exist (symlinks included, even dangling) or are folders.

    Existing names are compared as a case-insensitive, normalising file system
    would: ``A.png`` is taken when ``a.png`` exists.
    """
    present: Dict[str, os.DirEntry[str]] = {}
    try:
        entries = list(os.scandir(str(folder)))
    except FileNotFoundError:
        return
    for entry in entries:
        if not is_temp_name(entry.name):
            present.setdefault(fold(entry.name), entry)
    for name in names:
        found = present.get(fold(name))
        if found is None:
            continue
        entry = found
        if entry.is_dir(follow_symlinks=False):
            raise DownloadError(f"{folder / entry.name} is a folder; not replacing it", key=name)
        if not overwrite:
            kind = "a symlink" if entry.is_symlink() else "a file"
            raise DownloadError(
                f"{folder / entry.name} already exists ({kind}); "
                "pass overwrite=True to replace it",
                key=name,
            )


def create_temp(folder: Path, name: str) -> Tuple[int, Path]:
    """Create a new temporary file for ``name`` in ``folder``: ``(descriptor, path)``."""
    for _ in range(100):
        tag = f"{_host_tag()}-{os.getpid()}-{os.urandom(4).hex()}"
        path = folder / f".{name[:60]}.{tag}{TEMP_SUFFIX}"
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_BINARY
            return os.open(str(path), flags, 0o666), path
        except FileExistsError:  # pragma: no cover - 32 random bits collided
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(folder))  # pragma: no cover


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):  # another user's live process, or no such check
        return True
    return True


def remove_stale(folder: Path, *, now: Optional[float] = None) -> List[str]:
    """Remove the SDK's stale temporary files from ``folder``; return their names."""
    now = time.time() if now is None else now
    host = _host_tag()
    removed: List[str] = []
    try:
        entries = list(os.scandir(str(folder)))
    except OSError:
        return removed
    for entry in entries:
        found = _TEMP.match(entry.name)
        if found is None or not entry.is_file(follow_symlinks=False):
            continue
        try:
            idle = now - entry.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        same_host_dead = found.group(1) == host and not _alive(int(found.group(2)))
        if same_host_dead or idle > STALE_AFTER:
            try:
                os.unlink(entry.path)
            except OSError:
                continue
            removed.append(entry.name)
    if removed:
        logger.info("removed %d stale partial download(s) from %s", len(removed), folder)
    return removed
