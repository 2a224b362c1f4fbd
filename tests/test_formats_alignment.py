"""SAM rules (pure parser, asserting reason and line), the same rules on BAM/CRAM, CRAM without a network reference."""

import hashlib
import io
import os
from pathlib import Path

import pytest

from genoflow_dagster.formats.alignment import validate_bam_or_cram, validate_sam
from genoflow_dagster.formats.errors import FormatError
from genoflow_dagster.formats.validate import validate_file

DATA = Path(__file__).parent / "data" / "alignment"
SQ = "@SQ\tSN:c\tLN:100\n"


def _record(cigar="4M", seq="ACGT", qual="IIII", tags="", flag=0, name="r"):
    line = f"{name}\t{flag}\tc\t1\t60\t{cigar}\t*\t0\t0\t{seq}\t{qual}"
    return line + (f"\t{tags}" if tags else "") + "\n"


def _check(text: str) -> int:
    return validate_sam(io.BytesIO(text.encode()), {})


def _rejects(text: str) -> tuple[str, int | None]:
    with pytest.raises(FormatError) as info:
        _check(text)
    assert info.value.message and info.value.reason.isupper()
    return info.value.reason, info.value.line


@pytest.mark.parametrize(
    ("name", "reason", "line"),
    [
        ("htsspecs__failed__cigar.fail2.sam", "SAM_CIGAR_CLIP_MISPLACED", 3),
        ("htsspecs__failed__hdr.SQ9.sam", "SAM_SQ_ALT_NAME_DUPLICATE", 3),
        ("htsspecs__failed__aux.fail-f1.sam", "SAM_TAG_VALUE_INVALID", 3),
        ("htslib__base_mods__MM-MNf1.sam", "SAM_MN_LENGTH_MISMATCH", 2),
    ],
)
def test_corpus_fixtures_are_rejected_at_their_line(name, reason, line):
    with open(DATA / name, "rb") as fh, pytest.raises(FormatError) as info:
        validate_sam(fh, {})
    assert (info.value.reason, info.value.line) == (reason, line), info.value.message


@pytest.mark.parametrize("name", ["htsspecs__passed__hdr.HD9.sam", "htsspecs__passed__hdr.RG4.sam"])
def test_corpus_fixtures_are_accepted(name):
    with open(DATA / name, "rb") as fh:
        assert validate_sam(fh, {}) == 0


@pytest.mark.parametrize(
    ("text", "reason", "line"),
    [
        ("@SQ\tSN:c\tLN:1\n@HD\tVN:1.6\n", "SAM_HD_NOT_FIRST", 2),
        ("@HD\tVN:1.6\n@HD\tVN:1.6\n", "SAM_HD_NOT_FIRST", 2),
        ("@HD\tVN:1.6\tSS:unknown:MI\n", "SAM_HD_SS_INVALID", 1),
        ("@HD\tVN:1.6\tSS:coordinate\n", "SAM_HD_SS_INVALID", 1),
        ("@CO\tx\n@SQ\tSN:a\tLN:5\tDS:d\tLN:6\n", "SAM_HEADER_TAG_DUPLICATE", 2),
        ("@SQ\tSN:a\tLN:5\n@SQ\tSN:b\tLN:5\tAN:a\n", "SAM_SQ_ALT_NAME_DUPLICATE", 2),
        ("@SQ\tSN:a\tLN:5\tAN:x\n@SQ\tSN:b\tLN:5\tAN:y,x\n", "SAM_SQ_ALT_NAME_DUPLICATE", 2),
        ("@SQ\tSN:a\tLN:5\tAN:a\n", "SAM_SQ_ALT_NAME_DUPLICATE", 1),
        ("@SQ\tSN:a\tLN:1\tM5:7FC56270E7A70FA81A5935B72EACBE29\n", "SAM_SQ_M5_INVALID", 1),
        ("@SQ\tSN:a\tLN:1\tM5:7fc56270e7a70fa81a5935b72eacbe\n", "SAM_SQ_M5_INVALID", 1),
        ("@RG\tID:1\n@RG\tID:1\n", "SAM_RG_DUPLICATE_ID", 2),
        ("@RG\tID:1\tDT:2020-23-06\n", "SAM_RG_DATE_INVALID", 1),
        ("@RG\tID:1\tDT:2021-02-29\n", "SAM_RG_DATE_INVALID", 1),
        ("@RG\tID:1\tDT:2020-06-23T25:00:00\n", "SAM_RG_DATE_INVALID", 1),
        ("@RG\tID:1\tPI:1000-1500\n", "SAM_RG_PI_INVALID", 1),
        ("@RG\tID:1\tPI:123.456\n", "SAM_RG_PI_INVALID", 1),
        ("@RG\tID:1\tPL:ILLUMINA\n@RG\tID:2\tPL:454\n", "SAM_RG_PL_INVALID", 2),
        ("@RG\tID:1\tPL:UNKNOWN\n", "SAM_RG_PL_INVALID", 1),
        ("@RG\tID:1\tFO:ACGU\n", "SAM_RG_FO_INVALID", 1),
        ("@PG\tID:bwa\n@PG\tID:bwa\n", "SAM_PG_DUPLICATE_ID", 2),
        ("@PG\tID:a\tPP:b\n@PG\tID:c\n", "SAM_PG_PP_UNKNOWN", 1),
        ("@PG\tID:a\tPP:missing\n" + SQ + _record(), "SAM_PG_PP_UNKNOWN", 1),
    ],
)
def test_header_rules(text, reason, line):
    assert _rejects(text) == (reason, line)


