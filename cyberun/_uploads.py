"""Input files: local checks, folders packed as zips, uploads, a cache of uploaded inputs.

Local checks compare a file with its parameter's ``accept`` list and the size
limit. An upload whose PUT fails starts again from a fresh presigned URL.

A folder is packed deterministically: files in sorted order by their relative
path (``/``-separated, never absolute), stored uncompressed (photos and
checkpoints are compressed already) with a fixed timestamp and mode, and
symlinks skipped (never followed), so the same folder gives the same bytes,
and so the same cache entry, every time.

The cache (``Client(upload_cache=...)``) maps the SHA-256 of a file's bytes,
the base URL and the team to the file key it was uploaded as. The service
keeps inputs one day; an entry is reused for at most 20 hours. Entries are
small JSON files, one per upload, written atomically.
"""

from __future__ import annotations

import hashlib
import json
import logging
import mimetypes
import os
import sys
import time
import zipfile
from pathlib import Path
from typing import IO, Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple, Union, cast

from .errors import ConfigurationError
from .models import ParameterDef, Workflow

__all__ = [
    "DEFAULT_MAX_UPLOAD_SIZE",
    "UploadCache",
    "default_cache_dir",
    "file_problems",
    "pack_folder",
]

logger: logging.Logger = logging.getLogger("cyberun")

#: The service's documented default size limit for one input.
DEFAULT_MAX_UPLOAD_SIZE = 500 * 1000 * 1000
#: Inputs are kept one day; a cached file key is reused for at most this long.
CACHE_MAX_AGE = 20 * 3600.0
READ_SIZE = 1024 * 1024
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def _accepts(definition: ParameterDef) -> List[str]:
    accept = definition.accept
    if isinstance(accept, str):
        accept = accept.split(",")
    if not isinstance(accept, (list, tuple)):
        return []
    return [str(item).strip().lower() for item in accept if str(item).strip()]


def accepts_name(definition: ParameterDef, name: str) -> bool:
    """Whether a file called ``name`` matches the parameter's ``accept`` list (empty: any)."""
    accept = _accepts(definition)
    if not accept:
        return True
    lowered = name.lower()
    kind = (mimetypes.guess_type(lowered)[0] or "").lower()
    for item in accept:
        if item.startswith("."):
            if lowered.endswith(item):
                return True
        elif item.endswith("/*"):
            if kind.startswith(item[:-1]):
                return True
        elif item == kind or item == "*/*" or item == "*":
            return True
    return False


def accepts_zip(definition: Optional[ParameterDef]) -> bool:
    """Whether a folder may be packed for this parameter (its ``accept`` lists zip)."""
    if definition is None:
        return True  # no definitions (validate=False): a folder can only go as an archive
    accept = _accepts(definition)
    return not accept or ".zip" in accept or "application/zip" in accept


def is_local_file(value: Any) -> bool:
    """A path or a readable binary file object: something to upload."""
    if isinstance(value, os.PathLike):
        return True
    return callable(getattr(value, "read", None)) and not isinstance(value, (str, bytes))


def local_name_and_size(value: Any) -> Tuple[str, Optional[int]]:
    """The name a local file is uploaded under, and its size when it is known now."""
    if isinstance(value, os.PathLike):
        path = Path(value)
        if path.is_dir():
            return (path.resolve().name or "folder") + ".zip", None
        try:
            return path.name, path.stat().st_size
        except OSError:
            return path.name, None
    name = os.path.basename(str(getattr(value, "name", "") or "upload.bin"))
    try:
        return name, remaining_size(value)
    except (OSError, ValueError):
        return name, None


def remaining_size(stream: IO[bytes]) -> int:
    """Bytes from a file object's position to its end.

    Raises:
        ConfigurationError: the file object cannot tell (not seekable, no descriptor).
    """
    import io

    if isinstance(stream, io.BytesIO):
        return len(stream.getbuffer()) - stream.tell()
    try:
        return os.fstat(stream.fileno()).st_size - stream.tell()
    except (AttributeError, OSError, io.UnsupportedOperation):
        pass
    try:
        position = stream.tell()
        end = stream.seek(0, os.SEEK_END)
        stream.seek(position)
        return end - position
    except (AttributeError, OSError, io.UnsupportedOperation) as exc:
        raise ConfigurationError(
            "cannot tell the size of this file object; pass a path, or a seekable file"
        ) from exc


