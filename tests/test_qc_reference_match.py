"""Reference consistency on real headers: files from real producers against the wrong reference, the
right one, a chr-renamed one, another assembly's lengths, and a sequence that differs under the same name."""

import shutil
import subprocess
from pathlib import Path

import pytest

from genoflow_dagster.qc.alignment import alignment_metrics
from genoflow_dagster.qc.alignment_gate import grade_alignment
from genoflow_dagster.qc.profiles import load_profile
from genoflow_dagster.qc.reference_match import (
    FAIL,
    NOT_GRADED,
    PASS,
    FileContig,
    FileContigs,
    ReferenceContigs,
    alignment_contigs,
    cached_reference_m5,
    match_contigs,
    reference_label,
    sample_verdict,
    vcf_contigs,
)

SHARED = Path(__file__).resolve().parents[2] / "shared"
REALWORLD = SHARED / "realworld"
REALDATA = SHARED / "realdata"
# GRCh37 (b37 names 1..22, X, Y, MT, with M5) from Broad production (bwa/MarkDuplicates/GATK)
PICARD_B37_BAM = (REALWORLD / "bam"
                  / "picard__testdata__picard__fingerprint__index_test__files__NA12891.over.fingerprints.r1.bam")
# GRCh38 (chr1.., minimap2, HG002 long reads)
SNIFFLES_HG38_BAM = REALWORLD / "bam" / "Sniffles__src__tests__data__hg002.bam"
UNALIGNED_BAM = REALWORLD / "bam" / "dorado__tests__data__basespace__pairs.bam"
TINY_CRAM = REALWORLD / "cram" / "freebayes__test__tiny__NA12878.chr22.tiny.cram"  # @SQ q with M5
TINY_CRAM_REF = REALWORLD / "cram" / "refs" / "freebayes__test__tiny__q.fa"
B37_VCF = REALWORLD / "vcf" / "htsjdk__src__test__resources__htsjdk__variant__NA12891.vcf"
NO_CONTIG_VCF = REALWORLD / "vcf" / "pysam__tests__tabix_data__vcf__10.vcf"  # records on "20", no ##contig
TINY_VCF_GZ = REALWORLD / "vcf" / "freebayes__test__tiny__q.vcf.gz"

pytestmark = pytest.mark.skipif(not REALWORLD.is_dir() or not REALDATA.is_dir(),
                                reason="../shared/realworld and ../shared/realdata not present")


@pytest.fixture
def sars_cov_2(tmp_path) -> Path:
    """A private copy of MN908947.3 (its .fai and .m5 are written beside it, not in the shared folder)."""
    fasta = tmp_path / "MN908947.3.fasta"
    shutil.copyfile(REALDATA / "MN908947.3.fasta", fasta)
    return fasta


@pytest.fixture
def sars_cov_2_bam(tmp_path, sars_cov_2) -> Path:
    """The realdata ERR5069949 read pairs aligned to MN908947.3 by minimap2 (sorted by samtools)."""
    if not shutil.which("minimap2") or not shutil.which("samtools"):
        pytest.skip("minimap2 and samtools are needed to make the matching BAM")
    sam = subprocess.run(["minimap2", "-a", "-x", "sr", str(sars_cov_2), str(REALDATA / "ERR5069949_test_1.fastq.gz"),
                          str(REALDATA / "ERR5069949_test_2.fastq.gz")], check=True, capture_output=True).stdout
    bam = tmp_path / "ERR5069949.bam"
    subprocess.run(["samtools", "sort", "-o", str(bam), "-"], input=sam, check=True, capture_output=True)
    return bam


def _renamed(contigs: FileContigs, rename) -> ReferenceContigs:
    """A reference with the file's own lengths under other names (what a chr-prefixed copy of it holds)."""
    return ReferenceContigs({rename(c.name): c.length for c in contigs.contigs}, label="renamed.fa")


def test_a_grch37_bam_against_sars_cov_2_names_the_contigs_and_the_reference(sars_cov_2):
    found = alignment_contigs(PICARD_B37_BAM)
    assert found.source == "@SQ header" and len(found.contigs) == 85
    assert found.contigs[0] == FileContig("1", 249_250_621, "1b22b98cdeb4a9304cb5d48026a85128")
    result = match_contigs(found, ReferenceContigs.from_fasta(sars_cov_2), file="NA12891.bam")
    assert result.status == FAIL and result.matched == 0 and len(result.mismatches) == 85
    assert {m.kind for m in result.mismatches} == {"absent"}
    assert result.message == ("NA12891.bam: none of its 85 contigs is in the reference MN908947.3 "
                              "(1, 2, 3, 4, 5 and 80 more): is this the right reference?")


@pytest.mark.parametrize("path", [SNIFFLES_HG38_BAM, TINY_CRAM])
def test_other_human_alignments_against_sars_cov_2_fail(path, sars_cov_2):
    result = match_contigs(alignment_contigs(path), ReferenceContigs.from_fasta(sars_cov_2), file=path.name)
    assert result.status == FAIL and result.matched == 0
    assert "MN908947.3" in result.message and "is this the right reference?" in result.message


