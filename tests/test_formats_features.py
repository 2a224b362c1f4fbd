"""BED, GFF3 and GTF parsers on small inputs: each broken rule gives its reason and 1-based line."""

import io
from pathlib import Path

import pytest

from genoflow_dagster.formats.bed import validate_bed
from genoflow_dagster.formats.errors import FormatError
from genoflow_dagster.formats.gff import validate_gff3, validate_gtf
from genoflow_dagster.formats.validate import validate_file

DATA = Path(__file__).parent / "data" / "features"
HEADER = "##gff-version 3\n"
# Shared corpora (outside the repository): real producers' files and conformance suites; skipped when absent.
SHARED = Path(__file__).resolve().parents[2] / "shared"
REALWORLD = SHARED / "realworld"
CORPORA = SHARED / "corpora"


def run(validator, text: str | bytes) -> int:
    data = text.encode() if isinstance(text, str) else text
    return validator(io.BytesIO(data), {})


def warnings_of(validator, text: str) -> list[tuple[str, int | None]]:
    """Validates `text` (it must be valid) and returns its warnings as (reason, line)."""
    details: dict = {}
    validator(io.BytesIO(text.encode()), details)
    for warning in details.get("warnings", []):
        assert "b'" not in warning["message"] and f"line {warning['line']}" in warning["message"]
    return [(w["reason"], w["line"]) for w in details.get("warnings", [])]


def shared_file(path: Path) -> Path:
    if not path.is_file():
        pytest.skip(f"{path} is not here (the shared corpora live outside the repository)")
    return path


def rejects(validator, text: str) -> tuple[str, int | None]:
    with pytest.raises(FormatError) as caught:
        run(validator, text)
    return caught.value.reason, caught.value.line


def gff(*rows: str, header: str = HEADER) -> str:
    return header + "".join(row.replace(" ", "\t", 8) + "\n" for row in rows)


def bed12(sizes: str, starts: str, count: int = 2) -> str:
    return f"chr1\t100\t200\tn\t0\t+\t100\t200\t0\t{count}\t{sizes}\t{starts}\n"


# --- BED -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reason", "line"),
    [
        (bed12("10,-10", "0,90"), "BED_BLOCKS_INVALID", 1),
        (bed12("40,65", "0,35"), "BED_BLOCKS_OVERLAP", 1),
        (bed12("10,10", "0,90") + bed12("10,10,10,10", "0,34,20,90", 4), "BED_BLOCKS_UNSORTED", 2),
        (bed12("10,10", "5,90"), "BED_BLOCKS_INVALID", 1),
        ("chr1\t1\t2\nchr1\t1\t2\tname\n", "BED_COLUMN_COUNT", 2),
        ("chrom\tstart\tend\nchr1\t15\t25\nchrom\tstart\tend\n", "BED_START_INVALID", 3),
    ],
)
def test_bed_rules(text, reason, line):
    assert rejects(validate_bed, text) == (reason, line)


def test_bed_blocks_may_touch_and_be_empty():
    assert run(validate_bed, bed12("50,0,50", "0,50,50", 3)) == 1


def test_bed_track_lines_start_a_new_width():
    assert run(validate_bed, (DATA / "ct_example2.bed").read_bytes()) == 6


def test_bed_column_header_before_the_data():
    assert run(validate_bed, "chrom\tstart\tend\nchr1\t15\t25\n") == 1


def bed_rows(*rows: str) -> str:
    return "".join(row.replace(" ", "\t") + "\n" for row in rows)


