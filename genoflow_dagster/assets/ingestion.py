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
from typing import Any

import dagster as dg

from genoflow_dagster import settings, verdicts, zones
from genoflow_dagster.assets.artifacts import (
    LIVE_RUN_STATUSES,
    download_hashing,
    markdown_table,
    read_json,
    run_state_from_instance,
    scratch_dir,
    write_json,
)
from genoflow_dagster.assets.transient import retry_storage_outages
from genoflow_dagster.errors import ErrorCode, StorageError
from genoflow_dagster.formats import FORMATS
from genoflow_dagster.formats.detect import Detection, detect_format
from genoflow_dagster.formats.result import warning_table
from genoflow_dagster.formats.samplesheet import named_files, rows_for_sample
from genoflow_dagster.formats.validate import validate_fastq_pair, validate_file
from genoflow_dagster.maintenance import Removed, clean_sample_leftovers, describe
from genoflow_dagster.partitions import samples_partitions
from genoflow_dagster.quarantine import record_release, too_large_message, unread_folder_id
from genoflow_dagster.resources.storage import ObjectInfo, Storage
from genoflow_dagster.samples import ANALYSABLE_FORMATS, group_reads

INGESTION = "ingestion"

CHECK_USABLE = verdicts.USABLE_INPUTS
CHECK_ALL_VALID = verdicts.ALL_FILES_VALID


def inventory_key(sample_id: str) -> str:
    return zones.processed_key(sample_id, "raw_files", "inventory.json")


def validation_key(sample_id: str) -> str:
    return zones.processed_key(sample_id, "validated_files", "validation.json")


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@dg.asset(
    group_name=INGESTION,
    partitions_def=samples_partitions,
    kinds={"s3", "python"},
    description="Inventory of the sample's landed files, each copied into raw/ by SHA-256.",
)
@retry_storage_outages
def raw_files(context: dg.AssetExecutionContext, storage: Storage) -> dg.MaterializeResult:
    sample_id = zones.validate_sample_id(context.partition_key)
    leftovers = _remove_leftovers_of_dead_runs(context, storage, sample_id)
    max_bytes = settings.max_file_bytes()
    records: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    for info in storage.list(zones.landing_prefix(sample_id)):
        try:
            zones.parse_landing_key(info.key)
        except zones.UnsafeKeyError as exc:
            skipped.append({"key": info.key, "reason": exc.reason})
            context.log.warning(f"skipping unsafe landing key {info.key!r}: {exc}")
            continue
        name = info.key.rsplit("/", 1)[-1]
        safe = zones.safe_name(name)
        if info.size > max_bytes:  # decided from the listing: not one byte is downloaded or copied
            records.append(_refused_unread(info, name, safe, max_bytes, context.run.run_id))
            context.log.warning(f"{name}: {info.size:,} bytes, over the limit of {max_bytes:,}: refused "
                                f"(FILE_TOO_LARGE) without copying; it stays at {info.key}")
            continue
        with scratch_dir("raw", sample_id=sample_id, run_id=context.run.run_id) as tmp:
            local = tmp / safe
            sha256, size = download_hashing(storage, info.key, local)
            if size > max_bytes:  # replaced by a larger file after the listing: refused, still not copied
                records.append(_refused_unread(dataclasses.replace(info, size=size), name, safe, max_bytes,
                                               context.run.run_id))
                context.log.warning(f"{name}: {size:,} bytes, over the limit of {max_bytes:,}: refused "
                                    f"(FILE_TOO_LARGE) without copying; it stays at {info.key}")
                continue
            detection = detect_format(local, name=name)
            refusal = _type_refusal(detection, size)
            if refusal is None:
                key = zones.raw_key(sample_id, sha256, safe)
            else:  # not a format GenoFlow reads: straight to quarantine, never into raw/
                key = zones.quarantine_prefix(sample_id, sha256) + safe
            if not storage.exists(key):
                storage.put_file(local, key)
            if refusal is None:  # on S3 the later steps read this copy instead of downloading the raw object
                storage.keep_local_copy(key, local)
        records.append(
            {
                "landing_key": info.key,
                "etag": info.etag,
                "name": name,
                "safe_name": safe,
                "size_bytes": size,
                "sha256": sha256,
                "raw_key": key if refusal is None else None,
                "format": detection.format,
                "compression": detection.compression,
                "detection_reason": detection.reason,
                "received_at": _now(),
                "run_id": context.run.run_id,
                **({"refused": refusal, "quarantine_key": key} if refusal else {}),
            }
        )
        if refusal:
            context.log.warning(f"{name}: {size:,} bytes, {refusal['error_code']}/{refusal['reason']}: "
                                f"{refusal['message']} → {key} (not copied to raw/)")
        else:
            context.log.info(f"{name}: {size:,} bytes, {detection.format or 'unknown'} → {key}")
    if not records:
        raise dg.Failure(
            description=f"no files under {zones.landing_prefix(sample_id)}",
            metadata={"skipped_keys": skipped},
        )
    inventory = {"sample_id": sample_id, "files": records, "skipped_keys": skipped}
    obj = write_json(storage, inventory_key(sample_id), inventory)
    return dg.MaterializeResult(
        metadata={
            "files": len(records),
            "total_bytes": sum(r["size_bytes"] for r in records),
            "refused_unread": len([r for r in records if r.get("refused")]),
            "inventory_uri": dg.MetadataValue.path(storage.uri(obj.key)),
            "skipped_keys": len(skipped),
            "leftovers_removed": len(leftovers),
            "leftover_bytes_freed": sum(r.bytes or 0 for r in leftovers),
            "inventory": dg.MetadataValue.md(
                markdown_table(records, ["name", "format", "compression", "size_bytes", "sha256"])
            ),
        },
        data_version=dg.DataVersion(_fingerprint(records)),
    )