def test_reads_aligned_to_the_reference_match_it(sars_cov_2, sars_cov_2_bam):
    result = match_contigs(alignment_contigs(sars_cov_2_bam), ReferenceContigs.from_fasta(sars_cov_2), file="x.bam")
    assert (result.status, result.contigs, result.matched, result.mismatches) == (PASS, 1, 1, ())
    assert result.message == "x.bam: 1 contig(s) match MN908947.3 (names and lengths, from the @SQ header)"


def test_missing_chr_prefix_is_named_as_such_with_mt_vs_chrm():
    found = alignment_contigs(PICARD_B37_BAM)
    reference = _renamed(found, lambda n: "chrM" if n == "MT" else f"chr{n}")
    result = match_contigs(found, reference, file="NA12891.bam")
    assert result.status == FAIL and {m.kind for m in result.mismatches} == {"prefix"}
    by_name = {m.contig: m for m in result.mismatches}
    assert by_name["MT"].reference_contig == "chrM" and by_name["1"].reference_contig == "chr1"
    assert result.message.startswith("NA12891.bam: the file names contigs without the 'chr' prefix the reference "
                                     "uses (1 vs chr1, 2 vs chr2, 3 vs chr3, 4 vs chr4, 5 vs chr5 and 80 more)")


def test_an_extra_chr_prefix_is_named_as_such():
    found = alignment_contigs(SNIFFLES_HG38_BAM)
    reference = _renamed(found, lambda n: "MT" if n == "chrM" else n.removeprefix("chr"))
    result = match_contigs(found, reference, file="hg002.bam")
    assert {m.kind for m in result.mismatches} == {"prefix"}
    assert "the file names contigs with a 'chr' prefix the reference does not use (chr1 vs 1," in result.message


def test_grch38_lengths_against_grch37_are_a_length_mismatch():
    """Real headers of two assemblies: same chr names, GRCh38 lengths in the file, GRCh37 in the reference."""
    grch37 = _renamed(alignment_contigs(PICARD_B37_BAM), lambda n: "chrM" if n == "MT" else f"chr{n}")
    result = match_contigs(alignment_contigs(SNIFFLES_HG38_BAM), grch37, file="hg002.bam")
    assert result.status == FAIL
    chr1 = next(m for m in result.mismatches if m.contig == "chr1")
    assert (chr1.kind, chr1.file_length, chr1.reference_length) == ("length", 248_956_422, 249_250_621)
    assert "chr1: 248,956,422 bp in the file, 249,250,621 in the reference" in result.message
    assert "another assembly?" in result.message
    # chrM is 16,569 bp in both: its length matches, so it is not among the mismatches
    assert "chrM" not in {m.contig for m in result.mismatches}


def test_m5_is_compared_with_the_reference_sequence_and_cached_beside_it(tmp_path):
    fasta = tmp_path / "q.fa"
    shutil.copyfile(TINY_CRAM_REF, fasta)
    result = match_contigs(alignment_contigs(TINY_CRAM), ReferenceContigs.from_fasta(fasta), file="tiny.cram")
    assert (result.status, result.m5_compared) == (PASS, 1)
    assert "names, lengths and M5" in result.message
    cache = tmp_path / "q.fa.m5"
    assert cache.read_text() == "q\tee5a2decc990ba0220728d924ddd4dba\n"  # the CRAM's own @SQ M5
    assert cached_reference_m5(fasta) == {"q": "ee5a2decc990ba0220728d924ddd4dba"}


def test_same_name_and_length_with_another_sequence_is_an_m5_mismatch(tmp_path):
    lines = TINY_CRAM_REF.read_text().splitlines()
    seq_line = next(i for i, line in enumerate(lines) if not line.startswith(">") and "A" in line.upper())
    base = lines[seq_line][0]
    lines[seq_line] = ("C" if base.upper() != "C" else "G") + lines[seq_line][1:]
    fasta = tmp_path / "q_edited.fa"
    fasta.write_text("\n".join(lines) + "\n")
    result = match_contigs(alignment_contigs(TINY_CRAM), ReferenceContigs.from_fasta(fasta), file="tiny.cram")
    assert result.status == FAIL and [m.kind for m in result.mismatches] == ["m5"]
    assert result.message == ("tiny.cram: 1 contig(s) have the same name and length but a different sequence "
                              "(M5) than q (q)")


def test_lower_case_reference_bases_hash_as_upper_case(tmp_path):
    fasta = tmp_path / "soft_masked.fa"
    fasta.write_text(">s\nacgtAC\nGT\n")
    assert cached_reference_m5(fasta) == {"s": "cc0af3a4fedb18378b4b57b98068e69f"}  # md5("ACGTACGT")