def file_problems(
    workflow: Workflow, parameters: Mapping[str, Any], *, max_upload_size: Optional[int]
) -> List[str]:
    """What can be checked locally about the files given for ``file`` parameters."""
    definitions = {p.key: p for p in workflow.parameters}
    problems: List[str] = []
    for key, value in parameters.items():
        if not is_local_file(value):
            continue
        definition = definitions.get(key)
        if isinstance(value, os.PathLike) and not Path(value).exists():
            problems.append(f"parameter {key!r}: no such file or folder: {Path(value)}")
            continue
        if definition is not None and str(definition.type) not in ("file", "None"):
            problems.append(
                f"parameter {key!r} is a {definition.type} parameter, not a file; "
                "pass its value, not a file"
            )
            continue
        name, size = local_name_and_size(value)
        folder = isinstance(value, os.PathLike) and Path(value).is_dir()
        if definition is not None and folder and not accepts_zip(definition):
            shown = ", ".join(_accepts(definition))
            problems.append(
                f"parameter {key!r} takes {shown}; a folder can only be sent as a zip, "
                "which it does not accept"
            )
        elif (
            definition is not None
            and not folder
            and _named(value)  # a nameless stream's type is unknown: the server decides
            and not accepts_name(definition, name)
        ):
            shown = ", ".join(_accepts(definition))
            problems.append(f"parameter {key!r} takes {shown}, not {name!r}")
        if max_upload_size is not None and size is not None and size > max_upload_size:
            problems.append(
                f"parameter {key!r}: {name} is {size} bytes, above the upload limit of "
                f"{max_upload_size} bytes (the client's max_upload_size setting)"
            )
    return problems


def _named(value: Any) -> bool:
    return isinstance(value, os.PathLike) or isinstance(getattr(value, "name", None), str)


# --- folders -----------------------------------------------------------------------------------


def _folder_files(folder: Path) -> List[Tuple[str, Path]]:
    found: List[Tuple[str, Path]] = []
    for root, dirs, files in os.walk(str(folder), followlinks=False):
        dirs.sort()
        base = Path(root)
        for name in sorted(files):
            path = base / name
            if path.is_symlink():
                logger.info("not packing the symlink %s (symlinks are not followed)", path)
                continue
            found.append((path.relative_to(folder).as_posix(), path))
        dirs[:] = [d for d in dirs if not (base / d).is_symlink()]
    found.sort(key=lambda item: item[0])
    return found