def _fingerprint(records: list[dict[str, Any]]) -> str:
    return ",".join(sorted(r["sha256"] or f"{r['landing_key']}@{r['etag']}" for r in records))[:2000]


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


def _refused_unread(info: ObjectInfo, name: str, safe: str, max_bytes: int, run_id: str) -> dict[str, Any]:
    """The inventory record of a file refused from its listed size: no checksum, no raw copy."""
    return {
        "landing_key": info.key,
        "etag": info.etag,
        "name": name,
        "safe_name": safe,
        "size_bytes": info.size,
        "sha256": None,
        "raw_key": None,
        "format": None,
        "compression": None,
        "detection_reason": None,
        "received_at": _now(),
        "run_id": run_id,
        "refused": {
            "error_code": str(ErrorCode.FILE_TOO_LARGE),
            "reason": "FILE_TOO_LARGE",
            "message": too_large_message(info.size, max_bytes),
            "max_bytes": max_bytes,
        },
    }


def _type_refusal(detection: Detection, size: int) -> dict[str, Any] | None:
    """The refusal `validate_file` would give a file whose format is not recognised, decided before the raw
    copy. An empty file is left to `validate_file` (EMPTY_FILE comes first there, and costs no copy)."""
    if size == 0 or (detection.error_code is None and detection.format in FORMATS):
        return None
    if detection.error_code is not None:
        return {"error_code": str(detection.error_code), "reason": detection.reason, "message": detection.message}
    return {"error_code": str(ErrorCode.INVALID_FILE_TYPE), "reason": "UNKNOWN_FORMAT",
            "message": "the format could not be recognised"}


def _refused_row(record: dict[str, Any], mode: str) -> dict[str, Any]:
    """The validation row of a file `raw_files` refused (by size, unread, or by type): `validate --json` fields."""
    refused = record["refused"]
    return {
        "path": record["name"],
        "format": record["format"],
        "valid": False,
        "error_code": refused["error_code"],
        "reason": refused["reason"],
        "message": refused["message"],
        "line": None,
        "records": 0,
        "size_bytes": record["size_bytes"],
        "sha256": record["sha256"],
        "warnings": [],
        "validation_mode": mode,
        "warning_counts": {},
        "raw_key": None,
        "quality_encoding": None,
        "landing_key": record["landing_key"],
        "copied": record.get("quarantine_key") is not None,
    }