def test_an_unaligned_bam_has_nothing_to_compare(sars_cov_2):
    result = match_contigs(alignment_contigs(UNALIGNED_BAM), ReferenceContigs.from_fasta(sars_cov_2), file="u.bam")
    assert result.status == PASS and "no @SQ lines (unaligned)" in result.message


def test_a_grch37_vcf_is_read_from_its_contig_lines(sars_cov_2):
    found = vcf_contigs(B37_VCF)
    assert found.source == "##contig header" and found.contigs[0] == FileContig("1", 249_250_621)
    result = match_contigs(found, ReferenceContigs.from_fasta(sars_cov_2), file="NA12891.vcf")
    assert result.status == FAIL and "none of its 85 contigs is in the reference MN908947.3" in result.message


def test_a_vcf_without_contig_lines_is_read_from_its_records(sars_cov_2):
    found = vcf_contigs(NO_CONTIG_VCF)
    assert found.source == "records" and [c.name for c in found.contigs] == ["20"]
    result = match_contigs(found, ReferenceContigs.from_fasta(sars_cov_2), file="10.vcf")
    assert result.message == ("10.vcf: its only contig, 20, is not in the reference MN908947.3: "
                              "is this the right reference?")


def test_a_bgzipped_vcf_of_the_right_reference_matches(tmp_path):
    fasta = tmp_path / "q.fa"
    shutil.copyfile(TINY_CRAM_REF, fasta)
    result = match_contigs(vcf_contigs(TINY_VCF_GZ), ReferenceContigs.from_fasta(fasta), file="q.vcf.gz")
    assert result.status == PASS, result.message


def test_records_past_the_end_of_the_reference_contig_fail(tmp_path, sars_cov_2):
    vcf = tmp_path / "beyond.vcf"
    vcf.write_text("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
                   "MN908947.3\t241\t.\tC\tT\t60\tPASS\t.\nMN908947.3\t40000\t.\tA\tG\t60\tPASS\t.\n")
    result = match_contigs(vcf_contigs(vcf), ReferenceContigs.from_fasta(sars_cov_2), file="beyond.vcf")
    assert result.status == FAIL and result.mismatches[0].kind == "beyond_end"
    assert "MN908947.3 at 40,000, length 29,903" in result.message


def test_a_bcf_is_read_from_its_header(tmp_path, sars_cov_2):
    import pysam.bcftools

    bcf = tmp_path / "x.bcf"
    pysam.bcftools.view("-O", "b", "-o", str(bcf), str(B37_VCF), catch_stdout=False)
    found = vcf_contigs(bcf)
    assert found.source == "##contig header" and len(found.contigs) == 85


def test_labels_and_the_sample_verdict():
    assert reference_label({"MN908947.3": 29_903}, "sars.fa") == "MN908947.3"
    assert reference_label({"chr1": 1, "chr2": 2}, "genome.fa") == "genome.fa (2 contigs)"
    not_graded = sample_verdict([], reference=None, not_graded_reason="no reference FASTA")
    assert not_graded["status"] == NOT_GRADED and not_graded["message"] == "not graded: no reference FASTA"
    good = {"file": "a.bam", "status": PASS, "message": "a.bam: fine"}
    bad = {"file": "b.vcf", "status": FAIL, "message": "b.vcf: wrong"}
    verdict = sample_verdict([good, bad], reference="MN908947.3")
    assert (verdict["status"], verdict["message"]) == (FAIL, "b.vcf: wrong")


def test_reads_of_another_genome_fail_the_alignment_floor_with_a_plain_message(tmp_path, sars_cov_2_bam):
    """SARS-CoV-2 reads graded as if aligned to E. coli: real 0% mapping, from a real alignment."""
    ecoli = tmp_path / "ecoli.fa"
    shutil.copyfile(REALWORLD / "fasta" / "Flye__flye__tests__data__ecoli_500kb.fasta", ecoli)
    sam = subprocess.run(["minimap2", "-a", "-x", "sr", str(ecoli), str(REALDATA / "ERR5069949_test_1.fastq.gz")],
                         check=True, capture_output=True).stdout
    bam = tmp_path / "wrong.bam"
    subprocess.run(["samtools", "sort", "-o", str(bam), "-"], input=sam, check=True, capture_output=True)
    metrics = alignment_metrics(bam)
    assert metrics["mapped_percent"] == 0.0 and metrics["total"] == 100
    verdict = grade_alignment(metrics, load_profile("standard"),
                              reference=reference_label({"contig_1": 500_000, "contig_2": 1}, "ecoli.fa"))
    assert verdict["status"] == "fail"
    assert verdict["message"] == "0.0% of reads map to ecoli.fa (2 contigs): is this the right reference?"
    right = grade_alignment(alignment_metrics(sars_cov_2_bam), load_profile("standard"), reference="MN908947.3")
    assert right["status"] != "fail", right["message"]
    assert grade_alignment(None, load_profile("standard"), reference="x")["status"] == "not_graded"
