"""Ingestion assets on real files: raw copies by checksum, quarantine with reason, blocking gate."""

import hashlib
import json

import dagster as dg

from genoflow_dagster import zones
from genoflow_dagster.assets.ingestion import raw_files, validated_files
from genoflow_dagster.assets.qc import qc_metrics
from genoflow_dagster.partitions import SAMPLES_PARTITION_NAME
from genoflow_dagster.resources.reference import ReferenceData
from genoflow_dagster.resources.storage import LocalStorage

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
    assert "x_R1.fastq | x_R2.fastq | 2 | True" in metadata["read_pairs"].value
    assert "![per_position_quality](data:image/svg+xml;base64," in metadata["fastq_plots"].value
