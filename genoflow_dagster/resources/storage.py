"""The `storage` resource: one interface, local filesystem and S3 implementations.

Keys are '/'-separated strings built by `genoflow_dagster.zones`. Everything
streams: reads return file objects, writes go through a writer that commits
atomically (temp file + rename locally, multipart upload completed on S3) only
when the `with` block exits cleanly, so a crash never leaves half an artifact.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import dagster as dg

from genoflow_dagster.errors import StorageError

COPY_CHUNK = 8 * 1024 * 1024


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str  # S3 ETag, or a size+mtime fingerprint locally: changes when content is replaced
    last_modified: float  # seconds since the epoch


class Storage(dg.ConfigurableResource):
    """Abstract storage. Subclasses: LocalStorage (default), S3Storage."""

    def uri(self, key: str) -> str:
        raise NotImplementedError

    def open_read(self, key: str) -> contextlib.AbstractContextManager[BinaryIO]:
        """A streaming binary reader. Raises StorageError(reason='NOT_FOUND') if absent."""
        raise NotImplementedError

    def open_write(self, key: str) -> contextlib.AbstractContextManager[BinaryIO]:
        """A binary writer; the object appears only if the block exits without an exception."""
        raise NotImplementedError

    def put_file(self, local_path: str | Path, key: str) -> ObjectInfo:
        raise NotImplementedError

    def put_bytes(self, data: bytes, key: str) -> ObjectInfo:
        with self.open_write(key) as fh:
            fh.write(data)
        return self.stat(key)

    def get_bytes(self, key: str) -> bytes:
        """For small objects only (JSON, parquet summaries)."""
        with self.open_read(key) as fh:
            return fh.read()

    def get_file(self, key: str, local_path: str | Path) -> Path:
        """Download to `local_path` (atomically) and return it."""
        raise NotImplementedError

    def exists(self, key: str) -> bool:
        raise NotImplementedError

    def stat(self, key: str) -> ObjectInfo:
        raise NotImplementedError

    def list(self, prefix: str, start_after: str | None = None, page_size: int = 1000) -> Iterator[ObjectInfo]:
        """Objects under `prefix` in key order, fetched page by page (never the whole listing at once)."""
        raise NotImplementedError

    def copy(self, src_key: str, dst_key: str) -> ObjectInfo:
        raise NotImplementedError

    @contextlib.contextmanager
    def local_path(self, key: str) -> Iterator[Path]:
        """A local filesystem path holding the object, for tools that need one (pysam, mappy).

        Local storage yields the file itself (read-only use!); S3 downloads to a
        temporary file removed on exit.
        """
        raise NotImplementedError
        yield  # pragma: no cover


class LocalStorage(Storage):
    """Storage zones under a local folder (the embedded default).

    The etag is `<size>-<mtime_ns>`: it changes whenever an object is replaced,
    which is all the landing sensor needs to tell a re-upload from a repeat.
    Symlinks are never followed, and keys cannot climb out of `base_dir`.
    """

    base_dir: str = "./data"

    def _root(self) -> Path:
        return Path(self.base_dir).resolve()

    def _path(self, key: str) -> Path:
        if not key or key.startswith("/") or "\\" in key or "\x00" in key:
            raise StorageError("INVALID_KEY", f"invalid storage key {key!r}")
        parts = key.split("/")
        if any(part in ("", ".", "..") for part in parts[:-1]) or parts[-1] in (".", ".."):
            raise StorageError("INVALID_KEY", f"storage key {key!r} escapes its zone")
        return self._root().joinpath(*[p for p in parts if p])

    def _check_no_links(self, path: Path) -> None:
        root = self._root()
        current = path
        while current != root and current != current.parent:
            if current.is_symlink():
                raise StorageError("SYMLINK_REFUSED", f"{current} is a symbolic link; links are not followed")
            current = current.parent

    def uri(self, key: str) -> str:
        return str(self._path(key))

    @contextlib.contextmanager
    def open_read(self, key: str) -> Iterator[BinaryIO]:
        path = self._path(key)
        self._check_no_links(path)
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError as exc:
            raise StorageError("NOT_FOUND", f"no object at {key}") from exc
        except OSError as exc:
            raise StorageError("READ_FAILED", f"cannot read {key}: {exc.strerror}") from exc
        with os.fdopen(fd, "rb", buffering=1024 * 1024) as fh:
            yield fh

    @contextlib.contextmanager
    def open_write(self, key: str) -> Iterator[BinaryIO]:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._check_no_links(path.parent)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb", buffering=1024 * 1024) as fh:
                yield fh
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def put_file(self, local_path: str | Path, key: str) -> ObjectInfo:
        with open(local_path, "rb") as src, self.open_write(key) as dst:
            shutil.copyfileobj(src, dst, COPY_CHUNK)
        return self.stat(key)

    def get_file(self, key: str, local_path: str | Path) -> Path:
        target = Path(local_path)
        tmp = target.with_name(f".{target.name}.part")
        try:
            with self.open_read(key) as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst, COPY_CHUNK)
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return target

    def exists(self, key: str) -> bool:
        path = self._path(key)
        return path.is_file() and not path.is_symlink()

    def stat(self, key: str) -> ObjectInfo:
        path = self._path(key)
        try:
            st = os.stat(path, follow_symlinks=False)
        except FileNotFoundError as exc:
            raise StorageError("NOT_FOUND", f"no object at {key}") from exc
        return ObjectInfo(key=key, size=st.st_size, etag=f"{st.st_size}-{st.st_mtime_ns}",
                          last_modified=st.st_mtime)

    def list(self, prefix: str, start_after: str | None = None, page_size: int = 1000) -> Iterator[ObjectInfo]:
        """Keys under `prefix` in lexicographic order, walking one directory at a time.

        Temporary `.part` files of writes in flight and symbolic links are skipped.
        """
        root = self._root()
        base = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        start = root.joinpath(*base.split("/")) if base else root
        if not start.is_dir() or start.is_symlink():
            return
        yield from self._walk(root, start, prefix, start_after)

    def _walk(self, root: Path, folder: Path, prefix: str, start_after: str | None) -> Iterator[ObjectInfo]:
        try:
            # A folder sorts as "name/", so the walk yields keys in the same order S3 lists them.
            entries = sorted(os.scandir(folder),
                             key=lambda e: e.name + ("/" if e.is_dir(follow_symlinks=False) else ""))
        except OSError:
            return
        for entry in entries:
            if entry.is_symlink():
                continue
            rel = Path(entry.path).relative_to(root).as_posix()
            if entry.is_dir(follow_symlinks=False):
                child = rel + "/"
                if not (child.startswith(prefix) or prefix.startswith(child)):
                    continue
                if start_after and not (child > start_after or start_after.startswith(child)):
                    continue
                yield from self._walk(root, Path(entry.path), prefix, start_after)
            elif entry.is_file(follow_symlinks=False):
                if entry.name.startswith(".") and entry.name.endswith(".part"):
                    continue
                if not rel.startswith(prefix) or (start_after and rel <= start_after):
                    continue
                st = entry.stat(follow_symlinks=False)
                yield ObjectInfo(key=rel, size=st.st_size, etag=f"{st.st_size}-{st.st_mtime_ns}",
                                 last_modified=st.st_mtime)

    def copy(self, src_key: str, dst_key: str) -> ObjectInfo:
        with self.open_read(src_key) as src, self.open_write(dst_key) as dst:
            shutil.copyfileobj(src, dst, COPY_CHUNK)
        return self.stat(dst_key)

    @contextlib.contextmanager
    def local_path(self, key: str) -> Iterator[Path]:
        path = self._path(key)
        self._check_no_links(path)
        if not path.is_file():
            raise StorageError("NOT_FOUND", f"no object at {key}")
        yield path
