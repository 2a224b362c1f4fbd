"""Messages a lab technician reads: plain text, never a Python repr (docs/ERROR_CODES.md, "How values are shown").

Every reason the validators give for the malformed rows of ../shared/corpora (default and strict mode,
errors and warnings) and for a few damaged files made here is checked: no `b'...'` byte repr, no `\\x..`
escape, no traceback, no bare `None`. A byte that is not printable text is shown as `<0xNN>`, the one
documented way a file's bytes appear in a message.
"""

import csv
import gzip
import re
from collections import defaultdict
from pathlib import Path

import pytest

from genoflow_dagster.formats.messages import library_error, shown, shown_character
from genoflow_dagster.formats.validate import validate_file

CORPORA = Path(__file__).resolve().parents[1].parent / "shared" / "corpora"
REPR = re.compile(r"""(?<![A-Za-z0-9])b['"]|\\x[0-9a-fA-F]{2}|\\u[0-9a-fA-F]{4}|Traceback|\bNone\b|\[Errno""")


def _messages(result) -> list[tuple[str, str]]:
    found = [(result.reason, result.message)] if result.message else []
    return found + [(w["reason"], w["message"]) for w in result.warnings]


def _malformed_rows() -> dict[str, list[dict]]:
    manifest = CORPORA / "MANIFEST.tsv"
    rows: dict[str, list[dict]] = defaultdict(list)
    if manifest.is_file():
        with open(manifest, newline="") as fh:
            for row in csv.DictReader(fh, delimiter="\t"):
                if row["expected"] == "invalid" or row["level"] == "warn":
                    rows[row["format"]].append(row)
    return rows


ROWS = _malformed_rows()


@pytest.mark.skipif(not ROWS, reason="../shared/corpora not present")
@pytest.mark.parametrize("fmt", sorted(ROWS))
def test_corpus_reasons_are_plain_text(fmt, monkeypatch):
    monkeypatch.setenv("REF_PATH", str(CORPORA / "_aux" / "ref" / "md5" / "%s"))
    bad = []
    for row in ROWS[fmt]:
        for strict in (False, True):
            result = validate_file(CORPORA / row["path"], {"gff3": "gff"}.get(fmt, fmt), strict=strict)
            bad += [(row["path"], reason, message) for reason, message in _messages(result) if REPR.search(message)]
    assert not bad, "\n".join(f"{path}: {reason}: {message}" for path, reason, message in bad[:10])


def _damaged_files(tmp_path: Path) -> list[Path]:
    reads = gzip.compress(b"@r\nACGT\n+\nIIII\n" * 1000)
    files = {
        "deflate.fastq.gz": reads[:10] + b"\x00" * 20 + reads[30:],
        "method.fastq.gz": b"\x1f\x8b" + b"\x07" * 40,
        "truncated.fastq.gz": reads[:-8],
        "quality.fastq": b"@r\nACGT\n+\nII\x07I\n",
        "space.fastq": b"@r\nAC T\n+\nIIII\n",
        "title.fastq": b"\x01r\nACGT\n+\nIIII\n",
        "residue.fasta": b">x\nAC\xffGT\n",
        "name.sam": b"@SQ\tSN:c\tLN:100\nr\xff\x07\t0\tc\t1\t60\t4M\t*\t0\t0\tACGT\tIIII\n",
        "tag.sam": b"@SQ\tSN:c\tLN:100\nr\t0\tc\t1\t60\t4M\t*\t0\t0\tACGT\tIIII\tX\x01:Z:a\n",
        "quote.csv": b'id,name\n1,"a"b\n',
        "broken.xlsx": b"PK\x03\x04" + b"\x00" * 60,
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return [tmp_path / name for name in files]


def test_damaged_files_are_described_in_plain_text(tmp_path):
    for path in _damaged_files(tmp_path):
        result = validate_file(path)
        assert not result.valid, path.name
        for reason, message in _messages(result):
            assert not REPR.search(message), f"{path.name}: {reason}: {message}"


def test_how_values_are_shown():
    assert shown(b"ab\x07\xffc") == "'ab<0x07><0xFF>c'"
    assert shown(b"x" * 40, 5) == "'xxxxx'..."
    assert [shown_character(c) for c in (b" ", b"\t", b"\x7f", b"Z")] == ["a space", "a tab", "the byte 0x7F", "'Z'"]
    assert library_error(OSError(2, "No such file or directory")) == "damaged or truncated data"
    assert library_error(gzip.BadGzipFile("Not a gzipped file (" + repr(b"\x1f\x07") + ")")) == \
        "Not a gzipped file ('<0x1F><0x07>')"
    assert library_error(KeyError("There is no item named 'xl/a.xml' in the archive")) == \
        "There is no item named 'xl/a.xml' in the archive"
