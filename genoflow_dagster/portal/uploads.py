"""Resumable uploads into the landing zone: the portal's state (SQLite) and chunk files, no web framework here.

An upload is declared first (sample, file name, size, optional SHA-256), then its chunks arrive in any
order and may be sent again (a re-sent chunk replaces the stored one). Nothing appears under landing/ before
`complete`, so the landing sensor never sees a partial file:
- On S3 (a storage with `PartsTarget`'s methods) the upload is an S3 multipart upload of the landing key,
  begun when it is declared: each chunk is sent on as its part when it arrives, and `complete` checks the
  SHA-256 of the chunks kept on the portal's disk, then joins the parts (one request, atomic). Completing a
  5 GB file costs a local read, not a 5 GB copy inside the request.
- Locally (or with chunks under S3's 5 MiB part minimum), `complete` streams the chunks in order through
  SHA-256 into `storage.open_write(landing/<sample>/<file>)`, which commits atomically (temp file + rename).
Until then every byte sits under `<data dir>/.portal/chunks/` (and, on S3, in the unfinished multipart upload).

State lives in `<data dir>/.portal/portal.sqlite3`: `uploads`, `chunks` (which chunk numbers are stored,
what a client reads to resume after an interruption) and `audit`, append-only (triggers refuse UPDATE and
DELETE). Each call opens its own connection, so the web server's worker threads never share one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from genoflow_dagster import zones
from genoflow_dagster.errors import StorageError
from genoflow_dagster.formats.detect import COMPRESSIBLE, COMPRESSION_SUFFIXES, EXTENSIONS, format_from_name

# The codes of the portal's error body (DESIGN.md, "Upload portal and API").
NO_FILE = "NO_FILE"
EMPTY_FILENAME = "EMPTY_FILENAME"
INVALID_FILE_TYPE = "INVALID_FILE_TYPE"
FILE_TOO_LARGE = "FILE_TOO_LARGE"
VALIDATION_ERROR = "VALIDATION_ERROR"
STORAGE_ERROR = "STORAGE_ERROR"
INTERNAL_ERROR = "INTERNAL_ERROR"
ERROR_CODES = (NO_FILE, EMPTY_FILENAME, INVALID_FILE_TYPE, FILE_TOO_LARGE, VALIDATION_ERROR, STORAGE_ERROR,
               INTERNAL_ERROR)

RECEIVING = "receiving"  # declared; chunks arriving
ASSEMBLING = "assembling"  # complete called; streaming into storage
LANDED = "landed"  # the file is whole under landing/
FAILED = "failed"  # complete refused it (checksum mismatch, storage failure): nothing landed
CANCELLED = "cancelled"  # the sender gave it up: its chunks are removed, nothing landed

COPY_BUFFER = 1024 * 1024
S3_MIN_PART_BYTES = 5 * 1024 * 1024  # every part of an S3 multipart upload but the last is at least this
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")

if TYPE_CHECKING:
    from genoflow_dagster.resources.storage import Storage


@runtime_checkable
class PartsTarget(Protocol):
    """A storage that takes an object in parts as they arrive and shows it only once joined (S3Storage)."""

    def start_parts(self, key: str) -> str: ...

    def put_part(self, key: str, parts_id: str, number: int, path: Path) -> dict[str, str]: ...

    def join_parts(self, key: str, parts_id: str, parts: list[dict[str, Any]]) -> Any: ...

    def parts_pending(self, key: str, parts_id: str) -> bool: ...

    def abandon_parts(self, key: str, parts_id: str) -> None: ...


class UploadError(Exception):
    """A refusal with one of `ERROR_CODES`, plain words, and the HTTP status the API answers with."""

    def __init__(self, code: str, message: str, http_status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.http_status = http_status


@dataclass(frozen=True)
class Upload:
    upload_id: str
    sample_id: str
    file_name: str
    landing_key: str
    size: int
    chunk_size: int
    chunk_count: int
    declared_sha256: str | None
    sha256: str | None
    state: str
    error_code: str | None
    error_message: str | None
    created: float
    completed: float | None
    actor: str | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def supported_formats() -> dict[str, Any]:
    """What the validators accept, from `formats.detect`'s own tables: each format's extensions, and which of
    them may also be gzip/BGZF compressed (then any of `COMPRESSION_SUFFIXES` may follow)."""
    formats: dict[str, dict[str, Any]] = {}
    for extension, fmt in EXTENSIONS.items():
        entry = formats.setdefault(fmt, {"format": fmt, "extensions": [], "compressed_extensions": []})
        entry["extensions"].append(extension)
        if fmt in COMPRESSIBLE:
            entry["compressed_extensions"] += [extension + suffix for suffix in COMPRESSION_SUFFIXES]
    return {"formats": [formats[name] for name in sorted(formats)],
            "compression_suffixes": list(COMPRESSION_SUFFIXES)}


def file_format(file_name: str) -> str:
    """The format the validators will read `file_name` as, from its extension; INVALID_FILE_TYPE otherwise.

    A compression suffix counts only on a format that may be compressed (`.fastq.gz` yes, `.bam.gz` no),
    as `formats.validate` refuses the others."""
    fmt, compressed = format_from_name(file_name)
    if fmt is None:
        raise UploadError(INVALID_FILE_TYPE, f"{file_name} does not end in an extension GenoFlow reads "
                          "(for example .fastq.gz, .bam, .vcf.gz); see /supported_formats")
    if compressed and fmt not in COMPRESSIBLE:
        raise UploadError(INVALID_FILE_TYPE, f"{file_name}: {fmt.upper()} files are not accepted compressed "
                          "as a whole; send the file itself")
    return fmt


def too_large(size: int, max_bytes: int) -> UploadError:
    return UploadError(FILE_TOO_LARGE, f"the file is {size:,} bytes; the limit is {max_bytes:,}", 413)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS uploads (
    upload_id TEXT PRIMARY KEY, sample_id TEXT NOT NULL, file_name TEXT NOT NULL, landing_key TEXT NOT NULL,
    size INTEGER NOT NULL, chunk_size INTEGER NOT NULL, declared_sha256 TEXT, sha256 TEXT,
    state TEXT NOT NULL, error_code TEXT, error_message TEXT, created REAL NOT NULL, completed REAL, actor TEXT
);
CREATE INDEX IF NOT EXISTS uploads_by_time ON uploads (created);
CREATE TABLE IF NOT EXISTS chunks (
    upload_id TEXT NOT NULL REFERENCES uploads (upload_id), number INTEGER NOT NULL, size INTEGER NOT NULL,
    received REAL NOT NULL, PRIMARY KEY (upload_id, number)
);
CREATE TABLE IF NOT EXISTS audit (
    audit_id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, actor TEXT, action TEXT NOT NULL,
    upload_id TEXT, allowed INTEGER NOT NULL, detail TEXT
);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit table is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit table is append-only'); END;
"""


