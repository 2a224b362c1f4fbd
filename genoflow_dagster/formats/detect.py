"""What a file is: compression from magic bytes, format from content, cross-checked with the name."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

from genoflow_dagster.errors import ErrorCode
from genoflow_dagster.formats.io import (
    DECOMPRESSION_ERRORS,
    GZIP_MAGIC,
    ZIP_ERRORS,
    ZIP_MAGIC,
    is_bgzf,
    is_bzip2,
    open_decompressed,
    sniff,
)
from genoflow_dagster.formats.messages import library_error

EXTENSIONS: dict[str, str] = {
    ".fastq": "fastq", ".fq": "fastq", ".fasta": "fasta", ".fa": "fasta", ".fna": "fasta", ".fas": "fasta",
    ".sam": "sam", ".bam": "bam", ".cram": "cram", ".vcf": "vcf", ".bcf": "vcf", ".bed": "bed",
    ".gff": "gff", ".gff3": "gff", ".gtf": "gtf", ".csv": "csv", ".tsv": "tsv", ".txt": "tsv", ".xlsx": "xlsx",
}
COMPRESSION_SUFFIXES = (".gz", ".bgz", ".bgzf")
# Formats that may be gzip/BGZF compressed as a whole file.
COMPRESSIBLE = frozenset({"fastq", "fasta", "sam", "vcf", "bed", "gff", "gtf", "csv", "tsv"})


BCF_MAGIC = b"BCF"  # then the major and minor version bytes (BCF 2.x: 2, 1 or 2)


def is_bcf(path: str | Path) -> bool:
    """Whether the (decompressed) content starts with the BCF magic."""
    try:
        with open_decompressed(path) as stream:
            return stream.read(3) == BCF_MAGIC
    except DECOMPRESSION_ERRORS:
        return False


@dataclass(frozen=True)
class Detection:
    format: str | None
    compression: str  # none | gzip | bgzf | zip
    error_code: ErrorCode | None = None
    reason: str | None = None
    message: str | None = None


def format_from_name(name: str) -> tuple[str | None, bool]:
    """(format implied by the extension, whether the name says it is compressed)."""
    lower = name.lower()
    compressed = lower.endswith(COMPRESSION_SUFFIXES)
    if compressed:
        lower = lower.rsplit(".", 1)[0]
    suffix = "." + lower.rsplit(".", 1)[-1] if "." in lower else ""
    return EXTENSIONS.get(suffix), compressed


def _text_format(head: bytes) -> str | None:
    """Guess a text format from the first decompressed bytes."""
    text = head.lstrip(b"\xef\xbb\xbf")
    lines = [ln for ln in text.split(b"\n")[:20] if ln.strip()]
    if not lines:
        return None
    first = lines[0]
    if first.startswith(b"##fileformat=VCF"):
        return "vcf"
    if first.startswith(b"##gff-version"):
        return "gff"
    if first.startswith(b"@") and len(lines) >= 3 and lines[2].startswith(b"+"):
        return "fastq"
    if first.startswith((b"@HD\t", b"@SQ\t", b"@RG\t", b"@PG\t", b"@CO\t")):
        return "sam"
    if first.startswith(b">"):
        return "fasta"
    data = [ln for ln in lines if not ln.startswith((b"#", b"track", b"browser"))]
    if data:
        cols = data[0].split(b"\t")
        if len(cols) == 9 and cols[3].strip().isdigit() and cols[4].strip().isdigit():
            return "gtf" if b'"' in cols[8] else "gff"
        if len(cols) >= 11 and cols[1].isdigit() and cols[3].isdigit():
            return "sam"
        if len(cols) >= 3 and cols[1].strip().isdigit() and cols[2].strip().isdigit():
            return "bed"
        if len(cols) > 1:
            return "tsv"
        if b"," in data[0]:
            return "csv"
    return None


def detect_format(path: str | Path, name: str | None = None) -> Detection:
    """Detect compression and format by content first; the extension breaks ties and is cross-checked.

    A contradiction that matters (a `.bam` that is text, an `.xlsx` that is no zip)
    is reported with its own reason; the caller decides whether it is fatal.
    """
    path = Path(path)
    name = name or path.name
    by_name, _ = format_from_name(name)
    head = sniff(path, 64)
    if head[:4] == ZIP_MAGIC:
        try:
            with zipfile.ZipFile(path) as archive:
                names = set(archive.namelist())
        except ZIP_ERRORS:
            return Detection(by_name, "zip", ErrorCode.INVALID_FILE_TYPE, "ZIP_CORRUPT",
                             "the file starts like a zip archive but cannot be opened as one")
        if "xl/workbook.xml" in names or by_name == "xlsx":
            return Detection("xlsx", "zip")
        return Detection(None, "zip", ErrorCode.INVALID_FILE_TYPE, "ZIP_NOT_XLSX",
                         "a zip archive that is not an Excel workbook (no xl/workbook.xml)")
    if by_name == "xlsx":
        return Detection("xlsx", "none", ErrorCode.INVALID_FILE_TYPE, "XLSX_NOT_ZIP",
                         "the file is named .xlsx but is not a zip archive, so it cannot be an Excel workbook")
    if head[:4] == b"CRAM":
        return Detection("cram", "none")
    compression = "none"
    if head[:2] == GZIP_MAGIC or is_bzip2(head):
        compression = "bgzf" if is_bgzf(head) else "gzip" if head[:2] == GZIP_MAGIC else "bzip2"
        try:
            with open_decompressed(path) as stream:
                inner = stream.read(4096)
        except DECOMPRESSION_ERRORS as exc:
            return Detection(by_name, compression, ErrorCode.VALIDATION_ERROR, "GZIP_CORRUPT",
                             f"the gzip stream cannot be decompressed: {library_error(exc)}")
        if inner[:4] == b"BAM\x01":
            if by_name not in (None, "bam"):
                return Detection("bam", compression, ErrorCode.INVALID_FILE_TYPE, "EXTENSION_CONTENT_MISMATCH",
                                 f"the name says {by_name} but the content is BAM")
            return Detection("bam", compression)
    else:
        inner = sniff(path, 4096)
    if inner[:3] == BCF_MAGIC:  # BCF (plain or BGZF): the vcf format, read through htslib (`is_bcf`)
        if by_name not in (None, "vcf"):
            return Detection("vcf", compression, ErrorCode.INVALID_FILE_TYPE, "EXTENSION_CONTENT_MISMATCH",
                             f"the name says {by_name} but the content is BCF (binary VCF)")
        return Detection("vcf", compression)
    if by_name == "bam":
        kind = _text_format(inner)
        what = f"text {kind.upper()}" if kind else "not BAM"
        return Detection(kind, compression, ErrorCode.INVALID_FILE_TYPE, "EXTENSION_CONTENT_MISMATCH",
                         f"the file is named .bam but its content is {what} (BAM is BGZF-compressed binary)")
    if by_name == "cram":
        return Detection("cram", compression, ErrorCode.INVALID_FILE_TYPE, "EXTENSION_CONTENT_MISMATCH",
                         "the file is named .cram but does not start with the CRAM magic")
    if b"\x00" in inner[:1024]:  # every format left (plain or inside gzip) is text
        what = "the decompressed content" if compression != "none" else "the file"
        return Detection(by_name, compression, ErrorCode.INVALID_FILE_TYPE, "BINARY_CONTENT",
                         f"{what} holds binary data where a text format was expected")
    guessed = _text_format(inner)
    if by_name is not None:
        # The content guess is weak for tabular and feature formats; trust a consistent extension.
        if guessed in (None, "tsv", "csv", "bed") or guessed == by_name or {guessed, by_name} <= {"gff", "gtf"}:
            return Detection(by_name, compression)
        return Detection(by_name, compression, ErrorCode.INVALID_FILE_TYPE, "EXTENSION_CONTENT_MISMATCH",
                         f"the name says {by_name} but the content looks like {guessed}")
    if guessed is None:
        return Detection(None, compression, ErrorCode.INVALID_FILE_TYPE, "UNKNOWN_FORMAT",
                         "the format could not be recognised from the content or the name")
    return Detection(guessed, compression)
