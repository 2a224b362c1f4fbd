"""The sample record: every artifact a real sample's run stores reads back into its typed record and writes
out unchanged (`from_json(x).to_json() == x`), and the readers see the stages' own outcomes.

Data: the real Illumina pair ERR5069949 (SARS-CoV-2, ../shared/realdata) against MN908947.3 and its GFF,
plus a file GenoFlow does not read (refused by type before the raw copy) and one over the size limit
(refused from its listed size, unread).
"""

import json

import pytest

from genoflow_dagster import verdicts, zones
from genoflow_dagster.reports.cohort_tables import summary_row, verdict_rows
from genoflow_dagster.resources.storage import LocalStorage
from genoflow_dagster.sample_record import (
    AlignmentManifest,
    CallSetManifest,
    Inventory,
    QCSummary,
    Validation,
    VariantResults,
    read_sample,
    write_validation,
)
from tests.real_samples import REALDATA, copy_reference, land_err5069949, materialize_sample, needs_realdata

pytestmark = pytest.mark.slow

PROFILE = "amplicon"  # a SARS-CoV-2 amplicon run
RECORDS = {
    zones.inventory_key: Inventory,
    zones.validation_key: Validation,
    zones.qc_summary_key: QCSummary,
    zones.aligned_manifest_key: AlignmentManifest,
    zones.calls_manifest_key: CallSetManifest,
    zones.variants_summary_key: VariantResults,
}


@pytest.fixture(scope="module")
def real_sample(tmp_path_factory):
    root = tmp_path_factory.mktemp("record")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GENOFLOW_DATA_DIR", str(root / "data"))
        mp.setenv("GENOFLOW_REFERENCE_CACHE", str(root / "reference-cache"))
        mp.setenv("GENOFLOW_MAX_FILE_BYTES", "1000000")
        mp.delenv("GENOFLOW_QC_PROFILE", raising=False)
        lab = copy_reference(root / "lab")
        storage = LocalStorage(base_dir=str(root / "zones"))
        land_err5069949(storage, "S1")
        storage.put_bytes(bytes(range(256)) * 4, zones.landing_key("S1", "scan.bin"))  # not a format we read
        storage.put_file(REALDATA / "FAK72834_barcode07.fastq", zones.landing_key("S1", "nanopore.fastq"))  # 2 MB
        result = materialize_sample(storage, lab, "S1", PROFILE)
        yield storage, result


@needs_realdata
def test_every_stored_artifact_round_trips_through_its_record(real_sample):
    storage, result = real_sample
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert materialized >= {"raw_files", "validated_files", "qc_metrics", "aligned_reads", "variant_calls",
                            "variant_results", "sample_report"}
    for key_of, record in RECORDS.items():
        stored = json.loads(storage.get_bytes(key_of("S1")))
        again = json.loads(json.dumps(record.from_json(stored).to_json()))  # JSON, as stored (tuples are lists)
        assert again == stored, record.__name__


@needs_realdata
def test_the_record_types_what_each_stage_stored(real_sample):
    storage, _ = real_sample
    sample = read_sample(storage, "S1")
    assert sample.inventory and sample.validation and sample.qc and sample.aligned and sample.calls
    by_name = {f.name: f for f in sample.inventory.files}
    assert by_name["scan.bin"].refused and by_name["scan.bin"].quarantine_key and by_name["scan.bin"].sha256
    assert by_name["nanopore.fastq"].refused.reason == "FILE_TOO_LARGE" and by_name["nanopore.fastq"].sha256 is None
    assert by_name["ERR5069949_R1.fastq.gz"].raw_key.startswith("raw/S1/")
    rows = {f.path: f for f in sample.validation.files}
    assert rows["scan.bin"].refused_before_validation and rows["scan.bin"].copied
    assert not rows["nanopore.fastq"].copied and rows["nanopore.fastq"].quarantine_key == "landing/S1/nanopore.fastq"
    assert rows["ERR5069949_R1.fastq.gz"].read_name_digest == rows["ERR5069949_R2.fastq.gz"].read_name_digest
    assert [(g.r1, g.r2) for g in sample.validation.read_groups] == [
        ("ERR5069949_R1.fastq.gz", "ERR5069949_R2.fastq.gz")]
    assert sample.qc.graded_profile().name == sample.qc.profile == PROFILE
    assert [f.format for f in sample.file_metrics] == ["fastq", "fastq"]
    assert sample.file_metrics[0].metrics["total_reads"] > 0
    assert sample.aligned.source == "aligned" and sample.aligned.bam_key == zones.aligned_bam_key("S1")
    assert sample.calls.source == "called" and sample.variants is not None
    # the readers see exactly the outcomes the stages stored, in pipeline order
    gates = [o.gate for o in sample.gate_outcomes()]
    assert gates == [g for g in verdicts.GATE_ASSETS if g in gates]
    assert set(gates) == set(verdicts.GATE_ASSETS)
    row = summary_row(sample)
    assert (row["status"], row["files"], row["quarantined"]) == (sample.verdict().status, 4, 2)
    assert row["total_reads"] == sample.headline().total_reads == sum(
        f.metrics["total_reads"] for f in sample.file_metrics)
    assert [r["gate"] for r in verdict_rows(sample, None)] == gates


@needs_realdata
def test_a_record_written_back_is_byte_for_byte_the_stored_artifact(real_sample):
    storage, _ = real_sample
    key = zones.validation_key("S1")
    before = storage.get_bytes(key)
    write_validation(storage, Validation.from_json(json.loads(before)))
    assert storage.get_bytes(key) == before
