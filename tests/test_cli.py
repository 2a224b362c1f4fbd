"""`genoflow validate` and `genoflow qc`: the JSON contracts and exit codes of DESIGN.md."""

import json
import subprocess
import sys

import pytest

VALIDATE_FIELDS = ["path", "format", "valid", "error_code", "reason", "message", "line", "records",
                   "size_bytes", "sha256", "warnings"]
FASTQ_QC_FIELDS = {"total_reads", "total_bases", "min_length", "max_length", "mean_length", "gc_percent",
                   "n_percent", "mean_quality", "q20_percent", "q30_percent", "per_position_quality",
                   "per_sequence_gc", "length_distribution", "duplication_percent",
                   "overrepresented_sequences", "adapter_content", "modules"}


def genoflow(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "genoflow_dagster.cli", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def fastqs(tmp_path):
    good = tmp_path / "good.fastq"
    good.write_text("@r1\nACGTACGTNN\n+\nIIIIIIIII#\n@r2\nGGGCCC\n+\nIIIIII\n")
    bad = tmp_path / "bad.fastq"
    bad.write_text("@r1\nACGT\n+\nIIII\n@r2\nACGTACGT\n+\nIII\n")
    return good, bad


def test_validate_json_follows_the_contract(fastqs):
    good, bad = fastqs
    proc = genoflow("validate", str(good), str(bad), "--json")
    assert proc.returncode == 1, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [list(obj) for obj in lines] == [VALIDATE_FIELDS, VALIDATE_FIELDS]
    first, second = lines
    assert first["path"] == str(good) and first["valid"] is True and first["format"] == "fastq"
    assert first["error_code"] is None and first["records"] == 2 and first["size_bytes"] == good.stat().st_size
    assert len(first["sha256"]) == 64 and first["warnings"] == []
    assert second["valid"] is False and second["error_code"] == "VALIDATION_ERROR"
    assert second["reason"] == "FASTQ_QUALITY_LENGTH_MISMATCH" and second["line"] == 8


def test_validate_exit_codes(fastqs, tmp_path):
    good, _ = fastqs
    assert genoflow("validate", str(good)).returncode == 0
    missing = genoflow("validate", str(tmp_path / "nope.fastq"), "--json")
    assert missing.returncode == 2
    assert json.loads(missing.stdout)["error_code"] == "STORAGE_ERROR"
    assert genoflow("validate", "--format", "nonsense", str(good)).returncode == 2
    empty = tmp_path / "empty.fastq"
    empty.write_bytes(b"")
    proc = genoflow("validate", str(empty), "--json")
    assert proc.returncode == 1 and json.loads(proc.stdout)["error_code"] == "EMPTY_FILE"


def test_qc_json_has_the_fastq_fields(fastqs):
    good, bad = fastqs
    proc = genoflow("qc", str(good), "--json")
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads(proc.stdout)
    assert set(metrics) >= FASTQ_QC_FIELDS
    assert metrics["total_reads"] == 2 and metrics["total_bases"] == 16
    assert metrics["min_length"] == 6 and metrics["max_length"] == 10
    assert genoflow("qc", str(bad), "--json").returncode == 1
