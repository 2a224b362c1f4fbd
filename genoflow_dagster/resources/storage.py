"""The `storage` resource: one interface, local filesystem and S3 implementations.

Keys are '/'-separated strings built by `genoflow_dagster.zones`. Everything
streams: reads return file objects, writes go through a writer that commits
atomically (temp file + rename locally, multipart upload completed on S3) only
when the `with` block exits cleanly, so a crash never leaves half an artifact.
"""


import builtins
import contextlib
import functools
import io
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISREG
from typing import Any, BinaryIO

import dagster as dg
from pydantic import PrivateAttr

from genoflow_dagster import settings, zones
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

    def copy(self, src_key: str, dst_key: str) -> ObjectInfo:  # type: ignore[override]  # (not pydantic's copy)
        raise NotImplementedError

    def delete_derived(self, key: str) -> bool:
        """Remove a file a stage derived and now rewrites without it (under `processed/` only: uploads, raw
        copies, quarantine and reports are never deleted this way); whether it was there."""
        raise NotImplementedError

    def sweep_incomplete_writes(self, prefix: str, older_than_seconds: float, *,
                                now: float | None = None) -> builtins.list[str]:
        """Remove what interrupted writes left under `prefix` more than `older_than_seconds` before `now`.

        A writer that dies without unwinding (killed process, lost machine) leaves debris that
        nothing lists: temporary `.part` files locally, incomplete multipart uploads on S3 (which
        S3 bills for). Returns one entry per thing removed (its key). Writes younger than the
        cutoff are left alone: they may still be in flight. `now` defaults to the clock.
        """
        raise NotImplementedError

    def keep_local_copy(self, key: str, local_path: str | Path) -> bool:
        """Offer a local file holding exactly the object at `key` (just uploaded from it) to the local
        copy cache, so the run's next `local_path(key)` downloads nothing. The file is moved, not copied;
        returns whether it was taken (only immutable, checksum-addressed keys are cached)."""
        return False

    @contextlib.contextmanager
    def local_path(self, key: str, index_key: str | None = None) -> Iterator[Path]:
        """A local filesystem path holding the object, for tools that need one (pysam, mappy).

        Local storage yields the file itself (read-only use!); S3 downloads to a
        temporary file removed on exit. `index_key` (a BAM's `.bai`, a VCF's `.tbi`:
        `key` plus a suffix) is placed beside it under the same suffix, where
        htslib looks for it.
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

    def delete_derived(self, key: str) -> bool:
        path = self._path(_derived(key))
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        return True

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

    def copy(self, src_key: str, dst_key: str) -> ObjectInfo:  # type: ignore[override]  # (not pydantic's copy)
        with self.open_read(src_key) as src, self.open_write(dst_key) as dst:
            shutil.copyfileobj(src, dst, COPY_CHUNK)
        return self.stat(dst_key)

    def sweep_incomplete_writes(self, prefix: str, older_than_seconds: float, *,
                                now: float | None = None) -> builtins.list[str]:
        """Delete the hidden `.<name>.*.part` temp files of `open_write` under `prefix` older than the cutoff."""
        cutoff = (time.time() if now is None else now) - older_than_seconds
        root = self._root()
        base = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        start = root.joinpath(*base.split("/")) if base else root
        if not start.is_dir() or start.is_symlink():
            return []
        removed: list[str] = []
        for folder, dirs, files in os.walk(start):  # os.walk does not follow directory links
            for name in sorted(files):
                if not (name.startswith(".") and name.endswith(".part")):
                    continue
                path = Path(folder, name)
                key = path.relative_to(root).as_posix()
                if not key.startswith(prefix):
                    continue
                try:
                    st = os.stat(path, follow_symlinks=False)
                    if not S_ISREG(st.st_mode) or st.st_mtime >= cutoff:
                        continue
                    path.unlink()
                except FileNotFoundError:  # finished or cleaned up meanwhile
                    continue
                removed.append(key)
            dirs.sort()
        return removed

    @contextlib.contextmanager
    def local_path(self, key: str, index_key: str | None = None) -> Iterator[Path]:
        path = self._path(key)
        self._check_no_links(path)
        if not path.is_file():
            raise StorageError("NOT_FOUND", f"no object at {key}")
        yield path


S3_PART_SIZE = 8 * 1024 * 1024  # multipart part size: memory held per write (S3's minimum part is 5 MiB)
S3_MAX_COPY_OBJECT = 5 * 1024**3  # CopyObject's limit; larger objects are copied part by part
S3_COPY_PART_SIZE = 512 * 1024 * 1024


class S3Storage(Storage):
    """Storage zones in an S3 bucket (or any S3-compatible endpoint: MinIO, Ceph, moto).

    Plain boto3 rather than dagster-aws's S3Resource: the resource is also built
    outside Dagster (the CLI's `upload`), and the calls needed are a handful.

    Failures are bounded and typed. Every request has a connect and a per-read
    timeout and a fixed number of attempts (`timeout_seconds`, `max_attempts`;
    unset, GENOFLOW_S3_TIMEOUT_SECONDS and GENOFLOW_S3_MAX_ATTEMPTS), so a hung
    endpoint costs about attempts x timeout per call (a request with a body
    also waits up to 1 s per attempt for `100 Continue`, fixed in botocore), and
    every S3 or network failure leaves as a `StorageError` naming the operation
    and the key. With the defaults (10 s, 2 attempts) that is 20-22 s a call.

    Writes stream: small objects are one PUT when the block exits cleanly; from
    `S3_PART_SIZE` on, a multipart upload sends each part as it fills (one
    part's memory) and is completed on a clean exit or aborted on any failure,
    so an object is either whole or absent. A writer killed outright leaves an
    incomplete upload that `sweep_incomplete_writes` aborts later.
    """

    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    region_name: str | None = None
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None
    timeout_seconds: float | None = None
    max_attempts: int | None = None

    _client: Any = PrivateAttr(default=None)
    _presign_client: Any = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._s3()

    def _timeout(self) -> float:
        return self.timeout_seconds if self.timeout_seconds is not None else settings.s3_timeout_seconds()

    def _attempts(self) -> int:
        return self.max_attempts if self.max_attempts is not None else settings.s3_max_attempts()

    def _s3(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config
            from botocore.exceptions import PartialCredentialsError

            try:
                self._client = boto3.client(
                    "s3",
                    endpoint_url=self.endpoint_url,
                    region_name=self.region_name or "us-east-1",
                    aws_access_key_id=_resolved(self.aws_access_key_id),
                    aws_secret_access_key=_resolved(self.aws_secret_access_key),
                    config=Config(
                        connect_timeout=self._timeout(),
                        read_timeout=self._timeout(),  # per socket read, not per object: long streams still work
                        retries={"total_max_attempts": self._attempts(), "mode": "standard"},
                        s3={"addressing_style": "path"},
                    ),
                )
            except PartialCredentialsError as exc:
                raise StorageError("ACCESS_DENIED", "incomplete S3 credentials: set both AWS_ACCESS_KEY_ID and "
                                                    "AWS_SECRET_ACCESS_KEY") from exc
        return self._client

    def _call(self, operation: str, action: str, **kwargs: Any) -> Any:
        """One S3 request; any S3 or network failure comes out as a StorageError about `action`."""
        try:
            return getattr(self._s3(), operation)(**kwargs)
        except Exception as exc:
            if not isinstance(exc, _s3_failures()):
                raise
            raise self._error(exc, action) from exc

    def _key(self, key: str) -> str:
        if not key or key.startswith("/") or "\x00" in key or any(p in ("..", ".") for p in key.split("/")):
            raise StorageError("INVALID_KEY", f"invalid storage key {key!r}")
        return f"{self.prefix.strip('/')}/{key}" if self.prefix.strip("/") else key

    def _key_prefix(self, prefix: str) -> str:
        """The bucket-side prefix for a listing prefix ('' means the whole storage)."""
        if not prefix:
            base = self.prefix.strip("/")
            return f"{base}/" if base else ""
        return self._key(prefix.rstrip("/")) + "/" if prefix.endswith("/") else self._key(prefix)

    def _strip(self, full_key: str) -> str:
        base = self.prefix.strip("/")
        return full_key[len(base) + 1:] if base else full_key

    def _endpoint(self) -> str:
        return f"endpoint {self.endpoint_url}" if self.endpoint_url else f"AWS region {self.region_name or 'us-east-1'}"

    def _error(self, exc: BaseException, action: str) -> StorageError:
        """A StorageError for a failed S3 call, in words: what happened while doing `action`.

        botocore's network errors carry no `response` (or `response=None`), so the code is read defensively.
        """
        from botocore.exceptions import (
            ClientError,
            ConnectTimeoutError,
            EndpointConnectionError,
            NoCredentialsError,
            ReadTimeoutError,
        )

        if isinstance(exc, ReadTimeoutError | ConnectTimeoutError) or _is_urllib3_timeout(exc):
            verb = "could not be connected to" if isinstance(exc, ConnectTimeoutError) else "did not answer"
            tries = "1 attempt" if self._attempts() == 1 else f"{self._attempts()} attempts"
            return StorageError("TIMEOUT", f"S3 {verb} within {self._timeout():g} s while {action} "
                                           f"({self._endpoint()}; {tries})")
        if isinstance(exc, EndpointConnectionError):
            return StorageError("UNREACHABLE", f"cannot reach S3 while {action} ({self._endpoint()})")
        if isinstance(exc, NoCredentialsError):
            return StorageError("ACCESS_DENIED", f"no S3 credentials while {action}: set AWS_ACCESS_KEY_ID "
                                                 "and AWS_SECRET_ACCESS_KEY")
        if isinstance(exc, ClientError):
            error = (getattr(exc, "response", None) or {}).get("Error") or {}
            code = str(error.get("Code") or "")
            if code in ("NoSuchKey", "404", "NotFound"):
                return StorageError("NOT_FOUND", f"no object found while {action}")
            if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                return StorageError("ACCESS_DENIED", f"S3 refused access while {action}")
            if code == "NoSuchBucket":
                return StorageError("NO_SUCH_BUCKET", f"bucket {self.bucket} does not exist ({action})")
            detail = str(error.get("Message") or code or "no detail")
            return StorageError("S3_ERROR", f"S3 answered with an error while {action}: {detail} ({code})")
        if isinstance(exc, OSError) or _is_connection_loss(exc):
            return StorageError("CONNECTION_LOST", f"the connection to S3 broke while {action} ({self._endpoint()})")
        return StorageError("S3_ERROR", f"S3 request failed while {action}: {exc}")

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    @contextlib.contextmanager
    def open_read(self, key: str) -> Iterator[BinaryIO]:
        stream = io.BufferedReader(_S3ObjectReader(self, key), buffer_size=1024 * 1024)
        try:
            yield stream
        finally:
            stream.close()

    @contextlib.contextmanager
    def open_write(self, key: str) -> Iterator[BinaryIO]:
        writer = _S3ObjectWriter(self, key)
        try:
            yield writer  # type: ignore[misc]
            writer.finish()
        except BaseException:
            writer.abort()
            raise

    def put_file(self, local_path: str | Path, key: str) -> ObjectInfo:
        with open(local_path, "rb") as src, self.open_write(key) as dst:
            shutil.copyfileobj(src, dst, S3_PART_SIZE)
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
        try:
            self.stat(key)
        except StorageError as exc:
            if exc.reason == "NOT_FOUND":
                return False
            raise
        return True

    def stat(self, key: str) -> ObjectInfo:
        head = self._call("head_object", f"checking {key}", Bucket=self.bucket, Key=self._key(key))
        return ObjectInfo(key=key, size=head["ContentLength"], etag=head["ETag"].strip('"'),
                          last_modified=head["LastModified"].timestamp())

    def list(self, prefix: str, start_after: str | None = None, page_size: int = 1000) -> Iterator[ObjectInfo]:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self._key_prefix(prefix), "MaxKeys": page_size}
        if start_after:
            kwargs["StartAfter"] = self._key(start_after)
        while True:
            page = self._call("list_objects_v2", f"listing {prefix or 'all keys'}", **kwargs)
            for item in page.get("Contents", []):
                yield ObjectInfo(key=self._strip(item["Key"]), size=item["Size"], etag=item["ETag"].strip('"'),
                                 last_modified=item["LastModified"].timestamp())
            if not page.get("IsTruncated"):
                return
            kwargs["ContinuationToken"] = page["NextContinuationToken"]
            kwargs.pop("StartAfter", None)

    def copy(self, src_key: str, dst_key: str) -> ObjectInfo:  # type: ignore[override]  # (not pydantic's copy)
        """Server-side copy: one CopyObject up to 5 GiB (atomic), part by part above (aborted on failure)."""
        action = f"copying {src_key} to {dst_key}"
        source = {"Bucket": self.bucket, "Key": self._key(src_key)}
        size = self.stat(src_key).size
        if size <= S3_MAX_COPY_OBJECT:
            self._call("copy_object", action, CopySource=source, Bucket=self.bucket, Key=self._key(dst_key))
            return self.stat(dst_key)
        upload = self._call("create_multipart_upload", action, Bucket=self.bucket, Key=self._key(dst_key))
        upload_id = upload["UploadId"]
        try:
            parts = []
            for number, start in enumerate(range(0, size, S3_COPY_PART_SIZE), start=1):
                end = min(start + S3_COPY_PART_SIZE, size) - 1
                answer = self._call("upload_part_copy", action, Bucket=self.bucket, Key=self._key(dst_key),
                                    UploadId=upload_id, PartNumber=number, CopySource=source,
                                    CopySourceRange=f"bytes={start}-{end}")
                parts.append({"PartNumber": number, "ETag": answer["CopyPartResult"]["ETag"]})
            self._call("complete_multipart_upload", action, Bucket=self.bucket, Key=self._key(dst_key),
                       UploadId=upload_id, MultipartUpload={"Parts": parts})
        except BaseException:
            self._abort_upload(self._key(dst_key), upload_id, action)
            raise
        return self.stat(dst_key)

    def delete_derived(self, key: str) -> bool:
        existed = self.exists(_derived(key))
        if existed:
            self._call("delete_object", f"removing {key}", Bucket=self.bucket, Key=self._key(key))
        return existed

    def presigned_url(self, key: str, seconds: int, *, content_type: str | None = None,
                      content_disposition: str | None = None) -> str:
        """A GET URL for `key` that works for `seconds` without credentials (Signature V4), answering with the
        given Content-Type and Content-Disposition. Made locally, no request to S3; it cannot be revoked."""
        if self._presign_client is None:  # V4 explicitly: older endpoints' default signs version 2 URLs
            import boto3
            from botocore.config import Config

            self._presign_client = boto3.client(
                "s3", endpoint_url=self.endpoint_url, region_name=self.region_name or "us-east-1",
                aws_access_key_id=_resolved(self.aws_access_key_id),
                aws_secret_access_key=_resolved(self.aws_secret_access_key),
                config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
        params = {"Bucket": self.bucket, "Key": self._key(key)}
        if content_type:
            params["ResponseContentType"] = content_type
        if content_disposition:
            params["ResponseContentDisposition"] = content_disposition
        return str(self._presign_client.generate_presigned_url("get_object", Params=params, ExpiresIn=seconds))

    # Parts sent one by one as they arrive (the upload portal): the object appears only when they are joined.

    def start_parts(self, key: str) -> str:
        """Begin a multipart upload of `key`; its id. Nothing is visible under `key` until `join_parts`."""
        answer = self._call("create_multipart_upload", f"starting the upload of {key}", Bucket=self.bucket,
                            Key=self._key(key), ChecksumAlgorithm="CRC32")
        return str(answer["UploadId"])

    def put_part(self, key: str, parts_id: str, number: int, path: Path) -> dict[str, str]:
        """Send the local file `path` as part `number` (1-based; sending a number again replaces that part, S3
        checks its CRC32); what `join_parts` needs of it. Every part but the last must be 5 MiB or more."""
        with open(path, "rb") as body:
            answer = self._call("upload_part", f"sending part {number} of {key}", Bucket=self.bucket,
                                Key=self._key(key), UploadId=parts_id, PartNumber=number, Body=body,
                                ChecksumAlgorithm="CRC32")
        part = {"ETag": str(answer["ETag"])}
        if answer.get("ChecksumCRC32"):
            part["ChecksumCRC32"] = str(answer["ChecksumCRC32"])
        return part

    def join_parts(self, key: str, parts_id: str, parts: builtins.list[dict[str, Any]]) -> ObjectInfo:
        """Join the parts (`PartNumber` plus what `put_part` answered, in order) into `key`, atomically; the
        object's info. `parts_pending` tells, after a failure, whether S3 still holds the upload."""
        self._call("complete_multipart_upload", f"joining the parts of {key}", Bucket=self.bucket,
                   Key=self._key(key), UploadId=parts_id, MultipartUpload={"Parts": parts})
        return self.stat(key)

    def parts_pending(self, key: str, parts_id: str) -> bool:
        """Whether S3 still holds the unfinished multipart upload `parts_id` (False once joined or abandoned)."""
        try:
            self._call("list_parts", f"checking the upload of {key}", Bucket=self.bucket, Key=self._key(key),
                       UploadId=parts_id, MaxParts=1)
        except StorageError as exc:
            if "NoSuchUpload" in exc.message:
                return False
            raise
        return True

    def abandon_parts(self, key: str, parts_id: str) -> None:
        """Drop a multipart upload and its parts (best effort; `sweep_incomplete_writes` catches the rest)."""
        self._abort_upload(self._key(key), parts_id, f"the upload of {key}")

    def _abort_upload(self, full_key: str, upload_id: str, action: str) -> None:
        """Best effort: when S3 cannot be reached the upload stays until `sweep_incomplete_writes`."""
        with contextlib.suppress(StorageError):
            self._call("abort_multipart_upload", f"abandoning {action}", Bucket=self.bucket, Key=full_key,
                       UploadId=upload_id)

    def sweep_incomplete_writes(self, prefix: str, older_than_seconds: float, *,
                                now: float | None = None) -> builtins.list[str]:
        """Abort the multipart uploads under `prefix` initiated more than `older_than_seconds` before `now`.

        The age is the server's `Initiated` time. (moto's server reports a fixed 2010 date for every
        upload, so against moto every unfinished upload counts as old.)
        """
        cutoff = (time.time() if now is None else now) - older_than_seconds
        action = f"listing unfinished uploads under {prefix or 'all keys'}"
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self._key_prefix(prefix)}
        removed: list[str] = []
        while True:
            page = self._call("list_multipart_uploads", action, **kwargs)
            for upload in page.get("Uploads", []):
                if upload["Initiated"].timestamp() >= cutoff:
                    continue
                key = self._strip(upload["Key"])
                try:
                    self._call("abort_multipart_upload", f"aborting the unfinished upload of {key}",
                               Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"])
                except StorageError as exc:
                    if exc.reason == "S3_ERROR" and "NoSuchUpload" in exc.message:  # completed or aborted meanwhile
                        continue
                    raise
                removed.append(key)
            if not page.get("IsTruncated"):
                return removed
            kwargs["KeyMarker"] = page["NextKeyMarker"]
            kwargs["UploadIdMarker"] = page["NextUploadIdMarker"]

    @contextlib.contextmanager
    def local_path(self, key: str, index_key: str | None = None) -> Iterator[Path]:
        """A local copy of the object. A raw object (`raw/<sample>/<sha256>/<name>`: written once, named by
        its checksum) is kept in the local copy cache and fetched once per machine, however many steps read
        it; anything else is downloaded into the work dir and removed on exit."""
        cached = _cache_path(key)
        if cached is not None and index_key is None:
            if not cached.is_file():
                cached.parent.mkdir(parents=True, exist_ok=True)
                fetched = self.get_file(key, cached.with_name(f".{cached.name}.{os.getpid()}.{time.time_ns()}"))
                os.replace(fetched, cached)  # a concurrent fetch of the same object writes the same bytes
            os.utime(cached)  # last use, for the maintenance job's eviction
            yield cached
            return
        folder = Path(tempfile.mkdtemp(prefix="s3-", dir=settings.work_dir()))
        try:
            local = self.get_file(key, folder / key.rsplit("/", 1)[-1])
            if index_key is not None:
                if not index_key.startswith(key):
                    raise StorageError("INVALID_KEY", f"index {index_key} does not sit beside {key}")
                self.get_file(index_key, Path(str(local) + index_key[len(key):]))
            yield local
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def keep_local_copy(self, key: str, local_path: str | Path) -> bool:
        cached = _cache_path(key)
        if cached is None:
            return False
        cached.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(local_path, cached)
        except OSError:  # another filesystem: the next local_path downloads it instead
            return False
        return True


RAW_COPY_CACHE = ".raw-cache"  # a name no sample id can take (zones.validate_sample_id)
def _cache_path(key: str) -> Path | None:
    """Where the local copy cache keeps a raw object: `<work dir>/.raw-cache/<sha256>/<name>`; None for a key
    that is not checksum-addressed (its content could change under the same key)."""
    raw = zones.parse_raw_key(key)
    if raw is None:
        return None
    return settings.work_dir() / RAW_COPY_CACHE / raw[0] / raw[1]


def _derived(key: str) -> str:
    """`key`, if it is a derived file (under `processed/`); anything else may not be deleted."""
    if not key.startswith(f"{zones.PROCESSED}/"):
        raise StorageError("INVALID_KEY", f"{key} is not a derived file under {zones.PROCESSED}/: it is never deleted")
    return key


def _resolved(value: str | None) -> str | None:
    """A field's value; a `dg.EnvVar` read from the environment when used outside a Dagster run.

    Inside a run Dagster has already replaced the EnvVar by its value; the CLI builds the same
    resource directly, where the field still holds the EnvVar (whose `str()` raises). Either way
    the secret comes from the environment and the resource config only names the variable.
    """
    if isinstance(value, dg.EnvVar):
        return value.get_value()
    return value


@functools.cache
def _s3_failures() -> tuple[type[BaseException], ...]:
    """What an S3 call raises when S3 or the network fails (imported late: the CLI starts without boto)."""
    from botocore.exceptions import BotoCoreError, ClientError
    from urllib3.exceptions import HTTPError

    return (BotoCoreError, ClientError, HTTPError, OSError)


def _is_urllib3_timeout(exc: BaseException) -> bool:
    from urllib3.exceptions import TimeoutError as URLLib3Timeout

    return isinstance(exc, URLLib3Timeout | TimeoutError)


def _is_connection_loss(exc: BaseException) -> bool:
    from botocore.exceptions import ConnectionClosedError, IncompleteReadError, ResponseStreamingError
    from urllib3.exceptions import HTTPError

    return isinstance(exc, ConnectionClosedError | IncompleteReadError | ResponseStreamingError | HTTPError)


class _S3ObjectReader(io.RawIOBase):
    """An object's bytes as a raw stream, every failure a StorageError.

    A connection that breaks mid-object (reset, or silent past the read timeout) is resumed
    with a ranged GET from the byte reached, pinned to the same version by its ETag, up to
    the storage's attempts less one: a long download survives a blip without starting over.
    """

    def __init__(self, storage: S3Storage, key: str) -> None:
        super().__init__()
        self._storage = storage
        self._key = key
        self._action = f"reading {key}"
        self._position = 0
        self._resumes_left = storage._attempts() - 1
        answer = storage._call("get_object", self._action, Bucket=storage.bucket, Key=storage._key(key))
        self._body = answer["Body"]
        self._etag = answer.get("ETag")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while True:
            try:
                data = self._body.read(len(view))
                break
            except Exception as exc:
                if not isinstance(exc, _s3_failures()):
                    raise
                if self._resumes_left <= 0:
                    raise self._storage._error(exc, self._action) from exc
                self._resumes_left -= 1
                self._resume()
        view[:len(data)] = data
        self._position += len(data)
        return len(data)

    def readall(self) -> bytes:
        chunks = []
        while chunk := self.read(COPY_CHUNK):
            chunks.append(chunk)
        return b"".join(chunks)

    def _resume(self) -> None:
        with contextlib.suppress(Exception):
            self._body.close()
        extra = {"IfMatch": self._etag} if self._etag else {}
        answer = self._storage._call("get_object", self._action, Bucket=self._storage.bucket,
                                     Key=self._storage._key(self._key), Range=f"bytes={self._position}-", **extra)
        self._body = answer["Body"]

    def close(self) -> None:
        if not self.closed:
            with contextlib.suppress(Exception):
                self._body.close()
        super().close()


class _S3ObjectWriter(io.RawIOBase):
    """A write-only stream to one S3 object: one PUT if it stays under a part, else a multipart upload.

    Holds at most one part (`S3_PART_SIZE`) plus the caller's last write in memory. `finish`
    makes the object appear; `abort` abandons the multipart upload, so a failure leaves nothing.
    """

    def __init__(self, storage: S3Storage, key: str) -> None:
        super().__init__()
        self._storage = storage
        self._full_key = storage._key(key)
        self._action = f"writing {key}"
        self._buffer = bytearray()
        self._parts: list[dict[str, Any]] = []
        self._upload_id: str | None = None
        self._written = 0

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._written

    def write(self, data: Any) -> int:
        if self.closed:
            raise ValueError("write to a finished S3 object")
        size = memoryview(data).nbytes
        self._buffer += data
        self._written += size
        while len(self._buffer) >= S3_PART_SIZE:
            self._send_part(bytes(self._buffer[:S3_PART_SIZE]))
            del self._buffer[:S3_PART_SIZE]
        return size

    def _send_part(self, chunk: bytes) -> None:
        storage = self._storage
        if self._upload_id is None:
            created = storage._call("create_multipart_upload", self._action, Bucket=storage.bucket,
                                    Key=self._full_key, ChecksumAlgorithm="CRC32")
            self._upload_id = created["UploadId"]
        number = len(self._parts) + 1
        answer = storage._call("upload_part", f"{self._action} (part {number})", Bucket=storage.bucket,
                               Key=self._full_key, UploadId=self._upload_id, PartNumber=number, Body=chunk,
                               ChecksumAlgorithm="CRC32")
        part = {"PartNumber": number, "ETag": answer["ETag"]}
        if answer.get("ChecksumCRC32"):
            part["ChecksumCRC32"] = answer["ChecksumCRC32"]
        self._parts.append(part)

    def finish(self) -> None:
        storage = self._storage
        if self._upload_id is None:
            storage._call("put_object", self._action, Bucket=storage.bucket, Key=self._full_key,
                          Body=bytes(self._buffer))
        else:
            if self._buffer:
                self._send_part(bytes(self._buffer))
            storage._call("complete_multipart_upload", self._action, Bucket=storage.bucket, Key=self._full_key,
                          UploadId=self._upload_id, MultipartUpload={"Parts": self._parts})
        self._buffer = bytearray()
        super().close()

    def abort(self) -> None:
        if self._upload_id is not None:
            self._storage._abort_upload(self._full_key, self._upload_id, self._action)
            self._upload_id = None
        self._buffer = bytearray()
        super().close()


def storage_from_settings() -> Storage:
    """The configured storage (GENOFLOW_STORAGE): local under GENOFLOW_DATA_DIR, or the S3 bucket.

    S3 credentials stay references to AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (never values in the
    resource config the UI shows); S3Storage resolves them itself when used outside a run (the CLI), so
    building storage needs neither Dagster definitions nor the asset graph.
    """
    if settings.storage_kind() == "s3":
        s3_config: dict[str, Any] = settings.s3_settings()
        return S3Storage(
            **s3_config,
            aws_access_key_id=dg.EnvVar("AWS_ACCESS_KEY_ID"),
            aws_secret_access_key=dg.EnvVar("AWS_SECRET_ACCESS_KEY"),
        )
    return LocalStorage(base_dir=str(settings.data_dir()))