@pytest.mark.parametrize(
    "text",
    [
        "@HD\tVN:1.6\tSS:unsorted:MI:coordinate\n",
        "@HD\tVN:1.6\tSO:queryname\tSS:queryname:natural\n",
        "@SQ\tSN:chr1\tLN:99\tAN:1\n@SQ\tSN:chr2\tLN:99\tAN:2,Chr2,CHR2\n",
        "@SQ\tSN:A\tLN:1\tM5:7fc56270e7a70fa81a5935b72eacbe29\n",
        "@RG\tID:1\tDT:2020-06-23 \n@RG\tID:2\tDT:2020-06-23T12:13:47+01:00\n@RG\tID:3\tDT:20200623\n",
        "@RG\tID:1\tDT:2011-09-07T15:02:05.123Z\n@RG\tID:2\tDT:2020-06-23 12:13\n",
        "@RG\tID:1\tPI:450\tPL:DNBSEQ\n@RG\tID:2\tPL:illumina\n@RG\tID:3\tFO:*\n@RG\tID:4\tFO:TACGTACG\n",
        "@PG\tID:b\tPP:a\n@PG\tID:a\n",  # PP may name a @PG line further down
        "@CO\tfree text, SS:unknown DT:Tuesday\n@CO\tagain\n",
    ],
)
def test_header_rules_accept(text):
    assert _check(text) == 0


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (_record("2S1H46M1H2S", "A" * 50, "*"), "SAM_CIGAR_CLIP_MISPLACED"),
        (_record("24M1S25M", "A" * 50, "*"), "SAM_CIGAR_CLIP_MISPLACED"),
        (_record("2H2S2H46M", "A" * 48, "*"), "SAM_CIGAR_CLIP_MISPLACED"),
        (_record(tags="0A:Z:x"), "SAM_TAG_INVALID"),
        (_record(tags="A_:Z:x"), "SAM_TAG_INVALID"),
        (_record(tags="NM:i:0\tXA:Z:a\tNM:i:1"), "SAM_TAG_DUPLICATE"),
        (_record(tags="BA:B:F,1"), "SAM_TAG_VALUE_INVALID"),
        (_record(tags="BA:B:"), "SAM_TAG_VALUE_INVALID"),
        (_record(tags="BI:B:I,4294967296"), "SAM_TAG_VALUE_INVALID"),
        (_record(tags="BF:B:f,1,nan"), "SAM_TAG_VALUE_INVALID"),
        (_record(tags="BF:B:f,1e39"), "SAM_TAG_VALUE_INVALID"),
        (_record(tags="XF:f:nan"), "SAM_TAG_VALUE_INVALID"),
        (_record(tags="XF:f:-inf"), "SAM_TAG_VALUE_INVALID"),
        (_record(tags="XF:f:10."), "SAM_TAG_VALUE_INVALID"),
        (_record(tags="XF:f:1E-46"), "SAM_TAG_VALUE_INVALID"),
        (_record(tags="XF:f:-3.502823466E+38"), "SAM_TAG_VALUE_INVALID"),
        (_record(tags="XF:f:1e400"), "SAM_TAG_VALUE_INVALID"),
        (_record(tags="XH:H:dead"), "SAM_TAG_VALUE_INVALID"),
    ],
)
def test_record_rules(record, reason):
    assert _rejects(SQ + record) == (reason, 2)


