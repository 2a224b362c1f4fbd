"""Ingestion: landed uploads become immutable raw copies, then validated inputs.

`raw_files` copies every object under `landing/<sample>/` into the
content-addressed raw zone; `validated_files` runs the format validators and
quarantines what fails, with its reason, so nothing is ever lost.

A file over the size limit (GENOFLOW_MAX_FILE_BYTES) is refused from the
listing's size, before any byte is read: it is never downloaded, hashed or
copied to raw/ or quarantine/ (a 6 GB upload used to be copied twice, 12 GB
and a minute, before it was refused). It stays where it landed; the inventory
records it with its refusal, and `validated_files` writes its `reason.json`
(landing key, size, etag) in the quarantine zone like any refused file.

Each run of a sample first removes what dead runs of that sample left behind:
scratch folders under the work dir and `.part` files of cut-off writes
(`genoflow_dagster.maintenance`; the daily maintenance job sweeps everything).

Validation has two severities: a file with warnings (deviations the reference
tools read anyway) is valid, its warnings listed in validation.json, the asset's
metadata and the sample report. Strict mode refuses such a file too: the run
config `strict: true` asks for it in one run, `GENOFLOW_VALIDATION=strict` in
every run of a deployment (sensor-launched runs included). The QC profile does
not set it: the profile may be named by the samplesheet this asset validates,
and it grades QC metrics, not formats.
"""


import dataclasses
import datetime as dt
from collections.abc import Iterator

import dagster as dg

from genoflow_dagster import settings, verdicts, zones
from genoflow_dagster.assets.artifacts import (
    LIVE_RUN_STATUSES,
    download_hashing,
    gate_check_result,
    run_state_from_instance,
    scratch_dir,
    write_report_if_stopped,
)
from genoflow_dagster.assets.metadata import code_version, present, table
from genoflow_dagster.assets.transient import retry_storage_outages
from genoflow_dagster.errors import ErrorCode, StorageError
from genoflow_dagster.formats.detect import detect_format
from genoflow_dagster.formats.result import ValidationResult, warning_table
from genoflow_dagster.formats.sample_inputs import (
    input_gates,
    read_pairs,
    refused_row,
    samplesheet_row,
    type_refusal,
    validated_row,
)
from genoflow_dagster.formats.validate import validate_fastq_pair, validate_file
from genoflow_dagster.maintenance import Removed, clean_sample_leftovers, describe
from genoflow_dagster.partitions import samples_partitions
from genoflow_dagster.progress import Progress
from genoflow_dagster.quarantine import quarantine_file, record_release, too_large_message, unread_folder_id
from genoflow_dagster.resources.storage import ObjectInfo, Storage
from genoflow_dagster.sample_record import (
    Inventory,
    RawFile,
    Refusal,
    SkippedKey,
    ValidatedFile,
    Validation,
    read_inventory,
    write_inventory,
    write_validation,
)

INGESTION = "ingestion"

CHECK_USABLE = verdicts.USABLE_INPUTS
CHECK_ALL_VALID = verdicts.ALL_FILES_VALID


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@dg.asset(
    group_name=INGESTION,
    partitions_def=samples_partitions,
    kinds={"python"},  # definitions.py adds the storage's kind when it is S3
    code_version=code_version(),
    description="Inventory of the sample's landed files, each copied into raw/ by SHA-256.",
)
@retry_storage_outages
def raw_files(context: dg.AssetExecutionContext, storage: Storage) -> dg.MaterializeResult:
    sample_id = zones.validate_sample_id(context.partition_key)
    leftovers = _remove_leftovers_of_dead_runs(context, storage, sample_id)
    skipped: list[SkippedKey] = []
    files = list(_land(context, storage, sample_id, skipped))
    if not files:
        raise dg.Failure(
            description=f"no files under {zones.landing_prefix(sample_id)}",
            metadata={"skipped_keys": [s.to_json() for s in skipped]},
        )
    inventory = Inventory(sample_id, tuple(files), tuple(skipped))
    obj = write_inventory(storage, inventory)
    return dg.MaterializeResult(
        metadata=present({
            "files": len(files),
            "total_bytes": sum(f.size_bytes for f in files),
            "refused_unread": len([f for f in files if f.refused]),
            "inventory_uri": dg.MetadataValue.path(storage.uri(obj.key)),
            "skipped_keys": len(skipped),
            "leftovers_removed": len(leftovers),
            "leftover_bytes_freed": sum(r.bytes or 0 for r in leftovers),
            "inventory": table(
                [{**f.to_json(), "refused": f.refused.reason if f.refused else None} for f in files],
                [("name", "string"), ("format", "string"), ("compression", "string"), ("size_bytes", "int"),
                 ("sha256", "string"), ("refused", "string")]),
        }),
        data_version=dg.DataVersion(inventory.fingerprint),
    )


