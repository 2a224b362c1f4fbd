"""Tabular profiling: completeness, uniqueness, validity and the quality score; FASTA/feature counts."""

from __future__ import annotations

from pathlib import Path

import pytest

from genoflow_dagster.qc import compute_metrics


def test_csv_profile(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text('id,age,name,when\n1,34,"Smith, J",2024-01-02\n2,,Doe,2024-02-03\n3,abc,Roe,2024-03-04\n'
                    "4,40,Doe,2024-04-05\n")
    m = compute_metrics(path, "csv")
    assert (m["rows"], m["columns"]) == (4, 4)
    cols = {c["name"]: c for c in m["column_profiles"]}
    assert cols["id"]["type"] == "integer" and cols["id"]["uniqueness"] == 1.0
    assert cols["age"]["completeness"] == 0.75
    assert cols["name"]["uniqueness"] == pytest.approx(3 / 4)
    assert cols["when"]["type"] == "date"
    assert 0 < m["quality_score"] < 100


def test_a_gatk_preamble_is_not_the_header(tmp_path: Path) -> None:
    path = tmp_path / "counts.tsv"
    path.write_text("@HD\tVN:1.6\n@SQ\tSN:1\tLN:100\nCONTIG\tSTART\tEND\tCOUNT\n1\t1\t50\t3\n1\t51\t100\t0\n")
    m = compute_metrics(path, "tsv")
    assert (m["rows"], m["columns"], m["ragged_rows"]) == (2, 4, 0)
    assert [c["name"] for c in m["column_profiles"]] == ["CONTIG", "START", "END", "COUNT"]


def test_tsv_and_xlsx(tmp_path: Path) -> None:
    tsv = tmp_path / "t.tsv"
    tsv.write_text("a\tb\n1\tx\n2\ty\n")
    assert compute_metrics(tsv, "tsv")["quality_score"] == 100.0
    openpyxl = pytest.importorskip("openpyxl")
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["a", "b"])
    ws.append([1, "x"])
    ws.append([2, None])
    wb.save(tmp_path / "t.xlsx")
    m = compute_metrics(tmp_path / "t.xlsx", "xlsx")
    assert (m["rows"], m["columns"]) == (2, 2) and m["completeness"]["b"] == 0.5


def test_fasta_and_features(tmp_path: Path) -> None:
    fa = tmp_path / "r.fa"
    fa.write_text(">a\nACGTN\nGG\n>b\nAT\n")
    m = compute_metrics(fa, "fasta")
    assert (m["records"], m["total_length"], m["n50"]) == (2, 9, 7)
    gtf = tmp_path / "a.gtf"
    gtf.write_text('chr1\tsrc\tgene\t1\t100\t.\t+\t.\tgene_id "g";\nchr1\tsrc\texon\t1\t50\t.\t+\t.\tgene_id "g";\n')
    assert compute_metrics(gtf, "gtf")["feature_types"] == {"gene": 1, "exon": 1}
