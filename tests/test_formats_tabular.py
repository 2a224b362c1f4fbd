"""CSV/TSV dialect, encoding, blank labels and rows; XLSX archive, XML and shared-string safety."""

import zipfile

import pytest

from genoflow_dagster.formats.validate import validate_file


@pytest.mark.parametrize(
    ("content", "reason", "delimiter"),
    [
        (b"id,name\n1,\"a\"b\n", "TABLE_QUOTING", None),
        (b"id\tname\tage\n1\ta\t3\n", None, "\t"),  # a .csv that is really tab-separated
        (b"id;name\n1;\"two\nlines\"\n", None, ";"),
        (b"\xef\xbb\xbfid,name\n1,a\n", None, ","),  # UTF-8 BOM
        (b"id,name\n1,Agli\xe8\n", None, ","),  # Latin-1 export
        (b"id,name\n1,a\n\n", None, ","),  # a trailing empty line is not a blank row
    ],
)
def test_delimited(tmp_path, content, reason, delimiter):
    path = tmp_path / "sheet.csv"
    path.write_bytes(content)
    result = validate_file(path)
    assert result.reason == reason, result.message
    if delimiter:
        assert result.details["delimiter"] == delimiter


@pytest.mark.parametrize(
    ("content", "reason", "line"),
    [
        (b"id,,age\n1,John,30\n", "TABLE_BLANK_HEADER", 1),  # frictionless blank-label
        (b"id,name\n1,a\n,\n", "TABLE_BLANK_ROW", 3),
        (b"id,name\n1,a\n\n2,b\n", "TABLE_BLANK_ROW", 3),
        (b"id,name\n1,a,b\n", "TABLE_COLUMN_COUNT", 2),  # RFC 4180 section 2.4: "should"
        (b"a,b\n1,2\n3\n", "TABLE_COLUMN_COUNT", 3),
        (b"@HD\tVN:1.6\n@SQ\tSN:1\tLN:9\nCONTIG\tSTART\tEND\tCOUNT\n1\t1\t5\t0\n", "TABLE_PREAMBLE", 1),  # GATK
    ],
)
def test_table_deviations_are_warnings_and_refused_in_strict_mode(tmp_path, content, reason, line):
    path = tmp_path / "table.tsv"
    path.write_bytes(content)
    result = validate_file(path, "csv" if b"," in content else "tsv")
    assert result.valid and [(w["reason"], w["line"]) for w in result.warnings][:1] == [(reason, line)]
    strict = validate_file(path, "csv" if b"," in content else "tsv", strict=True)
    assert (strict.valid, strict.reason, strict.line) == (False, reason, line)


@pytest.mark.parametrize(
    "content",
    [
        b",type,total\n1,SNVs,16235\n",  # pandas to_csv / R write.csv: the row-name column has no label
        b"id,,age\n1,,30\n",  # a blank label over an empty column
        b"id,name\n1,a\n\n\n",  # trailing line breaks
    ],
)
def test_tables_that_conform(tmp_path, content):
    path = tmp_path / "table.csv"
    path.write_bytes(content)
    result = validate_file(path, strict=True)
    assert result.valid and result.warnings == [], result.message


def test_a_samplesheet_refuses_what_an_ordinary_table_only_warns_about(tmp_path):
    for name in ("samplesheet.csv", "stats.csv"):
        (tmp_path / name).write_bytes(b"sample,fastq_1,\ns1,a.fastq.gz,extra\n")
    sheet = validate_file(tmp_path / "samplesheet.csv")
    assert (sheet.valid, sheet.reason, sheet.line) == (False, "TABLE_BLANK_HEADER", 1)
    assert "refused in a samplesheet" in sheet.message
    table = validate_file(tmp_path / "stats.csv")
    assert table.valid and [w["reason"] for w in table.warnings] == ["TABLE_BLANK_HEADER"]


def test_latin1_is_noted(tmp_path):
    path = tmp_path / "sheet.csv"
    path.write_bytes(b"id,name\n1,Agli\xe8\n")
    assert validate_file(path).details["encoding"] == "latin-1"


def workbook(path, parts: dict[str, bytes]) -> None:
    base = {
        "[Content_Types].xml": b'<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
                               b'content-types"/>',
        "xl/workbook.xml": b'<?xml version="1.0"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/'
                           b'2006/main"><sheets/></workbook>',
    }
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as book:
        for name, data in {**base, **parts}.items():
            book.writestr(name, data)


@pytest.mark.parametrize(
    ("parts", "reason"),
    [
        ({"xl/xmlMaps.xml": b'<MapInfo><Schema><xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">'
                            b'<xs:redefine schemaLocation="http://localhost"/></xs:schema></Schema></MapInfo>'},
         "XML_EXTERNAL_REFERENCE"),
        ({"_rels/.rels": b'<?xml version="1.0"?>\nCORRUPTED'}, "XLSX_XML_MALFORMED"),
        ({"xl/styles.xml": b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>'}, "XML_DOCTYPE_FORBIDDEN"),
        ({"xl/worksheets/sheet1.xml": b"<worksheet/>", "xl/worksheets/Sheet1.xml": b"<worksheet/>"},
         "ZIP_DUPLICATE_ENTRY"),
    ],
)
def test_workbook_safety(tmp_path, parts, reason):
    path = tmp_path / "book.xlsx"
    workbook(path, parts)
    result = validate_file(path)
    assert result.reason == reason, result.message


def test_shared_string_bomb_is_refused_before_the_cells_are_read(tmp_path, monkeypatch):
    import genoflow_dagster.formats.tabular as tabular

    monkeypatch.setattr(tabular, "XLSX_MAX_TEXT", 100_000)
    ns = b'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
    strings = b"<sst " + ns + b"><si><t>" + b"x" * 10_000 + b"</t></si></sst>"
    cells = b"".join(b'<row r="%d"><c r="A%d" t="s"><v>0</v></c></row>' % (i, i) for i in range(1, 50))
    sheet = b"<worksheet " + ns + b"><sheetData>" + cells + b"</sheetData></worksheet>"
    path = tmp_path / "bomb.xlsx"
    workbook(path, {"xl/sharedStrings.xml": strings, "xl/worksheets/sheet1.xml": sheet})
    result = validate_file(path)
    assert result.reason == "ZIP_BOMB" and "shared-string" in result.message



def _workbook(path, rows):
    import openpyxl

    workbook = openpyxl.Workbook()
    for row in rows:
        workbook.active.append(row)
    workbook.save(path)


def test_a_workbook_has_no_header_rules_a_samplesheet_does(tmp_path):
    rows = [["Width", None, "Width"], [None, None, None], ["Arial", 2, "Arial"]]
    _workbook(tmp_path / "styles.xlsx", rows)
    result = validate_file(tmp_path / "styles.xlsx", strict=True)
    assert result.valid and result.warnings == []
    _workbook(tmp_path / "samplesheet.xlsx", [["sample", "fastq_1", None], ["s1", "a.fastq.gz", "x"]])
    sheet = validate_file(tmp_path / "samplesheet.xlsx")
    assert (sheet.valid, sheet.reason, sheet.line) == (False, "TABLE_BLANK_HEADER", 1), sheet.message
