"""The domain functions the sample-pipeline assets call, tested without Dagster on real files: the ingestion
judgements (formats.sample_inputs), a sample's QC summary (qc.sample_qc) and the cohort rows
(reports.cohort_tables).

Data: the real Illumina pair ERR5069949 (SARS-CoV-2, ../shared/realdata).
"""

import gzip
from pathlib import Path

import pytest

from genoflow_dagster import verdicts
from genoflow_dagster.formats.detect import detect_format
from genoflow_dagster.formats.sample_inputs import (
    input_gates,
    read_pairs,
    refused_row,
    samplesheet_row,
    type_refusal,
    validated_row,
)
from genoflow_dagster.formats.validate import validate_fastq_pair, validate_file
from genoflow_dagster.qc import compute_metrics
from genoflow_dagster.qc.sample_qc import MeasuredFile, key_numbers, summarise
from genoflow_dagster.reports.cohort_tables import summary_row, verdict_rows
from genoflow_dagster.sample_record import RawFile, Refusal, ValidatedFile
from genoflow_dagster.samples import ReadGroup
from genoflow_dagster.variants.annotate import COLUMNS, empty_variants
from tests.records import sample_record

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"
R1, R2 = (REALDATA / f"ERR5069949_test_{mate}.fastq.gz" for mate in (1, 2))
pytestmark = pytest.mark.skipif(not REALDATA.is_dir(), reason="../shared/realdata not present")


def _raw(path: Path, name: str) -> RawFile:
    return RawFile(landing_key=f"landing/S1/{name}", etag="e", name=name, safe_name=name,
                   size_bytes=path.stat().st_size, sha256="0" * 64, raw_key=f"raw/S1/{'0' * 64}/{name}",
                   format="fastq", compression="gzip", detection_reason=None, received_at="t", run_id="r")


def _validated(path: Path, name: str) -> ValidatedFile:
    return validated_row(validate_file(path, name=name), _raw(path, name), "default")


def test_a_file_of_no_known_format_is_refused_before_its_raw_copy_and_reads_are_not(tmp_path):
    scan = tmp_path / "scan.bin"
    scan.write_bytes(bytes(range(256)) * 4)
    refusal = type_refusal(detect_format(scan, name="scan.bin"), scan.stat().st_size)
    assert (refusal.error_code, refusal.reason) == ("INVALID_FILE_TYPE", "BINARY_CONTENT")
    assert type_refusal(detect_format(R1, name=R1.name), R1.stat().st_size) is None
    empty = tmp_path / "empty.fastq"
    empty.write_bytes(b"")
    assert type_refusal(detect_format(empty, name="empty.fastq"), 0) is None, "EMPTY_FILE is validate_file's"


def test_a_refused_files_row_says_where_it_landed_instead_of_a_read_name_digest():
    unread = RawFile(landing_key="landing/S1/huge.fastq", etag="e", name="huge.fastq", safe_name="huge.fastq",
                     size_bytes=10, sha256=None, raw_key=None, format=None, compression=None, detection_reason=None,
                     received_at="t", run_id="r", refused=Refusal("FILE_TOO_LARGE", "FILE_TOO_LARGE", "too big", 5))
    row = refused_row(unread, "strict")
    assert (row.valid, row.error_code, row.copied, row.validation_mode) == (False, "FILE_TOO_LARGE", False, "strict")
    stored = row.to_json()
    assert stored["landing_key"] == "landing/S1/huge.fastq" and "read_name_digest" not in stored
    assert ValidatedFile.from_json(stored) == row


def test_real_mates_are_settled_by_their_digests_without_reading_them_again():
    files = [_validated(R1, "ERR_R1.fastq.gz"), _validated(R2, "ERR_R2.fastq.gz")]
    assert all(f.valid and f.read_name_digest for f in files)

    def never(r1: ValidatedFile, r2: ValidatedFile):
        raise AssertionError("equal digests settle the pair")

    groups, orphans, problems = read_pairs(files, never)
    assert (groups, orphans, problems) == ([ReadGroup("ERR_R1.fastq.gz", "ERR_R2.fastq.gz")], [], [])
    usable, all_valid = input_gates(files, orphans, problems, [])
    assert (usable.status, all_valid.status) == ("pass", "pass")