@pytest.mark.parametrize(
    "record",
    [
        _record("2H2S46M2S2H", "A" * 50, "*"),
        _record("0H0S4M0S0H"),
        _record("4S", "ACGT"),
        _record("5H4M", tags="A1:A:!\tXA:A:~\tZa:Z:\tXH:H:\tXB:B:i\tXC:B:c,-128,127"),
        _record(tags="F0:f:3.402823466E+38\tF1:f:1.175494351E-38\tF2:f:1e-45\tF3:f:-.1\tF4:f:+0\tF5:f:0e-999"),
        _record(tags="BF:B:f,0,-0,+0,-.9,9.9,3.402823466E+38\tBS:B:S,0,65535\tBi:B:i,-2147483648,2147483647"),
    ],
)
def test_record_rules_accept(record):
    assert _check(SQ + record) == 1


SEQ36 = "AGCTCTCCAGAGTCGNACGCCATYCGCGCGCCACCA"  # 15 C, 15 G on the reverse strand
MM_OK = "MM:Z:C+m,2,2,1,4,1;C+h,6,7;N+n,15,2;\tML:B:C,128,153,179,204,230,159,6,215,240"


@pytest.mark.parametrize(
    ("tags", "flag", "reason"),
    [
        (MM_OK + "\tMN:i:37", 0, "SAM_MN_LENGTH_MISMATCH"),
        (MM_OK + "\tMN:f:36", 0, "SAM_MN_INVALID"),
        ("MM:Z:C+m,2,2,1,4,1,0;\tML:B:C,1,2,3,4,5,6", 0, "SAM_MM_BEYOND_SEQUENCE"),
        ("Mm:Z:G-m,0,1,4,1,2,2;\tMl:B:C,1,2,3,4,5,6", 16, "SAM_MM_BEYOND_SEQUENCE"),
        ("MM:Z:N+n,36;", 0, "SAM_MM_BEYOND_SEQUENCE"),
        ("MM:Z:C+m,2,2,1,4,1;C+h,6,7;N+n,15,2;\tML:B:C,128,153", 0, "SAM_ML_LENGTH_MISMATCH"),
        ("MM:Z:C+mh,2;\tML:B:C,128", 0, "SAM_ML_LENGTH_MISMATCH"),
        ("MM:Z:C+m,2;\tML:B:S,128", 0, "SAM_ML_INVALID"),
        ("MM:Z:C+m,2", 0, "SAM_MM_INVALID"),
        ("MM:Z:X+m,2;", 0, "SAM_MM_INVALID"),
        ("MM:i:2", 0, "SAM_MM_INVALID"),
    ],
)
def test_base_modification_rules(tags, flag, reason):
    record = f"r\t{flag}\tc\t1\t0\t36M\t*\t0\t0\t{SEQ36}\t*\t{tags}\n"
    assert _rejects(SQ + record) == (reason, 2)


@pytest.mark.parametrize(
    ("tags", "flag"),
    [
        (MM_OK + "\tMN:i:36", 0),
        ("Mm:Z:G-m,0,1,4,1,2;G-h,0,7;N-n,17,2;\tMl:B:C,230,204,179,153,128,6,159,240,215", 16),
        ("MM:Z:C+mh,2,2,0,0,4,1;N+n,15;\tML:B:C,77,159,103,133,128,108,154,82,179,57,204,31,240", 0),
        ("MM:Z:C+m,2,2,1,4,1;C+76792,6,7;N+n,15;\tML:B:C,102,128,153,179,204,161,33,212", 0),
        ("MM:Z:C+m?,2,2,1,4,1;", 0),
        ("MM:Z:C+m;\tML:B:C", 0),
        ("MM:Z:", 0),
        ("MN:i:99", 0),  # MN alone describes nothing to check
    ],
)
def test_base_modification_rules_accept(tags, flag):
    record = f"r\t{flag}\tc\t1\t0\t36M\t*\t0\t0\t{SEQ36}\t*\t{tags}\n"
    assert _check(SQ + record) == 1


def test_hard_clipped_modified_read_is_rejected_on_its_own_line():
    records = "".join(_record(name=f"r{i}") for i in range(3))
    clipped = f"r\t0\tc\t1\t0\t4H32M\t*\t0\t0\t{SEQ36[4:]}\t*\t{MM_OK}\tMN:i:36\n"
    assert _rejects(SQ + records + clipped) == ("SAM_MN_LENGTH_MISMATCH", 5)


