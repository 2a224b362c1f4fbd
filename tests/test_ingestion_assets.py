"""Ingestion assets on real files: raw copies by checksum, quarantine with reason, blocking gate."""

import hashlib
import json
import logging

import dagster as dg

from genoflow_dagster import zones
from genoflow_dagster.assets.ingestion import raw_files, validated_files
from genoflow_dagster.assets.qc import qc_metrics
from genoflow_dagster.partitions import SAMPLES_PARTITION_NAME
from genoflow_dagster.resources.reference import ReferenceData
from genoflow_dagster.resources.storage import LocalStorage
from genoflow_dagster.sample_record import SampleRecord, Validation

GOOD_R1 = b"@r1/1\nACGTACGTAC\n+\nIIIIIIIIII\n@r2/1\nGGGGCCCCAA\n+\nIIIIIIIIII\n"
GOOD_R2 = b"@r1/2\nTTTTACGTAC\n+\nIIIIIIIIII\n@r2/2\nGGGGCCCCTT\n+\nIIIIIIIIII\n"
SWAPPED_R2 = b"@r2/2\nTTTTACGTAC\n+\nIIIIIIIIII\n@r1/2\nGGGGCCCCTT\n+\nIIIIIIIIII\n"
BROKEN = b"@r1\nACGTACGT\n+\nIII\n"


def _materialize(tmp_path, files: dict[str, bytes]):
    storage = LocalStorage(base_dir=str(tmp_path / "zones"))
    for name, data in files.items():
        storage.put_bytes(data, zones.landing_key("S1", name))
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(SAMPLES_PARTITION_NAME, ["S1"])
    result = dg.materialize(
        [raw_files, validated_files, qc_metrics], partition_key="S1", instance=instance, raise_on_error=False,
        resources={"storage": storage, "reference": ReferenceData(fasta_path=str(tmp_path / "none.fa"))},
    )
    return storage, result


def _run(tmp_path, files: dict[str, bytes]):
    storage, result = _materialize(tmp_path, files)
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    return storage, checks, materialized


def test_raw_copy_is_content_addressed(tmp_path):
    storage, checks, materialized = _run(tmp_path, {"x_R1.fastq": GOOD_R1, "x_R2.fastq": GOOD_R2})
    sha = hashlib.sha256(GOOD_R1).hexdigest()
    assert storage.get_bytes(f"raw/S1/{sha}/x_R1.fastq") == GOOD_R1
    assert checks["validated_files_usable"].passed and checks["validated_files_all_valid"].passed
    assert "qc_metrics" in materialized


def test_an_invalid_only_file_is_quarantined_and_blocks_qc(tmp_path):
    storage, checks, materialized = _run(tmp_path, {"bad.fastq": BROKEN})
    sha = hashlib.sha256(BROKEN).hexdigest()
    reason = json.loads(storage.get_bytes(f"quarantine/S1/{sha}/reason.json"))
    assert reason["reason"] == "FASTQ_QUALITY_LENGTH_MISMATCH" and reason["line"] == 4
    assert reason["original_key"] == "landing/S1/bad.fastq"
    assert storage.get_bytes(f"quarantine/S1/{sha}/bad.fastq") == BROKEN
    assert not checks["validated_files_usable"].passed
    assert "validated_files" in materialized and "qc_metrics" not in materialized


def test_mates_out_of_order_block_the_sample(tmp_path):
    _, checks, materialized = _run(tmp_path, {"x_R1.fastq": GOOD_R1, "x_R2.fastq": SWAPPED_R2})
    usable = checks["validated_files_usable"]
    assert not usable.passed
    assert "read 1 is r2 in R2 but r1 in R1" in usable.metadata["problems"].value
    assert "qc_metrics" not in materialized


def test_a_samplesheet_row_chooses_the_profile(tmp_path):
    sheet = b"sample,fastq_1,fastq_2,qc_profile\nS1,x_R1.fastq,x_R2.fastq,strict\n"
    storage, checks, _ = _run(tmp_path, {"x_R1.fastq": GOOD_R1, "x_R2.fastq": GOOD_R2, "samplesheet.csv": sheet})
    assert checks["validated_files_usable"].passed
    summary = json.loads(storage.get_bytes(zones.processed_key("S1", "qc_metrics", "qc.json")))
    assert (summary["profile"], summary["profile_source"]) == ("strict", "samplesheet line 2")


def test_a_samplesheet_naming_a_missing_file_blocks_the_sample(tmp_path):
    sheet = b"sample,fastq_1,fastq_2\nS1,x_R1.fastq,x_R2.fastq\n"
    _, checks, materialized = _run(tmp_path, {"x_R1.fastq": GOOD_R1, "samplesheet.csv": sheet})
    usable = checks["validated_files_usable"]
    assert not usable.passed
    assert "samplesheet.csv line 2 names x_R2.fastq, which has not landed" in usable.metadata["problems"].value
    assert "qc_metrics" not in materialized