def _land(context: dg.AssetExecutionContext, storage: Storage, sample_id: str,
          skipped: list[SkippedKey]) -> Iterator[RawFile]:
    """Each landed object of the sample, copied by checksum into raw/ (or quarantine/, for a format GenoFlow
    does not read), or refused from its size without a byte read. Unsafe keys are added to `skipped`."""
    max_bytes = settings.max_file_bytes()
    for info in storage.list(zones.landing_prefix(sample_id)):
        try:
            zones.parse_landing_key(info.key)
        except zones.UnsafeKeyError as exc:
            skipped.append(SkippedKey(info.key, exc.reason))
            context.log.warning(f"skipping unsafe landing key {info.key!r}: {exc}")
            continue
        if info.size > max_bytes:  # decided from the listing: not one byte is downloaded or copied
            yield _refused_unread(context, info, info.size, max_bytes)
            continue
        name = info.key.rsplit("/", 1)[-1]
        safe = zones.safe_name(name)
        with scratch_dir("raw", sample_id=sample_id, run_id=context.run.run_id) as tmp:
            local = tmp / safe
            sha256, size = download_hashing(storage, info.key, local)
            if size > max_bytes:  # replaced by a larger file after the listing: refused, still not copied
                yield _refused_unread(context, info, size, max_bytes)
                continue
            detection = detect_format(local, name=name)
            refusal = type_refusal(detection, size)
            # not a format GenoFlow reads: straight to quarantine, never into raw/
            key = zones.raw_key(sample_id, sha256, safe) if refusal is None else (
                zones.quarantine_prefix(sample_id, sha256) + safe)
            if not storage.exists(key):
                storage.put_file(local, key)
            if refusal is None:  # on S3 the later steps read this copy instead of downloading the raw object
                storage.keep_local_copy(key, local)
        _log_landed(context, name, size, detection.format, key, refusal)
        yield RawFile(landing_key=info.key, etag=info.etag, name=name, safe_name=safe, size_bytes=size,
                      sha256=sha256, raw_key=key if refusal is None else None, format=detection.format,
                      compression=detection.compression, detection_reason=detection.reason, received_at=_now(),
                      run_id=context.run.run_id, refused=refusal, quarantine_key=key if refusal else None)


def _log_landed(context: dg.AssetExecutionContext, name: str, size: int, fmt: str | None, key: str,
                refusal: Refusal | None) -> None:
    if refusal is not None:
        context.log.warning(f"{name}: {size:,} bytes, {refusal.error_code}/{refusal.reason}: {refusal.message} "
                            f"→ {key} (not copied to raw/)")
    else:
        context.log.info(f"{name}: {size:,} bytes, {fmt or 'unknown'} → {key}")


def _refused_unread(context: dg.AssetExecutionContext, info: ObjectInfo, size: int, max_bytes: int) -> RawFile:
    """The inventory entry of a file refused from its size: no checksum, no raw copy, never read."""
    name = info.key.rsplit("/", 1)[-1]
    context.log.warning(f"{name}: {size:,} bytes, over the limit of {max_bytes:,}: refused "
                        f"(FILE_TOO_LARGE) without copying; it stays at {info.key}")
    refusal = Refusal(str(ErrorCode.FILE_TOO_LARGE), "FILE_TOO_LARGE", too_large_message(size, max_bytes),
                      max_bytes=max_bytes)
    return RawFile(landing_key=info.key, etag=info.etag, name=name, safe_name=zones.safe_name(name),
                   size_bytes=size, sha256=None, raw_key=None, format=None, compression=None, detection_reason=None,
                   received_at=_now(), run_id=context.run.run_id, refused=refusal)


def _remove_leftovers_of_dead_runs(context: dg.AssetExecutionContext, storage: Storage,
                                   sample_id: str) -> list[Removed]:
    """Scratch folders and `.part` files that dead runs of this sample left; logged one by one."""
    live = context.instance.get_runs(filters=dg.RunsFilter(
        statuses=[dg.DagsterRunStatus(s) for s in sorted(LIVE_RUN_STATUSES)],
        tags={"dagster/partition": sample_id}))
    others = [run for run in live if run.run_id != context.run.run_id]
    try:
        removed = clean_sample_leftovers(storage, settings.work_dir(), sample_id,
                                         run_state_from_instance(context.instance), other_live_runs=bool(others))
    except (StorageError, OSError) as exc:  # housekeeping never stops a sample: the maintenance job retries
        context.log.warning(f"could not remove what dead runs of {sample_id} left behind: {exc}")
        return []
    for item in removed:
        context.log.info(f"left by a dead run: {describe(item)}")
    return removed


class ValidationConfig(dg.Config):
    strict: bool = False  # refuse files with warnings too (GENOFLOW_VALIDATION=strict does it for every run)


