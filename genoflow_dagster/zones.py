"""The one place that maps (zone, sample, file) to a storage key.

Every asset, sensor and the CLI build keys here, so the layout in DESIGN.md
(`landing/`, `raw/`, `quarantine/`, `processed/`, `reports/`) lives in one file.
"""

from __future__ import annotations

import re
import unicodedata

LANDING = "landing"
RAW = "raw"
QUARANTINE = "quarantine"
PROCESSED = "processed"
REPORTS = "reports"
REFERENCE = "reference"

MAX_NAME_LENGTH = 200
MAX_SAMPLE_ID_LENGTH = 64

_SAMPLE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_UNSAFE_CHARS_RE = re.compile(r"[^A-Za-z0-9._-]+")


class UnsafeKeyError(ValueError):
    """An object key or name that cannot be mapped safely (traversal, control characters...)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _has_control_chars(text: str) -> bool:
    return any(unicodedata.category(ch) == "Cc" for ch in text)


def validate_sample_id(sample_id: str) -> str:
    """Return `sample_id` when it is safe as a partition key and a path segment; raise otherwise.

    Dagster does not validate partition keys (`|` and `,` are accepted), so the
    pipeline only admits a conservative alphabet.
    """
    if not sample_id or len(sample_id) > MAX_SAMPLE_ID_LENGTH:
        raise UnsafeKeyError("SAMPLE_ID_LENGTH", f"sample id must be 1-{MAX_SAMPLE_ID_LENGTH} characters")
    if not _SAMPLE_ID_RE.match(sample_id) or sample_id in (".", ".."):
        raise UnsafeKeyError(
            "SAMPLE_ID_CHARACTERS",
            f"sample id {sample_id!r} may only contain letters, digits, '.', '_' and '-'",
        )
    return sample_id


def safe_name(name: str) -> str:
    """A filename safe for every storage backend: no directories, no control or shell characters."""
    if _has_control_chars(name):
        raise UnsafeKeyError("KEY_CONTROL_CHARACTERS", "file name contains control characters")
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = unicodedata.normalize("NFKC", base)
    cleaned = _UNSAFE_CHARS_RE.sub("_", base).strip("._")
    if not cleaned:
        raise UnsafeKeyError("KEY_EMPTY_NAME", f"file name {name!r} has no usable characters")
    if len(cleaned) > MAX_NAME_LENGTH:
        stem, dot, ext = cleaned.rpartition(".")
        keep = MAX_NAME_LENGTH - len(ext) - 1 if dot and len(ext) < 16 else MAX_NAME_LENGTH
        cleaned = (stem[:keep] + "." + ext) if dot and len(ext) < 16 else cleaned[:keep]
    return cleaned


def parse_landing_key(key: str) -> tuple[str, str]:
    """Split `landing/<sample_id>/<file>` into (sample_id, file name); raise UnsafeKeyError if unsafe.

    Nested folders below the sample are refused rather than flattened, so two
    different uploads can never collide on one name.
    """
    if _has_control_chars(key):
        raise UnsafeKeyError("KEY_CONTROL_CHARACTERS", "object key contains control characters")
    if key.startswith("/") or "\\" in key:
        raise UnsafeKeyError("KEY_ABSOLUTE_PATH", "object key is absolute or uses backslashes")
    parts = key.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise UnsafeKeyError("KEY_PATH_TRAVERSAL", "object key has empty, '.' or '..' segments")
    if len(parts) != 3 or parts[0] != LANDING:
        raise UnsafeKeyError(
            "KEY_LAYOUT", "expected landing/<sample_id>/<file>; nested folders are not accepted"
        )
    if len(key) > 1024:
        raise UnsafeKeyError("KEY_TOO_LONG", "object key is longer than 1024 characters")
    sample_id = validate_sample_id(parts[1])
    if len(parts[2]) > MAX_NAME_LENGTH:
        raise UnsafeKeyError("KEY_TOO_LONG", f"file name is longer than {MAX_NAME_LENGTH} characters")
    return sample_id, parts[2]


def landing_prefix(sample_id: str | None = None) -> str:
    return f"{LANDING}/" if sample_id is None else f"{LANDING}/{validate_sample_id(sample_id)}/"


def landing_key(sample_id: str, name: str) -> str:
    return f"{landing_prefix(sample_id)}{safe_name(name)}"


def raw_key(sample_id: str, sha256: str, name: str) -> str:
    return f"{RAW}/{validate_sample_id(sample_id)}/{sha256}/{safe_name(name)}"


_RAW_KEY_RE = re.compile(rf"^{RAW}/[^/]+/([0-9a-f]{{64}})/([^/]+)$")


def parse_raw_key(key: str) -> tuple[str, str] | None:
    """(sha256, name) of a `raw_key`, or None for any other key: raw objects are named by their checksum,
    so their content never changes under the same key."""
    match = _RAW_KEY_RE.match(key)
    return (match.group(1), match.group(2)) if match else None


def quarantine_prefix(sample_id: str, sha256: str) -> str:
    return f"{QUARANTINE}/{validate_sample_id(sample_id)}/{sha256}/"


def processed_key(sample_id: str, stage: str, name: str) -> str:
    """`processed/<sample>/<stage>/<name>`: one folder per asset, so a stage owns its files."""
    return f"{PROCESSED}/{validate_sample_id(sample_id)}/{stage}/{safe_name(name)}"


def report_key(sample_id: str, name: str) -> str:
    return f"{REPORTS}/{validate_sample_id(sample_id)}/{safe_name(name)}"


def cohort_key(name: str) -> str:
    return f"{REPORTS}/cohort/{safe_name(name)}"


def cohort_table_key(name: str) -> str:
    return f"{PROCESSED}/cohort/{safe_name(name)}"


def quarantine_review_key() -> str:
    """`quarantine/_review.json`: the last re-validation of the quarantine (no sample id starts with '_')."""
    return f"{QUARANTINE}/_review.json"


def reference_key(name: str) -> str:
    """`reference/<name>`: manifests of the reference data assets."""
    return f"{REFERENCE}/{safe_name(name)}"


# ---------------------------------------------------------------- a sample's artifacts
# Each stage writes under processed/<sample>/<asset>/; `genoflow_dagster.sample_record` reads and writes the
# typed records stored at these keys. The names are contracts (stored objects, earlier runs): never rename them.

def inventory_key(sample_id: str) -> str:
    return processed_key(sample_id, "raw_files", "inventory.json")


def validation_key(sample_id: str) -> str:
    return processed_key(sample_id, "validated_files", "validation.json")


def metrics_key(sample_id: str, sha256: str, metrics_version: str) -> str:
    """A file's QC metrics, stored per file content and metric definitions (re-grading reads them back)."""
    return processed_key(sample_id, "qc_metrics", f"metrics-v{metrics_version}-{sha256}.json")


