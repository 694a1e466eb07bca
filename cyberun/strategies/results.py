"""Fetching a task's result files from their expiring presigned URLs.

Each file is streamed into a temporary file in the destination folder and
renamed into place only when complete, so no partial file ever appears
under its final name, and an interrupted or failed download leaves nothing
behind. A transfer cut short resumes with a ``Range`` request where storage
supports it. A URL that has expired (403, or ``expires_at`` in the past)
triggers one fresh GET of the result and a retry. The credential is never
sent to storage (the endpoint layer sends storage requests without it).
"""

from __future__ import annotations

import errno
import logging
import os
import re
from pathlib import Path
from typing import IO, Callable, Dict, List, Optional, Tuple, Union
from urllib.parse import unquote, urlsplit

from .._redact import redact_url
from ..api import Endpoints
from ..errors import APIError, DownloadError, ReadError, ReadTimeoutError, TransportError
from ..models import TaskResult
from ..transports._base import Timeout

__all__ = ["Downloader", "output_names", "safe_file_name"]

logger: logging.Logger = logging.getLogger("cyberun")

#: on_progress(file_name, bytes_done, bytes_total_or_None)
ProgressCallback = Callable[[str, int, Optional[int]], None]

_RESERVED = {"CON", "PRN", "AUX", "NUL"} | {
    f"{p}{i}" for p in ("COM", "LPT") for i in range(1, 10)
}
_UNSAFE = re.compile(r'[<>:"|?*\\/]')
_MAX_NAME_BYTES = 200
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


def safe_file_name(name: str, default: str = "output") -> str:
    """Make ``name`` safe as one file name on any platform.

    No directory parts, no ``..``, no leading dot, no control or NUL
    characters, none of ``<>:"|?*``, no reserved Windows device names
    (``CON``, ``NUL``, ``COM1``...), no trailing dot or space, and at most
    200 bytes in UTF-8 (the extension is kept).
    """
    name = name.replace("\\", "/").split("/")[-1]
    name = "".join(ch for ch in name if ch >= " " and ch != "\x7f")
    name = _UNSAFE.sub("_", name).strip().rstrip(". ")
    if not name.strip("._"):
        name = default
    if name.startswith("."):
        name = "_" + name[1:]
    if name.split(".")[0].upper() in _RESERVED:
        name = "_" + name
    if len(name.encode("utf-8")) > _MAX_NAME_BYTES:
        stem, dot, ext = name.rpartition(".")
        ext = f".{ext}" if dot and len(ext) <= 16 else ""
        stem = stem if dot and ext else name
        budget = _MAX_NAME_BYTES - len(ext.encode("utf-8"))
        stem = stem.encode("utf-8")[:budget].decode("utf-8", "ignore")
        name = stem + ext
    return name


def _url_file_name(url: str) -> str:
    try:
        return unquote(urlsplit(url).path).rsplit("/", 1)[-1]
    except ValueError:  # a malformed link: named after its key; the request refuses it
        return ""


def output_names(pairs: List[Tuple[str, str]]) -> List[Tuple[str, str, str]]:
    """Give each ``(key, url)`` output a safe, unique file name: ``(key, url, name)``.

    ``download_urls`` entries are named after their key plus the extension of
    the URL's file (``9.images.0`` -> ``9.images.0.png``); the primary
    ``download_url`` is named after the URL's file. Collisions (compared
    case-insensitively, as on Windows and macOS) get ``-1``, ``-2``... in order.
    """
    named = []
    used = set()
    for key, url in pairs:
        url_name = _url_file_name(url)
        if key:
            extension = os.path.splitext(url_name)[1]
            extension = extension if re.fullmatch(r"\.[A-Za-z0-9]{1,12}", extension) else ""
            base = key if key.lower().endswith(extension.lower()) else key + extension
        else:
            base = url_name
        name = safe_file_name(base)
        stem, suffix = os.path.splitext(name)
        candidate = name
        counter = 1
        while candidate.lower() in used:
            candidate = f"{stem}-{counter}{suffix}"
            counter += 1
        used.add(candidate.lower())
        named.append((key, url, candidate))
    return named


