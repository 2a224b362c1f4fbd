"""The `storage` resource: one interface, local filesystem and S3 implementations.

Keys are '/'-separated strings built by `genoflow_dagster.zones`. Everything
streams: reads return file objects, writes go through a writer that commits
atomically (temp file + rename locally, multipart upload completed on S3) only
when the `with` block exits cleanly, so a crash never leaves half an artifact.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import dagster as dg


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
