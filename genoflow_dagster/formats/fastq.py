"""FASTQ, as the Cock et al. 2010 format paper defines it (the Biopython conformance files).

Records: `@title`, sequence (possibly wrapped over several lines), `+` with
nothing or the same title, quality of exactly the sequence's length (wrapped
likewise), every quality character in ASCII 33-126. Quality lines are read
until they reach the sequence's length, which is how a wrapped file is told
apart from a quality string that happens to start with '@' or '+'.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterator
from typing import BinaryIO

from genoflow_dagster._fastq import name_digest_update, scan_records
from genoflow_dagster.formats.errors import FormatError
from genoflow_dagster.formats.lines import numbered_lines
from genoflow_dagster.formats.messages import shown_character

_SEQ_DELETE = b"ACGTUNacgtunRYKMSWBDHVrykmswbdhv.-*"
_QUAL_DELETE = bytes(range(33, 127))


def _records(stream: BinaryIO) -> Iterator[tuple[int, bytes, bytes]]:
    """(title line, title, quality) for each record; raises FormatError."""
    yield from _records_from(numbered_lines(stream))


def _records_from(lines: Iterator[tuple[int, bytes]]) -> Iterator[tuple[int, bytes, bytes]]:
    pushed_back = None
    while True:
        item, pushed_back = (pushed_back, None) if pushed_back else (next(lines, None), None)
        if item is None:
            return
        number, title = item
        title_number = number
        if not title:
            if any(line for _, line in lines):
                raise FormatError("FASTQ_BLANK_LINE", f"blank line at line {number} inside the file", number)
            return
        if not title.startswith(b"@"):
            raise FormatError("FASTQ_HEADER_MISSING_AT",
                              f"line {number} should start a record with '@' but starts with "
                              f"{shown_character(title[:1])}", number)
        seq_parts: list[bytes] = []
        seq_line = number + 1
        for number, line in lines:
            if line.startswith(b"+"):
                plus_line, plus = number, line
                break
            if line.startswith(b"@") and seq_parts:
                raise FormatError("FASTQ_PLUS_LINE_MISSING",
                                  f"record at line {seq_line - 1} has no '+' line before the next '@' at line {number}",
                                  number)
            if line.translate(None, _SEQ_DELETE):
                bad = line.translate(None, _SEQ_DELETE)[:1]
                raise FormatError("FASTQ_SEQUENCE_INVALID_CHARACTER",
                                  f"sequence at line {number} contains {shown_character(bad)}, which is not a "
                                  "nucleotide code",
                                  number)
            seq_parts.append(line)
        else:
            raise FormatError("FASTQ_TRUNCATED",
                              f"file ends inside the record starting at line {seq_line - 1} (no '+' line)",
                              number if seq_parts else seq_line - 1)
        if len(plus) > 1 and plus[1:] != title[1:]:
            raise FormatError("FASTQ_PLUS_TITLE_MISMATCH",
                              f"'+' line {plus_line} repeats a title different from line {seq_line - 1}", plus_line)
        seq_len = sum(len(p) for p in seq_parts)
        qual = b""
        qual_line = plus_line + 1
        if seq_len == 0:  # a zero-length read: its quality line is empty too (or absent)
            item = next(lines, None)
            if item is not None and item[1]:
                pushed_back = item
        while len(qual) < seq_len:
            item = next(lines, None)
            if item is None:
                if not qual:
                    raise FormatError("FASTQ_TRUNCATED",
                                      f"file ends after the '+' line {plus_line}: quality is missing", plus_line)
                raise FormatError("FASTQ_QUALITY_LENGTH_MISMATCH",
                                  f"quality starting at line {qual_line} has {len(qual)} characters for a sequence "
                                  f"of {seq_len}", qual_line)
            if not item[1] and not qual:
                break
            qual += item[1]
        if len(qual) != seq_len:
            raise FormatError("FASTQ_QUALITY_LENGTH_MISMATCH",
                              f"quality starting at line {qual_line} has {len(qual)} characters for a sequence "
                              f"of {seq_len}", qual_line)
        if qual.translate(None, _QUAL_DELETE):
            bad = qual.translate(None, _QUAL_DELETE)[:1]
            raise FormatError("FASTQ_QUALITY_INVALID_CHARACTER",
                              f"quality starting at line {qual_line} contains {shown_character(bad)}; quality "
                              "characters must be printable ASCII 33-126", qual_line)
        yield title_number, title, qual


BLOCK = 8 * 1024 * 1024
_AT_LEAST_59 = bytes(range(59, 256))
_AT_LEAST_64 = bytes(range(64, 256))
_AT_MOST_74 = bytes(range(75))
_SEQUENCE_OK = bytes(c in _SEQ_DELETE for c in range(256))  # the fast path's table of sequence bytes


def _rest_lines(carry: bytes, stream: BinaryIO, first_number: int) -> Iterator[tuple[int, bytes]]:
    """Numbered lines of `carry` followed by the rest of `stream`, as numbered_lines gives them."""
    number = first_number
    buffer = carry
    while True:
        chunk = stream.read(BLOCK)
        buffer += chunk
        parts = buffer.split(b"\n")
        buffer = parts.pop() if chunk else b""
        if not chunk and parts and parts[-1] == b"" and not buffer:
            parts.pop()
        for line in parts:
            yield number, line[:-1] if line.endswith(b"\r") else line
            number += 1
        if not chunk:
            if buffer:
                yield number, buffer[:-1] if buffer.endswith(b"\r") else buffer
            return


def _encoding_flags(quals: bytes, flags: set[str]) -> None:
    """Note which quality ranges occur: below ';' (59), below '@' (64), above 'J' (74)."""
    if quals.translate(None, _AT_LEAST_59):
        flags.add("below59")
    if quals.translate(None, _AT_LEAST_64):
        flags.add("below64")
    if quals.translate(None, _AT_MOST_74):
        flags.add("above74")


def quality_encoding(flags: set[str]) -> str:
    """The quality offset the characters imply, as FastQC decides it, plus a Solexa test.

    Phred+33 quality 30-41 is ASCII 63-74, so a low byte alone cannot tell
    Phred+33 from Solexa: an offset of 64 is only inferred when bytes above 'J'
    (Phred+33 Q41, where modern Illumina tops out) occur too. Ambiguous files
    (every byte in 64-74) are Phred+33, by far the more common today.
    """
    if "below59" in flags:
        return "phred33"
    if "below64" in flags:
        return "solexa64" if "above74" in flags else "phred33"
    return "phred64" if "above74" in flags else "phred33"


NAME_DIGEST_START = 14695981039346656037 - (1 << 64)  # FNV-1a's offset basis, as a signed int64
_TITLE_BATCH = 4096


def read_name_digest(state: array) -> str:
    """The read-name digest of a validation state, as 16 hex digits."""
    return f"{state[2] & 0xFFFFFFFFFFFFFFFF:016x}"


PROGRESS_EVERY_RECORDS = 1 << 16  # how often the exact line parser reports progress (records)


def validate_fastq(stream: BinaryIO, details: dict, *, progress: Callable[[int], None] | None = None) -> int:
    """Count records; note the quality encoding the characters imply (`phred33`, `phred64`, `solexa64`)
    and the digest of the read names in order (`read_name_digest`: mates of a pair have equal digests, so a
    pair is checked without reading both files again; see `pair_agrees`).

    Plain 4-line records are checked in C (`_fastq.scan_records`) in a reused
    buffer, hundreds of MB/s; from the first record that is anything else (CR
    line ends, wrapped lines, a title after '+', an error) the exact line parser
    takes over, so every rejection is reported by one parser, with its line.

    `progress`, if given, is called with the records counted so far: after each block of the fast path,
    and every PROGRESS_EVERY_RECORDS records of the line parser.
    """
    records = 0
    line = 1
    # lowest and highest quality byte of the fast path, and the running read-name digest
    quality_range = array("q", [255, 0, NAME_DIGEST_START])
    buffer = bytearray(BLOCK)
    filled = 0
    while True:
        if filled == len(buffer):  # a record longer than the buffer (the line cap bounds this)
            buffer.extend(bytes(len(buffer)))
        with memoryview(buffer) as view:
            n = stream.readinto(view[filled:])  # type: ignore[attr-defined]
        if not n:
            carry = bytes(buffer[:filled])
            break
        filled += n
        consumed, count, irregular = scan_records(buffer, filled, quality_range, _SEQUENCE_OK)
        records += count
        line += 4 * count
        if progress is not None:
            progress(records)
        if irregular:
            carry = bytes(buffer[consumed:filled])
            break
        buffer[: filled - consumed] = buffer[consumed:filled]
        filled -= consumed
    flags: set[str] = set()
    if quality_range[1]:
        _encoding_flags(bytes([quality_range[0], quality_range[1]]), flags)
    titles: list[bytes] = []
    for _, title, qual in _records_from(_rest_lines(carry, stream, line)):
        records += 1
        if progress is not None and not records % PROGRESS_EVERY_RECORDS:
            progress(records)
        titles.append(title[1:])
        if len(titles) == _TITLE_BATCH:
            name_digest_update(quality_range, b"\n".join(titles))
            titles.clear()
        if "below59" not in flags:
            _encoding_flags(qual, flags)
    if titles:
        name_digest_update(quality_range, b"\n".join(titles))
    details["quality_encoding"] = quality_encoding(flags)
    details["read_name_digest"] = read_name_digest(quality_range)
    return records


def read_names(stream: BinaryIO) -> Iterator[tuple[int, bytes]]:
    """(title line number, read name without mate suffix or comment) per record."""
    for number, title, _ in _records(stream):
        name = title[1:].split(None, 1)[0] if title[1:].strip() else b""
        if name.endswith((b"/1", b"/2")):
            name = name[:-2]
        yield number, name
