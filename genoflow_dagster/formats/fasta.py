"""FASTA: '>' headers followed by sequence lines of IUPAC nucleotide or amino-acid codes."""

from __future__ import annotations

from typing import BinaryIO

from genoflow_dagster.formats.errors import FormatError
from genoflow_dagster.formats.lines import numbered_lines

_RESIDUES = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz*-."


def validate_fasta(stream: BinaryIO, details: dict) -> int:
    records = 0
    in_record = False
    for number, line in numbered_lines(stream):
        if line.startswith(b">"):
            if len(line) == 1 or not line[1:].strip():
                raise FormatError("FASTA_EMPTY_HEADER", f"header at line {number} has no sequence name", number)
            records += 1
            in_record = True
        elif not line.strip():
            continue
        elif line.startswith(b";") and not in_record:
            continue  # old-style comment before the first record
        elif not in_record:
            raise FormatError("FASTA_HEADER_MISSING", f"line {number} holds sequence before any '>' header", number)
        else:
            bad = line.translate(None, _RESIDUES)
            if bad:
                raise FormatError("FASTA_SEQUENCE_INVALID_CHARACTER",
                                  f"sequence at line {number} contains {bad[:1]!r}", number)
    if records == 0:
        raise FormatError("FASTA_NO_RECORDS", "no '>' header found: not a FASTA file", 1)
    return records
