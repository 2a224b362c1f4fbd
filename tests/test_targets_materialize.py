"""Targets through the pipeline, materialized on a test instance with the real ERR5069949 ARTIC reads:
the samplesheet's `targets` BED and `qc_profile: amplicon` grade per-amplicon depth at aligned_reads;
GENOFLOW_TARGETS (the reference resource) restricts variant calling to the target regions.

The BEDs are synthetic (no ARTIC primer BED is available here): tiling amplicons over MN908947.3.
"""

import json
import shutil
from pathlib import Path
from typing import Any, ClassVar

import dagster as dg
import pysam
import pytest
import yaml

from genoflow_dagster import zones
from genoflow_dagster.assets.ingestion import raw_files, validated_files
from genoflow_dagster.assets.qc import qc_metrics
from genoflow_dagster.assets.variants import aligned_reads, variant_calls
from genoflow_dagster.partitions import SAMPLES_PARTITION_NAME
from genoflow_dagster.qc.profiles import TARGET_METRICS, load_profile
from genoflow_dagster.resources.compute import Compute
from genoflow_dagster.resources.reference import ReferenceData
from genoflow_dagster.resources.storage import LocalStorage

pytestmark = pytest.mark.slow

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"
READS = {f"S1_R{n}.fastq.gz": REALDATA / f"ERR5069949_test_{n}.fastq.gz" for n in (1, 2)}
PIPELINE = [raw_files, validated_files, qc_metrics, aligned_reads, variant_calls]
CONTIG, GENOME = "MN908947.3", 29_903

needs_realdata = pytest.mark.skipif(not REALDATA.is_dir(), reason="../shared/realdata not present")


