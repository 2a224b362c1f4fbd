"""Validators: specific reasons and 1-based lines on small files, and the conformance corpus where present."""

import csv
import gzip
import os
from pathlib import Path

import pytest

from genoflow_dagster.formats.detect import detect_format
from genoflow_dagster.formats.validate import validate_fastq_pair, validate_file

CORPORA = Path(__file__).resolve().parents[1].parent / "shared" / "corpora"
VCF_HEAD = ("##fileformat=VCFv4.2\n##contig=<ID=chr1>\n##INFO=<ID=DP,Number=1,Type=Integer,Description=\"d\">\n"
            "##FORMAT=<ID=GT,Number=1,Type=String,Description=\"g\">\n"
            "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS1\n")


@pytest.mark.parametrize(
    ("name", "content", "reason", "line"),
    [
        ("a.fastq", "@r\nACGT\n+\nIIII\nr2\nAC\n+\nII\n", "FASTQ_HEADER_MISSING_AT", 5),
        ("a.fastq", "@r\nAC GT\n+\nIIIII\n", "FASTQ_SEQUENCE_INVALID_CHARACTER", 2),
        ("a.fastq", "@r\nACGT\n+x\nIIII\n", "FASTQ_PLUS_TITLE_MISMATCH", 3),
        ("a.fastq", "@r\nACGT\n+\nII\x07I\n", "FASTQ_QUALITY_INVALID_CHARACTER", 4),
        ("a.fastq", "@r\nACGT\n+\nIIIIII\n", "FASTQ_QUALITY_LENGTH_MISMATCH", 4),
        ("a.fastq", "@r\nACGT\n", "FASTQ_TRUNCATED", 2),
        ("a.fasta", "ACGT\n>x\nAC\n", "FASTA_HEADER_MISSING", 1),
        ("a.vcf", VCF_HEAD + "chr1\t5\t.\tA\tG\t.\t.\tDP=3\tGT\t0/1\nchr1\t4\t.\tA\tG\t.\t.\t.\tGT\t0/1\n",
         "VCF_UNSORTED", 7),
        ("a.vcf", VCF_HEAD + "chr1\t5\t.\tA\tG\t.\t.\tXX=1;XX=2\tGT\t0/1\n", "VCF_INFO_DUPLICATE_KEY", 6),
        ("a.vcf", VCF_HEAD + "chr1\t5\t.\tA\tG\t.\t.\tDP=x\tGT\t0/1\n", "VCF_VALUE_TYPE_MISMATCH", 6),
        ("a.vcf", VCF_HEAD + "chr1\t5\t.\tA\tG\t.\t.\t.\tGT\t0/2\n", "VCF_GT_ALLELE_OUT_OF_RANGE", 6),
        ("a.bed", "chr1\t10\t5\n", "BED_START_AFTER_END", 1),
        ("a.sam", "@SQ\tSN:c\tLN:100\nr\t0\tc\t1\t60\t4M\t*\t0\t0\tACG\tIII\n", "SAM_CIGAR_SEQ_LENGTH_MISMATCH", 2),
        ("a.gtf", 'c\ts\texon\t1\t10\t.\t+\t.\ttranscript_id "t";\n', "GTF_GENE_ID_MISSING", 1),
        ("a.gff3", "##gff-version 3\nc\ts\tmRNA\t1\t10\t.\t+\t.\tID=m;Parent=nope\n", "GFF3_PARENT_UNDEFINED", 2),
    ],
)
def test_bad_files_get_their_reason_and_line(tmp_path, name, content, reason, line):
    path = tmp_path / name
    path.write_bytes(content.encode())
    result = validate_file(path)
    assert not result.valid
    assert (result.error_code, result.reason, result.line) == ("VALIDATION_ERROR", reason, line), result.message


def test_good_files_count_records_and_hash(tmp_path):
    path = tmp_path / "ok.vcf"
    path.write_text(VCF_HEAD + "chr1\t5\t.\tA\tG,T\t50\tPASS\tDP=3\tGT\t1|2\n")
    result = validate_file(path)
    assert result.valid and result.records == 1 and result.format == "vcf" and len(result.sha256) == 64


