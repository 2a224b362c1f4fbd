"""BCF (plain and BGZF) is read through htslib and judged by the VCF rules; bcftools' own output is valid."""

import gzip
import random
import shutil
import subprocess
from pathlib import Path

import pysam
import pytest

from genoflow_dagster.formats.validate import validate_file

REALWORLD = Path(__file__).resolve().parents[1].parent / "shared" / "realworld" / "vcf"
# realworld rows (../shared/realworld/MANIFEST.tsv, spec_verdict conforms): bcftools mpileup, FreeBayes, GATK gVCF
SOURCES = ["bcftools__test__mpileup.2.vcf", "freebayes__test__tiny__q.vcf.gz",
           "gatk__src__test__resources__org__broadinstitute__hellbender__tools__haplotypecaller__"
           "expected.CEUTrio.HiSeq.WGS.b37.NA12878.calls.20.10100000-10150000.g.vcf"]
BCFTOOLS = shutil.which("bcftools")


def _to_bcf(source: Path, target: Path, mode: str = "b") -> int:
    """Write `source` as BCF with bcftools view (-Ob compressed, -Ou BGZF level 0); returns the records."""
    subprocess.run([BCFTOOLS, "view", f"-O{mode}", "-o", str(target), str(source)], check=True, capture_output=True)
    with pysam.VariantFile(str(target)) as bcf:
        return sum(1 for _ in bcf)


needs_inputs = pytest.mark.skipif(not REALWORLD.is_dir() or BCFTOOLS is None,
                                  reason="../shared/realworld or bcftools not present")


@needs_inputs
@pytest.mark.parametrize("name", SOURCES)
@pytest.mark.parametrize("mode", ["b", "u", "plain"])
def test_bcf_of_a_real_vcf_is_valid(tmp_path, name, mode):
    target = tmp_path / "calls.bcf"
    n = _to_bcf(REALWORLD / name, target, "u" if mode == "plain" else mode)
    if mode == "plain":  # no BGZF at all: the BCF bytes themselves
        with gzip.open(target) as fh:
            data = fh.read()
        target.write_bytes(data)
    assert target.read_bytes()[:3] == (b"BCF" if mode == "plain" else b"\x1f\x8b\x08")
    result = validate_file(target)
    assert (result.format, result.valid, result.records) == ("vcf", True, n), (result.reason, result.message)
    assert result.details["container"] == "bcf"
    assert validate_file(target, strict=True).valid


def _bcf_from_text(tmp_path: Path, text: str) -> Path:
    vcf = tmp_path / "in.vcf"
    vcf.write_text(text)
    target = tmp_path / "calls.bcf"
    subprocess.run([BCFTOOLS, "view", "-Ob", "-o", str(target), str(vcf)], check=True, capture_output=True)
    return target


HEADER = ("##fileformat=VCFv4.2\n##contig=<ID=1,length=1000>\n"
          '##FORMAT=<ID=GT,Number=1,Type=String,Description="g">\n'
          '##ALT=<ID=CPX,Description="complex">\n'
          "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS1\n")


@pytest.mark.skipif(BCFTOOLS is None, reason="bcftools not installed")
def test_bcf_gets_the_vcf_rules_with_lines(tmp_path):
    """A genotype naming an allele the record lacks is refused in BCF too, at the line `bcftools view` shows
    it on; a deviation is the same warning as in VCF."""
    target = _bcf_from_text(tmp_path, HEADER + "1\t10\t.\tA\tC\t.\t.\t.\tGT\t0/1\n1\t20\t.\tA\tC\t.\t.\t.\tGT\t0/2\n")
    shown = subprocess.run([BCFTOOLS, "view", "--no-version", str(target)], capture_output=True,
                           text=True).stdout.splitlines()
    line = next(i for i, text in enumerate(shown, start=1) if text.startswith("1\t20\t"))
    result = validate_file(target)
    assert (result.valid, result.reason, result.line) == (False, "VCF_GT_ALLELE_OUT_OF_RANGE", line)
    assert "genotype 0/2 names allele 2" in result.message

    target = _bcf_from_text(tmp_path, HEADER + "1\t10\t.\tA\tC\t.\t.\t.\tGT\t0/1\n")
    result = validate_file(target)
    assert result.valid and [w["reason"] for w in result.warnings] == ["VCF_META_ALT_TYPE_UNKNOWN"]
    assert validate_file(target, strict=True).reason == "VCF_META_ALT_TYPE_UNKNOWN"


