"""Quarantine: where rejected files go, and which of them today's validators would accept.

A file is quarantined under `quarantine/<sample>/<sha256>/` beside its
`reason.json` (`quarantine_file`, called by `validated_files`) and is never
moved or deleted. A file refused unread (over the size limit: it is never
downloaded, hashed or copied) stays where it landed; its folder
`quarantine/<sample>/unread-<id>/` holds only `reason.json`, which names the
landing key, size and etag, so the operator still sees it here. When the
validators or the size limit change, `review` re-validates every quarantined
copy and reports what would now pass; the landing sensor's sibling,
`quarantine_release_sensor`, asks for a new run of each such sample, and
`validated_files` then admits the file (it re-validates the raw copy itself)
and writes `release.json` beside the old `reason.json`, so the history of the
decision stays in one folder.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from genoflow_dagster import __version__, zones
from genoflow_dagster.errors import StorageError
from genoflow_dagster.formats.validate import DEFAULT_MAX_BYTES, validate_file
from genoflow_dagster.resources.storage import Storage
from genoflow_dagster.sample_record import RawFile, ValidatedFile, write_json

REASON = "reason.json"
RELEASE = "release.json"


@dataclass(frozen=True)
class QuarantinedFile:
    sample_id: str
    sha256: str
    key: str  # the quarantined copy
    name: str
    reason: dict[str, Any]
    release: dict[str, Any] | None  # present once the file has been admitted again
    copied: bool = True  # False: refused unread, `key` is its landing key (no copy exists)

    @property
    def prefix(self) -> str:
        return zones.quarantine_prefix(self.sample_id, self.sha256)


def quarantine_file(storage: Storage, sample_id: str, file: RawFile, row: ValidatedFile, run_id: str) -> str:
    """Copy a rejected file into quarantine/<sample>/<sha256>/ beside its reason.json.

    A file `raw_files` refused by type is already there (it never went to raw/). A file refused
    unread (over the size limit) is not copied at all: its folder, keyed by landing key and etag,
    holds only reason.json pointing at where it landed. Returns the file's key (the quarantined
    copy, or the landing key of a file left in place).
    """
    copied = file.sha256 is not None
    folder = file.sha256 if file.sha256 is not None else unread_folder_id(file.landing_key, file.etag)
    prefix = zones.quarantine_prefix(sample_id, folder)
    target = prefix + file.safe_name if copied else file.landing_key
    if file.raw_key is not None and not storage.exists(target):
        storage.copy(file.raw_key, target)
    reason = {
        "error_code": row.error_code,
        "reason": row.reason,
        "message": row.message,
        "line": row.line,
        "sha256": file.sha256,
        "size_bytes": file.size_bytes,
        "name": file.name,
        "original_key": file.landing_key,
        "etag": file.etag,
        "raw_key": file.raw_key,
        "copied": copied,
        "quarantined_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "run_id": run_id,
        "validation_mode": row.validation_mode,
        "warnings": row.warnings,
    }
    write_json(storage, prefix + REASON, reason)
    return target


def list_quarantine(storage: Storage, sample_id: str | None = None) -> Iterator[QuarantinedFile]:
    """Every quarantined file (one per `<sample>/<sha256>/` folder), in key order."""
    prefix = f"{zones.QUARANTINE}/" + (f"{zones.validate_sample_id(sample_id)}/" if sample_id else "")
    folder: dict[str, str] = {}
    current: tuple[str, str] | None = None
    for obj in storage.list(prefix):
        parts = obj.key.split("/")
        if len(parts) != 4:
            continue
        where = (parts[1], parts[2])
        if where != current:
            if current is not None:
                yield from _entry(storage, *current, folder)
            current, folder = where, {}
        folder[parts[3]] = obj.key
    if current is not None:
        yield from _entry(storage, *current, folder)


def _entry(storage: Storage, sample_id: str, sha256: str, folder: dict[str, str]) -> Iterator[QuarantinedFile]:
    names = [n for n in folder if n not in (REASON, RELEASE)]
    if REASON not in folder or len(names) > 1:
        return  # not a folder `quarantine()` wrote; leave it alone
    reason = json.loads(storage.get_bytes(folder[REASON]))
    release = json.loads(storage.get_bytes(folder[RELEASE])) if RELEASE in folder else None
    if names:
        yield QuarantinedFile(sample_id, sha256, folder[names[0]], names[0], reason, release)
    elif reason.get("copied") is False and reason.get("original_key"):
        yield QuarantinedFile(sample_id, sha256, reason["original_key"], reason.get("name") or
                              reason["original_key"].rsplit("/", 1)[-1], reason, release, copied=False)


def too_large_message(size_bytes: int, max_bytes: int) -> str:
    """FILE_TOO_LARGE's message, worded as `validate_file` words it, for refusals decided from a listing."""
    return f"the file is {size_bytes:,} bytes; the limit is {max_bytes:,}"