def test_gzip_is_read_by_content_and_hashed_as_stored(tmp_path):
    path = tmp_path / "reads.fastq"  # gzip content behind a plain name
    path.write_bytes(gzip.compress(b"@r\nACGT\n+\nIIII\n"))
    result = validate_file(path)
    assert result.valid and result.details["compression"] == "gzip" and result.records == 1
    import hashlib
    assert result.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_gzip_bomb_is_refused_quickly(tmp_path):
    path = tmp_path / "bomb.fastq.gz"
    record = b"@r\n" + b"A" * 10_000 + b"\n+\n" + b"I" * 10_000 + b"\n"
    member = gzip.compress(record * 1000, compresslevel=9)  # 20 MB of FASTQ in ~20 kB
    path.write_bytes(member * 30)  # concatenated gzip members: ~600 MB expanded, far over 200:1
    result = validate_file(path)
    assert not result.valid and result.reason == "DECOMPRESSION_BOMB"


def test_binary_inside_gzip_is_refused_before_decompressing_it(tmp_path):
    path = tmp_path / "zeros.fastq.gz"
    path.write_bytes(gzip.compress(b"\0" * 10_000_000, compresslevel=9) * 50)  # 500 MB of NUL bytes
    result = validate_file(path)
    assert (result.reason, str(result.error_code)) == ("BINARY_CONTENT", "INVALID_FILE_TYPE")


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize(("name", "line_length", "reason"),
                         [("reads.fastq", 1000, None), ("reads.fastq", 1001, "LINE_TOO_LONG"),
                          ("calls.vcf", 1001, "LINE_TOO_LONG"), ("genome.fa", 1001, None)])
