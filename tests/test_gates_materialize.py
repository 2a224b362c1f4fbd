"""The gates on what GenoFlow computes itself, materialized on a test instance: reads that do not map stop at
aligned_reads; an upload made against another reference stops at qc_metrics, before any alignment."""

import json
import shutil
import subprocess
from pathlib import Path

import dagster as dg
import pytest

from genoflow_dagster import zones
from genoflow_dagster.assets.ingestion import raw_files, validated_files
from genoflow_dagster.assets.qc import qc_metrics
from genoflow_dagster.assets.variants import aligned_reads, variant_calls
from genoflow_dagster.demo.generate import generate_demo
from genoflow_dagster.partitions import SAMPLES_PARTITION_NAME
from genoflow_dagster.reports.cohort_tables import summary_row
from genoflow_dagster.reports.context import report_context
from genoflow_dagster.reports.render import render_sample_report
from genoflow_dagster.resources.ai import Narrative
from genoflow_dagster.resources.compute import Compute
from genoflow_dagster.resources.reference import ReferenceData
from genoflow_dagster.resources.storage import LocalStorage
from genoflow_dagster.sample_record import read_sample

pytestmark = pytest.mark.slow

SHARED = Path(__file__).resolve().parents[2] / "shared"
REALWORLD = SHARED / "realworld"
REALDATA = SHARED / "realdata"
B37_BAM = (REALWORLD / "bam"
           / "picard__testdata__picard__fingerprint__index_test__files__NA12891.over.fingerprints.r1.bam")
B37_VCF = REALWORLD / "vcf" / "htsjdk__src__test__resources__htsjdk__variant__NA12891.vcf"
PIPELINE = [raw_files, validated_files, qc_metrics, aligned_reads, variant_calls]