def _write_cram(tmp_path: Path) -> tuple[Path, Path, str]:
    """A two-record CRAM against a 100-base reference; returns (cram, fasta, md5 of the sequence)."""
    import pysam

    sequence = ("ACGTTGCA" * 13)[:100]
    fasta = tmp_path / "ref.fa"
    fasta.write_text(f">c\n{sequence}\n")
    pysam.faidx(str(fasta))
    md5 = hashlib.md5(sequence.encode()).hexdigest()
    cram = tmp_path / "x.cram"
    header = {"HD": {"VN": "1.6", "SO": "coordinate"}, "SQ": [{"SN": "c", "LN": 100, "M5": md5}]}
    with pysam.AlignmentFile(str(cram), "wc", header=header, reference_filename=str(fasta)) as out:
        for i, start in enumerate((0, 40)):
            segment = pysam.AlignedSegment(out.header)
            segment.query_name, segment.reference_id, segment.reference_start = f"r{i}", 0, start
            segment.cigarstring, segment.mapping_quality = "20M", 60
            segment.query_sequence = sequence[start:start + 20]
            segment.query_qualities = pysam.qualitystring_to_array("I" * 20)
            out.write(segment)
    return cram, fasta, md5


def test_cram_without_a_local_reference_is_read_without_sequences(tmp_path, monkeypatch):
    cram, fasta, _ = _write_cram(tmp_path)
    fasta.rename(tmp_path / "moved.fa")  # the UR path in the header now leads nowhere
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("REF_PATH", str(tmp_path / "empty" / "%s"))
    monkeypatch.setenv("REF_CACHE", str(tmp_path / "empty" / "%s"))
    details: dict = {}
    assert validate_bam_or_cram(cram, "cram", details=details) == 2
    assert details["cram_references_unavailable"] == ["c"]


def test_cram_with_its_reference_in_ref_path_is_decoded_fully(tmp_path, monkeypatch):
    cram, fasta, md5 = _write_cram(tmp_path)
    cache = tmp_path / "md5"
    (cache / md5[:2]).mkdir(parents=True)
    (cache / md5[:2] / md5[2:]).write_text(fasta.read_text().split("\n", 1)[1].replace("\n", ""))
    fasta.rename(tmp_path / "moved.fa")
    monkeypatch.setenv("REF_PATH", f"http://127.0.0.1:9/%s:{cache}/%2s/%s")
    monkeypatch.setenv("REF_CACHE", str(tmp_path / "none" / "%s"))
    details: dict = {}
    assert validate_bam_or_cram(cram, "cram", details=details) == 2
    assert "cram_references_unavailable" not in details
    assert os.environ["REF_PATH"] == f"{cache}/%2s/%s"  # the URL entry is dropped: never the network


def test_truncated_cram_is_refused(tmp_path, monkeypatch):
    cram, _, _ = _write_cram(tmp_path)
    monkeypatch.setenv("REF_PATH", str(tmp_path / "%s"))
    data = cram.read_bytes()
    cram.write_bytes(data[:-38])
    with pytest.raises(FormatError) as info:
        validate_bam_or_cram(cram, "cram")
    assert info.value.reason == "CRAM_MISSING_EOF"


def test_validate_file_reports_cram_references_it_could_not_find():
    from genoflow_dagster.formats.validate import validate_file

    cram = (Path(__file__).resolve().parents[1].parent / "shared" / "corpora" / "cram" / "valid"
            / "samtools__quickcheck__6.quickcheck.cram21.ok.cram")
    if not cram.exists():
        pytest.skip("../shared/corpora is absent")
    result = validate_file(cram)
    assert result.valid and result.details["cram_references_unavailable"] == ["17"]


def _binary_from_sam(path: Path, text: str, reference: Path | None = None) -> Path:
    """BAM (or CRAM, by suffix) from SAM text; the header text is stored as given (pysam keeps it verbatim)."""
    import pysam

    header_text = "".join(line for line in text.splitlines(True) if line.startswith("@"))
    header = pysam.AlignmentHeader.from_text(header_text)
    mode = "wc" if path.suffix == ".cram" else "wb"
    save = pysam.set_verbosity(0)
    try:
        with pysam.AlignmentFile(str(path), mode, header=header,
                                 reference_filename=str(reference) if reference else None) as out:
            for line in text.splitlines():
                if not line.startswith("@"):
                    out.write(pysam.AlignedSegment.fromstring(line, header))
    finally:
        pysam.set_verbosity(save)
    return path


def _binary_rejects(path: Path) -> tuple[str, int | None]:
    with pytest.raises(FormatError) as info:
        validate_bam_or_cram(path, path.suffix[1:], details={})
    assert info.value.message and info.value.reason.isupper()
    return info.value.reason, info.value.line


