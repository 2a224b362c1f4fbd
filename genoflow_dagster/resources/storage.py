"""The `storage` resource: one interface, local filesystem and S3 implementations.

Keys are '/'-separated strings built by `genoflow_dagster.zones`. Everything
streams: reads return file objects, writes go through a writer that commits
atomically (temp file + rename locally, multipart upload completed on S3) only
when the `with` block exits cleanly, so a crash never leaves half an artifact.
"""


import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import dagster as dg
from pydantic import PrivateAttr

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


class S3Storage(Storage):
    """Storage zones in an S3 bucket (or any S3-compatible endpoint: MinIO, Ceph, moto).

    Plain boto3 rather than dagster-aws's S3Resource: the resource is also built
    outside Dagster (the CLI's `upload`), and the calls needed are a handful.
    Writes spool to a local temporary file and upload only when the block exits
    cleanly (boto3 switches to multipart above 8 MiB), so an object is either
    whole or absent.
    """

    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    region_name: str | None = None
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None

    _client: Any = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._s3()

    def _s3(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            self._client = boto3.client(
                "s3",
                endpoint_url=self.endpoint_url,
                region_name=self.region_name or "us-east-1",
                aws_access_key_id=self.aws_access_key_id,
                aws_secret_access_key=self.aws_secret_access_key,
                config=Config(retries={"max_attempts": 5, "mode": "standard"}, s3={"addressing_style": "path"}),
            )
        return self._client

    def _key(self, key: str) -> str:
        if not key or key.startswith("/") or "\x00" in key or any(p in ("..", ".") for p in key.split("/")):
            raise StorageError("INVALID_KEY", f"invalid storage key {key!r}")
        return f"{self.prefix.strip('/')}/{key}" if self.prefix.strip("/") else key

    def _strip(self, full_key: str) -> str:
        base = self.prefix.strip("/")
        return full_key[len(base) + 1:] if base else full_key

    def _error(self, exc: Exception, key: str) -> StorageError:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
        if code in ("NoSuchKey", "404", "NotFound"):
            return StorageError("NOT_FOUND", f"no object at {key}")
        if code in ("AccessDenied", "403"):
            return StorageError("ACCESS_DENIED", f"access denied to {key}")
        if code == "NoSuchBucket":
            return StorageError("NO_SUCH_BUCKET", f"bucket {self.bucket} does not exist")
        return StorageError("S3_ERROR", f"S3 error on {key}: {exc}")

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    @contextlib.contextmanager
    def open_read(self, key: str) -> Iterator[BinaryIO]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            body = self._s3().get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, key) from exc
        try:
            yield body  # StreamingBody: read(n) streams from the connection
        finally:
            body.close()

    @contextlib.contextmanager
    def open_write(self, key: str) -> Iterator[BinaryIO]:
        with tempfile.SpooledTemporaryFile(max_size=16 * 1024 * 1024) as spool:
            yield spool  # type: ignore[misc]
            spool.seek(0)
            self._upload(spool, key)

    def _upload(self, fileobj: Any, key: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._s3().upload_fileobj(fileobj, self.bucket, self._key(key))
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, key) from exc

    def put_file(self, local_path: str | Path, key: str) -> ObjectInfo:
        with open(local_path, "rb") as fh:
            self._upload(fh, key)
        return self.stat(key)

    def get_file(self, key: str, local_path: str | Path) -> Path:
        from botocore.exceptions import BotoCoreError, ClientError

        target = Path(local_path)
        tmp = target.with_name(f".{target.name}.part")
        try:
            self._s3().download_file(self.bucket, self._key(key), str(tmp))
            os.replace(tmp, target)
        except (ClientError, BotoCoreError) as exc:
            tmp.unlink(missing_ok=True)
            raise self._error(exc, key) from exc
        return target

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
        except StorageError as exc:
            if exc.reason == "NOT_FOUND":
                return False
            raise
        return True

    def stat(self, key: str) -> ObjectInfo:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            head = self._s3().head_object(Bucket=self.bucket, Key=self._key(key))
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, key) from exc
        return ObjectInfo(key=key, size=head["ContentLength"], etag=head["ETag"].strip('"'),
                          last_modified=head["LastModified"].timestamp())

    def list(self, prefix: str, start_after: str | None = None, page_size: int = 1000) -> Iterator[ObjectInfo]:
        from botocore.exceptions import BotoCoreError, ClientError

        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self._key(prefix.rstrip("/")) + "/"
                                  if prefix.endswith("/") else self._key(prefix), "MaxKeys": page_size}
        if start_after:
            kwargs["StartAfter"] = self._key(start_after)
        while True:
            try:
                page = self._s3().list_objects_v2(**kwargs)
            except (ClientError, BotoCoreError) as exc:
                raise self._error(exc, prefix) from exc
            for item in page.get("Contents", []):
                yield ObjectInfo(key=self._strip(item["Key"]), size=item["Size"], etag=item["ETag"].strip('"'),
                                 last_modified=item["LastModified"].timestamp())
            if not page.get("IsTruncated"):
                return
            kwargs["ContinuationToken"] = page["NextContinuationToken"]
            kwargs.pop("StartAfter", None)

    def copy(self, src_key: str, dst_key: str) -> ObjectInfo:
        from botocore.exceptions import BotoCoreError, ClientError

        try:  # managed copy: server-side, multipart above 8 MiB (objects over 5 GB included)
            self._s3().copy({"Bucket": self.bucket, "Key": self._key(src_key)}, self.bucket, self._key(dst_key))
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, src_key) from exc
        return self.stat(dst_key)

    @contextlib.contextmanager
    def local_path(self, key: str) -> Iterator[Path]:
        folder = Path(tempfile.mkdtemp(prefix="genoflow-s3-"))
        try:
            yield self.get_file(key, folder / key.rsplit("/", 1)[-1])
        finally:
            shutil.rmtree(folder, ignore_errors=True)