@needs_inputs
def test_damaged_bcf_is_refused_never_crashes(tmp_path):
    source = tmp_path / "calls.bcf"
    _to_bcf(REALWORLD / SOURCES[1], source, "u")
    with gzip.open(source) as fh:
        plain = fh.read()
    header_end = 9 + int.from_bytes(plain[5:9], "little")
    no_eof = tmp_path / "no_eof.bcf"
    no_eof.write_bytes(source.read_bytes()[:-28])
    result = validate_file(no_eof)
    assert (result.valid, result.reason) == (False, "BCF_MISSING_EOF")
    cut = tmp_path / "cut.bcf"
    cut.write_bytes(plain[:header_end + 300])
    result = validate_file(cut)
    assert (result.valid, result.reason) == (False, "BCF_UNREADABLE") and result.line > 1
    assert "htslib cannot decode the BCF data" in result.message
    rng = random.Random(5)
    for i in range(30):
        damaged = bytearray(plain)
        for _ in range(3):
            damaged[rng.randrange(header_end, len(damaged))] = rng.randrange(256)
        path = tmp_path / f"damaged{i}.bcf"
        path.write_bytes(bytes(damaged))
        result = validate_file(path)
        assert result.reason != "INTERNAL_ERROR", result.message
        assert result.valid or result.line, result.message


@needs_inputs
def test_bcf_named_bam_is_a_mismatch(tmp_path):
    target = tmp_path / "calls.bam"
    _to_bcf(REALWORLD / SOURCES[0], target)
    result = validate_file(target)
    assert (result.valid, result.reason) == (False, "EXTENSION_CONTENT_MISMATCH")


@pytest.mark.skipif(BCFTOOLS is None, reason="bcftools not installed")
@pytest.mark.parametrize("output", ["calls.vcf.gz", "calls.bcf"])
def test_bcftools_calls_are_valid_in_strict_mode(tmp_path, output):
    """What GenoFlow's calling step runs (bcftools mpileup | call -mv | norm, Debian 1.16): its header has
    ##ALT=<ID=*> and reserved keys as bcftools declares them (INFO/MQ Integer); valid without a warning."""
    rng = random.Random(1)
    reference = "".join(rng.choice("ACGT") for _ in range(2000))
    fasta = tmp_path / "ref.fa"
    fasta.write_text(">chr1\n" + "\n".join(reference[i:i + 60] for i in range(0, 2000, 60)) + "\n")
    pysam.faidx(str(fasta))
    header = {"HD": {"VN": "1.6", "SO": "coordinate"}, "SQ": [{"SN": "chr1", "LN": 2000}],
              "RG": [{"ID": "rg", "SM": "S1"}]}
    bam = tmp_path / "reads.bam"
    with pysam.AlignmentFile(str(bam), "wb", header=header) as out:
        for start in range(0, 1900, 5):
            for copy in range(4):
                read = pysam.AlignedSegment(out.header)
                bases = list(reference[start:start + 100])
                if start <= 1000 < start + 100 and copy % 2 == 0:  # a heterozygous SNV at 1001
                    bases[1000 - start] = "A" if reference[1000] != "A" else "C"
                read.query_name, read.query_sequence = f"r{start}_{copy}", "".join(bases)
                read.flag, read.reference_id, read.reference_start = 0, 0, start
                read.mapping_quality, read.cigarstring = 60, f"{len(bases)}M"
                read.query_qualities = pysam.qualitystring_to_array("I" * len(bases))
                read.set_tag("RG", "rg")
                out.write(read)
    pysam.index(str(bam))
    mpileup = subprocess.Popen([BCFTOOLS, "mpileup", "-f", str(fasta), "-Ou", str(bam)], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL)
    call = subprocess.Popen([BCFTOOLS, "call", "-mv", "-Ou"], stdin=mpileup.stdout, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    target = tmp_path / output
    subprocess.run([BCFTOOLS, "norm", "-f", str(fasta), "-O", "b" if output.endswith("bcf") else "z", "-o",
                    str(target)], stdin=call.stdout, check=True, capture_output=True)
    result = validate_file(target, strict=True)
    assert result.valid and result.records >= 1 and not result.warnings, (result.reason, result.message)