BAD_HEADERS = [
    ("@SQ\tSN:c\tLN:100\n@HD\tVN:1.6\n", "SAM_HD_NOT_FIRST", 2),
    ("@HD\tVN:1.6\tSS:coordinate\n" + SQ, "SAM_HD_SS_INVALID", 1),
    ("@HD\tVN:1.6\tSO:sorted\n" + SQ, "SAM_HD_SO_INVALID", 1),
    (SQ + "@RG\tID:1\n@RG\tID:1\n", "SAM_RG_DUPLICATE_ID", 3),
    (SQ + "@RG\tID:1\tDT:2021-02-29\n", "SAM_RG_DATE_INVALID", 2),
    (SQ + "@RG\tID:1\tPI:1000-1500\n", "SAM_RG_PI_INVALID", 2),
    (SQ + "@RG\tID:1\tPL:454\n", "SAM_RG_PL_INVALID", 2),
    (SQ + "@RG\tID:1\tFO:ACGU\n", "SAM_RG_FO_INVALID", 2),
    (SQ + "@PG\tID:bwa\n@PG\tID:bwa\n", "SAM_PG_DUPLICATE_ID", 3),
    (SQ + "@PG\tID:a\tPP:b\n", "SAM_PG_PP_UNKNOWN", 2),
    ("@CO\tx\n@SQ\tSN:c\tLN:100\tDS:d\tDS:e\n", "SAM_HEADER_TAG_DUPLICATE", 2),
    ("@SQ\tSN:c\tLN:100\tAN:c\n", "SAM_SQ_ALT_NAME_DUPLICATE", 1),
    ("@SQ\tSN:c\tLN:100\tM5:7FC56270E7A70FA81A5935B72EACBE29\n", "SAM_SQ_M5_INVALID", 1),
]


@pytest.mark.parametrize(("header", "reason", "line"), BAD_HEADERS)
def test_bam_from_a_bad_sam_header_is_refused_like_the_sam(tmp_path, header, reason, line):
    sam = header + _record()
    assert _rejects(sam) == (reason, line)
    bam = _binary_from_sam(tmp_path / "x.bam", sam)
    assert _binary_rejects(bam) == (reason, line)


def test_bam_header_that_htslib_refuses_gets_the_sam_reason(tmp_path):
    # htslib cannot even open this one ('Duplicate entry'): without the stored-text check it was a bare decode error
    bam = _binary_from_sam(tmp_path / "x.bam", SQ + SQ)
    assert _binary_rejects(bam) == ("SAM_SQ_DUPLICATE", 2)


def test_bam_header_check_falls_back_to_htslib_text(tmp_path, monkeypatch):
    import genoflow_dagster.formats.alignment as alignment

    bam = _binary_from_sam(tmp_path / "x.bam", SQ + "@RG\tID:1\n@RG\tID:1\n" + _record())
    monkeypatch.setattr(alignment, "_stored_header_text", lambda path, fmt: None)  # e.g. a codec not read here
    assert _binary_rejects(bam) == ("SAM_RG_DUPLICATE_ID", 3)


def test_bam_reference_name_the_spec_forbids_is_a_warning(tmp_path):
    text = "@SQ\tSN:chr1,chr3\tLN:100\n"
    assert _rejects(text) == ("SAM_SQ_NAME_INVALID", 1)
    details: dict = {}
    assert validate_bam_or_cram(_binary_from_sam(tmp_path / "x.bam", text), "bam", details=details) == 0
    assert [(w["reason"], w["line"]) for w in details["warnings"]] == [("SAM_SQ_NAME_INVALID", 1)]


def test_a_warning_leaves_the_file_valid_and_strict_mode_refuses_it(tmp_path):
    bam = _binary_from_sam(tmp_path / "x.bam", "@SQ\tSN:chr1,chr3\tLN:100\n")
    lenient = validate_file(bam)
    assert lenient.valid and lenient.error_code is None
    assert [(w["reason"], w["line"]) for w in lenient.to_json()["warnings"]] == [("SAM_SQ_NAME_INVALID", 1)]
    assert "chr1,chr3" in lenient.warnings[0]["message"] and "b'" not in lenient.warnings[0]["message"]
    strict = validate_file(bam, strict=True)
    assert not strict.valid and strict.error_code == "VALIDATION_ERROR"
    assert (strict.reason, strict.line) == ("SAM_SQ_NAME_INVALID", 1) and "strict mode" in strict.message