@pytest.mark.parametrize(
    ("text", "reason", "line"),
    [
        # A later line breaks a column the first line holds as a standard field.
        (bed_rows("chr1 100 200 n 0 + 110 190 0", "chr1 300 400 n 0 + 310 390 0", "chr1 500 600 n 0 + 490 590 0"),
         "BED_THICK_OUTSIDE", 3),
        # The first line's thickStart is not one, but later lines hold valid BED9 columns: the first line is wrong.
        (bed_rows("chr1 100 200 n 0 + 1x0 190 0", "chr1 300 400 n 0 + 310 390 0"), "BED_THICK_INVALID", 1),
        # Three numbers in column 9 are a colour, and must be a valid one, even on a single line.
        (bed_rows("chr1 1 9 n 0 + 1 9 256,0,0"), "BED_RGB_INVALID", 1),
        # BED12 is always read as BED12.
        (bed_rows("chr1 100 200 n 0 + 100 200 0 2 10,10 0,80"), "BED_BLOCKS_INVALID", 1),
        # BED12+m: the blocks are standard on the first line, so a later line must keep them valid.
        (bed_rows("chr1 100 200 p 0 . 100 200 0 2 10,10 0,90 1.5 2.5 3.5",
                  "chr1 300 400 p 0 . 300 400 0 2 10,10 0,50 1.5 2.5 3.5"), "BED_BLOCKS_INVALID", 2),
        ("chr1\t100\t200\tn\t0\tx\n", "BED_STRAND_INVALID", 1),
        ("chr1 100\n", "BED_COLUMN_COUNT", 1),
        # A space in a standard column is a separator even with tabs (acidbio name_with_spaces).
        ("chr1\t10\t20\ta\t0\t+\t10\t20\t0\t1\nchr1\t30\t40\tb c\t0\t-\t30\t40\t0\t1\n", "BED_COLUMN_COUNT", 2),
    ],
)
def test_bed_layout_rules(text, reason, line):
    assert rejects(validate_bed, text) == (reason, line)


@pytest.mark.parametrize(
    "text",
    [
        # MACS/ENCODE narrowPeak, BED6+4: signalValue in column 7, scores above 1000 (int(-10*log10 q)).
        bed_rows("chr22 17255466 17255847 peak_1 214 . 13.2158 24.2291 21.4687 166",
                 "chr22 17392235 17392676 peak_3 1108 . 38.6603 90.8119 86.6351 217"),
        # hmmratac narrowPeak: integer 0s in columns 7-9, even where they would fit as thick columns.
        bed_rows("chrI 0 560 peak_1 268 . 0 0 0 218", "chrI 28730 28750 peak_2 37 . 0 0 0 17"),
        # broadPeak, BED6+3, with -1 for an absent p-value.
        bed_rows("chr1 9980 10480 p1 45 . 3.06587 -1 2.42361", "chr1 10500 10900 p2 40 . 2.1 -1 1.7"),
        # gappedPeak, BED12+3.
        bed_rows("chr1 100 200 p 0 . 100 200 0 2 10,10 0,90 1.5 2.5 3.5"),
        # `bedtools intersect -c` on BED6: a count in column 7 (BED6+1).
        bed_rows("chr1 1000 2000 a 0 + 3", "chr1 3000 4000 b 0 - 0"),
        # With tabs as separators, custom columns may be empty or hold spaces (UCSC table dumps).
        "chr1\t10\t20\ta\t0\t+\t\tgene one\t7\t8\nchr1\t30\t40\tb\t0\t-\tx\tgene two\t\t8\n",
        "chr1\t10\t20\ta\t0\t+\tx\ty\t7\t8\nchr1\t30\t40\tb\t0\t-\t\ty\t7\t8\n",
    ],
)
def test_bed_n_plus_m_files_are_accepted_without_warnings(text):
    assert warnings_of(validate_bed, text) == []


@pytest.mark.parametrize(
    ("score", "line"),
    [("2626", 2), ("34.6318", 2), (".", 2), ("-1", 2), ("six", 2)],
)
def test_bed_score_outside_0_to_1000_is_a_warning(score, line):
    text = bed_rows("chr1 10 20 a 0 +", f"chr1 30 40 b {score} +")
    assert warnings_of(validate_bed, text) == [("BED_SCORE_INVALID", line)]


def test_bed_score_warning_names_the_value():
    details: dict = {}
    validate_bed(io.BytesIO(b"chr1\t10\t20\ta\t2626\t+\n"), details)
    assert "score '2626' is not an integer from 0 to 1000" in details["warnings"][0]["message"]