def test_qc_metadata_carries_pair_figures_and_plots(tmp_path):
    storage, result = _materialize(tmp_path, {"x_R1.fastq": GOOD_R1, "x_R2.fastq": GOOD_R2})
    summary = json.loads(storage.get_bytes(zones.processed_key("S1", "qc_metrics", "qc.json")))
    [pair] = summary["pairs"]
    assert (pair["r1"], pair["r2"], pair["pairs"], pair["total_bases"]) == ("x_R1.fastq", "x_R2.fastq", 2, 40)
    [qc_event] = [e for e in result.get_asset_materialization_events()
                  if e.asset_key.to_user_string() == "qc_metrics"]
    metadata = qc_event.materialization.metadata
    [pair_row] = [r.data for r in metadata["read_pairs"].records]  # a table with a schema, not Markdown
    assert (pair_row["r1"], pair_row["r2"], pair_row["pairs"], pair_row["read_counts_match"]) == (
        "x_R1.fastq", "x_R2.fastq", 2, True)
    assert "![per_position_quality](data:image/svg+xml;base64," in metadata["fastq_plots"].value


RAGGED_TABLE = b"sample,reads\nS1,10,extra\nS1,12\n"  # RFC 4180 s2.4 "should": a warning, not an error


def test_a_file_with_warnings_is_valid_and_its_warnings_are_shown(tmp_path):
    from genoflow_dagster.reports.context import report_context
    from genoflow_dagster.reports.render import render_sample_report
    from genoflow_dagster.resources.ai import Narrative

    files = {"x_R1.fastq": GOOD_R1, "x_R2.fastq": GOOD_R2, "counts.csv": RAGGED_TABLE}
    storage, result = _materialize(tmp_path, files)
    validation = json.loads(storage.get_bytes(zones.processed_key("S1", "validated_files", "validation.json")))
    table = next(f for f in validation["files"] if f["path"] == "counts.csv")
    assert table["valid"] and table["warnings"][0]["reason"] == "TABLE_COLUMN_COUNT"
    assert validation["validation_mode"] == "default"
    assert validation["warnings"] == [{"file": "counts.csv", "reason": "TABLE_COLUMN_COUNT", "line": 2,
                                       "message": "line 2: 3 fields where the header has 2", "count": 1}]
    event = next(e for e in result.get_asset_materialization_events()
                 if e.asset_key.to_user_string() == "validated_files")
    metadata = event.materialization.metadata
    assert metadata["warnings"].value == 1 and metadata["validation_mode"].value == "default"
    [warned] = [r.data for r in metadata["warnings_table"].records]
    assert (warned["file"], warned["reason"], warned["line"]) == ("counts.csv", "TABLE_COLUMN_COUNT", 2)
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks["validated_files_all_valid"].passed
    html = render_sample_report(report_context(SampleRecord("S1", validation=Validation.from_json(validation)),
                                               Narrative("ok", "offline", None), run_id="r"))
    assert "Validation warnings" in html and "TABLE_COLUMN_COUNT" in html and "strict mode would refuse" in html


def test_strict_mode_quarantines_a_file_with_warnings(tmp_path):
    storage = LocalStorage(base_dir=str(tmp_path / "zones"))
    files = {"x_R1.fastq": GOOD_R1, "x_R2.fastq": GOOD_R2, "counts.csv": RAGGED_TABLE}
    for name, data in files.items():
        storage.put_bytes(data, zones.landing_key("S1", name))
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(SAMPLES_PARTITION_NAME, ["S1"])
    result = dg.materialize(
        [raw_files, validated_files], partition_key="S1", instance=instance, raise_on_error=False,
        resources={"storage": storage}, run_config={"ops": {"validated_files": {"config": {"strict": True}}}},
    )
    sha = hashlib.sha256(RAGGED_TABLE).hexdigest()
    reason = json.loads(storage.get_bytes(f"quarantine/S1/{sha}/reason.json"))
    assert (reason["reason"], reason["line"], reason["validation_mode"]) == ("TABLE_COLUMN_COUNT", 2, "strict")
    assert reason["message"].startswith("strict mode refuses warnings")
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks["validated_files_usable"].passed and not checks["validated_files_all_valid"].passed
    validation = json.loads(storage.get_bytes(zones.processed_key("S1", "validated_files", "validation.json")))
    assert validation["validation_mode"] == "strict" and validation["warnings"][0]["file"] == "counts.csv"