def test_a_line_longer_than_the_cap_is_refused_wherever_it_falls(tmp_path, monkeypatch, compress, name,
                                                                  line_length, reason):
    """A file without line breaks must not make a validator buffer it whole; FASTA's own cap is higher."""
    import genoflow_dagster.formats.fastq as fastq_module
    import genoflow_dagster.formats.validate as validate_module

    monkeypatch.setattr(validate_module, "MAX_LINE_BYTES", 1000)
    monkeypatch.setattr(validate_module, "CHUNK", 64)  # lines straddle many reads
    monkeypatch.setattr(fastq_module, "BLOCK", 64)
    if name.endswith(".fastq"):
        body = b"@r1\nACGT\n+\nIIII\n" * 50 + b"@long\n" + b"A" * line_length + b"\n+\n" + b"I" * line_length + b"\n"
    elif name.endswith(".vcf"):
        body = b"##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n" + b"1\t1\t" + b"x" * line_length
    else:
        body = b">chr1\n" + b"A" * line_length + b"\n"
    path = tmp_path / (name + (".gz" if compress else ""))
    path.write_bytes(gzip.compress(body) if compress else body)
    result = validate_file(path)
    assert result.reason == reason, result.message
    if reason:
        start = body.index(b"A" * 1001) if name.endswith(".fastq") else body.index(b"1\t1\t")
        assert f"starting at byte {start:,} " in result.message


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [("x.bam", b"@HD\tVN:1.6\n", "EXTENSION_CONTENT_MISMATCH"), ("x.xlsx", b"a,b\n1,2\n", "XLSX_NOT_ZIP"),
     ("x.dat", b"\x00\x01\x02binary", "BINARY_CONTENT")],
)
def test_type_contradictions_have_their_own_codes(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    result = validate_file(path)
    assert (result.error_code, result.reason) == ("INVALID_FILE_TYPE", reason)


def test_empty_and_oversized(tmp_path):
    empty = tmp_path / "e.fastq"
    empty.write_bytes(b"")
    assert validate_file(empty).error_code == "EMPTY_FILE"
    big = tmp_path / "b.fastq"
    big.write_bytes(b"@r\nA\n+\nI\n" * 100)
    assert validate_file(big, max_bytes=10).error_code == "FILE_TOO_LARGE"
    assert detect_format(big).format == "fastq"


def test_pairs_must_match_name_by_name(tmp_path):
    r1, r2, r2_short = tmp_path / "a_R1.fq", tmp_path / "a_R2.fq", tmp_path / "s_R2.fq"
    r1.write_text("@x/1\nA\n+\nI\n@y/1\nA\n+\nI\n")
    r2.write_text("@x/2\nA\n+\nI\n@y/2\nA\n+\nI\n")
    r2_short.write_text("@x/2\nA\n+\nI\n")
    assert validate_fastq_pair(r1, r2) is None
    assert validate_fastq_pair(r1, r2_short).reason == "FASTQ_PAIR_COUNT_MISMATCH"


def _corpus_rows(formats: set[str]):
    manifest = CORPORA / "MANIFEST.tsv"
    if not manifest.is_file():
        return []
    with open(manifest, newline="") as fh:
        return [pytest.param(row, id=row["path"]) for row in csv.DictReader(fh, delimiter="\t")
                if row["format"] in formats]


# Formats whose every corpus row agrees today: a regression here is a real regression.
@pytest.mark.skipif(not (CORPORA / "MANIFEST.tsv").is_file(), reason="../shared/corpora not present")
@pytest.mark.parametrize("row", _corpus_rows({"fastq", "bam", "tsv"}))
def test_corpus_rows_agree(row, monkeypatch):
    monkeypatch.setenv("REF_PATH", str(CORPORA / "_aux" / "ref" / "md5" / "%s"))
    result = validate_file(CORPORA / row["path"], row["format"])
    assert result.valid == (row["expected"] == "valid"), (result.reason, result.message, row["reason"][:200])


@pytest.mark.skipif(not (CORPORA / "MANIFEST.tsv").is_file(), reason="../shared/corpora not present")
def test_cram_decodes_with_local_references_only(monkeypatch):
    monkeypatch.setenv("REF_PATH", str(CORPORA / "_aux" / "ref" / "md5" / "%s"))
    rows = [r.values[0] for r in _corpus_rows({"cram"})]
    agree = sum(validate_file(CORPORA / r["path"], "cram").valid == (r["expected"] == "valid") for r in rows)
    assert agree >= len(rows) - 1
    assert os.environ["REF_PATH"].startswith(str(CORPORA))


@pytest.mark.parametrize("block", [7, 64, 4096])
def test_fastq_fast_path_agrees_with_the_exact_parser(block, monkeypatch):
    """The block fast path must give the same verdict, reason and line as the line parser, at any block size."""
    import io
    import random

    from genoflow_dagster.formats import fastq as fq
    from genoflow_dagster.formats.errors import FormatError

    def outcome(fn, data):
        try:
            return ("ok", fn(data))
        except FormatError as exc:
            return (exc.reason, exc.line)

    monkeypatch.setattr(fq, "BLOCK", block)
    rng = random.Random(block)
    base = b"".join(b"@r%d\nACGTNACGTA\n+\nIIIII#IIII\n" % i for i in range(60))
    for _ in range(300):
        data = bytearray(base)
        for _ in range(rng.randrange(0, 3)):
            roll = rng.random()
            if roll < 0.3:
                del data[rng.randrange(len(data))]
            elif roll < 0.6:
                data[rng.randrange(len(data))] = rng.choice(b"@+\n\rAN I\x07")
            else:
                data = data[: rng.randrange(1, len(data))]
        exact = outcome(lambda d: sum(1 for _ in fq._records(io.BytesIO(d))), bytes(data))
        assert outcome(lambda d: fq.validate_fastq(io.BytesIO(d), {}), bytes(data)) == exact


@pytest.mark.parametrize(
    ("quals", "expected"),
    [
        ("?@ABCDEFGHIJ", "phred33"),  # modern Illumina Q30-41: the demo's range, not Solexa
        ("#+5?IJ", "phred33"),
        (";<=>?@Zhh", "solexa64"),  # Solexa -5..: low bytes 59-63 together with bytes above 'J'
        ("@ABhhh", "phred64"),
        ("ABCDEFGHIJ", "phred33"),  # ambiguous: Phred+33 is the modern default
    ],
)
def test_quality_encoding_is_inferred_from_both_ends_of_the_range(tmp_path, quals, expected):
    path = tmp_path / "q.fastq"
    path.write_text(f"@r\n{'A' * len(quals)}\n+\n{quals}\n")
    assert validate_file(path).details["quality_encoding"] == expected


# (body, reason, VCF version, strict): strict rows are warnings, refused only in strict mode (issue 10)
@pytest.mark.parametrize(
    ("body", "reason", "version", "strict"),
    [
        ("chr1\t5\t.\tA\tG\t-3\t.\t.\tGT\t0/1\n", "VCF_QUAL_INVALID", "4.2", False),
        ("chr1\t5\trs1;rs1\tA\tG\t.\t.\t.\tGT\t0/1\n", "VCF_ID_INVALID", "4.2", False),
        ("chr1\t5\t.\tA\tG\t.\tPASS;.\t.\tGT\t0/1\n", "VCF_FILTER_INVALID", "4.2", False),
        ("chr1\t5\t.\tA\tG\t.\t.\tDP=-1\tGT\t0/1\n", "VCF_VALUE_NEGATIVE", "4.2", True),
        ("chr1\t5\trs1\tA\tG\t.\t.\t.\tGT\t0/1\nchr1\t5\trs1\tA\tG\t.\t.\t.\tGT\t1/1\n",
         "VCF_DUPLICATE_RECORD", "4.2", True),
        ("chr1\t5\t.\tA\tG\t.\t.\tDP=1,2\tGT\t0/1\n", "VCF_VALUE_COUNT_MISMATCH", "4.3", False),
        ("chr1\t5\t.\tA\tG\t.\t.\t.\tGT:PL\t0/1:1,2\n", "VCF_VALUE_COUNT_MISMATCH", "4.3", True),
        ("chr1\t5\t.\tA\tG\t.\t.\t.\tGT\t0/1", "VCF_NO_FINAL_NEWLINE", "4.3", False),
        ("chr1\t5\t.\tA\tG\t.\t.\t.\tGT\t0/1", "VCF_NO_FINAL_NEWLINE", "4.2", True),
    ],
)
def test_vcf_record_rules(tmp_path, body, reason, version, strict):
    path = tmp_path / "r.vcf"
    path.write_text(VCF_HEAD.replace("VCFv4.2", f"VCFv{version}") + body)
    if strict:
        lenient = validate_file(path)
        assert lenient.valid and reason in {w["reason"] for w in lenient.warnings}, lenient.message
    result = validate_file(path, strict=strict)
    assert (result.valid, result.reason) == (False, reason), result.message


@pytest.mark.parametrize(
    ("meta", "reason", "strict"),
    [
        ('##INFO=<ID=DP,Number=1,Type=Integer,Description="x"\n', "VCF_META_NOT_CLOSED", False),
        ("##INFO=<ID=XX,Number=1,Type=Integer,Description=unquoted>\n", "VCF_META_DESCRIPTION_UNQUOTED", False),
        ('##INFO=<ID=DB,Number=1,Type=Integer,Description="x">\n', "VCF_META_RESERVED_MISMATCH", True),
        ('##INFO=<Number=1,ID=XX,Type=Integer,Description="x">\n', "VCF_META_FIELD_ORDER", True),
        ('##ALT=<ID=FOO,Description="x">\n', "VCF_META_ALT_TYPE_UNKNOWN", True),
        ('##ALT=<ID=DEL<1>,Description="x">\n', "VCF_META_ALT_ID_INVALID", False),
        ("##contig=<ID=chr,1>\n", "VCF_META_MALFORMED", False),
        ('##FILTER=<ID=q 10,Description="x">\n', "VCF_META_ID_INVALID", False),
        ('##FILTER=<ID=q10,Description="x",Description="y">\n', "VCF_META_MALFORMED", False),
    ],
)
def test_vcf_meta_rules(tmp_path, meta, reason, strict):
    path = tmp_path / "m.vcf"
    head = VCF_HEAD.split("\n", 1)
    path.write_text(head[0] + "\n" + meta + head[1] + "chr1\t5\t.\tA\tG\t.\t.\t.\tGT\t0/1\n")
    if strict:
        lenient = validate_file(path)
        assert lenient.valid and reason in {w["reason"] for w in lenient.warnings}, lenient.message
    result = validate_file(path, strict=strict)
    assert (result.valid, result.reason) == (False, reason), result.message


def test_reserved_and_predefined_keys_may_be_used_undeclared(tmp_path):
    path = tmp_path / "ok.vcf"
    path.write_text(VCF_HEAD + "chr1\t5\t.\tA\tG\t.\t.\tAC=1;AN=2;DB\tGT:DS:PL\t0/1:0.9:10,0,20\n")
    assert validate_file(path).valid


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("a.sam", "@HD\tVN:1\n", "SAM_HD_VN_INVALID"),
        ("a.sam", "@HD\tVN:1.6\tSO:query\n", "SAM_HD_SO_INVALID"),
        ("a.sam", "@SQ\tSN:<ctg>\tLN:1\n", "SAM_SQ_NAME_INVALID"),
        ("a.sam", "@RG\tID:1\tDT:Tuesday\n", "SAM_RG_DATE_INVALID"),
        ("a.sam", "@SQ\tSN:c\tLN:9\nr\t0\tc\t1\t60\t2M\t*\t0\t0\tAC\tII\tXH:H:ABC\n", "SAM_TAG_VALUE_INVALID"),
        ("a.sam", "@SQ\tSN:c\tLN:9\nr\t0\tc\t1\t60\t2M\t*\t0\t0\tAC\tII\tXB:B:c,300\n", "SAM_TAG_VALUE_INVALID"),
        ("a.bed", "chr1 10 20 name 5 +\n.\t1\t2\tn\t5\t+\n", "BED_CHROM_INVALID"),
        ("a.bed", "chr1\t1\t9\tn\t0\t+\t1\t9\t256,0,0\n", "BED_RGB_INVALID"),
    ],
)
def test_sam_header_aux_and_bed_rules(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_text(content)
    result = validate_file(path)
    assert (result.valid, result.reason) == (False, reason), result.message


def test_bed_accepts_any_whitespace_separator(tmp_path):
    path = tmp_path / "mixed.bed"
    path.write_text("chr1 10\t20\nchr1\t30    40\n")
    assert validate_file(path).valid


def test_reported_sha256_is_the_checksum_of_the_whole_file(tmp_path):
    """The digest computed while validating must equal a plain SHA-256 of the stored bytes, valid or not."""
    import hashlib

    files = [tmp_path / "a.vcf", tmp_path / "b.fastq.gz", tmp_path / "c.gff3"]
    files[0].write_text(VCF_HEAD + "chr1\t5\t.\tA\tG\t.\t.\t.\tGT\t0/1\n")
    files[1].write_bytes(gzip.compress(b"@r\nACGT\n+\nIIII\n") + b"trailing bytes after the gzip member")
    files[2].write_text("##gff-version 3\nc\ts\tgene\t1\t9\t.\t+\t.\tID=g\n##FASTA\n>c\nACGT\n")
    if CORPORA.is_dir():
        files += sorted(p for p in CORPORA.glob("*/valid/*") if p.stat().st_size < 2_000_000)[:200]
    for path in files:
        result = validate_file(path)
        assert result.sha256 == hashlib.sha256(path.read_bytes()).hexdigest(), path


def test_reference_checksum_is_computed_once_per_version_of_the_file(tmp_path, monkeypatch):
    """A reference is hashed once, not by every asset that uses it; replacing it is noticed."""
    import hashlib as _hashlib

    from genoflow_dagster.formats import io as formats_io

    fasta = tmp_path / "genome.fa"
    fasta.write_text(">chr1\nACGT\n")
    cache = tmp_path / "cache"
    reads: list[str] = []
    real = formats_io.sha256_file
    monkeypatch.setattr(formats_io, "sha256_file", lambda p: reads.append(str(p)) or real(p))
    first = formats_io.sha256_file_cached(fasta, cache)
    assert first == _hashlib.sha256(fasta.read_bytes()).hexdigest()
    assert formats_io.sha256_file_cached(fasta, cache) == first and len(reads) == 1, "remembered"
    fasta.write_text(">chr1\nACGTT\n")  # replaced: new size and mtime
    second = formats_io.sha256_file_cached(fasta, cache)
    assert second == _hashlib.sha256(fasta.read_bytes()).hexdigest() != first and len(reads) == 2
    assert formats_io.sha256_file_cached(fasta, cache, refresh=True) == second and len(reads) == 3


def _pair_verdict(r1: Path, r2: Path) -> str | None:
    """The pair verdict from the digests validation records, checked against the name-by-name parse."""
    d1, d2 = validate_file(r1).details["read_name_digest"], validate_file(r2).details["read_name_digest"]
    fast = validate_fastq_pair(r1, r2, r1_digest=d1, r2_digest=d2)
    exact = validate_fastq_pair(r1, r2)
    assert (fast is None) == (exact is None) == (d1 == d2)
    return None if exact is None else exact.reason


def test_read_name_digests_decide_pairs_as_the_name_by_name_check_does(tmp_path):
    """Real Illumina mates (ERR5069949, names ending /1 and /2) agree; a swapped read, a renamed read and a
    missing read are each told apart; CRLF and wrapped copies digest like the plain file."""
    realdata = Path(__file__).resolve().parents[2] / "shared" / "realdata"
    r1, r2 = realdata / "ERR5069949_test_1.fastq.gz", realdata / "ERR5069949_test_2.fastq.gz"
    assert _pair_verdict(r1, r2) is None
    with gzip.open(r2, "rb") as fh:
        lines = fh.read().split(b"\n")[:4000]  # 1,000 records at most
    records = [lines[i:i + 4] for i in range(0, len(lines) - 3, 4)]
    assert len(records) >= 50
    plain2 = tmp_path / "R2.fastq"
    plain2.write_bytes(b"".join(b"\n".join(r) + b"\n" for r in records))
    plain1 = tmp_path / "R1.fastq"
    plain1.write_bytes(b"".join(b"\n".join([r[0].replace(b"/2", b"/1"), *r[1:]]) + b"\n" for r in records))
    assert _pair_verdict(plain1, plain2) is None
    crlf = tmp_path / "crlf_R2.fastq"
    crlf.write_bytes(plain2.read_bytes().replace(b"\n", b"\r\n"))
    assert _pair_verdict(plain1, crlf) is None
    swapped = tmp_path / "swapped_R2.fastq"
    swapped.write_bytes(b"".join(b"\n".join(r) + b"\n" for r in [records[1], records[0], *records[2:]]))
    assert _pair_verdict(plain1, swapped) == "FASTQ_PAIR_NAME_MISMATCH"
    renamed = tmp_path / "renamed_R2.fastq"
    renamed.write_bytes(b"".join(b"\n".join([b"@other" if i == len(records) // 2 else r[0], *r[1:]]) + b"\n"
                                 for i, r in enumerate(records)))
    assert _pair_verdict(plain1, renamed) == "FASTQ_PAIR_NAME_MISMATCH"
    short = tmp_path / "short_R2.fastq"
    short.write_bytes(b"".join(b"\n".join(r) + b"\n" for r in records[:-1]))
    assert _pair_verdict(plain1, short) == "FASTQ_PAIR_COUNT_MISMATCH"