def test_good_bam_passes_with_its_records_counted(tmp_path):
    text = "@HD\tVN:1.6\tSO:coordinate\n" + SQ + "@RG\tID:1\tPL:illumina\n@PG\tID:b\tPP:a\n@PG\tID:a\n"
    bam = _binary_from_sam(tmp_path / "x.bam", text + _record("2H2S46M2S2H", "A" * 50, "*") + _record())
    assert validate_bam_or_cram(bam, "bam", details={}) == 2


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (_record("24M1S25M", "A" * 50, "*"), "SAM_CIGAR_CLIP_MISPLACED"),
        (_record("2S1H46M1H2S", "A" * 50, "*"), "SAM_CIGAR_CLIP_MISPLACED"),
        (f"r\t0\tc\t1\t0\t4H32M\t*\t0\t0\t{SEQ36[4:]}\t*\t{MM_OK}\tMN:i:36\n", "SAM_MN_LENGTH_MISMATCH"),
    ],
)
def test_bam_record_rules_give_the_record_number(tmp_path, record, reason):
    sam = SQ + _record(name="ok") + record
    assert _rejects(sam) == (reason, 3)
    assert _binary_rejects(_binary_from_sam(tmp_path / "x.bam", sam)) == (reason, 2)


def test_bam_record_with_mn_matching_its_sequence_passes(tmp_path):
    sam = SQ + f"r\t0\tc\t1\t0\t36M\t*\t0\t0\t{SEQ36}\t*\t{MM_OK}\tMN:i:36\n"
    assert validate_bam_or_cram(_binary_from_sam(tmp_path / "x.bam", sam), "bam", details={}) == 1


@pytest.mark.parametrize(
    ("header", "reason", "line"),
    [
        (SQ + "@RG\tID:1\n@RG\tID:1\n", "SAM_RG_DUPLICATE_ID", 3),
        ("@HD\tVN:1.6\tSS:coordinate\n" + SQ, "SAM_HD_SS_INVALID", 1),
        (SQ + "@PG\tID:a\tPP:b\n", "SAM_PG_PP_UNKNOWN", 2),
    ],
)
def test_cram_header_gets_the_sam_header_rules(tmp_path, monkeypatch, header, reason, line):
    fasta = tmp_path / "ref.fa"
    fasta.write_text(">c\n" + "ACGTTGCA" * 12 + "ACGT\n")
    monkeypatch.setenv("REF_PATH", str(tmp_path / "%s"))
    cram = _binary_from_sam(tmp_path / "x.cram", header + _record(), fasta)
    assert _binary_rejects(cram) == (reason, line)


def _outcome(text: bytes) -> tuple[str, int | None] | int:
    try:
        return validate_sam(io.BytesIO(text), {})
    except FormatError as exc:
        return exc.reason, exc.line


def _careful_outcome(text: bytes, monkeypatch) -> tuple[str, int | None] | int:
    """The same file with the common-record fast path switched off: every line checked field by field."""
    import re

    import genoflow_dagster.formats.alignment as alignment

    with monkeypatch.context() as patch:
        patch.setattr(alignment, "_record_pattern", lambda layouts: re.compile(rb"(?!)" + rb"()" * 6))
        return _outcome(text)


