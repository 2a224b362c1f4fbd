"""CSV/TSV dialect, encoding, blank labels and rows; XLSX archive, XML and shared-string safety."""

import zipfile

import pytest

from genoflow_dagster.formats.validate import validate_file


@pytest.mark.parametrize(
    ("content", "reason", "delimiter"),
    [
        (b"id,,age\n1,John,30\n", "TABLE_BLANK_HEADER", None),
        (b"id,name\n1,a\n,\n", "TABLE_BLANK_ROW", None),
        (b"id,name\n1,a\n\n2,b\n", "TABLE_BLANK_ROW", None),
        (b"id,name\n1,a,b\n", "TABLE_COLUMN_COUNT", None),
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