@pytest.mark.parametrize(
    ("name", "strict_ok"),
    [
        ("MACS__test__standard_results_callpeak_narrow__run_callpeak_narrow0_peaks.narrowPeak", True),
        ("MACS__test__standard_results_hmmratac__hmmratac_yeast500k_accessible_regions.narrowPeak", True),
        ("MACS__test__standard_results_bdgpeakcall__run_bdgpeakcall_w_prefix_c2.0_l200_g30_peaks.narrowPeak", True),
        ("bedtools2__data__aluY.chr1.bed.gz", False),  # BED6, RepeatMasker scores above 1000
        ("deepTools__docs__images__gallery__Whyte_TypicalEnhancers_ESC.bed", False),  # floats in column 5
        ("MACS__test__CTCF_SE_ChIP_chr22_50k.bed.gz", False),  # '.' as the score
    ],
)
def test_bed_real_producers(name, strict_ok):
    """../shared/realworld/bed: accepted by default; strict refuses only the deviating scores."""
    path = shared_file(REALWORLD / "bed" / name)
    assert validate_file(path, "bed").valid
    strict = validate_file(path, "bed", strict=True)
    assert strict.valid == strict_ok
    assert strict_ok or strict.reason == "BED_SCORE_INVALID"


@pytest.mark.parametrize(
    ("name", "line"),
    [("acidbio__BED06__bad__05-score_gt_1000.bed", 3), ("acidbio__BED09__bad__05-score_lt_0.bed", 4),
     ("acidbio__BED12__bad__05-string_score.bed", 4)],
)
def test_bed_acidbio_bad_scores_are_refused_in_strict_mode(name, line):
    """../shared/corpora/bed/invalid (acidbio, BEDv1-based): a score outside 0-1000 is a warning."""
    path = shared_file(CORPORA / "bed" / "invalid" / name)
    result = validate_file(path, "bed", strict=True)
    assert (result.valid, result.reason, result.line) == (False, "BED_SCORE_INVALID", line)


# --- GFF3 ------------------------------------------------------------------------------------------------

GENE = "ctg . gene 1000 9000 . + . ID=gene1"


