"""Annotation: genes from GTF/GFF3, known/novel, genotypes, and the call-set summary."""

import json

import pandas as pd
import pytest

from genoflow_dagster.demo.generate import SAMPLE_C, generate_demo
from genoflow_dagster.variants.annotate import (
    COLUMNS,
    annotate_variants,
    load_gene_intervals,
    summarise_variants,
    variant_type,
    zygosity,
)
from genoflow_dagster.variants.call import normalise_vcf


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return generate_demo(tmp_path_factory.mktemp("annotate"))


def _truth_vcf(demo, path):
    """The spiked truth as a single-sample VCF: what a perfect caller would emit."""
    rows = []
    for chrom, pos, ref, alt, zyg in demo.spiked_variants:
        gt = "1/1" if zyg == "hom_alt" else "0/1"
        rows.append(f"{chrom}\t{pos}\t.\t{ref}\t{alt}\t99\tPASS\tDP=30\tGT:DP\t{gt}:{30}")
    path.write_text("\n".join([
        "##fileformat=VCFv4.2", "##contig=<ID=chr1,length=80000>", "##contig=<ID=chr2,length=60000>",
        '##INFO=<ID=DP,Number=1,Type=Integer,Description="Depth">',
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        '##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Depth">',
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tSAMPLE_A", *rows]) + "\n")
    return path


def test_gtf_genes_and_lookup(demo):
    genes = load_gene_intervals(demo.annotation_gtf)
    assert len(genes) == len(demo.genes) == 6
    for name, (chrom, start, end) in demo.genes.items():
        assert genes.genes_at(chrom, start) == [name]
        assert genes.genes_at(chrom, end) == [name]
        assert genes.genes_at(chrom, start - 1) == []
        assert genes.genes_at(chrom, start - 10, start + 10) == [name]
    assert genes.genes_at("chrUn", 100) == []


def test_gff3_with_overlapping_genes(tmp_path):
    gff = tmp_path / "a.gff3"
    gff.write_text(
        "##gff-version 3\n"
        "c1\tsrc\tgene\t100\t1000\t.\t+\t.\tID=gene:G1;Name=LONG%2C1\n"
        "c1\tsrc\tmRNA\t100\t1000\t.\t+\t.\tID=transcript:T1;Parent=gene:G1\n"
        "c1\tsrc\tgene\t300\t400\t.\t-\t.\tID=gene:G2\n"
        "c1\tsrc\tncRNA_gene\t2000\t2100\t.\t-\t.\tID=gene:G3;Name=NC3\n"
    )
    genes = load_gene_intervals(gff)
    assert genes.genes_at("c1", 350) == ["LONG,1", "G2"]
    assert genes.genes_at("c1", 900) == ["LONG,1"]
    assert genes.genes_at("c1", 2050) == ["NC3"]
    assert genes.genes_at("c1", 1500) == []


def test_gtf_without_gene_lines_uses_the_span_of_its_features(tmp_path):
    gtf = tmp_path / "a.gtf"
    gtf.write_text(
        'c1\tsrc\texon\t100\t200\t.\t+\t.\tgene_id "g1"; transcript_id "t1"; gene_name "ABC";\n'
        'c1\tsrc\texon\t500\t600\t.\t+\t.\tgene_id "g1"; transcript_id "t1"; gene_name "ABC";\n'
    )
    genes = load_gene_intervals(gtf)
    assert genes.genes_at("c1", 300) == ["ABC"]


def test_annotation_without_genes_is_an_error(tmp_path):
    empty = tmp_path / "e.gtf"
    empty.write_text("# nothing here\n")
    with pytest.raises(ValueError, match="no gene"):
        load_gene_intervals(empty)


def test_truth_gets_the_expected_genes_and_known_flags(demo, tmp_path):
    vcf = _truth_vcf(demo, tmp_path / "truth.vcf")
    frame = annotate_variants(vcf, annotation_path=demo.annotation_gtf, known_sites=demo.known_sites_vcf,
                              sample_id="SAMPLE_A")
    assert list(frame.columns) == COLUMNS
    truth = json.loads(demo.truth_json.read_text())["variants"]
    assert len(frame) == len(truth)
    for row, expected in zip(frame.to_dict("records"), truth, strict=True):
        assert (row["chrom"], row["pos"], row["ref"], row["alt"]) == (
            expected["chrom"], expected["pos"], expected["ref"], expected["alt"])
        assert (None if pd.isna(row["gene"]) else row["gene"]) == expected["gene"]
        assert row["known"] == expected["known"]
        assert row["zygosity"] == expected["zygosity"]
        assert row["variant_type"] == expected["variant_type"]
        assert row["genotype"] == ("1/1" if expected["zygosity"] == "hom_alt" else "0/1")
        assert row["depth"] == 30
        assert row["variant_id"] == f"{row['chrom']}:{row['pos']}:{row['ref']}:{row['alt']}"
        assert row["sample_id"] == "SAMPLE_A"


def test_uploaded_vcf_known_by_id_or_known_sites(demo, tmp_path):
    out = tmp_path / "c.vcf.gz"
    normalise_vcf(demo.samples[SAMPLE_C][0], out, reference_fasta=demo.reference_fasta)
    frame = annotate_variants(out, annotation_path=demo.annotation_gtf, known_sites=demo.known_sites_vcf,
                              sample_id=SAMPLE_C)
    assert len(frame) == 10
    assert frame["known"].sum() == 5, "two spiked known sites, two fresh known sites, one known by its ID"
    assert set(frame["filter"]) == {"PASS", "LowQual"}
    assert set(frame["zygosity"]) == {"het", "hom_alt"}
    assert (frame["depth"] >= 20).all()
    # without known sites, only the ID makes a variant known
    alone = annotate_variants(out, sample_id=SAMPLE_C)
    assert alone["known"].sum() == 1 and alone["gene"].isna().all()


def test_multiallelic_and_missing_genotypes(tmp_path):
    vcf = tmp_path / "m.vcf"
    vcf.write_text("\n".join([
        "##fileformat=VCFv4.2", "##contig=<ID=c1,length=1000>",
        '##INFO=<ID=DP,Number=1,Type=Integer,Description="Depth">',
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS",
        "c1\t10\t.\tA\tC,G\t50\t.\tDP=12\tGT\t1|2",
        "c1\t20\t.\tAC\tA\t.\tq10\t.\tGT\t./.",
        "c1\t30\t.\tA\t<DEL>\t9\tPASS\t.\tGT\t0/0",
    ]) + "\n")
    frame = annotate_variants(vcf, sample_id="S")
    rows = frame.to_dict("records")
    assert [(r["alt"], r["genotype"], r["zygosity"], r["depth"]) for r in rows[:2]] == [
        ("C", "1|2", "het", 12), ("G", "1|2", "het", 12)]
    assert (rows[2]["zygosity"], rows[2]["genotype"], rows[2]["filter"]) == ("missing", "./.", "q10")
    assert pd.isna(rows[2]["qual"]) and pd.isna(rows[2]["depth"])
    assert (rows[3]["variant_type"], rows[3]["zygosity"]) == ("OTHER", "hom_ref")


@pytest.mark.parametrize(
    ("ref", "alt", "kind"),
    [("A", "G", "SNV"), ("AC", "GT", "MNV"), ("A", "ACG", "INS"), ("ACG", "A", "DEL"),
     ("AC", "GTT", "OTHER"), ("A", "<DUP>", "OTHER"), ("A", "*", "OTHER")],
)
def test_variant_type(ref, alt, kind):
    assert variant_type(ref, alt) == kind


@pytest.mark.parametrize(
    ("alleles", "expected"),
    [((0, 1), "het"), ((1, 1), "hom_alt"), ((0, 0), "hom_ref"), ((None, None), "missing"), ((1, 2), "het"),
     ((1,), "hom_alt"), (None, "missing")],
)
def test_zygosity(alleles, expected):
    assert zygosity(alleles) == expected


def test_summary_counts_ratios_and_genes():
    frame = pd.DataFrame(
        [
            ("chr1", 1, "A", "G", "SNV", "het", True, "G1"),
            ("chr1", 2, "C", "T", "SNV", "hom_alt", False, "G1"),
            ("chr1", 3, "A", "T", "SNV", "het", False, None),
            ("chr1", 4, "A", "AT", "INS", "het", True, "G2,G3"),
            ("chr1", 5, "AT", "A", "DEL", "missing", False, None),
        ],
        columns=["chrom", "pos", "ref", "alt", "variant_type", "zygosity", "known", "gene"],
    )
    summary = summarise_variants(frame)
    assert summary["by_type"] == {"SNV": 3, "MNV": 0, "INS": 1, "DEL": 1, "OTHER": 0}
    assert (summary["ts"], summary["tv"], summary["ts_tv"]) == (2, 1, 2.0)
    assert (summary["het"], summary["hom_alt"], summary["het_hom_ratio"]) == (3, 1, 3.0)
    assert summary["call_rate"] == 0.8
    assert (summary["known"], summary["novel"]) == (2, 3)
    assert summary["genes_hit"] == 3
    json.dumps(summary)  # plain types only: it goes into JSON and Dagster metadata


def test_summary_of_nothing():
    summary = summarise_variants(pd.DataFrame(columns=COLUMNS))
    assert summary["variants"] == 0 and summary["ts_tv"] is None and summary["het_hom_ratio"] is None
    assert summary["call_rate"] is None and summary["genes_hit"] == 0


def test_known_sites_without_an_index_and_with_multiallelic_alts(tmp_path):
    known = tmp_path / "known.vcf"
    known.write_text("##fileformat=VCFv4.2\n##contig=<ID=c1,length=1000>\n"
                     "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
                     "c1\t10\trs1\tA\tC,G\t.\t.\t.\n")
    vcf = tmp_path / "calls.vcf"
    vcf.write_text("##fileformat=VCFv4.2\n##contig=<ID=c1,length=1000>\n"
                   "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
                   "c1\t10\t.\tA\tG\t.\t.\t.\nc1\t10\t.\tA\tT\t.\t.\t.\nc1\t11\t.\tC\tG\t.\t.\t.\n")
    frame = annotate_variants(vcf, known_sites=known, sample_id="S")
    assert frame["known"].tolist() == [True, False, False]
    assert set(frame["zygosity"]) == {"missing"} and frame["genotype"].isna().all()