EDGE_RECORDS = [
    _record(), _record(flag=65535), _record(flag="65536"), _record(flag="00012"), _record(flag="-1"),
    "r\t0\tc\t2147483647\t255\t4M\t=\t2147483647\t-2147483647\tACGT\tIIII\n",
    "r\t0\tc\t2147483648\t60\t4M\t*\t0\t0\tACGT\tIIII\n", "r\t0\tc\t1\t256\t4M\t*\t0\t0\tACGT\tIIII\n",
    "r\t0\tc\t1\t60\t4M\t*\t0\t-2147483648\tACGT\tIIII\n", "r\t0\tc\t+1\t60\t4M\t*\t0\t0\tACGT\tIIII\n",
    "r\t0\td\t1\t60\t4M\t*\t0\t0\tACGT\tIIII\n", "r\t0\tc\t1\t60\t4M\td\t1\t0\tACGT\tIIII\n",
    "r\t0\t*\t0\t0\t*\t*\t0\t0\t*\t*\n", "r\t0\tc\t1\t60\t*\t*\t0\t0\t*\tI\n",
    "r\t0\tc\t1\t60\t4M\t*\t0\t0\t*\t*\n", "r\t0\tc\t1\t60\t4M\t*\t0\t0\tACGT\tIII\n",
    "r\t0\tc\t1\t60\t3M\t*\t0\t0\tACGT\tIIII\n", "r\t0\tc\t1\t60\t1S3M\t*\t0\t0\tACGT\t*\n",
    "r\t0\tc\t1\t60\t1M1S2M\t*\t0\t0\tACGT\t*\n", "r\t0\tc\t1\t60\t4M\t*\t0\t0\tAC GT\tIIII\n",
    "r\t0\tc\t1\t60\t4M\t*\t0\t0\tACGT\tII I\n", "r\t0\tc\t1\t60\t4M\t*\t0\t0\tACGT\tIIII\t\n",
    "@r\t0\tc\t1\t60\t4M\t*\t0\t0\tACGT\tIIII\n", "\n", "\r\n", "r\t0\tc\t1\t60\t4M\t*\t0\t0\tACGT\tIIII\r\n",
    "r\t0\tc\t1\t60\t4M\t*\t0\t0\tACGT\tIIII\r", "r\t0\tc\t1\t60\t4M\t*\t0\t0\tACGT\tIIII\r\r\n",
    "r\t0\tc\t1\t60\t4M\t*\t0\t0\tACGT\tIIII", "r\t0\tc\t1\t60\t4M\t*\t0\t0\tACGT\n",
    _record(tags="NM:i:4294967295"), _record(tags="NM:i:4294967296"), _record(tags="NM:i:-2147483649"),
    _record(tags="NM:i:0\tMD:Z:4\tNM:i:1"), _record(tags="NM:i:0\tNM:i:0"), _record(tags="XA:Z:NM:i:0\tNM:i:0"),
    _record(tags="XH:H:0A1B\tXB:B:c,1\tXF:f:1.5\tXZ:Z:a b"), _record(tags="XH:H:0A1"), _record(tags="XA:A:ab"),
    _record(tags="MN:i:4"), _record(tags="Mm:Z:C+m,9;"), _record(tags="mm:Z:x\tMM:Z:"),
    _record(tags="de:f:0.0123\tXF:f:-.5\tXG:f:+12\tXE:f:1e-5"), _record(tags="XF:f:" + "9" * 38),
    _record(tags="XF:f:" + "9" * 39 + ".5"), _record(tags="XF:f:4" + "0" * 38), _record(tags="XF:f:10."),
    _record(tags="XF:f:0." + "0" * 39 + "1"), _record(tags="XF:f:0." + "0" * 45 + "1"), _record(tags="XF:f:nan"),
    "r\t0\tc\t1\t60\t36M\t*\t0\t0\t" + SEQ36 + "\t*\t" + MM_OK + "\tMN:i:37\n",
    "*\t0\tc\t1\t60\t4M\t*\t0\t0\tACGT\tIIII\n", "r" * 255 + "\t0\tc\t1\t60\t4M\t*\t0\t0\tACGT\tIIII\n",
    "r\t0\tc\t1\t60\t4M\t*\t0\t0\tAC=.\tIIII\n", "r\t0\tc\t1\t60\t2=1X1M\t*\t0\t0\tacgt\t!!~~\n",
]


# Valid records whose optional-field layouts the fast path learns before it meets the edge record.
LAYOUTS = "".join(_record(tags=t) for t in ("NM:i:0", "NM:i:0\tMD:Z:4", "NM:i:1\tXA:Z:a", "XA:Z:NM:i:0",
                                             "MN:i:4", "XH:H:0A1B\tXZ:Z:a b", "XF:f:1"))


@pytest.mark.parametrize("record", EDGE_RECORDS)
def test_fast_path_agrees_with_the_field_by_field_rules(record, monkeypatch):
    text = (SQ + LAYOUTS + record + _record(name="last")).encode()
    assert _outcome(text) == _careful_outcome(text, monkeypatch)
    no_sq = (_record(name="first") + record).encode()  # no @SQ: names are not looked up
    assert _outcome(no_sq) == _careful_outcome(no_sq, monkeypatch)


def test_fast_path_agrees_on_mutated_records(monkeypatch):
    import random

    rng = random.Random(1122)
    clipped = _record("2S46M2S", "ACGT" * 12 + "AC", "I" * 50, "NM:i:0\tMD:Z:46\tRG:Z:g\tXH:H:00")
    seeds = [r.encode() for r in (*EDGE_RECORDS[:2], clipped)]
    alphabet = b"\t\r\n *=.:-+0123456789ACGTHSMIDNacgtZiABfH!~@MmN"
    disagreements = []
    for _ in range(1500):
        record = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(record))
            if rng.random() < 0.7:
                record[i] = rng.choice(alphabet)
            else:
                record[i:i] = bytes(rng.choice(alphabet) for _ in range(rng.randint(1, 4)))
        text = SQ.encode() + b"".join(seeds) + bytes(record) + _record(name="last").encode()
        fast, careful = _outcome(text), _careful_outcome(text, monkeypatch)
        if fast != careful:
            disagreements.append((bytes(record), fast, careful))
    assert disagreements == []