def pack_folder(
    folder: Path,
    into: IO[bytes],
    *,
    on_progress: Optional[Callable[[int, int], None]] = None,
) -> int:
    """Write ``folder`` as a deterministic zip into ``into``; return the input bytes packed.

    ``on_progress(done, total)`` counts the input bytes packed.
    """
    files = _folder_files(folder)
    total = sum(path.stat().st_size for _, path in files)
    done = 0
    # Always written as a stream (data descriptors, no seeking back): the same
    # bytes whatever ``into`` is, so a later hash of a fresh packing matches.
    sink = _Forward(into)
    # A write-only file object is all zipfile needs in this mode.
    with zipfile.ZipFile(
        cast(IO[bytes], sink), "w", compression=zipfile.ZIP_STORED, allowZip64=True
    ) as archive:
        for arcname, path in files:
            info = zipfile.ZipInfo(arcname, date_time=_ZIP_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_STORED
            info.file_size = path.stat().st_size
            with path.open("rb") as source, archive.open(info, "w", force_zip64=True) as member:
                while True:
                    chunk = source.read(READ_SIZE)
                    if not chunk:
                        break
                    member.write(chunk)
                    done += len(chunk)
                    if on_progress is not None:
                        on_progress(done, total)
    return total


class _Forward:
    """A file object that only writes forwards (``zipfile`` then never seeks back)."""

    def __init__(self, inner: IO[bytes]) -> None:
        self.inner = inner
        self.count = 0

    def write(self, data: bytes) -> int:
        self.inner.write(data)
        self.count += len(data)
        return len(data)

    def tell(self) -> int:
        return self.count

    def flush(self) -> None:
        self.inner.flush()


def folder_size(folder: Path) -> int:
    """The bytes of the files a folder's zip would hold."""
    return sum(path.stat().st_size for _, path in _folder_files(folder))


# --- the cache --------------------------------------------------------------------------------


def default_cache_dir() -> Path:
    """The user cache folder of the platform, for the SDK's upload cache."""
    if sys.platform == "win32":  # pragma: no cover - Windows
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "cyberun" / "Cache" / "uploads"
    if sys.platform == "darwin":  # pragma: no cover - macOS
        return Path.home() / "Library" / "Caches" / "cyberun" / "uploads"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cyberun" / "uploads"


def sha256_of(stream: IO[bytes]) -> str:
    """The SHA-256 of a file object from its position to its end (the position is restored)."""
    start = stream.tell()
    digest = hashlib.sha256()
    while True:
        chunk = stream.read(READ_SIZE)
        if not chunk:
            break
        digest.update(chunk)
    stream.seek(start)
    return digest.hexdigest()


class UploadCache:
    """File keys of inputs uploaded before, by content (see the module docstring).

    Args:
        folder: where entries are kept.
        scope: what besides the bytes an entry is keyed by (base URL and team).
        clock: the wall clock (injectable for tests).
    """

    def __init__(
        self,
        folder: Union[str, os.PathLike[str]],
        scope: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.folder = Path(folder)
        self.scope = scope
        self.clock = clock

    def _entry(self, digest: str) -> Path:
        name = hashlib.sha256(f"{self.scope}\n{digest}".encode()).hexdigest()
        return self.folder / f"{name}.json"

    def get(self, digest: str, size: int) -> Optional[str]:
        """The file key of these bytes, if uploaded less than 20 hours ago."""
        try:
            entry = json.loads(self._entry(digest).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(entry, dict) or entry.get("size") != size:
            return None
        uploaded = entry.get("uploaded_at")
        key = entry.get("file_key")
        if not isinstance(uploaded, (int, float)) or not isinstance(key, str) or not key:
            return None
        if not 0 <= self.clock() - uploaded < CACHE_MAX_AGE:
            return None
        return key

    def put(self, digest: str, size: int, file_key: str) -> None:
        """Remember an upload (best effort: a cache that cannot be written is skipped)."""
        entry = {"file_key": file_key, "size": size, "uploaded_at": self.clock()}
        path = self._entry(digest)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            temp.write_text(json.dumps(entry), encoding="utf-8")
            os.replace(str(temp), str(path))
        except OSError as exc:
            logger.warning("could not write the upload cache at %s: %s", self.folder, exc)

    def forget(self, digest: str) -> None:
        """Drop an entry (the server no longer knows its file key)."""
        try:
            self._entry(digest).unlink()
        except OSError:
            pass


# --- uploading --------------------------------------------------------------------------------


class _FileBody:
    """An upload body read from a file in 1 MiB pieces.

    An iterable rather than a file object, so that every transport sends
    what it yields as it is (``http.client`` would read a file object in
    16 KiB blocks). It rewinds (``seek`` to its start) for a retry.
    """

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.start = stream.tell()

    def __iter__(self) -> Iterator[bytes]:
        while True:
            data = self.stream.read(READ_SIZE)
            if not data:
                return
            yield data

    def tell(self) -> int:
        return self.stream.tell()

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence != 0 or offset != self.start:
            raise OSError("an upload can only start again from its beginning")
        return self.stream.seek(offset)


class _HashingSink:
    """A write-only file object that keeps the SHA-256 and length of what is written."""

    def __init__(self) -> None:
        self.digest = hashlib.sha256()
        self.count = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.count += len(data)
        return len(data)

    def flush(self) -> None:
        pass


class Uploaded:
    """One uploaded input: its file key and what the run record says of it.

    The SHA-256 is known at once with the upload cache (it is the cache's
    key); otherwise the upload does not spend time on it, and the run record
    computes it from the source afterwards: a file (unless its size or
    modification time changed since), a folder packed again (the packing is
    deterministic), or a seekable file object read again from where the
    upload started. None when none of these can tell.
    """

    __slots__ = ("_stamp", "_start", "cached", "digest", "file_key", "name", "size", "source")

    def __init__(
        self, file_key: str, name: str, size: int, digest: Optional[str], cached: bool
    ) -> None:
        self.file_key = file_key
        self.name = name
        self.size = size
        self.digest = digest
        self.cached = cached
        self.source: Any = None
        self._start = 0
        self._stamp: Optional[Tuple[int, int]] = None

    def remember(self, source: Any, start: int = 0) -> None:
        """Keep where the bytes came from, for a SHA-256 computed later."""
        self.source = source
        self._start = start
        if isinstance(source, (str, os.PathLike)) and Path(source).is_file():
            status = Path(source).stat()
            self._stamp = (status.st_size, status.st_mtime_ns)

    def sha256(self) -> Optional[str]:
        """The SHA-256 of the bytes uploaded, computed now if it is not known yet."""
        if self.digest is None:
            try:
                self.digest = self._compute()
            except OSError:
                self.digest = None
        return self.digest

    def _compute(self) -> Optional[str]:
        source = self.source
        if isinstance(source, (str, os.PathLike)):
            path = Path(source)
            if path.is_dir():
                sink = _HashingSink()
                pack_folder(path, cast(IO[bytes], sink))
                return sink.digest.hexdigest() if sink.count == self.size else None
            status = path.stat()
            if self._stamp != (status.st_size, status.st_mtime_ns):
                return None  # changed since the upload
            with path.open("rb") as stream:
                return sha256_of(stream)
        seek = getattr(source, "seek", None)
        if callable(seek):
            seek(self._start)
            return sha256_of(source)
        return None

    def record(self) -> Mapping[str, Any]:
        """The run record's description of this input."""
        return {"name": self.name, "size": self.size, "sha256": self.sha256()}


class Uploader:
    """Uploads local inputs through the endpoint layer (see the module docstring).

    Args:
        api: the endpoint layer (``presign_upload`` and ``upload``).
        cache: the upload cache, or None.
        attempts: presigned URLs tried per file when the PUT fails.
    """

    def __init__(self, api: Any, *, cache: Optional[UploadCache], attempts: int = 3) -> None:
        self.api = api
        self.cache = cache
        self.attempts = attempts

    def upload(
        self,
        value: Any,
        *,
        content_type: Optional[str] = None,
        on_progress: Optional[Callable[[int, int], None]] = None,
        use_cache: bool = True,
    ) -> Uploaded:
        """Upload a path, a folder (as a zip) or a binary file object."""
        start = 0
        if not isinstance(value, (str, os.PathLike)):
            try:
                start = value.tell()
            except (AttributeError, OSError, ValueError):
                pass  # the size check refuses such a file object with a clear message
        done = self._upload(value, content_type, on_progress, use_cache=use_cache)
        done.remember(value, start)
        return done

    def _upload(
        self,
        value: Any,
        content_type: Optional[str],
        on_progress: Optional[Callable[[int, int], None]],
        *,
        use_cache: bool,
    ) -> Uploaded:
        import tempfile

        if isinstance(value, (str, os.PathLike)) and Path(value).is_dir():
            folder = Path(value)
            name = (folder.resolve().name or "folder") + ".zip"
            inputs = folder_size(folder)
            with tempfile.TemporaryFile(prefix="cyberun-zip-") as packed:
                pack_folder(
                    folder,
                    packed,
                    on_progress=None
                    if on_progress is None
                    else lambda done, total: on_progress(done, 2 * max(total, 1)),
                )
                packed.seek(0)
                sent = (
                    None
                    if on_progress is None
                    else lambda done, total: on_progress(inputs + done, inputs + total)
                )
                return self._upload_stream(
                    packed, name, "application/zip", sent, use_cache=use_cache
                )
        if isinstance(value, (str, os.PathLike)):
            path = Path(value)
            with path.open("rb") as stream:
                return self._upload_stream(
                    stream, path.name, content_type, on_progress, use_cache=use_cache
                )
        name = os.path.basename(str(getattr(value, "name", "") or "upload.bin"))
        return self._upload_stream(value, name, content_type, on_progress, use_cache=use_cache)

    def _upload_stream(
        self,
        stream: IO[bytes],
        name: str,
        content_type: Optional[str],
        on_progress: Optional[Callable[[int, int], None]],
        *,
        use_cache: bool,
    ) -> Uploaded:
        from .errors import PermissionDenied, ServerError, TransportError

        size = remaining_size(stream)
        kind = content_type or mimetypes.guess_type(name)[0] or "application/octet-stream"
        digest: Optional[str] = None
        if self.cache is not None:
            digest = sha256_of(stream)
            if use_cache:
                key = self.cache.get(digest, size)
                if key is not None:
                    logger.info("%s was uploaded before (%s); reusing its file key", name, key)
                    if on_progress is not None:
                        on_progress(size, size)
                    return Uploaded(key, name, size, digest, cached=True)
        body = _FileBody(stream)
        for attempt in range(1, self.attempts + 1):
            target = self.api.presign_upload(name, size, kind)
            try:
                self.api.upload(target, body, size=size, on_progress=on_progress)
            except (TransportError, ServerError, PermissionDenied) as exc:
                if attempt == self.attempts:
                    raise
                logger.info(
                    "uploading %s failed (%s); starting again from a fresh presigned URL",
                    name,
                    exc,
                )
                body.seek(body.start)
                continue
            break
        if self.cache is not None and digest is not None:
            self.cache.put(digest, size, target.file_key)
        return Uploaded(target.file_key, name, size, digest, cached=False)


def upload_inputs(
    uploader: Uploader,
    params: Dict[str, Any],
    on_upload_progress: Optional[Callable[[str, int, int], None]],
) -> Dict[str, Uploaded]:
    """Upload every local file in ``params``, replacing it with its file key."""
    uploads: Dict[str, Uploaded] = {}
    for key, value in list(params.items()):
        if is_local_file(value):
            progress = _progress_for(key, on_upload_progress)
            uploads[key] = uploader.upload(value, on_progress=progress)
            params[key] = uploads[key].file_key
    return uploads


def _progress_for(
    key: str, callback: Optional[Callable[[str, int, int], None]]
) -> Optional[Callable[[int, int], None]]:
    if callback is None:
        return None
    return lambda sent, total: callback(key, sent, total)


def reupload_stale(
    uploader: Uploader,
    given: Mapping[str, Any],
    params: Dict[str, Any],
    uploads: Dict[str, Uploaded],
    error: Exception,
) -> bool:
    """After a 400 naming inputs the cache reused: upload those again; False if none."""
    message = str(error)
    stale = [
        key
        for key, done in uploads.items()
        if done.cached and (repr(key) in message or key in message or done.file_key in message)
    ]
    if not stale or uploader.cache is None:
        return False
    for key in stale:
        done = uploads[key]
        if done.digest is not None:
            uploader.cache.forget(done.digest)
        logger.info("the service no longer has the cached input %r; uploading it again", key)
        value = given[key]
        if not isinstance(value, (str, os.PathLike)):
            value.seek(0)  # a file object the cache hashed from its start
        uploads[key] = uploader.upload(value, use_cache=False)
        params[key] = uploads[key].file_key
    return True


def cache_for(setting: Union[bool, str, os.PathLike[str]], scope: str) -> Optional[UploadCache]:
    """The upload cache a ``Client(upload_cache=...)`` setting asks for, or None."""
    if setting is False or setting is None:
        return None
    folder = default_cache_dir() if setting is True else Path(setting)
    return UploadCache(folder, scope)