@pytest.mark.parametrize(
    ("text", "reason", "line"),
    [
        ("##gff-version 2\n", "GFF3_VERSION_UNSUPPORTED", 1),
        ("##gff-versIon 3\n", "GFF3_VERSION_INVALID", 1),
        ("# made by hand\n##gff-version 2\n", "GFF3_VERSION_UNSUPPORTED", 2),
        (gff(GENE, header="") + HEADER, "GFF3_VERSION_REPEATED", 2),
        (gff(GENE, "###") + HEADER, "GFF3_VERSION_REPEATED", 4),
        (gff("ctg . gene 1000 9000 . + . ID=gene1;Parent=gene1"), "GFF3_PARENT_SELF", 2),
        (gff("ctg . gene 1000 9000 . + . ID=gene1;Parent=mRNA1", "ctg . mRNA 1050 9000 . + . ID=mRNA1;Parent=gene1"),
         "GFF3_PARENT_CYCLE", 3),
        (gff(GENE, "###", "ctg . mRNA 1050 9000 . + . Parent=gene1"), "GFF3_PARENT_UNDEFINED", 4),
        (gff("ctg . mRNA 1050 9000 . + . Parent=nope", GENE), "GFF3_PARENT_UNDEFINED", 2),
        (gff("ctg . gene 1000 9000 . + . ID=a=b"), "GFF3_ATTRIBUTE_MALFORMED", 2),
        (gff("ctg . gene 1000 9000 . + . ID=g;ID=g=h"), "GFF3_ATTRIBUTE_DUPLICATE", 2),
        (gff(GENE, "ctg . gene 2000 3000 . + . ID=gene2", "ctg . exon 2000 2100 . + . ID=e1;Parent=gene1",
             "ctg . exon 2200 2300 . + . ID=e1;Parent=gene2"), "GFF3_MULTI_FEATURE_PARENT_MISMATCH", 5),
        (gff("ctg . gene 1000 9000 . + . ID=g", "chr2 . gene 1000 9000 . + . ID=g"), "GFF3_DUPLICATE_ID", 3),
        (gff("ctg . gene 1 10 . + . ID=g;Is_circular=yes"), "GFF3_IS_CIRCULAR_INVALID", 2),
        (gff("ctg . match_part 1 10 . + . Target=t 2 1 -"), "GFF3_TARGET_INVALID", 2),
        (gff("ctg . match 1 10 . + . Target=t 1 10 sideways"), "GFF3_TARGET_INVALID", 2),
        (gff("ctg . match 1 10 . + . Gap=M5 X5"), "GFF3_GAP_INVALID", 2),
        (gff("ctg . match 1 10 . + . Gap=M4 D5"), "GFF3_GAP_INVALID", 2),
        (gff("ctg . match 1 10 . + . Target=t 1 8;Gap=M9 D1"), "GFF3_GAP_INVALID", 2),
        (gff("ctg . nucleotide_match 1 10 . + . Gap=M9 F1"), "GFF3_GAP_INVALID", 2),
        (gff("md5:063b1024d68e26716b7f38caf958316fx18 . gene 1 10 . + . ID=g"), "GFF3_SEQID_INVALID", 2),
        (gff("ctg\x01 . gene 1 10 . + . ID=g"), "GFF3_SEQID_INVALID", 2),
        (gff("ctg . gene . 10 . + . ID=g"), "GFF3_COORDINATE_INVALID", 2),
        ("##gff-version 3\n##sequence-region ctg 1\n", "GFF3_SEQUENCE_REGION_INVALID", 2),
        ("##gff-version 3\n##sequence-region ctg 1 x\n", "GFF3_SEQUENCE_REGION_INVALID", 2),
        ("##gff-version 3\n##sequence-region ctg 2 1\n", "GFF3_SEQUENCE_REGION_INVALID", 2),
        ("##gff-version 3\n##sequence-region ctg -1 100\n", "GFF3_SEQUENCE_REGION_INVALID", 2),
        ("##gff-version 3\n##sequence-region ctg 1 100\n##sequence-region ctg 1 100\n",
         "GFF3_SEQUENCE_REGION_DUPLICATE", 3),
        (gff(GENE) + "##sequence-region ctg 1 10000\n", "GFF3_SEQUENCE_REGION_LATE", 3),
        (gff(GENE, header=HEADER + "##sequence-region ctg 1 5000\n"), "GFF3_OUTSIDE_SEQUENCE_REGION", 3),
    ],
)
def test_gff3_rules(text, reason, line):
    assert rejects(validate_gff3, text) == (reason, line)


@pytest.mark.parametrize(
    "text",
    [
        "##gff-version\t3\nctg\t.\tgene\t1\t9\t.\t+\t.\tID=g\n",
        "##gff-version 3.1.26\n",
        gff("ctg . remark . . . . . comment=foo;ID=bar", "ctg . STS 23478 24350 . + . Parent=bar"),  # no range
        "##gff-version 3\nctg 123\t.\tgene\t1000\t9000\t.\t+\t.\tID=g\n",  # genometools accepts the space
        gff("ctg . gene 1 10 . + . ID=g;Is_circular=true", header=HEADER + "##sequence-region ctg 1 5\n"),
        gff(GENE, "ctg . gene 1000 9000 . + . ID=g2;Name=EDEN", "ctg . mRNA 1000 9000 . + . ID=m;Parent=EDEN"),
        gff(GENE, "###", GENE),  # '###' ends the scope of IDs: one may be used again
        gff("ctg . match 11344 11483 . - . ID=m;Target=a 68 262 -,b 58 252 -"),
        gff("ctg . protein_match 100 129 . + . ID=m;Target=p 1 10;Gap=M3 I1 M2 D1 M4"),
        gff("ctg . protein_match 100 130 . + . ID=m;Target=p 1 10;Gap=M3 I1 M2 D1 F1 M4"),
        # The specification's own example is laid out with spaces instead of tabs.
        "##gff-version 3\nctg123  .  gene  1000 9000  .  +  .  ID=gene00001;Name=EDEN\n",
    ],
)
def test_gff3_accepts(text):
    run(validate_gff3, text)