def contamination_key(sample_id: str, sha256: str, method_version: str, screen_digest: str) -> str:
    """A FASTQ's contamination screen, per file, method and screened references (`screen_digest`)."""
    return processed_key(sample_id, "qc_metrics", f"contamination-v{method_version}-{sha256}-{screen_digest}.json")


def reference_match_key(sample_id: str, sha256: str, reference_sha256: str) -> str:
    """An uploaded BAM/CRAM/SAM/VCF compared with one reference, per (file, reference) content."""
    return processed_key(sample_id, "qc_metrics", f"reference-match-v1-{sha256}-{reference_sha256[:16]}.json")


def qc_summary_key(sample_id: str) -> str:
    return processed_key(sample_id, "qc_metrics", "qc.json")


def verdict_table_key(sample_id: str) -> str:
    return processed_key(sample_id, "qc_metrics", "verdict.parquet")


def aligned_manifest_key(sample_id: str) -> str:
    return processed_key(sample_id, "aligned_reads", "manifest.json")


def aligned_bam_key(sample_id: str) -> str:
    return processed_key(sample_id, "aligned_reads", f"{sample_id}.bam")


def targets_bed_key(sample_id: str) -> str:
    """The regions variant calling is restricted to (written by aligned_reads when targets are known)."""
    return processed_key(sample_id, "aligned_reads", "targets.bed")


def calls_manifest_key(sample_id: str) -> str:
    return processed_key(sample_id, "variant_calls", "manifest.json")


def calls_vcf_key(sample_id: str) -> str:
    return processed_key(sample_id, "variant_calls", f"{sample_id}.vcf.gz")


def variants_table_key(sample_id: str) -> str:
    return processed_key(sample_id, "variant_results", "variants.parquet")


def variants_summary_key(sample_id: str) -> str:
    return processed_key(sample_id, "variant_results", "summary.json")


def sample_report_key(sample_id: str) -> str:
    return report_key(sample_id, "report.html")


def sample_report_pdf_key(sample_id: str) -> str:
    """The report as a PDF, printed from the same HTML (reports/pdf.py)."""
    return report_key(sample_id, "report.pdf")