def test_mates_that_part_ways_are_located_and_stop_the_sample(tmp_path):
    with gzip.open(R2, "rb") as f:
        lines = f.read().splitlines(keepends=True)
    shifted = tmp_path / "ERR_R2.fastq.gz"
    with gzip.open(shifted, "wb") as f:
        f.write(b"".join(lines[4:]))  # R2 without its first read
    files = [_validated(R1, "ERR_R1.fastq.gz"), _validated(shifted, "ERR_R2.fastq.gz")]
    located = []

    def mates_differ(r1: ValidatedFile, r2: ValidatedFile):
        located.append((r1.path, r2.path))
        return validate_fastq_pair(R1, shifted)

    _, orphans, problems = read_pairs(files, mates_differ)
    assert located == [("ERR_R1.fastq.gz", "ERR_R2.fastq.gz")]
    assert len(problems) == 1 and problems[0].message.startswith("ERR_R1.fastq.gz / ERR_R2.fastq.gz: ")
    usable = input_gates(files, orphans, problems, [])[0]
    assert usable.stops_sample and usable.problems == (problems[0].message,)
    lone = input_gates(files[:1], ["ERR_R1.fastq.gz"], [], [])[0]
    assert lone.problems == ("ERR_R1.fastq.gz: mate file missing",)


def test_no_samplesheet_is_fine_and_two_are_a_problem():
    files = [_validated(R1, "ERR_R1.fastq.gz")]
    assert samplesheet_row(files, "S1") == (None, [])
    sheets = [ValidatedFile.from_json({**files[0].to_json(), "path": name, "samplesheet": []})
              for name in ("a.csv", "b.csv")]
    assert samplesheet_row(sheets, "S1") == (None, ["2 samplesheets uploaded (a.csv, b.csv): keep one"])


def test_a_real_pairs_qc_summary_grades_each_file_with_the_chosen_profile():
    measured = [MeasuredFile(name, "fastq", "0" * 64, f"metrics-{name}", compute_metrics(path, "fastq"))
                for name, path in (("ERR_R1.fastq.gz", R1), ("ERR_R2.fastq.gz", R2))]
    choice, profile = verdicts.choose_profile("amplicon", None, "standard")
    qc = summarise("S1", measured, read_groups=[ReadGroup("ERR_R1.fastq.gz", "ERR_R2.fastq.gz")], choice=choice,
                   profile=profile, reference_check={"status": "pass", "message": "nothing to compare", "files": []},
                   run_id="r")
    summary = qc.summary
    assert (summary.profile, summary.profile_source, summary.profile_choice) == ("amplicon", "run config", "amplicon")
    assert [g.gate for g in summary.gates] == [verdicts.REFERENCE_CONSISTENT, verdicts.QC_WITHIN_PROFILE]
    assert summary.status == summary.gates[1].status == "warn"  # the real reads warn under amplicon, never fail
    modules = sum(len(f.verdict["modules"]) for f in summary.files)
    assert len(qc.verdict_rows) == modules and len(qc.verdict_frame()) == modules
    assert summary.warnings == [r for r in qc.verdict_rows if r["status"] == "warn"] and not summary.failing
    reads = [m.metrics["total_reads"] for m in measured]
    assert summary.pairs[0]["pairs"] == reads[0] == reads[1] and summary.pairs[0]["read_counts_match"]
    assert summary.headline.total_reads == sum(reads)
    numbers = key_numbers(summary.headline, [(m.format, m.metrics) for m in measured])
    assert numbers["fastq_total_reads"] == sum(reads) and numbers["fastq_q30_percent"] == summary.headline.q30_percent


def test_a_sample_stopped_at_validation_has_its_cohort_rows():
    stopped = sample_record("S9", validation=(verdicts.usable_inputs(analysable_files=0),))
    row = summary_row(stopped)
    assert (row["sample_id"], row["status"], row["stopped_at"]) == ("S9", "fail", verdicts.USABLE_INPUTS)
    assert row["failing"] == "no valid reads, alignments or call set"
    assert [(r["gate"], r["gate_status"]) for r in verdict_rows(stopped, None)] == [(verdicts.USABLE_INPUTS, "fail")]


def test_a_sample_without_a_call_set_has_an_empty_variant_table():
    frame = empty_variants()
    assert list(frame.columns) == COLUMNS and frame.empty