class RecordingCompute(Compute):
    """The in-process compute resource, remembering each task's arguments."""

    calls: ClassVar[list[tuple[str, dict[str, Any]]]] = []

    def run(self, context: dg.AssetExecutionContext, task: str, **kwargs: Any) -> dict[str, Any]:
        bed = kwargs.get("targets_bed")
        RecordingCompute.calls.append((task, {**kwargs, "targets_text": Path(bed).read_text() if bed else None}))
        return super().run(context, task, **kwargs)


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("GENOFLOW_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("GENOFLOW_REFERENCE_CACHE", str(tmp_path / "reference-cache"))
    monkeypatch.delenv("GENOFLOW_QC_PROFILE", raising=False)
    fasta = tmp_path / "lab" / "MN908947.3.fasta"
    fasta.parent.mkdir()
    shutil.copyfile(REALDATA / "MN908947.3.fasta", fasta)
    RecordingCompute.calls.clear()
    return tmp_path, fasta


def primer_scheme(path: Path) -> Path:
    """Synthetic ARTIC-style primer BED: 400 bp amplicons tiling the genome, 80 bp overlaps."""
    lines, start, n = [], 30, 0
    while start + 400 <= GENOME - 30:
        n += 1
        lines.append(f"{CONTIG}\t{start}\t{start + 24}\tsynthetic_{n}_LEFT\t{n % 2 + 1}\t+\n")
        lines.append(f"{CONTIG}\t{start + 376}\t{start + 400}\tsynthetic_{n}_RIGHT\t{n % 2 + 1}\t-\n")
        start += 320
    path.write_text("".join(lines))
    return path


def _materialize(root: Path, files: dict[str, Path], reference: ReferenceData):
    storage = LocalStorage(base_dir=str(root / "zones"))
    for name, path in files.items():
        storage.put_file(path, zones.landing_key("S1", name))
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(SAMPLES_PARTITION_NAME, ["S1"])
    result = dg.materialize(PIPELINE, partition_key="S1", instance=instance, raise_on_error=False,
                            resources={"storage": storage, "reference": reference,
                                       "compute": RecordingCompute(mode="in_process")})
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    return storage, checks, materialized


@needs_realdata
def test_samplesheet_amplicon_profile_and_scheme_grade_amplicon_depth(env):
    root, fasta = env
    sheet = root / "samplesheet.csv"
    sheet.write_text("sample,fastq_1,fastq_2,qc_profile,targets\nS1,S1_R1.fastq.gz,S1_R2.fastq.gz,amplicon,"
                     "scheme.bed\n")
    files = {**READS, "samplesheet.csv": sheet, "scheme.bed": primer_scheme(root / "scheme.bed")}
    storage, checks, materialized = _materialize(root, files, ReferenceData(fasta_path=str(fasta)))

    assert checks["qc_metrics_within_profile"].passed, "amplicon-shaped FASTQ modules only warn"
    manifest = json.loads(storage.get_bytes(zones.aligned_manifest_key("S1")))
    assert manifest["targets"]["source"] == "samplesheet line 2"
    assert (manifest["targets"]["name"], manifest["targets"]["kind"]) == ("scheme.bed", "primer scheme")
    metrics = manifest["metrics"]
    assert metrics["target_kind"] == "primer scheme" and metrics["amplicons"] == manifest["targets"]["regions"]
    assert metrics["on_target_reads"] == metrics["primary_mapped"]
    # 100 real read pairs cover a 30 kb genome about once: every amplicon is below the 20x floor
    assert metrics["amplicons_below_floor_percent"] == 100.0
    verdict = manifest["verdict"]
    assert verdict["profile"] == "amplicon" and verdict["status"] == "fail"
    assert "amplicon depth" in verdict["message"] and "amplicons below 20x" in verdict["message"]
    assert not checks["aligned_reads_within_profile"].passed
    assert "variant_calls" not in materialized, "too little amplicon depth stops calling"


@needs_realdata
def test_targeted_profile_without_targets_says_not_graded(env):
    root, fasta = env
    sheet = root / "samplesheet.csv"
    sheet.write_text("sample,fastq_1,fastq_2,qc_profile\nS1,S1_R1.fastq.gz,S1_R2.fastq.gz,amplicon\n")
    storage, _, _ = _materialize(root, {**READS, "samplesheet.csv": sheet}, ReferenceData(fasta_path=str(fasta)))
    manifest = json.loads(storage.get_bytes(zones.aligned_manifest_key("S1")))
    assert manifest["targets"] == {"source": None} and manifest["metrics"]["targets_bed"] is None
    not_graded = manifest["verdict"]["not_graded"]
    assert {m["metric"] for m in not_graded} == {"on_target_reads_percent", "amplicons_below_floor_percent",
                                                 "min_amplicon_depth"}
    assert manifest["verdict"]["status"] != "fail"  # nothing graded is nothing failed, and the report says why
    assert all("not graded (no targets BED configured)" in m["message"] for m in not_graded)


@needs_realdata
def test_configured_targets_restrict_calling(env, monkeypatch):
    root, fasta = env
    # a lab's custom profile: amplicon's checks without the depth floors 100 read pairs cannot meet
    custom = load_profile("amplicon").to_dict()
    custom["checks"] = [c for c in custom["checks"] if c["metric"] not in TARGET_METRICS]
    (root / "lab" / "calling.yaml").write_text(yaml.safe_dump(custom))
    monkeypatch.setenv("GENOFLOW_QC_PROFILE", str(root / "lab" / "calling.yaml"))
    scheme = primer_scheme(root / "lab" / "scheme.bed")
    reference = ReferenceData(fasta_path=str(fasta), targets_path=str(scheme))
    storage, checks, materialized = _materialize(root, READS, reference)
    manifest = json.loads(storage.get_bytes(zones.aligned_manifest_key("S1")))
    assert manifest["targets"]["source"] == "GENOFLOW_TARGETS"
    assert manifest["metrics"]["targets_bed"] and manifest["verdict"]["profile"] == "amplicon"
    assert checks["aligned_reads_within_profile"].passed
    calls = [kwargs for task, kwargs in RecordingCompute.calls if task == "call_variants"]
    assert len(calls) == 1
    regions = calls[0]["targets_text"].splitlines()
    # the primer pairs became amplicon regions: these, not the primer sites, bound the calls
    assert len(regions) == manifest["targets"]["regions"]
    assert regions[0] == f"{CONTIG}\t30\t430\tsynthetic_1"
    assert "variant_calls" in materialized
    calls_manifest = json.loads(storage.get_bytes(zones.calls_manifest_key("S1")))
    spans = [(int(r.split("\t")[1]), int(r.split("\t")[2])) for r in regions]
    with storage.local_path(calls_manifest["vcf_key"]) as vcf, pysam.VariantFile(str(vcf)) as records:
        assert all(any(s <= rec.start < e for s, e in spans) for rec in records)


def test_invalid_configured_targets_are_refused(tmp_path):
    bad = tmp_path / "targets.bed"
    bad.write_text(f"{CONTIG}\t100\t50\n")
    with pytest.raises(ValueError, match="BED_START_AFTER_END"):
        ReferenceData(fasta_path="x.fa", targets_path=str(bad)).targets()
    with pytest.raises(FileNotFoundError, match="GENOFLOW_TARGETS"):
        ReferenceData(fasta_path="x.fa", targets_path=str(tmp_path / "missing.bed")).targets()
    assert ReferenceData(fasta_path="x.fa").targets() is None