def test_genoflow_validation_strict_applies_to_every_run(tmp_path, monkeypatch):
    monkeypatch.setenv("GENOFLOW_VALIDATION", "strict")
    storage, _ = _materialize(tmp_path, {"x_R1.fastq": GOOD_R1, "x_R2.fastq": GOOD_R2, "counts.csv": RAGGED_TABLE})
    validation = json.loads(storage.get_bytes(zones.processed_key("S1", "validated_files", "validation.json")))
    table = next(f for f in validation["files"] if f["path"] == "counts.csv")
    assert not table["valid"] and "quarantine_key" in table


def _disk_bytes(root) -> int:
    """Allocated bytes under a folder, as `du` counts them (a sparse file counts only what it holds)."""
    import os

    return sum(os.lstat(os.path.join(folder, name)).st_blocks * 512
               for folder, _, names in os.walk(root) for name in names)


def test_a_6_gb_file_is_refused_from_its_size_without_any_copy(tmp_path, monkeypatch):
    """The operator's case: 6 GB landed under a 5 GB limit was copied to raw/ and quarantine/ (12 GB, 58 s)."""
    import time

    from genoflow_dagster.quarantine import list_quarantine
    from genoflow_dagster.reports.context import report_context
    from genoflow_dagster.reports.render import render_sample_report
    from genoflow_dagster.resources.ai import Narrative

    monkeypatch.setenv("GENOFLOW_DATA_DIR", str(tmp_path / "zones"))
    monkeypatch.delenv("GENOFLOW_MAX_FILE_BYTES", raising=False)  # the default limit, 5 GiB
    storage = LocalStorage(base_dir=str(tmp_path / "zones"))
    storage.put_bytes(GOOD_R1, zones.landing_key("S1", "x_R1.fastq"))
    storage.put_bytes(GOOD_R2, zones.landing_key("S1", "x_R2.fastq"))
    huge = tmp_path / "zones" / "landing" / "S1" / "huge.fastq"
    with open(huge, "wb") as f:
        f.truncate(6 * 1024**3)  # sparse: 6 GiB long, no disk used
    before = _disk_bytes(tmp_path)
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(SAMPLES_PARTITION_NAME, ["S1"])
    started = time.monotonic()
    result = dg.materialize([raw_files, validated_files], partition_key="S1", instance=instance,
                            resources={"storage": storage}, raise_on_error=False)
    seconds = time.monotonic() - started
    grown = _disk_bytes(tmp_path) - before
    print(f"\n6 GiB sparse upload, 5 GiB limit: raw_files + validated_files {seconds:.2f} s; "
          f"disk {before:,} -> {before + grown:,} bytes (+{grown:,})")

    validation = json.loads(storage.get_bytes(zones.processed_key("S1", "validated_files", "validation.json")))
    row = next(f for f in validation["files"] if f["path"] == "huge.fastq")
    assert (row["valid"], row["error_code"], row["reason"], row["sha256"]) == (
        False, "FILE_TOO_LARGE", "FILE_TOO_LARGE", None)
    assert row["message"] == "the file is 6,442,450,944 bytes; the limit is 5,368,709,120"
    # Not copied anywhere: raw/ holds the two small files, quarantine/ only the reason; the upload stays in landing.
    assert sorted(o.key.rsplit("/", 1)[-1] for o in storage.list("raw/")) == ["x_R1.fastq", "x_R2.fastq"]
    quarantined = [o.key for o in storage.list("quarantine/")]
    assert len(quarantined) == 1 and quarantined[0].endswith("/reason.json")
    reason = json.loads(storage.get_bytes(quarantined[0]))
    assert (reason["original_key"], reason["size_bytes"], reason["copied"]) == (
        "landing/S1/huge.fastq", 6 * 1024**3, False)
    assert reason["etag"] == storage.stat("landing/S1/huge.fastq").etag
    assert huge.stat().st_size == 6 * 1024**3
    assert grown < 1024**2 and seconds < 60
    # Seen where refused files are seen: the quarantine listing, the checks, the sample report.
    assert [(q.name, q.copied) for q in list_quarantine(storage)] == [("huge.fastq", False)]
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks["validated_files_usable"].passed and not checks["validated_files_all_valid"].passed
    html = render_sample_report(report_context(SampleRecord("S1", validation=Validation.from_json(validation)),
                                               Narrative("ok", "offline", None), run_id="r"))
    assert "huge.fastq" in html and "FILE_TOO_LARGE" in html