@pytest.mark.parametrize("name", ["gt_gff3_phases4.gff3", "match_part_gap.gff3", "multi_feature_orphan_succ.gff3"])
def test_gff3_accepts_genometools_files(name):
    assert run(validate_gff3, (DATA / name).read_bytes()) > 0


@pytest.mark.parametrize(
    ("text", "reason", "line"),
    [
        ("ctg\t.\tgene\t1\t9\t.\t+\t.\tg\n", "GFF3_ATTRIBUTE_MALFORMED", 1),  # no pragma: line 1 is a feature
        (gff("ctg . gene 1 9 . + . g2"), "GFF3_ATTRIBUTE_MALFORMED", 2),  # no tag=value at all (AUGUSTUS/GFF1)
        (gff("ctg . gene 1 9 . + . .;ID=foo"), "GFF3_ATTRIBUTE_MALFORMED", 2),  # '.' then attributes
        (gff("ctg . gene 1 9 . + . ID=g1", "ctg . gene 1 9 . + . ID=g1;Parent=g1"), "GFF3_PARENT_SELF", 3),
        (gff("ctg . CDS 1 9 . + . ID=c"), "GFF3_CDS_PHASE_MISSING", 2),
    ],
)
def test_gff3_rules_that_stay_errors(text, reason, line):
    assert rejects(validate_gff3, text) == (reason, line)


@pytest.mark.parametrize(
    ("text", "warnings"),
    [
        # Files cut from larger ones, TransDecoder and EVM write no pragma: gt gff3 -tidy adds it.
        (gff(GENE, header=""), [("GFF3_VERSION_MISSING", 1)]),
        (gff(GENE, header="# from a pipeline\n" + HEADER), [("GFF3_VERSION_MISSING", 1)]),
        # Glimmer: a bare note among tag=value pairs is skipped, as gt gff3 -tidy skips it.
        (gff("ctg . gene 3 62 . - . ID=GL6;Name=GL6;Lack 3'-end;"), [("GFF3_ATTRIBUTE_NOT_TAG_VALUE", 2)]),
        # Glimmer again: the mRNA takes its gene's ID and names it as Parent.
        (gff("ctg . gene 3 62 . - . ID=GL6", "ctg . mRNA 3 62 . - . ID=GL6;Parent=GL6",
             "ctg . CDS 3 62 . - 0 Parent=GL6"), [("GFF3_ID_REUSED", 3)]),
        # Empty values and tags: gt gff3 -tidy skips them ("has no value; skip it").
        (gff("ctg . gene 1000 9000 . + . ID=gene1;Name="), [("GFF3_ATTRIBUTE_EMPTY", 2)]),
        (gff("ctg . region 1 9 . + . ID=id0;=genomic DNA"), [("GFF3_ATTRIBUTE_NOT_TAG_VALUE", 2)]),
        # A wrong CDS phase: gt gff3 -tidy corrects it (genometools' cds_check_fail_3).
        ((DATA / "cds_check_fail_3.gff3").read_text(), [("GFF3_CDS_PHASE_WRONG", 9)]),
        (gff(GENE, "ctg . CDS 1000 1010 . + 0 Parent=gene1", "ctg . CDS 1100 1110 . + 0 Parent=gene1"),
         [("GFF3_CDS_PHASE_WRONG", 4)]),
        # UniProt ends every line with a tab.
        (gff("P00750 UniProtKB chain 33 562 . . . ID=PRO_1") .replace("\n", "\t\n"),
         [("GFF3_TRAILING_EMPTY_COLUMN", 2)]),
    ],
)
def test_gff3_warnings(text, warnings):
    assert warnings_of(validate_gff3, text) == warnings