# Columns added after the first release: (table, column, type), added to an older database when it opens.
_ADDED_COLUMNS = (("uploads", "parts_id", "TEXT"), ("chunks", "part", "TEXT"))


class UploadStore:
    """Uploads, their chunks and the audit trail under `state_dir` (`<data dir>/.portal`).

    With `storage` given, uploads into a storage that takes parts (S3) go to it part by part as chunks arrive;
    without it (the token commands) nothing is sent anywhere."""

    def __init__(self, state_dir: str | Path, storage: Storage | None = None) -> None:
        self.state_dir = Path(state_dir)
        self.chunk_dir = self.state_dir / "chunks"
        self.chunk_dir.mkdir(parents=True, exist_ok=True)
        self.db_path = self.state_dir / "portal.sqlite3"
        self._parts_target: PartsTarget | None = storage if isinstance(storage, PartsTarget) else None
        self._restart_lock = threading.Lock()
        with self.connect() as db:
            db.executescript(_SCHEMA)
            for table, column, kind in _ADDED_COLUMNS:
                if column not in {row[1] for row in db.execute(f"PRAGMA table_info({table})")}:
                    db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")

    def release_interrupted_assemblies(self) -> list[str]:
        """Uploads left `assembling` by a server that stopped mid-complete, made completable again.

        Their chunks are still stored and the storage writer left nothing behind (a write commits only
        when it finishes), so completing them again is safe. Call it when the one portal process starts.
        """
        with self.connect() as db:
            ids = [row[0] for row in db.execute("SELECT upload_id FROM uploads WHERE state = ?", (ASSEMBLING,))]
            db.execute("UPDATE uploads SET state = ? WHERE state = ?", (RECEIVING, ASSEMBLING))
        for upload_id in ids:
            self.audit("upload_assembly_interrupted", actor=None, upload_id=upload_id)
        return ids

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """A connection of its own in autocommit mode (closed on exit); one per call, never shared."""
        with closing(sqlite3.connect(self.db_path, timeout=30, isolation_level=None)) as db:
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA busy_timeout=30000")
            yield db

    # ------------------------------------------------------------ audit

    def audit(self, action: str, *, actor: str | None, upload_id: str | None = None, allowed: bool = True,
              detail: str | None = None) -> None:
        with self.connect() as db:
            db.execute("INSERT INTO audit (at, actor, action, upload_id, allowed, detail) VALUES (?, ?, ?, ?, ?, ?)",
                       (time.time(), actor, action, upload_id, int(allowed), detail))

    def audit_rows(self) -> list[dict[str, Any]]:
        with self.connect() as db:
            return [dict(row) for row in db.execute("SELECT * FROM audit ORDER BY audit_id")]

    # ------------------------------------------------------------ uploads

    def create(self, sample_id: str, file_name: str, size: int, *, chunk_size: int, max_bytes: int,
               sha256: str | None = None, actor: str | None = None) -> Upload:
        """Declare an upload; refused (UploadError) before any byte is sent when it cannot be accepted."""
        if not file_name or not file_name.strip():
            raise UploadError(EMPTY_FILENAME, "the file has no name")
        try:
            zones.validate_sample_id(sample_id)
            key = zones.landing_key(sample_id, file_name)
        except zones.UnsafeKeyError as exc:
            raise UploadError(VALIDATION_ERROR, str(exc)) from exc
        file_format(key.rsplit("/", 1)[-1])
        if size > max_bytes:
            raise too_large(size, max_bytes)
        if size <= 0:
            raise UploadError(VALIDATION_ERROR, "the file is empty (0 bytes): there is nothing to upload")
        if sha256 is not None and not _SHA256_RE.match(sha256.lower()):
            raise UploadError(VALIDATION_ERROR, "the SHA-256 must be 64 hexadecimal characters")
        upload_id = uuid.uuid4().hex
        with self.connect() as db:
            db.execute("BEGIN IMMEDIATE")  # the check and the insert as one: two senders cannot both pass
            busy = db.execute("SELECT upload_id FROM uploads WHERE landing_key = ? AND state IN (?, ?)",
                              (key, RECEIVING, ASSEMBLING)).fetchone()
            if busy is not None:
                db.execute("ROLLBACK")
                raise UploadError(VALIDATION_ERROR, f"{key.rsplit('/', 1)[-1]} of sample {sample_id} is already "
                                  f"being uploaded (upload {busy[0]}): resume that one, or cancel it first", 409)
            db.execute("INSERT INTO uploads (upload_id, sample_id, file_name, landing_key, size, chunk_size, "
                       "declared_sha256, state, created, actor) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (upload_id, sample_id, key.rsplit("/", 1)[-1], key, size, chunk_size,
                        sha256.lower() if sha256 else None, RECEIVING, time.time(), actor))
            db.execute("COMMIT")
        if self._parts_target is not None and (chunk_size >= S3_MIN_PART_BYTES or size <= chunk_size):
            try:
                parts_id = self._parts_target.start_parts(key)
            except StorageError as exc:
                with self.connect() as db:
                    db.execute("UPDATE uploads SET state = ? WHERE upload_id = ?", (CANCELLED, upload_id))
                raise UploadError(STORAGE_ERROR, f"the upload could not be started in storage: {exc.message}",
                                  503) from exc
            with self.connect() as db:
                db.execute("UPDATE uploads SET parts_id = ? WHERE upload_id = ?", (parts_id, upload_id))
        self.audit("upload_started", actor=actor, upload_id=upload_id, detail=f"{key} ({size:,} bytes)")
        return self.get(upload_id)

    def get(self, upload_id: str) -> Upload:
        with self.connect() as db:
            row = db.execute("SELECT * FROM uploads WHERE upload_id = ?", (upload_id,)).fetchone()
        if row is None:
            raise UploadError(VALIDATION_ERROR, f"there is no upload {upload_id}", 404)
        return _upload(row)

    def history(self, *, actor: str | None = None, limit: int = 100) -> list[Upload]:
        """The latest uploads first; only `actor`'s when given."""
        query = "SELECT * FROM uploads" + (" WHERE actor = ?" if actor is not None else "")
        params: tuple[Any, ...] = (actor,) if actor is not None else ()
        with self.connect() as db:
            rows = db.execute(query + " ORDER BY created DESC, rowid DESC LIMIT ?", (*params, limit)).fetchall()
        return [_upload(row) for row in rows]

    def stored_chunks(self, upload_id: str) -> list[int]:
        with self.connect() as db:
            return [row[0] for row in db.execute("SELECT number FROM chunks WHERE upload_id = ? ORDER BY number",
                                                 (upload_id,))]

    def _chunk_path(self, upload_id: str, number: int) -> Path:
        return self.chunk_dir / upload_id / f"{number:06d}"

    def put_chunk(self, upload_id: str, number: int, data: Iterable[bytes]) -> int:
        """Store chunk `number` (0-based) from a stream of byte blocks, replacing an earlier copy; returns its size.

        Every chunk but the last is `chunk_size` bytes, the last the rest of the declared size: a chunk that
        runs past its share is FILE_TOO_LARGE (more bytes than declared) and refused while it streams; one that
        stops short is VALIDATION_ERROR. The chunk is written to a temporary file and renamed, so an interrupted
        send leaves the earlier copy, or none."""
        upload = self.get(upload_id)
        if upload.state not in (RECEIVING, FAILED):  # a failed completion keeps its chunks: fix one, complete again
            raise UploadError(VALIDATION_ERROR, f"upload {upload_id} is {upload.state}: it takes no more chunks", 409)
        if not 0 <= number < upload.chunk_count:
            raise UploadError(VALIDATION_ERROR, f"chunk {number} does not exist: this upload has chunks 0 to "
                              f"{upload.chunk_count - 1}")
        expected = min(upload.chunk_size, upload.size - number * upload.chunk_size)
        folder = self.chunk_dir / upload_id
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{number:06d}.", suffix=".part", dir=folder)
        received = 0
        try:
            with os.fdopen(fd, "wb") as fh:
                for block in data:
                    received += len(block)
                    if received > expected:
                        raise UploadError(FILE_TOO_LARGE, f"chunk {number} is larger than {expected:,} bytes: "
                                          f"more bytes arrived than the declared size of {upload.size:,}", 413)
                    fh.write(block)
            if received != expected:
                raise UploadError(VALIDATION_ERROR, f"chunk {number} has {received:,} bytes; {expected:,} were "
                                  "expected (was the sending interrupted? send it again)")
            os.replace(tmp_name, self._chunk_path(upload_id, number))
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        part = None
        parts_id = self._parts_id(upload_id)
        if parts_id is not None and self._parts_target is not None:
            try:  # the chunk counts as stored only once S3 has it: a failure here is re-sent by the client
                part = json.dumps(self._put_part(upload, parts_id, number))
            except StorageError as exc:
                raise UploadError(STORAGE_ERROR, f"chunk {number} could not be passed on to storage: "
                                  f"{exc.message}; send it again", 503) from exc
        with self.connect() as db:
            db.execute("INSERT OR REPLACE INTO chunks (upload_id, number, size, received, part) VALUES (?, ?, ?, ?, ?)",
                       (upload_id, number, received, time.time(), part))
            db.execute("UPDATE uploads SET state = ? WHERE upload_id = ? AND state = ?", (RECEIVING, upload_id, FAILED))
        return received

    def complete(self, upload_id: str, storage: Storage, *, actor: str | None = None) -> Upload:
        """Stream the chunks in order through SHA-256 into the landing zone; the file appears whole or not at all.

        Completing a landed upload again answers the same result. A declared SHA-256 that differs from the
        bytes received is VALIDATION_ERROR and nothing lands (the chunks are kept: re-send the wrong ones).
        """
        upload = self.get(upload_id)
        if upload.state == LANDED:
            return upload
        if upload.state == CANCELLED:
            raise UploadError(VALIDATION_ERROR, f"upload {upload_id} was cancelled; start a new one", 409)
        missing = sorted(set(range(upload.chunk_count)) - set(self.stored_chunks(upload_id)))
        if missing:
            shown = ", ".join(str(n) for n in missing[:20]) + (" ..." if len(missing) > 20 else "")
            raise UploadError(VALIDATION_ERROR, f"{len(missing)} of {upload.chunk_count} chunks have not arrived "
                              f"yet (chunks {shown}); send them, then complete the upload", 409)
        with self.connect() as db:  # one assembler: the state moves on only for the caller that saw it receiving
            claimed = db.execute("UPDATE uploads SET state = ? WHERE upload_id = ? AND state IN (?, ?)",
                                 (ASSEMBLING, upload_id, RECEIVING, FAILED)).rowcount
        if not claimed:
            raise UploadError(VALIDATION_ERROR, f"upload {upload_id} is already being completed", 409)
        digest = hashlib.sha256()
        parts_id = self._parts_id(upload_id)
        try:
            if parts_id is not None and self._parts_target is not None:
                self._hash_chunks(upload, digest)
                self._join_parts(upload, parts_id)
            else:
                with storage.open_write(upload.landing_key) as out:
                    self._hash_chunks(upload, digest, out)
        except UploadError as exc:
            self._fail(upload_id, exc.code, exc.message, actor)
            raise
        except StorageError as exc:
            self._fail(upload_id, STORAGE_ERROR, exc.message, actor)
            raise UploadError(STORAGE_ERROR, f"the file could not be stored: {exc.message}", 503) from exc
        except OSError as exc:  # local storage: a full disk, a folder in the way, no permission
            self._fail(upload_id, STORAGE_ERROR, exc.strerror or "write failed", actor)
            raise UploadError(STORAGE_ERROR, f"the file could not be stored in {upload.landing_key}: "
                              f"{exc.strerror or 'the write failed'}", 503) from exc
        except BaseException:
            self._fail(upload_id, INTERNAL_ERROR, "the upload could not be completed", actor)
            raise
        with self.connect() as db:
            db.execute("UPDATE uploads SET state = ?, sha256 = ?, completed = ?, error_code = NULL, "
                       "error_message = NULL WHERE upload_id = ?", (LANDED, digest.hexdigest(), time.time(), upload_id))
        self._remove_chunks(upload_id)
        self.audit("upload_landed", actor=actor, upload_id=upload_id,
                   detail=f"{upload.landing_key} sha256={digest.hexdigest()}")
        return self.get(upload_id)

    def _hash_chunks(self, upload: Upload, digest: Any, out: Any = None) -> None:
        """Read the chunks in order through `digest` (and into `out`); refuse a SHA-256 other than the declared one
        before anything is committed."""
        for number in range(upload.chunk_count):
            with open(self._chunk_path(upload.upload_id, number), "rb") as chunk:
                while block := chunk.read(COPY_BUFFER):
                    digest.update(block)
                    if out is not None:
                        out.write(block)
        if upload.declared_sha256 and digest.hexdigest() != upload.declared_sha256:
            raise UploadError(VALIDATION_ERROR, f"the file received has SHA-256 {digest.hexdigest()}, not "
                              f"the {upload.declared_sha256} declared: a chunk was damaged on the way; "
                              "nothing was stored", 422)

    def _put_part(self, upload: Upload, parts_id: str, number: int) -> dict[str, str]:
        """Send stored chunk `number` as its part. If S3 no longer knows the multipart upload (swept as
        abandoned, or aborted by hand), a new one is begun and every stored chunk is sent again from disk."""
        assert self._parts_target is not None
        try:
            return self._parts_target.put_part(upload.landing_key, parts_id, number + 1,
                                               self._chunk_path(upload.upload_id, number))
        except StorageError:
            if self._parts_target.parts_pending(upload.landing_key, parts_id):
                raise
        with self._restart_lock:  # chunks in flight together fail together: one of them begins the new upload
            if self._parts_id(upload.upload_id) == parts_id:
                self._restart_parts(upload)
            current = str(self._parts_id(upload.upload_id))
        return self._parts_target.put_part(upload.landing_key, current, number + 1,
                                           self._chunk_path(upload.upload_id, number))

    def _restart_parts(self, upload: Upload) -> None:
        assert self._parts_target is not None
        parts_id = self._parts_target.start_parts(upload.landing_key)
        with self.connect() as db:
            db.execute("UPDATE uploads SET parts_id = ? WHERE upload_id = ?", (parts_id, upload.upload_id))
            stored = [row[0] for row in db.execute("SELECT number FROM chunks WHERE upload_id = ?",
                                                   (upload.upload_id,))]
        for number in stored:
            part = self._parts_target.put_part(upload.landing_key, parts_id, number + 1,
                                               self._chunk_path(upload.upload_id, number))
            with self.connect() as db:
                db.execute("UPDATE chunks SET part = ? WHERE upload_id = ? AND number = ?",
                           (json.dumps(part), upload.upload_id, number))
        self.audit("upload_parts_resent", actor=None, upload_id=upload.upload_id,
                   detail=f"storage had dropped the unfinished upload; {len(stored)} stored chunk(s) sent again")

    def _join_parts(self, upload: Upload, parts_id: str) -> None:
        """Make the S3 object appear from its parts. If S3 no longer knows the upload, either an earlier join
        went through (the portal stopped before recording it: the object is there with the declared size) or
        the upload was dropped (its parts are sent again from the pieces on disk, then joined)."""
        assert self._parts_target is not None
        try:
            self._parts_target.join_parts(upload.landing_key, parts_id, self._parts(upload))
            return
        except StorageError:
            if self._parts_target.parts_pending(upload.landing_key, parts_id):
                raise
        if self._landed_whole(upload):
            return  # joined before
        with self._restart_lock:
            self._restart_parts(upload)
        self._parts_target.join_parts(upload.landing_key, str(self._parts_id(upload.upload_id)), self._parts(upload))

    def _parts(self, upload: Upload) -> list[dict[str, Any]]:
        with self.connect() as db:
            rows = db.execute("SELECT number, part FROM chunks WHERE upload_id = ? ORDER BY number",
                              (upload.upload_id,)).fetchall()
        return [{"PartNumber": row["number"] + 1, **json.loads(row["part"] or "{}")} for row in rows]

    def _landed_whole(self, upload: Upload) -> bool:
        """Whether the landing key holds an object of the upload's size written since it was declared (an
        earlier file of the same name is older)."""
        stat = getattr(self._parts_target, "stat", None)
        try:
            found = stat(upload.landing_key) if stat is not None else None
        except StorageError:
            return False
        return found is not None and found.size == upload.size and found.last_modified >= int(upload.created)

    def _parts_id(self, upload_id: str) -> str | None:
        with self.connect() as db:
            row = db.execute("SELECT parts_id FROM uploads WHERE upload_id = ?", (upload_id,)).fetchone()
        return None if row is None else row["parts_id"]

    def _abandon_parts(self, upload: Upload) -> None:
        parts_id = self._parts_id(upload.upload_id)
        if parts_id is not None and self._parts_target is not None:
            self._parts_target.abandon_parts(upload.landing_key, parts_id)

    def cancel(self, upload_id: str, *, actor: str | None = None) -> Upload:
        """Give up an upload that has not landed: its chunks are removed and it takes no more."""
        with self.connect() as db:
            changed = db.execute("UPDATE uploads SET state = ? WHERE upload_id = ? AND state IN (?, ?)",
                                 (CANCELLED, upload_id, RECEIVING, FAILED)).rowcount
        upload = self.get(upload_id)
        if not changed and upload.state != CANCELLED:
            raise UploadError(VALIDATION_ERROR, f"upload {upload_id} is {upload.state}: it cannot be cancelled", 409)
        if changed:
            self._abandon_parts(upload)
        self._remove_chunks(upload_id)
        if changed:
            self.audit("upload_cancelled", actor=actor, upload_id=upload_id)
        return upload

    def expire_abandoned(self, older_than_seconds: float, *, now: float | None = None) -> list[str]:
        """Cancel the uploads nobody has sent to for `older_than_seconds` (their chunks hold disk space);
        returns their ids. The last activity is the latest chunk received, or the declaration."""
        cutoff = (time.time() if now is None else now) - older_than_seconds
        with self.connect() as db:
            ids = [row[0] for row in db.execute(
                "SELECT u.upload_id FROM uploads u LEFT JOIN chunks c ON c.upload_id = u.upload_id "
                "WHERE u.state IN (?, ?) GROUP BY u.upload_id HAVING MAX(u.created, COALESCE(MAX(c.received), 0)) < ?",
                (RECEIVING, FAILED, cutoff))]
            for upload_id in ids:
                db.execute("UPDATE uploads SET state = ? WHERE upload_id = ?", (CANCELLED, upload_id))
        for upload_id in ids:
            self._abandon_parts(self.get(upload_id))
            self._remove_chunks(upload_id)
            self.audit("upload_expired", actor=None, upload_id=upload_id,
                       detail=f"nothing sent for {older_than_seconds / 86400:g} days")
        return ids

    def _fail(self, upload_id: str, code: str, message: str, actor: str | None) -> None:
        with self.connect() as db:
            db.execute("UPDATE uploads SET state = ?, error_code = ?, error_message = ? WHERE upload_id = ?",
                       (FAILED, code, message, upload_id))
        self.audit("upload_failed", actor=actor, upload_id=upload_id, allowed=False, detail=f"{code}: {message}")

    def _remove_chunks(self, upload_id: str) -> None:
        folder = self.chunk_dir / upload_id
        if folder.is_dir():
            for path in folder.iterdir():
                path.unlink(missing_ok=True)
            folder.rmdir()


def _upload(row: sqlite3.Row) -> Upload:
    size, chunk_size = row["size"], row["chunk_size"]
    return Upload(upload_id=row["upload_id"], sample_id=row["sample_id"], file_name=row["file_name"],
                  landing_key=row["landing_key"], size=size, chunk_size=chunk_size,
                  chunk_count=max(1, -(-size // chunk_size)), declared_sha256=row["declared_sha256"],
                  sha256=row["sha256"], state=row["state"], error_code=row["error_code"],
                  error_message=row["error_message"], created=row["created"], completed=row["completed"],
                  actor=row["actor"])