class Downloader:
    """Downloads a result's files, refreshing expired URLs once per file.

    Args:
        api: the endpoint layer (storage requests carry no credential).
        refresh: fetches the task's result again (fresh presigned URLs).
        timeout: connect/read timeouts for storage requests.
        resume_attempts: how many times an interrupted transfer is resumed.
    """

    def __init__(
        self,
        api: Endpoints,
        refresh: Callable[[], TaskResult],
        *,
        timeout: Timeout,
        resume_attempts: int = 3,
    ) -> None:
        self.api = api
        self.refresh = refresh
        self.timeout = timeout
        self.resume_attempts = resume_attempts
        self._refreshed: Dict[str, bool] = {}

    def download_all(
        self,
        result: TaskResult,
        dest_dir: Union[str, os.PathLike[str]],
        *,
        overwrite: bool = False,
        on_progress: Optional[ProgressCallback] = None,
    ) -> List[Path]:
        """Download every output of ``result`` into ``dest_dir``; return the paths."""
        if result.is_expired(margin=30):
            result = self._fresh_result(None)
        outputs = output_names(result.urls())
        folder = Path(dest_dir)
        folder.mkdir(parents=True, exist_ok=True)
        if not overwrite:
            existing = [name for _, _, name in outputs if (folder / name).exists()]
            if existing:
                raise DownloadError(
                    f"{folder / existing[0]} already exists; pass overwrite=True to replace it",
                    key=existing[0],
                )
        paths = []
        for key, url, name in outputs:
            paths.append(self._to_file(result, key, url, folder, name, on_progress))
        return paths

    def download_into(
        self,
        result: TaskResult,
        key: str,
        file: IO[bytes],
        *,
        on_progress: Optional[ProgressCallback] = None,
    ) -> int:
        """Stream one output (by key; ``""`` is the primary ``download_url``) into ``file``."""
        urls = dict(result.urls())
        if key not in urls:
            known = ", ".join(repr(k) for k in urls) or "none"
            raise DownloadError(f"the result has no output {key!r} (outputs: {known})", key=key)
        if result.is_expired(margin=30):
            result = self._fresh_result(key)
            urls = dict(result.urls())
        name = key or _url_file_name(urls[key])
        return self._transfer(key, urls[key], file, name, on_progress)

    # -- one file -------------------------------------------------------------------------

    def _to_file(
        self,
        result: TaskResult,
        key: str,
        url: str,
        folder: Path,
        name: str,
        on_progress: Optional[ProgressCallback],
    ) -> Path:
        final = folder / name
        import tempfile  # here: it loads shutil and random, a cost at `import cyberun`

        fd, temp_name = tempfile.mkstemp(dir=str(folder), prefix=f".{name[:60]}.", suffix=".part")
        temp = Path(temp_name)
        try:
            with os.fdopen(fd, "wb") as file:
                self._transfer(key, url, file, name, on_progress)
                file.flush()
                os.fsync(file.fileno())
            os.replace(str(temp), str(final))
        except BaseException as exc:
            # Nothing partial may remain: not under the final name (it was
            # never written there) and not as a temporary file either.
            try:
                temp.unlink()
            except OSError:
                pass
            if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DownloadError(
                    f"no space left on the device while writing {final}; nothing was kept",
                    key=key or name,
                ) from exc
            raise
        return final

    def _transfer(
        self,
        key: str,
        url: str,
        file: IO[bytes],
        name: str,
        on_progress: Optional[ProgressCallback],
    ) -> int:
        written = 0
        resumes = 0
        ranges_work = True
        while True:
            headers = {"Range": f"bytes={written}-"} if written else None
            try:
                response = self.api.open_download(url, headers=headers, timeout=self.timeout)
            except APIError as exc:
                if exc.status in (400, 401, 403) and not self._refreshed.get(key):
                    logger.info(
                        "download URL for %s was refused (HTTP %d); refreshing it",
                        name,
                        exc.status,
                    )
                    url = dict(self._fresh_result(key).urls()).get(key, "")
                    if not url:
                        raise DownloadError(
                            f"the refreshed result no longer lists {name}", key=key
                        ) from exc
                    continue
                raise DownloadError(
                    f"downloading {name} failed: HTTP {exc.status} from {redact_url(url)}",
                    key=key or name,
                    status=exc.status,
                ) from exc
            except TransportError as exc:
                resumes += 1
                if resumes > self.resume_attempts:
                    raise DownloadError(
                        f"downloading {name} failed: {exc}", key=key or name
                    ) from exc
                continue
            total: Optional[int] = None
            with response:
                if written and response.status == 206:
                    found = _CONTENT_RANGE.match(response.headers.get("content-range", ""))
                    if found is None or int(found.group(1)) != written:
                        raise DownloadError(
                            f"storage answered the wrong range for {name}", key=key or name
                        )
                    total = None if found.group(3) == "*" else int(found.group(3))
                else:
                    if written:  # the server ignored the Range: start again
                        ranges_work = False
                        file.seek(0)
                        file.truncate()
                        written = 0
                    length = response.headers.get("content-length")
                    total = int(length) if length and length.isdigit() else None
                try:
                    for chunk in response.iter_bytes():
                        file.write(chunk)
                        written += len(chunk)
                        if on_progress is not None:
                            on_progress(name, written, total)
                except (ReadError, ReadTimeoutError) as exc:
                    resumes += 1
                    if resumes > self.resume_attempts:
                        raise DownloadError(
                            f"downloading {name} kept failing ({exc}); nothing was kept",
                            key=key or name,
                        ) from exc
                    if (
                        not ranges_work
                        or response.headers.get("accept-ranges", "").lower() != "bytes"
                    ):
                        file.seek(0)
                        file.truncate()
                        written = 0
                    logger.info(
                        "download of %s interrupted after %d bytes; resuming", name, written
                    )
                    continue
            if total is not None and written != total:
                raise DownloadError(f"{name}: got {written} of {total} bytes", key=key or name)
            return written

    def _fresh_result(self, key: Optional[str]) -> TaskResult:
        if key is not None:
            self._refreshed[key] = True
        return self.refresh()
