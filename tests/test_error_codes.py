"""docs/ERROR_CODES.md documents every reason code the validators emit, with the severity they raise it at."""

from genoflow_dagster.errors import ErrorCode
from tests.error_codes import documented_codes, emitted_codes, problems


def test_every_emitted_code_is_in_the_catalogue():
    found = problems(emitted_codes(), documented_codes())
    assert not found, "complete docs/ERROR_CODES.md (python tests/error_codes.py lists rows):\n" + "\n".join(found)


def test_the_catalogue_lists_no_code_the_validators_no_longer_emit():
    stale = set(documented_codes()) - set(emitted_codes()) - {str(code) for code in ErrorCode}
    assert not stale, f"remove these rows (or move them to 'Retired'): {sorted(stale)}"


def test_the_scan_finds_codes_and_their_severities():
    emitted = emitted_codes()
    assert emitted["FASTQ_TRUNCATED"] == {"error"}
    assert emitted["TABLE_BLANK_ROW"] == {"warning"}
    assert {"GFF3_SCORE_INVALID", "GTF_SCORE_INVALID"} <= set(emitted)  # f"{prefix}_SCORE_INVALID"
    assert "REF_PATH" not in emitted
