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
import io
import logging
import mimetypes
import os
import re
import threading
from pathlib import Path
from typing import (
    IO,
    Any,
    Callable,
    Dict,
    Generator,
    List,
    Optional,
    Sequence,
    Tuple,
    Union,
)

from .._names import output_names, safe_file_name, url_file_name
from .._redact import redact_url
from .._terminal import visible
from ..api import Endpoints
from ..errors import (
    APIError,
    DownloadError,
    ReadError,
    ReadTimeoutError,
    TaskCancelled,
    TaskFailed,
    TransportError,
)
from ..models import TaskResult
from ..transports._base import Response, Timeout
from ._destination import check_targets, create_temp, remove_stale

__all__ = ["Downloader", "output_names", "require_completed", "safe_file_name"]

logger: logging.Logger = logging.getLogger("cyberun")

#: on_progress(file_name, bytes_done, bytes_total_or_None)
ProgressCallback = Callable[[str, int, Optional[int]], None]

_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


#: Content types that are an error page when the output is not itself HTML or XML.
_PAGE_TYPES = ("text/html", "application/xhtml+xml", "application/xml", "text/xml")
_PAGE_EXTENSIONS = (".html", ".htm", ".xhtml", ".xml")
_QUOTED = 200


def require_completed(result: TaskResult) -> None:
    """Refuse to download from a task that has not completed, naming its status.

    Raises:
        TaskFailed: the task failed (with the server's message).
        TaskCancelled: the task was cancelled.
        DownloadError: the task has not finished yet.
    """
    status = result.task_status
    if status is None or status == "completed":
        return
    if status == "failed":
        raise TaskFailed(
            f"task {result.id} failed, so it has no outputs to download: {result.task_error}",
            task_id=result.id,
            error=result.task_error,
        )
    if status == "cancelled":
        raise TaskCancelled(
            f"task {result.id} was cancelled, so it has no outputs to download",
            task_id=result.id,
        )
    raise DownloadError(
        f"task {result.id} is {status}, not completed: it has no outputs to download yet; "
        f"wait for it first (client.wait, or: cyberun watch {result.id} --download DIR)"
    )


def _validator(response: Response) -> Optional[str]:
    """What a resume's ``If-Range`` should carry: a strong ``ETag``, else ``Last-Modified``."""
    etag = response.headers.get("etag", "")
    if etag and not etag.startswith("W/"):
        return etag
    return response.headers.get("last-modified") or None


def _is_error_page(response: Response, name: str) -> bool:
    kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in _PAGE_TYPES:
        return False
    expected = (mimetypes.guess_type(name)[0] or "").lower()
    return not (name.lower().endswith(_PAGE_EXTENSIONS) or expected in _PAGE_TYPES)


def _page_error(response: Response, key: str, name: str, url: str) -> DownloadError:
    try:
        start = _head(response)
    except (ReadError, ReadTimeoutError):
        start = b""
    text = visible(start.decode("utf-8", "replace").strip())
    kind = response.headers.get("content-type", "")
    return DownloadError(
        f"storage answered {name} with a page ({visible(kind)}) instead of the file, from "
        f"{redact_url(url)}: {text!r}; nothing was kept",
        key=key or name,
        status=response.status,
    )


def _head(response: Response) -> bytes:
    got = b""
    for chunk in response.iter_bytes():
        got += chunk
        if len(got) >= _QUOTED:
            break
    response.close()
    return got[:_QUOTED]


#: on_total_progress(bytes_done, bytes_total_or_None) over every file of a download.
TotalProgress = Callable[[int, Optional[int]], None]


class _Totals:
    """A per-file progress callback that also reports the sum over every file.

    The total is known once every file has announced its size.
    """

    def __init__(
        self, files: int, per_file: Optional[ProgressCallback], total: TotalProgress
    ) -> None:
        self.files = files
        self.per_file = per_file
        self.total = total
        self.lock = threading.Lock()
        self.done: Dict[str, int] = {}
        self.sizes: Dict[str, Optional[int]] = {}

    def __call__(self, name: str, done: int, size: Optional[int]) -> None:
        if self.per_file is not None:
            self.per_file(name, done, size)
        with self.lock:
            self.done[name] = done
            self.sizes[name] = size
            known = len(self.sizes) == self.files and None not in self.sizes.values()
            overall = sum(s or 0 for s in self.sizes.values()) if known else None
            progress = sum(self.done.values())
        self.total(progress, overall)