def test_gff3_cds_with_an_ncbi_exception_are_not_phase_checked():
    text = gff(GENE, "ctg . CDS 1000 1010 . + 0 ID=c;Parent=gene1;exception=ribosomal slippage",
               "ctg . CDS 1010 1100 . + 0 ID=c;Parent=gene1;exception=ribosomal slippage")
    assert run(validate_gff3, text) == 3


def test_gff3_cds_lines_sharing_an_id_are_their_own_chain():
    # Two CDS multi-features of one mRNA (two proteins) overlap; each chain is phased on its own.
    text = gff("ctg . mRNA 1 9000 . + . ID=m",
               "ctg . CDS 3301 3902 . + 0 ID=c3;Parent=m", "ctg . CDS 5000 5500 . + 1 ID=c3;Parent=m",
               "ctg . CDS 3391 3902 . + 0 ID=c4;Parent=m", "ctg . CDS 5000 5500 . + 1 ID=c4;Parent=m")
    assert run(validate_gff3, text) == 5


# --- GTF -------------------------------------------------------------------------------------------------


def gtf(*rows: str) -> str:
    lines = []
    for row in rows:
        ftype, start, end, strand, phase, tid = row.split()
        lines.append(f'chr1\tsrc\t{ftype}\t{start}\t{end}\t.\t{strand}\t{phase}\tgene_id "g"; transcript_id "{tid}";')
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("text", "reason", "line"),
    [
        (gtf("CDS 500 600 - 0 t1", "stop_codon 100 102 - 0 t1"), "GTF_STOP_CODON_NOT_FLANKING", 2),
        (gtf("stop_codon 700 702 + 0 t1", "CDS 100 200 + 0 t1"), "GTF_STOP_CODON_NOT_FLANKING", 1),
    ],
)
def test_gtf_rules(text, reason, line):
    assert rejects(validate_gtf, text) == (reason, line)


@pytest.mark.parametrize(
    "text",
    [gtf("CDS 100 200 + 0 t1", "stop_codon 198 200 + 0 t1"), gtf("CDS 100 200 - 0 t1", "stop_codon 100 102 - 0 t1")],
)
def test_gtf_stop_codon_inside_the_cds_is_a_warning(text):
    # GeneMark and GFF3 converters count the stop codon in the CDS; gt gtf_to_gff3 -tidy warns.
    assert warnings_of(validate_gtf, text) == [("GTF_STOP_CODON_IN_CDS", 2)]


def test_gtf_augustus_gene_and_transcript_lines_are_skipped():
    # AUGUSTUS writes its gene and transcript lines with a bare ID; GTF 2.2 ignores those feature types.
    text = ("chr1\tAUGUSTUS\tgene\t100\t202\t0.3\t+\t.\tg1\n"
            "chr1\tAUGUSTUS\ttranscript\t100\t202\t0.3\t+\t.\tg1.t1\n" + gtf("CDS 100 199 + 0 g1.t1",
                                                                                "stop_codon 200 202 + 0 g1.t1"))
    assert warnings_of(validate_gtf, text) == [("GTF_FEATURE_SKIPPED", 1), ("GTF_FEATURE_SKIPPED", 2)]
    assert rejects(validate_gtf, text.replace("\tgene\t", "\texon\t")) == ("GTF_ATTRIBUTE_MALFORMED", 1)


def test_gtf_cds_without_a_frame_is_a_warning():
    # JGI writes '.' as the frame of its CDS; GFF3 requires a phase (an error there).
    assert warnings_of(validate_gtf, gtf("CDS 100 200 + . t1")) == [("GTF_CDS_PHASE_MISSING", 1)]


def test_gtf_transcript_on_two_strands_is_a_warning():
    # seqkit's GenBank conversion gives two speA genes, 500 kb apart on opposite strands, one transcript_id.
    text = gtf("exon 100 200 + . t1", "CDS 4000 4200 - 0 t1", "stop_codon 3997 3999 - 0 t1")
    assert warnings_of(validate_gtf, text) == [("GTF_STRAND_INCONSISTENT", 2)]