def test_many_distinct_cigars_stay_correct_past_the_cache():
    from genoflow_dagster.formats.alignment import _CIGAR_CACHE_SIZE

    lines = [_record(f"1M{i}N1M", "AC", "II", name=f"r{i}") for i in range(_CIGAR_CACHE_SIZE + 50)]
    text = "@SQ\tSN:c\tLN:100000\n" + "".join(lines)
    assert _check(text) == len(lines)
    bad = text + _record(f"1M{_CIGAR_CACHE_SIZE + 99}N2M", "AC", "II")  # a CIGAR the full cache did not keep
    assert _rejects(bad) == ("SAM_CIGAR_SEQ_LENGTH_MISMATCH", len(lines) + 2)


def test_duplicate_tag_is_found_after_many_layouts_were_learned():
    names = [f"X{c}" for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"]
    lines = [_record(tags="\t".join(f"{n}:i:{i}" for n in names[i % 20:i % 20 + 3]), name=f"r{i}") for i in range(60)]
    text = SQ + "".join(lines) + "".join(lines[:5])
    assert _check(text) == 65
    assert _rejects(text + _record(tags="XA:i:1\tXB:i:2\tXA:i:3")) == ("SAM_TAG_DUPLICATE", 67)
    assert _rejects(text + _record(tags="XA:i:1\tXB:i:2\tXC:Z:x\tXA:i:1")) == ("SAM_TAG_DUPLICATE", 67)


def test_mutated_bam_and_cram_headers_always_get_a_coded_result(tmp_path, monkeypatch):
    """Header text mutated inside valid BGZF (so the mutation reaches the header checks, not a CRC error)."""
    import gzip
    import random

    import pysam

    from genoflow_dagster.errors import ErrorCode
    from genoflow_dagster.formats.validate import validate_file

    rng = random.Random(7)
    fasta = tmp_path / "ref.fa"
    fasta.write_text(">c\n" + "ACGTTGCA" * 12 + "ACGT\n")
    monkeypatch.setenv("REF_PATH", str(tmp_path / "%s"))
    text = "@HD\tVN:1.6\tSO:coordinate\n" + SQ + "@RG\tID:1\tPL:ILLUMINA\tDT:2020-06-23\n@PG\tID:a\n" + _record()
    bam = _binary_from_sam(tmp_path / "seed.bam", text).read_bytes()
    raw = gzip.decompress(bam)
    cram = _binary_from_sam(tmp_path / "seed.cram", text, fasta).read_bytes()
    internal = []
    for n in range(300):
        if n % 2:
            data = bytearray(raw)
            for _ in range(rng.randint(1, 3)):
                data[rng.randrange(4, 120)] = rng.choice(b"\t\n\r\x00\xff@:ABHDSQRGPIDLN0129")
            path = tmp_path / "m.bam"
            with pysam.BGZFile(str(path), "wb") as out:
                out.write(bytes(data))
        else:
            data = bytearray(cram)
            for _ in range(rng.randint(1, 3)):
                data[rng.randrange(26, 200)] = rng.randrange(256)
            path = tmp_path / "m.cram"
            path.write_bytes(bytes(data))
        result = validate_file(path)
        assert result.valid or (result.error_code and result.reason), result
        if result.error_code == ErrorCode.INTERNAL_ERROR:
            internal.append(result.message)
    assert internal == []


def test_cram_2_0_without_an_eof_container_is_valid(tmp_path, monkeypatch):
    """The EOF container is optional before CRAM 2.1 (CRAM 2.1 spec, "End of file marker"): not even a warning."""
    cram, _, _ = _write_cram(tmp_path)
    monkeypatch.setenv("REF_PATH", str(tmp_path / "%s"))
    import pysam

    v21 = tmp_path / "v21.cram"
    with pysam.AlignmentFile(str(cram), "rc") as source, \
            pysam.AlignmentFile(str(v21), "wc", template=source, format_options=["version=2.1"]) as out:
        for segment in source.fetch(until_eof=True):
            out.write(segment)
    data = v21.read_bytes()
    assert data[:6] == b"CRAM\x02\x01" and data[-30:].find(b"EOF") > 0
    v20 = tmp_path / "v20.cram"
    v20.write_bytes(data[:4] + b"\x02\x00" + data[6:-30])  # CRAM 2.0 has no EOF container: same containers otherwise
    details: dict = {}
    assert validate_bam_or_cram(v20, "cram", details=details) == 2
    assert details["cram_eof_container"] == "absent (optional in CRAM 2.0)"
    v21.write_bytes(data[:-30])
    with pytest.raises(FormatError) as info:
        validate_bam_or_cram(v21, "cram")
    assert info.value.reason == "CRAM_MISSING_EOF" and "CRAM 2.1" in info.value.message