def quarantine(storage: Storage, sample_id: str, record: dict[str, Any], result: dict[str, Any],
               run_id: str) -> str:
    """Copy a rejected file into quarantine/<sample>/<sha256>/ beside its reason.json.

    A file `raw_files` refused by type is already there (it never went to raw/). A file refused
    unread (over the size limit) is not copied at all: its folder, keyed by landing key and etag,
    holds only reason.json pointing at where it landed. Returns the file's key (the quarantined
    copy, or the landing key of a file left in place).
    """
    copied = record["sha256"] is not None
    folder = record["sha256"] if copied else unread_folder_id(record["landing_key"], record["etag"])
    prefix = zones.quarantine_prefix(sample_id, folder)
    target = prefix + record["safe_name"] if copied else record["landing_key"]
    if record["raw_key"] is not None and not storage.exists(target):
        storage.copy(record["raw_key"], target)
    reason = {
        "error_code": result["error_code"],
        "reason": result["reason"],
        "message": result["message"],
        "line": result["line"],
        "sha256": record["sha256"],
        "size_bytes": record["size_bytes"],
        "name": record["name"],
        "original_key": record["landing_key"],
        "etag": record["etag"],
        "raw_key": record["raw_key"],
        "copied": copied,
        "quarantined_at": _now(),
        "run_id": run_id,
        "validation_mode": result.get("validation_mode", "default"),
        "warnings": result.get("warnings", []),
    }
    write_json(storage, prefix + "reason.json", reason)
    return target


class ValidationConfig(dg.Config):
    strict: bool = False  # refuse files with warnings too (GENOFLOW_VALIDATION=strict does it for every run)


