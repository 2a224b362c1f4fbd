"""FASTA: '>' headers followed by sequence lines of IUPAC nucleotide or amino-acid codes.

The sequence ID is the first word of the header (as Biopython and NCBI read it) and must be
unique in the file: two records called `chr1` make every coordinate on `chr1` ambiguous. The one
repeat allowed is an interleaved read pair: the record right after, with the same ID and a
header that differs (Casava's `1:N:...` / `2:N:...` descriptions).
Spaces and tabs inside a sequence line carry no residue and are tolerated (Biopython drops
them); the first such line is noted in the details.
"""

from __future__ import annotations

from typing import BinaryIO

from genoflow_dagster.formats.errors import FormatError
from genoflow_dagster.formats.lines import numbered_lines
from genoflow_dagster.formats.messages import shown, shown_character

_RESIDUES = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz*-."
_BLANKS = b" \t"

# The duplicate-ID check keeps every ID seen; past this many bytes of IDs (a read set saved as
# FASTA, not a reference) it stops, says so in the details, and memory stays bounded.
MAX_TRACKED_ID_BYTES = 64 * 1024 * 1024


def validate_fasta(stream: BinaryIO, details: dict) -> int:
    records = 0
    in_record = False
    seen: dict[bytes, int] | None = {}
    tracked_bytes = 0
    previous_header = b""
    previous_name = b""
    previous_was_mate = False
    for number, line in numbered_lines(stream):
        if line.startswith(b">"):
            words = line[1:].split(None, 1)
            if not words:
                raise FormatError("FASTA_EMPTY_HEADER", f"header at line {number} has no sequence name", number)
            records += 1
            in_record = True
            name = words[0]
            mate = (name == previous_name and line != previous_header and not previous_was_mate)
            previous_name, previous_header, previous_was_mate = name, line, mate
            if seen is not None and not mate:
                first = seen.get(name)
                if first is not None:
                    raise FormatError("FASTA_DUPLICATE_ID",
                                      f"line {number}: sequence ID {shown(name)} "
                                      f"was already used at line {first}", number)
                seen[name] = number
                tracked_bytes += len(name)
                if tracked_bytes > MAX_TRACKED_ID_BYTES:
                    details["duplicate_id_check"] = f"stopped after {records} records"
                    seen = None
        elif not line.strip():
            continue
        elif line.startswith(b";") and not in_record:
            continue  # old-style comment before the first record
        elif not in_record:
            raise FormatError("FASTA_HEADER_MISSING", f"line {number} holds sequence before any '>' header", number)
        else:
            bad = line.translate(None, _RESIDUES)
            if bad:
                if bad.translate(None, _BLANKS):
                    bad = bad.translate(None, _BLANKS)
                    raise FormatError("FASTA_SEQUENCE_INVALID_CHARACTER",
                                      f"sequence at line {number} contains {shown_character(bad[:1])}", number)
                details.setdefault("whitespace_in_sequence_line", number)
    if records == 0:
        raise FormatError("FASTA_NO_RECORDS", "no '>' header found: not a FASTA file", 1)
    return records