needs_shared = pytest.mark.skipif(not REALWORLD.is_dir() or not REALDATA.is_dir(),
                                  reason="../shared/realworld and ../shared/realdata not present")


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("GENOFLOW_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("GENOFLOW_REFERENCE_CACHE", str(tmp_path / "reference-cache"))
    monkeypatch.delenv("GENOFLOW_QC_PROFILE", raising=False)
    return tmp_path


@pytest.fixture
def sars_cov_2(env) -> Path:
    fasta = env / "lab" / "MN908947.3.fasta"
    fasta.parent.mkdir()
    shutil.copyfile(REALDATA / "MN908947.3.fasta", fasta)
    return fasta


def _materialize(root: Path, files: dict[str, Path], reference: Path, assets=PIPELINE):
    storage = LocalStorage(base_dir=str(root / "zones"))
    for name, path in files.items():
        storage.put_file(path, zones.landing_key("S1", name))
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(SAMPLES_PARTITION_NAME, ["S1"])
    result = dg.materialize(
        assets, partition_key="S1", instance=instance, raise_on_error=False,
        resources={"storage": storage, "reference": ReferenceData(fasta_path=str(reference)),
                   "compute": Compute(mode="in_process")},
    )
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    return storage, checks, materialized


@needs_shared
def test_reads_of_another_genome_stop_at_aligned_reads_with_a_plain_message(env, sars_cov_2):
    """The user's case: the demo's (human-like) reads against the SARS-CoV-2 reference map 0%."""
    demo = generate_demo(env / "demo", contigs=(("chr1", 20_000),), coverage=8.0, n_snvs=4, n_indels=1,
                         low_quality_pairs=10)
    r1, r2 = demo.samples["SAMPLE_A"]
    storage, checks, materialized = _materialize(env, {"S1_R1.fastq.gz": r1, "S1_R2.fastq.gz": r2}, sars_cov_2)

    assert checks["qc_metrics_within_profile"].passed, "the reads themselves are fine"
    assert checks["qc_metrics_reference_consistent"].passed  # FASTQ only: nothing to compare
    gate = checks["aligned_reads_within_profile"]
    assert not gate.passed
    plain = "0.0% of reads map to MN908947.3: is this the right reference?"
    assert gate.description.startswith(plain)
    assert "aligned_reads" in materialized, "the checked asset is stored"
    assert "variant_calls" not in materialized, "the blocking gate stops calling"

    manifest = json.loads(storage.get_bytes(zones.aligned_manifest_key("S1")))
    assert manifest["source"] == "aligned" and manifest["metrics"]["mapped_percent"] == 0.0
    assert manifest["verdict"]["status"] == "fail" and manifest["verdict"]["message"].startswith(plain)
    assert (manifest["verdict"]["profile"], manifest["verdict"]["profile_version"]) == ("standard", "1")

    sample = read_sample(storage, "S1")
    row = summary_row(sample)
    assert (row["status"], row["stopped_at"]) == ("fail", "aligned_reads_within_profile")
    assert row["failing"].startswith(plain)
    shown = {o.gate: o for o in sample.gate_outcomes()}
    assert not shown["aligned_reads_within_profile"].passed
    assert shown["aligned_reads_within_profile"].detail() == manifest["verdict"]["message"]
    assert gate.partition == "S1", "the UI shows the sample's own result"
    page = render_sample_report(report_context(sample, Narrative("-", "offline", None), run_id="r"))
    assert 'QC <span class="badge fail">FAIL</span>' in page
    assert "stopped by <code>aligned_reads_within_profile</code>" in page
    assert plain in page
    # the stopped sample's FAIL report, written by aligned_reads since Dagster skips sample_report
    stored_page = storage.get_bytes(zones.report_key("S1", "report.html")).decode()
    assert "<h2>Stopped: aligned_reads_within_profile</h2>" in stored_page and plain in stored_page


@needs_shared
def test_a_grch37_bam_against_sars_cov_2_stops_before_aligned_reads(env, sars_cov_2):
    storage, checks, materialized = _materialize(env, {"NA12891.bam": B37_BAM}, sars_cov_2)
    gate = checks["qc_metrics_reference_consistent"]
    assert not gate.passed
    assert gate.description == ("NA12891.bam: none of its 85 contigs is in the reference MN908947.3 "
                                "(1, 2, 3, 4, 5 and 80 more): is this the right reference?")
    assert "qc_metrics" in materialized
    assert "aligned_reads" not in materialized and "variant_calls" not in materialized
    assert not storage.exists(zones.aligned_manifest_key("S1"))

    row = summary_row(read_sample(storage, "S1"))
    assert (row["status"], row["stopped_at"]) == ("fail", "qc_metrics_reference_consistent")
    assert "none of its 85 contigs is in the reference MN908947.3" in row["failing"]


@needs_shared
def test_a_grch37_vcf_against_sars_cov_2_stops_before_variant_calls(env, sars_cov_2):
    _, checks, materialized = _materialize(env, {"NA12891.vcf": B37_VCF}, sars_cov_2)
    assert not checks["qc_metrics_reference_consistent"].passed
    assert checks["qc_metrics_reference_consistent"].metadata["status"].value == "fail"
    assert "aligned_reads" not in materialized and "variant_calls" not in materialized


@needs_shared
def test_a_bam_of_the_configured_reference_passes_both_gates(env, sars_cov_2):
    if not shutil.which("minimap2") or not shutil.which("samtools"):
        pytest.skip("minimap2 and samtools are needed to make the BAM")
    sam = subprocess.run(["minimap2", "-a", "-x", "sr", str(sars_cov_2), str(REALDATA / "ERR5069949_test_1.fastq.gz"),
                          str(REALDATA / "ERR5069949_test_2.fastq.gz")], check=True, capture_output=True).stdout
    bam = env / "ERR5069949.bam"
    subprocess.run(["samtools", "sort", "-o", str(bam), "-"], input=sam, check=True, capture_output=True)
    _, checks, materialized = _materialize(env, {"ERR5069949.bam": bam}, sars_cov_2,
                                           assets=[raw_files, validated_files, qc_metrics, aligned_reads])
    assert checks["qc_metrics_reference_consistent"].passed
    assert "1 contig(s) match MN908947.3" in checks["qc_metrics_reference_consistent"].description
    assert "aligned_reads" in materialized
    assert checks["aligned_reads_within_profile"].passed, checks["aligned_reads_within_profile"].description


@needs_shared
def test_without_a_reference_the_consistency_check_says_not_graded(env):
    _, checks, materialized = _materialize(env, {"NA12891.bam": B37_BAM}, env / "missing.fa",
                                           assets=[raw_files, validated_files, qc_metrics])
    gate = checks["qc_metrics_reference_consistent"]
    assert gate.metadata["status"].value == "not_graded"
    assert gate.description.startswith("NOT GRADED: no reference FASTA at")
    assert not gate.passed and gate.severity == dg.AssetCheckSeverity.WARN, "not graded is never a pass"
    assert "qc_metrics" in materialized


@needs_shared
def test_the_samplesheets_profile_grades_every_stage_of_a_real_amplicon_sample(env, sars_cov_2):
    """ERR5069949 (ARTIC amplicons) with `qc_profile: amplicon`: the FASTQ modules amplicon libraries trip
    only warn, and the alignment and call-set gates grade with the same profile qc_metrics chose."""
    from genoflow_dagster.assets.variants import variant_results

    sheet = env / "samplesheet.csv"
    sheet.write_text("sample,fastq_1,fastq_2,qc_profile\nS1,S1_R1.fastq.gz,S1_R2.fastq.gz,amplicon\n")
    files = {"S1_R1.fastq.gz": REALDATA / "ERR5069949_test_1.fastq.gz",
             "S1_R2.fastq.gz": REALDATA / "ERR5069949_test_2.fastq.gz", "samplesheet.csv": sheet}
    storage, checks, materialized = _materialize(env, files, sars_cov_2, assets=[*PIPELINE, variant_results])
    assert checks["qc_metrics_within_profile"].passed
    assert checks["aligned_reads_within_profile"].passed
    assert "variant_results" in materialized
    assert checks["variant_results_within_profile"].metadata["profile"].value.startswith("amplicon")
    qc = json.loads(storage.get_bytes(zones.processed_key("S1", "qc_metrics", "qc.json")))
    assert qc["profile"] == "amplicon" and qc["profile_source"].startswith("samplesheet")
