"""Samplesheets: the pandera schema reports every broken field with its line; valid rows reach the details."""

import openpyxl
import pytest

from genoflow_dagster.formats.validate import validate_file

HEADER = "sample,fastq_1,fastq_2,vcf,qc_profile\n"


def _validate(tmp_path, text, name="samplesheet.csv"):
    path = tmp_path / name
    path.write_text(text)
    return validate_file(path)


def test_a_valid_sheet_gives_its_rows(tmp_path):
    result = _validate(tmp_path, HEADER + "S1,S1_R1.fastq.gz,S1_R2.fastq.gz,,strict\nS2,,,S2.vcf.gz,\n")
    assert result.valid, result.message
    rows = result.details["samplesheet"]
    assert [(r["sample"], r["qc_profile"], r["line"]) for r in rows] == [("S1", "strict", 2), ("S2", "", 3)]
    assert rows[1]["vcf"] == "S2.vcf.gz"


@pytest.mark.parametrize(
    ("body", "line", "fragment"),
    [
        ("S1,../etc/passwd,,,\n", 2, "column fastq_1: '../etc/passwd' must be a plain file name"),
        ("S1,a.fq,,,lenient\n", 2,
         "column qc_profile: 'lenient' must be empty or one of amplicon, exome, panel, standard, strict"),
        ("S1,a.fq,,,\nS1,b.fq,,,\n", 3, "column sample: 'S1' must be unique in the sheet"),
        ("S 1,a.fq,,,\n", 2, "column sample: 'S 1' must be a sample ID"),
        ("S" * 65 + ",a.fq,,,\n", 2, "must be a sample ID of 1-64"),  # longer than a partition key may be
        ("S1,,b_R2.fq,,\n", 2, "line 2: fastq_2 needs fastq_1"),
        ("S1,a.fq,,,\nS2,,,,standard\n", 3, "line 3: a row names at least one file"),
    ],
)
def test_each_broken_field_is_named_with_its_line(tmp_path, body, line, fragment):
    result = _validate(tmp_path, HEADER + body)
    assert (result.valid, result.reason, result.line) == (False, "SAMPLESHEET_FIELD_INVALID", line)
    assert fragment in result.message


def test_every_problem_is_listed_not_only_the_first(tmp_path):
    result = _validate(tmp_path, HEADER + "S1,a/b.fq,,,x\nS 2,c.fq,,,\n")
    assert result.message.startswith("3 samplesheet field(s) invalid")
    assert result.line == 2


def test_a_sheet_without_a_sample_column_is_refused(tmp_path):
    result = _validate(tmp_path, "id,fastq_1\nS1,a.fq\n", name="SampleSheet.csv")  # names match case-insensitively
    assert (result.reason, result.line) == ("SAMPLESHEET_COLUMN_MISSING", 1)


def test_other_tables_are_not_held_to_the_schema(tmp_path):
    result = _validate(tmp_path, "id,fastq_1\nS1,../a.fq\n", name="metadata.csv")
    assert result.valid


def test_tsv_and_xlsx_sheets(tmp_path):
    tsv = _validate(tmp_path, "sample\tbam\nS1\tS1.bam\n", name="samplesheet.tsv")
    assert tsv.valid and tsv.details["samplesheet"][0]["bam"] == "S1.bam"

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append([])  # a blank first row: the header is found below it
    sheet.append(["sample", "fastq_1", "qc_profile"])
    sheet.append(["S1", "S1.fastq", "strict"])
    sheet.append(["S2", "S2\\..\\x.fastq", ""])
    path = tmp_path / "samplesheet.xlsx"
    workbook.save(path)
    result = validate_file(path)
    assert (result.valid, result.reason, result.line) == (False, "SAMPLESHEET_FIELD_INVALID", 4)


def test_shipped_assay_profiles_and_a_targets_bed(tmp_path):
    """Every profile shipped in qc/profiles/ is accepted by name; `targets` names an uploaded BED (no path)."""
    from genoflow_dagster.formats.samplesheet import named_files
    from genoflow_dagster.qc.profiles import shipped_profiles

    header = "sample,fastq_1,fastq_2,qc_profile,targets\n"
    rows = "".join(f"S{i},S{i}_R1.fq.gz,S{i}_R2.fq.gz,{name},panel.bed\n" for i, name in enumerate(shipped_profiles()))
    result = _validate(tmp_path, header + rows)
    assert result.valid, result.message
    sheet = result.details["samplesheet"]
    assert {r["qc_profile"] for r in sheet} >= {"exome", "panel", "amplicon", "standard", "strict"}
    assert named_files(sheet[0]) == ["S0_R1.fq.gz", "S0_R2.fq.gz", "panel.bed"]
    refused = _validate(tmp_path, header + "S1,a.fq,,amplicon,/data/scheme.bed\n")
    assert (refused.valid, refused.line) == (False, 2)
    assert "column targets: '/data/scheme.bed' must be a plain file name" in refused.message