def unread_folder_id(landing_key: str, etag: str) -> str:
    """The quarantine folder of a file refused unread (it has no SHA-256): one per landed version."""
    return "unread-" + hashlib.sha256(f"{landing_key}@{etag}".encode()).hexdigest()[:32]


def _revalidate(storage: Storage, item: QuarantinedFile, max_bytes: int) -> tuple[bool, str | None, str | None]:
    """(valid, reason, message) for a quarantined file today. The size is checked from the object's
    listing first, so a file still over the limit is never downloaded (on S3) to be refused again."""
    where = "landed file" if not item.copied else "quarantined copy"
    try:
        info = storage.stat(item.key)
    except StorageError as exc:
        if exc.reason != "NOT_FOUND":
            raise
        return False, "QUARANTINE_SOURCE_GONE", f"the {where} {item.key} is no longer there"
    if not item.copied and item.reason.get("etag") not in (None, info.etag):
        return False, "LANDING_OBJECT_REPLACED", ("the landed file was replaced after it was refused; "
                                                  "the new version is ingested as a new upload")
    if info.size > max_bytes:
        return False, "FILE_TOO_LARGE", too_large_message(info.size, max_bytes)
    with storage.local_path(item.key) as path:
        result = validate_file(path, name=item.name, max_bytes=max_bytes)
    return result.valid, result.reason, result.message


def review(storage: Storage, *, max_bytes: int = DEFAULT_MAX_BYTES, sample_id: str | None = None,
           include_released: bool = False) -> list[dict[str, Any]]:
    """Re-validate each quarantined copy with today's code; one row per file, `releasable` when it now passes."""
    rows = []
    for item in list_quarantine(storage, sample_id):
        if item.release and not include_released:
            continue
        now_valid, now_reason, now_message = _revalidate(storage, item, max_bytes)
        rows.append({
            "sample_id": item.sample_id,
            "name": item.name,
            "sha256": item.sha256,
            "quarantined_reason": item.reason.get("reason"),
            "quarantined_at": item.reason.get("quarantined_at"),
            "now_valid": now_valid,
            "now_reason": now_reason,
            "now_message": now_message,
            "released": item.release is not None,
            "releasable": now_valid and item.release is None,
            "copied": item.copied,
            "key": item.key,
        })
    return rows


def releasable_samples(rows: list[dict[str, Any]]) -> dict[str, list[str]]:
    """{sample_id: [sha256, ...]} of files that now pass and have not been released yet."""
    samples: dict[str, list[str]] = {}
    for row in rows:
        if row["releasable"]:
            samples.setdefault(row["sample_id"], []).append(row["sha256"])
    return {sample: sorted(shas) for sample, shas in sorted(samples.items())}


def write_review(storage: Storage, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Store a review's outcome (`zones.quarantine_review_key()`), for the release sensor to act on."""
    payload = {
        "review_id": uuid.uuid4().hex,  # what the sensor remembers having acted on
        "reviewed_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "genoflow_version": __version__,
        "files": len(rows),
        "still_quarantined": sum(1 for row in rows if not row["now_valid"]),
        "releasable": releasable_samples(rows),
    }
    storage.put_bytes(json.dumps(payload, indent=2, sort_keys=True).encode(), zones.quarantine_review_key())
    return payload


def read_review(storage: Storage) -> dict[str, Any] | None:
    """The last stored review, or None before the first."""
    key = zones.quarantine_review_key()
    if not storage.exists(key):
        return None
    return json.loads(storage.get_bytes(key))


def release_run_key(sample_id: str, shas: list[str]) -> str:
    """Stable per (sample, files, code version): the same release is requested once per GenoFlow version."""
    digest = hashlib.sha256("|".join([sample_id, __version__, *sorted(shas)]).encode()).hexdigest()[:20]
    return f"release-{sample_id}-{digest}"


def record_release(storage: Storage, sample_id: str, sha256: str, *, run_id: str,
                   validation: dict[str, Any]) -> str | None:
    """Write `release.json` beside a quarantined file that now validated; None if there is nothing to release."""
    prefix = zones.quarantine_prefix(sample_id, sha256)
    if not storage.exists(prefix + REASON) or storage.exists(prefix + RELEASE):
        return None
    previous = json.loads(storage.get_bytes(prefix + REASON))
    release = {
        "released_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "run_id": run_id,
        "genoflow_version": __version__,
        "previous_reason": previous.get("reason"),
        "previous_error_code": previous.get("error_code"),
        "now_format": validation.get("format"),
        "now_records": validation.get("records"),
    }
    key = prefix + RELEASE
    storage.put_bytes(json.dumps(release, indent=2, sort_keys=True).encode(), key)
    return key