@dg.asset(
    group_name=INGESTION,
    partitions_def=samples_partitions,
    deps=["raw_files"],
    kinds={"python"},
    code_version=code_version(),
    description="Every raw file validated against its format; invalid files quarantined with reason.json.",
    check_specs=[
        dg.AssetCheckSpec(
            CHECK_USABLE,
            asset="validated_files",
            blocking=True,
            partitions_def=samples_partitions,  # one result per sample in the UI
            description="At least one analysable input (reads, alignments or a call set) is valid, "
            "and every read pair is complete and consistent.",
        ),
        dg.AssetCheckSpec(
            CHECK_ALL_VALID,
            asset="validated_files",
            partitions_def=samples_partitions,
            description="Every uploaded file is valid (a quarantined extra file warns, it does not block).",
        ),
    ],
)
@retry_storage_outages
def validated_files(context: dg.AssetExecutionContext, config: ValidationConfig, storage: Storage):
    sample_id = zones.validate_sample_id(context.partition_key)
    inventory = read_inventory(storage, sample_id)
    mode = "strict" if config.strict or settings.validation_strict() else "default"
    files = [_validate(context, storage, sample_id, file, mode) for file in inventory.files]
    groups, orphans, pair_problems = read_pairs(files, lambda r1, r2: _mates_differ(storage, r1, r2))
    sheet_row, sheet_problems = samplesheet_row(files, sample_id)
    gates = input_gates(files, orphans, pair_problems, sheet_problems)  # decided once; the checks read them
    validation = Validation(sample_id=sample_id, validation_mode=mode, files=tuple(files),
                            warnings=warning_table([f.to_json() for f in files]), read_groups=tuple(groups),
                            orphan_mates=tuple(orphans), pair_problems=tuple(pair_problems), samplesheet=sheet_row,
                            validated_at=_now(), gates=tuple(gates), run_id=context.run.run_id)
    obj = write_validation(storage, validation)
    rows = [f.to_json() for f in files]
    yield dg.MaterializeResult(
        metadata=present({
            "files": len(files),
            "valid": len([f for f in files if f.valid]),
            "quarantined": len([f for f in files if not f.valid]),
            "validation_mode": mode,
            "warnings": sum(w["count"] for w in validation.warnings),
            "validation_uri": dg.MetadataValue.path(storage.uri(obj.key)),
            "results": table(rows, [("path", "string"), ("format", "string"), ("valid", "bool"),
                                    ("error_code", "string"), ("reason", "string"), ("line", "int"),
                                    ("records", "int"), ("message", "string")]),
            "warnings_table": table(validation.warnings, [("file", "string"), ("reason", "string"),
                                                          ("line", "int"), ("message", "string"), ("count", "int")]),
        })
    )
    write_report_if_stopped(context, storage, sample_id, gates)  # a stopped sample still gets its FAIL report
    for gate in gates:
        yield gate_check_result(gate)


def _validate(context: dg.AssetExecutionContext, storage: Storage, sample_id: str, file: RawFile,
              mode: str) -> ValidatedFile:
    """One inventoried file validated (or its refusal by raw_files), quarantined when invalid, released from
    quarantine when it was refused before and passes now."""
    if file.refused is not None:
        row = refused_row(file, mode)
    else:
        assert file.raw_key is not None
        with (storage.local_path(file.raw_key) as path,
              Progress.for_file(f"validate {file.name}", path, context.log.info) as progress):
            result = validate_file(path, name=file.name, max_bytes=settings.max_file_bytes(),
                                   strict=mode == "strict", progress=progress)
        row = validated_row(result, file, mode)
    run_id = context.run.run_id
    if not row.valid:
        key = quarantine_file(storage, sample_id, file, row, run_id)
        where = f" at line {row.line}" if row.line else ""
        fate = "quarantined" if file.sha256 else f"left at {file.landing_key}, reason in quarantine"
        code = row.error_code if row.error_code == row.reason else f"{row.error_code}/{row.reason}"
        context.log.warning(f"{file.name}: {code}{where}: {row.message} → {fate}")
        return dataclasses.replace(row, quarantine_key=key)
    noted = sum(row.warning_counts.values())
    context.log.info(f"{file.name}: valid {row.format}, {row.records:,} records"
                     + (f", {noted:,} warnings" if noted else ""))
    # a file refused before under a smaller limit, unread, has its folder keyed by landing key + etag
    assert file.sha256 is not None
    released = record_release(storage, sample_id, file.sha256, run_id=run_id, validation=row.to_json()) or (
        record_release(storage, sample_id, unread_folder_id(file.landing_key, file.etag), run_id=run_id,
                       validation=row.to_json()))
    if not released:
        return row
    context.log.info(f"{file.name}: was quarantined, passes now: released ({released})")
    return dataclasses.replace(row, released_from_quarantine=released)


def _mates_differ(storage: Storage, r1: ValidatedFile, r2: ValidatedFile) -> ValidationResult | None:
    """Read both mate files name by name to say where they part ways (their digests did not settle it)."""
    assert r1.raw_key is not None and r2.raw_key is not None
    with storage.local_path(r1.raw_key) as p1, storage.local_path(r2.raw_key) as p2:
        return validate_fastq_pair(p1, p2)