def test_an_over_size_s3_object_is_refused_from_its_listed_size_without_a_download(s3_endpoint, tmp_path,
                                                                                   monkeypatch, caplog):
    from tests.conftest import make_s3_storage

    monkeypatch.setenv("GENOFLOW_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("GENOFLOW_MAX_FILE_BYTES", "1000")
    storage = make_s3_storage(s3_endpoint)
    big = GOOD_R1 * 30  # 1,800 bytes
    storage.put_bytes(big, zones.landing_key("S1", "big.fastq"))
    storage.put_bytes(GOOD_R1, zones.landing_key("S1", "x_R1.fastq"))
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(SAMPLES_PARTITION_NAME, ["S1"])
    with caplog.at_level(logging.INFO, logger="werkzeug"):  # the moto server logs every HTTP request it serves
        dg.materialize([raw_files, validated_files], partition_key="S1", instance=instance,
                       resources={"storage": storage}, raise_on_error=False)
    served = [r.getMessage() for r in caplog.records if r.name == "werkzeug"]
    gets = [line for line in served if f'"GET /{storage.bucket}/landing/S1/' in line]
    assert any("x_R1.fastq" in line for line in gets)  # the log does show downloads
    assert not any("big.fastq" in line for line in gets), gets
    assert [o.key.rsplit("/", 1)[-1] for o in storage.list("raw/")] == ["x_R1.fastq"]
    quarantined = [o.key for o in storage.list("quarantine/")]
    assert len(quarantined) == 1 and quarantined[0].endswith("/reason.json")
    reason = json.loads(storage.get_bytes(quarantined[0]))
    assert (reason["error_code"], reason["original_key"], reason["size_bytes"]) == (
        "FILE_TOO_LARGE", "landing/S1/big.fastq", len(big))
    assert reason["message"] == f"the file is {len(big):,} bytes; the limit is 1,000"


def test_genoflow_upload_refuses_a_file_over_the_limit_before_uploading_anything(tmp_path, monkeypatch, capsys):
    from genoflow_dagster.cli import main as cli_main

    data = tmp_path / "zones"
    monkeypatch.setenv("GENOFLOW_DATA_DIR", str(data))
    monkeypatch.setenv("GENOFLOW_STORAGE", "local")
    monkeypatch.setenv("GENOFLOW_MAX_FILE_BYTES", str(5 * 1024**3))
    small, huge = tmp_path / "x_R1.fastq", tmp_path / "huge.fastq"
    small.write_bytes(GOOD_R1)
    with open(huge, "wb") as f:
        f.truncate(6 * 1024**3)
    assert cli_main(["upload", "--sample", "S1", str(small), str(huge)]) == 1
    err = capsys.readouterr().err
    assert f"{huge}: FILE_TOO_LARGE: the file is 6,442,450,944 bytes; the limit is 5,368,709,120" in err
    assert not (data / "landing").exists()  # not even the small file: the sample never lands half its files
    assert cli_main(["upload", "--sample", "S1", str(small)]) == 0
    assert (data / "landing" / "S1" / "x_R1.fastq").read_bytes() == GOOD_R1


def test_a_file_of_no_known_format_goes_to_quarantine_without_a_raw_copy(tmp_path, monkeypatch):
    from genoflow_dagster.formats.validate import validate_file

    monkeypatch.setenv("GENOFLOW_DATA_DIR", str(tmp_path / "zones"))
    junk = bytes(range(256)) * 8  # binary, no magic GenoFlow reads
    local = tmp_path / "notes.bin"
    local.write_bytes(junk)
    storage, _ = _materialize(tmp_path, {"x_R1.fastq": GOOD_R1, "notes.bin": junk})
    sha = hashlib.sha256(junk).hexdigest()
    assert [o.key.rsplit("/", 1)[-1] for o in storage.list("raw/")] == ["x_R1.fastq"]  # never copied to raw/
    assert sorted(o.key for o in storage.list("quarantine/")) == [f"quarantine/S1/{sha}/notes.bin",
                                                                  f"quarantine/S1/{sha}/reason.json"]
    assert storage.get_bytes(f"quarantine/S1/{sha}/notes.bin") == junk
    validation = json.loads(storage.get_bytes(zones.processed_key("S1", "validated_files", "validation.json")))
    row = next(f for f in validation["files"] if f["path"] == "notes.bin")
    expected = validate_file(local).to_json()  # what `genoflow validate --json` says of the same file
    assert {k: row[k] for k in ("valid", "error_code", "reason", "message", "sha256", "size_bytes")} == {
        k: expected[k] for k in ("valid", "error_code", "reason", "message", "sha256", "size_bytes")}
    reason = json.loads(storage.get_bytes(f"quarantine/S1/{sha}/reason.json"))
    assert (reason["error_code"], reason["original_key"], reason["raw_key"]) == (
        expected["error_code"], "landing/S1/notes.bin", None)