@dg.asset(
    group_name=INGESTION,
    partitions_def=samples_partitions,
    deps=[raw_files],
    kinds={"python"},
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
    inventory = read_json(storage, inventory_key(sample_id))
    max_bytes = settings.max_file_bytes()
    strict = config.strict or settings.validation_strict()
    mode = "strict" if strict else "default"
    results: list[dict[str, Any]] = []
    for record in inventory["files"]:
        if record.get("refused"):
            row = _refused_row(record, mode)
        else:
            with storage.local_path(record["raw_key"]) as path:
                result = validate_file(path, name=record["name"], max_bytes=max_bytes, strict=strict)
            row = result.to_json()
            row["path"] = record["name"]
            row["validation_mode"] = mode
            row["warning_counts"] = dict(result.details.get("warning_counts", {}))
            row["raw_key"] = record["raw_key"]
            row["quality_encoding"] = result.details.get("quality_encoding")
            row["read_name_digest"] = result.details.get("read_name_digest")
            if "samplesheet" in result.details:
                row["samplesheet"] = result.details["samplesheet"]
        if not row["valid"]:
            row["quarantine_key"] = quarantine(storage, sample_id, record, row, context.run.run_id)
            where = f" at line {row['line']}" if row["line"] else ""
            fate = "quarantined" if record["sha256"] else f"left at {record['landing_key']}, reason in quarantine"
            code = row["error_code"] if row["error_code"] == row["reason"] else f"{row['error_code']}/{row['reason']}"
            context.log.warning(f"{record['name']}: {code}{where}: {row['message']} → {fate}")
        else:
            noted = sum(row["warning_counts"].values())
            context.log.info(f"{record['name']}: valid {row['format']}, {row['records']:,} records"
                             + (f", {noted:,} warnings" if noted else ""))
            # a file refused before under a smaller limit, unread, has its folder keyed by landing key + etag
            released = record_release(storage, sample_id, record["sha256"], run_id=context.run.run_id,
                                      validation=row) or record_release(
                storage, sample_id, unread_folder_id(record["landing_key"], record["etag"]),
                run_id=context.run.run_id, validation=row)
            if released:
                row["released_from_quarantine"] = released
                context.log.info(f"{record['name']}: was quarantined, passes now: released ({released})")
        results.append(row)
    pairs, orphans, pair_problems = _check_pairs(storage, results)
    sheet_row, sheet_problems = _samplesheet_row(results, sample_id)

    valid = [r for r in results if r["valid"]]
    analysable = [r for r in valid if r["format"] in ANALYSABLE_FORMATS]
    warnings = warning_table(results)
    payload = {
        "sample_id": sample_id,
        "validation_mode": mode,
        "files": results,
        "warnings": warnings,
        "read_groups": pairs,
        "orphan_mates": orphans,
        "pair_problems": pair_problems,
        "samplesheet": sheet_row,
        "validated_at": _now(),
    }
    # the two gates, decided once (verdicts.py) and stored with the validation; the checks below read them
    gates = [verdicts.usable_inputs(analysable_files=len(analysable),
                                    pair_problems=[p["message"] for p in pair_problems],
                                    orphan_mates=orphans, samplesheet_problems=sheet_problems),
             verdicts.all_files_valid(results)]
    payload["gates"] = [g.to_dict() for g in gates]
    obj = write_json(storage, validation_key(sample_id), payload)
    invalid = [r for r in results if not r["valid"]]
    table = markdown_table(results, ["path", "format", "valid", "error_code", "reason", "line", "records"])
    yield dg.MaterializeResult(
        metadata={
            "files": len(results),
            "valid": len(valid),
            "quarantined": len(invalid),
            "validation_mode": mode,
            "warnings": sum(w["count"] for w in warnings),
            "validation_uri": dg.MetadataValue.path(storage.uri(obj.key)),
            "results": dg.MetadataValue.md(table),
            "warnings_table": dg.MetadataValue.md(
                markdown_table(warnings, ["file", "reason", "line", "message", "count"])
            ),
        }
    )
    # imported here: qc.py imports this module (its keys and asset)
    from genoflow_dagster.assets.qc import gate_check_result, write_report_if_stopped

    write_report_if_stopped(context, storage, sample_id, gates)  # a stopped sample still gets its FAIL report
    for gate in gates:
        yield gate_check_result(gate)


def _samplesheet_row(results: list[dict[str, Any]], sample_id: str) -> tuple[dict[str, Any] | None, list[str]]:
    """This sample's samplesheet row, and what keeps it from being satisfied (files it names that are missing
    or invalid). No sheet is fine; a sheet without a row for this sample, or with two sheets, is a problem."""
    sheets = [r for r in results if r.get("samplesheet") is not None]
    if not sheets:
        return None, []
    if len(sheets) > 1:
        return None, [f"{len(sheets)} samplesheets uploaded ({', '.join(r['path'] for r in sheets)}): keep one"]
    rows = rows_for_sample(sheets[0]["samplesheet"], sample_id)
    if not rows:
        return None, [f"{sheets[0]['path']} has no row for sample {sample_id}"]
    row = rows[0]
    by_name = {r["path"]: r for r in results}
    problems = []
    for name in named_files(row):
        if name not in by_name:
            problems.append(f"{sheets[0]['path']} line {row['line']} names {name}, which has not landed")
        elif not by_name[name]["valid"]:
            problems.append(f"{sheets[0]['path']} line {row['line']} names {name}, which is quarantined")
    return row, problems


def _check_pairs(
    storage: Storage, results: list[dict[str, Any]]
) -> tuple[list[dict[str, str | None]], list[str], list[dict[str, Any]]]:
    """Group valid FASTQs into read pairs and check each pair's mates agree record by record.

    Validation recorded each FASTQ's read-name digest: equal digests settle a pair without fetching either
    file again; the files are read name by name only to say where two mates part ways."""
    by_name = {r["path"]: r for r in results if r["valid"] and r["format"] == "fastq"}
    groups, orphans = group_reads(list(by_name))
    problems: list[dict[str, Any]] = []
    pairs: list[dict[str, str | None]] = []
    for group in groups:
        pairs.append({"r1": group.r1, "r2": group.r2})
        if group.r2 is None:
            continue
        first, second = by_name[group.r1], by_name[group.r2]
        if first.get("read_name_digest") and first.get("read_name_digest") == second.get("read_name_digest"):
            continue
        with storage.local_path(first["raw_key"]) as p1, storage.local_path(second["raw_key"]) as p2:
            mismatch = validate_fastq_pair(p1, p2)
        if mismatch is not None:
            problems.append(
                {
                    "r1": group.r1,
                    "r2": group.r2,
                    "reason": mismatch.reason,
                    "line": mismatch.line,
                    "message": f"{group.r1} / {group.r2}: {mismatch.message}",
                }
            )
    return pairs, orphans, problems