def test_gtf_empty_ids_name_no_transcript():
    # GTF 2.2: "If empty, no transcript is associated with this feature."
    text = ('c\tgenbank\tgene\t10\t90\t.\t+\t0\tgene_id ""; transcript_id "";\n'
            'c\tgenbank\tCDS\t500\t900\t.\t-\t0\tgene_id ""; transcript_id "";\n')
    assert warnings_of(validate_gtf, text) == []


def test_gtf_quoted_values_may_hold_semicolons():
    text = 'c\ts\texon\t1\t9\t.\t+\t.\tgene_id "g"; transcript_id "t"; note "a; b";\n'
    assert run(validate_gtf, text) == 1
    assert rejects(validate_gtf, text.replace('"a; b"', '"a; b')) == ("GTF_ATTRIBUTE_MALFORMED", 1)


def test_gtf_accepts_stop_codon_flanking_the_cds():
    assert run(validate_gtf, gtf("CDS 100 200 + 0 t1", "stop_codon 201 203 + 0 t1",
                                 "CDS 500 600 - 0 t2", "stop_codon 497 499 - 0 t2")) == 4
    assert run(validate_gtf, (DATA / "stop_split_over_two_exons.gtf").read_bytes()) == 9


# --- real producers' files (../shared/realworld) and conformance suites (../shared/corpora) ----------------


def realworld_rows(formats: tuple[str, ...]) -> list[tuple[str, str, str]]:
    import csv

    manifest = REALWORLD / "MANIFEST.tsv"
    if not manifest.is_file():
        return []
    with open(manifest, newline="") as fh:
        return [(row["path"], row["format"], row["spec_verdict"])
                for row in csv.DictReader(fh, delimiter="\t") if row["format"] in formats]


@pytest.mark.parametrize(("path", "fmt", "verdict"), realworld_rows(("bed", "gff", "gff3", "gtf")))
def test_real_producers_files_are_accepted(path, fmt, verdict):
    """Every BED/GFF3/GTF file of ../shared/realworld (UCSC, ENCODE/MACS, Ensembl, RefSeq, GENCODE, StringTie,
    Glimmer, UniProt, ...) is valid; strict mode accepts those the manifest says conform to their spec."""
    fmt = {"gff3": "gff"}.get(fmt, fmt)
    result = validate_file(REALWORLD / path, fmt)
    assert result.valid, (result.reason, result.line, result.message)
    for warning in result.warnings:
        assert "b'" not in warning["message"] and f"line {warning['line']}" in warning["message"]
    if verdict == "conforms":
        assert result.warnings == []


@pytest.mark.parametrize(
    ("name", "reason"),
    [("bcftools__test__csq__ENSCAFT00000047742__ENSCAFT00000047742.gff", "GFF3_VERSION_MISSING"),
     ("gffutils__gffutils__test__data__glimmer_nokeyval.gff3", "GFF3_ATTRIBUTE_NOT_TAG_VALUE"),
     ("biopython__Tests__SwissProt__multi_ex.gff", "GFF3_TRAILING_EMPTY_COLUMN")],
)
def test_gff3_real_deviations_are_refused_in_strict_mode(name, reason):
    result = validate_file(shared_file(REALWORLD / "gff" / name), "gff", strict=True)
    assert (result.valid, result.reason) == (False, reason)


@pytest.mark.parametrize(
    ("name", "reason", "line"),
    [("agat__gff_syntax__in__42_test.gff.gff3", "GFF3_ATTRIBUTE_MALFORMED", 2),
     ("gt__attribute_after_dot.gff3", "GFF3_ATTRIBUTE_MALFORMED", 3),
     ("gt__gt_gff3_test_2.gff3", "GFF3_VERSION_INVALID", 1),
     ("gt__self_referential.gff3", "GFF3_PARENT_SELF", 3)],
)
def test_gff3_conformance_rows_stay_refused(name, reason, line):
    """../shared/corpora/gff3/invalid (genometools and AGAT test suites): refused in the default mode."""
    result = validate_file(shared_file(CORPORA / "gff3" / "invalid" / name), "gff")
    assert (result.valid, result.reason, result.line) == (False, reason, line)