class _Skipped(Exception):
    """A file abandoned because another one of the same download failed."""


#: ``(offset, chunk, total_or_None)`` of one output, as `Downloader.pieces` yields them.
Pieces = Generator[Tuple[int, bytes, Optional[int]], None, None]

#: How much is read from storage at a time, and buffered by ``open_output``.
READ_SIZE = 1024 * 1024


class _PiecesReader(io.RawIOBase):
    """A raw binary stream over `Downloader.pieces` (closing it closes the transfer)."""

    def __init__(self, pieces: Pieces) -> None:
        super().__init__()
        self._pieces: Optional[Pieces] = pieces
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            if self._pieces is None:
                return 0
            try:
                _, self._pending, _ = next(self._pieces)
            except StopIteration:
                self._pieces = None
                return 0
        view = memoryview(buffer).cast("B")
        count = min(len(view), len(self._pending))
        view[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count

    def close(self) -> None:
        pieces, self._pieces = self._pieces, None
        if pieces is not None:
            pieces.close()
        super().close()


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
        reserved: Sequence[str] = (),
        max_concurrency: int = 1,
        on_total_progress: Optional[TotalProgress] = None,
    ) -> List[Path]:
        """Download every output of ``result`` into ``dest_dir``; return the paths.

        ``reserved`` names (the run record's) are kept free for the caller,
        and checked as the outputs' are.
        """
        named = self.download_named(
            result,
            dest_dir,
            overwrite=overwrite,
            on_progress=on_progress,
            reserved=reserved,
            max_concurrency=max_concurrency,
            on_total_progress=on_total_progress,
        )
        return [path for _, path in named]

    def download_named(
        self,
        result: TaskResult,
        dest_dir: Union[str, os.PathLike[str]],
        *,
        overwrite: bool = False,
        on_progress: Optional[ProgressCallback] = None,
        reserved: Sequence[str] = (),
        max_concurrency: int = 1,
        on_total_progress: Optional[TotalProgress] = None,
    ) -> List[Tuple[str, Path]]:
        """As `download_all`, returning ``(output key, path)`` pairs.

        With ``max_concurrency`` above 1, that many files are fetched at a
        time, each on its own thread and connection; ``on_progress`` is then
        called from those threads.
        """
        require_completed(result)
        if result.is_expired(margin=30):
            result = self._fresh_result(None)
        outputs = output_names(result.urls(), reserved=reserved)
        folder = Path(dest_dir)
        folder.mkdir(parents=True, exist_ok=True)
        remove_stale(folder)
        names = [name for _, _, name in outputs] + list(reserved)
        check_targets(folder, names, overwrite=overwrite)
        if on_total_progress is not None:
            on_progress = _Totals(len(outputs), on_progress, on_total_progress)
        workers = min(max_concurrency, len(outputs))
        if workers <= 1:
            return [
                (key, self._to_file(key, url, folder, name, on_progress))
                for key, url, name in outputs
            ]
        return self._concurrently(outputs, folder, on_progress, workers)

    def _concurrently(
        self,
        outputs: List[Tuple[str, str, str]],
        folder: Path,
        on_progress: Optional[ProgressCallback],
        workers: int,
    ) -> List[Tuple[str, Path]]:
        """Fetch files ``workers`` at a time; the first failure stops the rest and is raised.

        Every file not written completely is removed, so a failure leaves
        the files that were finished and nothing partial.
        """
        from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

        stop = threading.Event()

        def fetch(key: str, url: str, name: str) -> Tuple[str, Path]:
            if stop.is_set():
                raise _Skipped()
            return key, self._to_file(key, url, folder, name, on_progress, stop=stop)

        with ThreadPoolExecutor(workers, thread_name_prefix="cyberun-download") as pool:
            futures = [pool.submit(fetch, key, url, name) for key, url, name in outputs]
            try:
                wait(futures, return_when=FIRST_EXCEPTION)
            except BaseException:  # Ctrl-C in the caller's thread: stop the workers too
                stop.set()
                raise
            if any(f.done() and f.exception() is not None for f in futures):
                stop.set()
                wait(futures)
                errors = [f.exception() for f in futures]
                raise next(e for e in errors if e is not None and not isinstance(e, _Skipped))
        return [f.result() for f in futures]

    def download_into(
        self,
        result: TaskResult,
        key: str,
        file: IO[bytes],
        *,
        on_progress: Optional[ProgressCallback] = None,
    ) -> int:
        """Stream one output (by key; ``""`` is the primary ``download_url``) into ``file``."""
        require_completed(result)
        urls = dict(result.urls())
        if key not in urls:
            known = ", ".join(repr(k) for k in urls) or "none"
            raise DownloadError(f"the result has no output {key!r} (outputs: {known})", key=key)
        if result.is_expired(margin=30):
            result = self._fresh_result(key)
            urls = dict(result.urls())
        name = key or url_file_name(urls[key])
        return self._transfer(key, urls[key], file, name, on_progress)

    def open_stream(self, result: TaskResult, key: Optional[str]) -> io.BufferedReader:
        """A readable binary stream of one output (``key=None``: the only one)."""
        key, url = self._pick(result, key)
        name = key or url_file_name(url)
        pieces = self.pieces(key, url, name, restartable=False)
        return io.BufferedReader(_PiecesReader(pieces), buffer_size=READ_SIZE)

    def read(self, result: TaskResult, key: Optional[str], *, max_bytes: Optional[int]) -> bytes:
        """One output's bytes (``key=None``: the only one), at most ``max_bytes``."""
        key, url = self._pick(result, key)
        name = key or url_file_name(url)
        parts: List[bytes] = []
        size = 0
        for _, chunk, total in self.pieces(key, url, name, restartable=False):
            if max_bytes is not None and (
                size + len(chunk) > max_bytes or (total or 0) > max_bytes
            ):
                raise DownloadError(
                    f"{name} is larger than max_bytes={max_bytes}; raise the limit, or stream "
                    "it with open_output or download it with download",
                    key=key or name,
                )
            parts.append(chunk)
            size += len(chunk)
        return b"".join(parts)

    def _pick(self, result: TaskResult, key: Optional[str]) -> Tuple[str, str]:
        """The output to read: ``(key, url)``, refreshing links that have expired."""
        require_completed(result)
        urls = dict(result.urls())
        if key is None:
            if len(urls) != 1:
                known = ", ".join(repr(k) for k in urls) or "none"
                raise DownloadError(
                    f"task {result.id} has {len(urls)} outputs ({known}); pass key= to pick one"
                )
            key = next(iter(urls))
        if key not in urls:
            known = ", ".join(repr(k) for k in urls) or "none"
            raise DownloadError(f"the result has no output {key!r} (outputs: {known})", key=key)
        if result.is_expired(margin=30):
            urls = dict(self._fresh_result(key).urls())
            if key not in urls:
                raise DownloadError(f"the refreshed result no longer lists {key!r}", key=key)
        return key, urls[key]

    # -- one file -------------------------------------------------------------------------

    def _to_file(
        self,
        key: str,
        url: str,
        folder: Path,
        name: str,
        on_progress: Optional[ProgressCallback],
        *,
        stop: Optional[threading.Event] = None,
    ) -> Path:
        final = folder / name
        fd, temp = create_temp(folder, name)
        try:
            with os.fdopen(fd, "wb") as file:
                self._transfer(key, url, file, name, on_progress, stop=stop)
                file.flush()
                os.fsync(file.fileno())
            if final.is_dir() and not final.is_symlink():
                raise DownloadError(f"{final} is a folder; not replacing it", key=key or name)
            # A symlink at `final` is replaced by the rename itself, never written through.
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
        *,
        stop: Optional[threading.Event] = None,
    ) -> int:
        """Write one output into ``file`` (from its current start); return the size."""
        written = 0
        for offset, chunk, total in self.pieces(key, url, name, restartable=True):
            if stop is not None and stop.is_set():
                raise _Skipped()  # another file failed: this one is abandoned
            if offset != written:  # the transfer started again from zero
                file.seek(0)
                file.truncate()
            file.write(chunk)
            written = offset + len(chunk)
            if on_progress is not None:
                on_progress(name, written, total)
        return written

    def pieces(self, key: str, url: str, name: str, *, restartable: bool) -> Pieces:
        """Yield one output's bytes as ``(offset, chunk, total_or_None)``.

        A broken transfer resumes with ``Range`` and ``If-Range``. When it
        must start again (storage ignored the range, or the object changed),
        a ``restartable`` consumer is given offset 0 again; any other gets
        the same object's bytes from where it was, or a ``DownloadError``
        when the object changed under it.
        """
        position = 0
        resumes = 0
        ranges_work = True
        validator: Optional[str] = None
        label = key or name
        while True:
            headers: Optional[Dict[str, str]] = None
            if position and (ranges_work or not restartable):
                headers = {"Range": f"bytes={position}-"}
                if validator:
                    headers["If-Range"] = validator
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
                    key=label,
                    status=exc.status,
                ) from exc
            except TransportError as exc:
                resumes += 1
                if resumes > self.resume_attempts:
                    raise DownloadError(f"downloading {name} failed: {exc}", key=label) from exc
                continue
            with response:
                if _is_error_page(response, name):
                    raise _page_error(response, key, name, url)
                now = _validator(response)
                changed = bool(validator and now and now != validator)
                skip = 0
                if headers and response.status == 206:
                    found = _CONTENT_RANGE.match(response.headers.get("content-range", ""))
                    if found is None or int(found.group(1)) != position:
                        raise DownloadError(
                            f"storage answered the wrong range for {name}", key=label
                        )
                    total = None if found.group(3) == "*" else int(found.group(3))
                    if changed:  # a server that ignored If-Range: part of another object
                        self._check_restart(name, label, restartable)
                        logger.info("%s changed on storage; starting again", name)
                        validator = None
                        position = 0
                        resumes += 1
                        if resumes > self.resume_attempts:
                            raise DownloadError(
                                f"{name} kept changing on storage during the download",
                                key=label,
                            )
                        continue
                else:
                    length = response.headers.get("content-length")
                    total = int(length) if length and length.isdigit() else None
                    if position:  # the whole object again: it changed (If-Range), or no ranges
                        ranges_work = ranges_work and changed
                        if restartable:
                            position = 0
                        elif changed:
                            self._check_restart(name, label, restartable)
                        else:  # the same object from its start: drop what was delivered
                            skip = position
                    validator = now
                try:
                    for chunk in response.iter_bytes():
                        if skip:
                            dropped = min(skip, len(chunk))
                            chunk = chunk[dropped:]
                            skip -= dropped
                            if not chunk:
                                continue
                        yield position, chunk, total
                        position += len(chunk)
                except (ReadError, ReadTimeoutError) as exc:
                    resumes += 1
                    if resumes > self.resume_attempts:
                        raise DownloadError(
                            f"downloading {name} kept failing ({exc}); nothing was kept",
                            key=label,
                        ) from exc
                    if response.headers.get("accept-ranges", "").lower() != "bytes":
                        ranges_work = False
                    if not ranges_work and restartable:
                        position = 0
                    logger.info(
                        "download of %s interrupted after %d bytes; resuming", name, position
                    )
                    continue
            if total is not None and position != total:
                raise DownloadError(f"{name}: got {position} of {total} bytes", key=label)
            return

    @staticmethod
    def _check_restart(name: str, label: str, restartable: bool) -> None:
        if not restartable:
            raise DownloadError(
                f"{name} changed on storage while it was being read; read it again", key=label
            )

    def _fresh_result(self, key: Optional[str]) -> TaskResult:
        if key is not None:
            self._refreshed[key] = True
        return self.refresh()
