"""FASTA validator: IDs, interleaved mates, whitespace inside sequence lines."""

import pytest

from genoflow_dagster.formats.validate import validate_file


@pytest.mark.parametrize(
    ("content", "reason", "line"),
    [
        (">a\nACGT\n>b\nAC\n>a desc\nGG\n", "FASTA_DUPLICATE_ID", 5),
        (">seq7\nAAAA\n>seq7\nTTTT\n", "FASTA_DUPLICATE_ID", 3),  # same header twice: not a mate pair
        (">r 1:N:0\nAC\n>r 2:N:0\nGT\n>r 3:N:0\nTT\n", "FASTA_DUPLICATE_ID", 5),  # a pair has two reads
        (">\nACGT\n", "FASTA_EMPTY_HEADER", 1),
        (">   \nACGT\n", "FASTA_EMPTY_HEADER", 1),
        (">a\nAC GT#\n", "FASTA_SEQUENCE_INVALID_CHARACTER", 2),
    ],
)
def test_fasta_rejections_name_reason_and_line(tmp_path, content, reason, line):
    path = tmp_path / "x.fasta"
    path.write_text(content)
    result = validate_file(path)
    assert (result.valid, result.reason, result.line) == (False, reason, line)


def test_interleaved_mates_share_an_id(tmp_path):
    path = tmp_path / "pairs.fa"
    path.write_text(">r1 1:N:0:AC\nACGT\n>r1 2:N:0:AC\nTTGA\n>r2 1:N:0:AC\nGG\n>r2 2:N:0:AC\nCC\n")
    result = validate_file(path)
    assert result.valid, result.message
    assert result.records == 4


def test_spaces_inside_a_sequence_line_are_tolerated_and_noted(tmp_path):
    path = tmp_path / "protein.fa"
    path.write_text(">p1 protein\nMDDHF     KRS\tRLS\n>p2\nMKV\n")
    result = validate_file(path)
    assert result.valid, result.message
    assert result.details["whitespace_in_sequence_line"] == 2


def test_leading_spaces_before_the_id_are_not_part_of_it(tmp_path):
    path = tmp_path / "x.fa"
    path.write_text(">  foo\nAC\n>bar\nTT\n>foo\nGT\n")
    result = validate_file(path)
    assert (result.reason, result.line) == ("FASTA_DUPLICATE_ID", 5)
