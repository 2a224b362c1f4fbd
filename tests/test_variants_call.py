"""Calling and normalisation: the spiked truth comes back exactly; uploads are normalised; outputs are atomic."""

import gzip
import time

import pysam
import pytest

from genoflow_dagster.demo.generate import SAMPLE_A, SAMPLE_C, generate_demo
from genoflow_dagster.variants.align import align_reads, build_reference_index
from genoflow_dagster.variants.call import call_variants, normalise_vcf


@pytest.fixture(scope="module")
def called(tmp_path_factory):
    root = tmp_path_factory.mktemp("call")
    demo = generate_demo(root / "demo")
    out = root / "out"
    out.mkdir()
    started = time.monotonic()
    mmi = build_reference_index(demo.reference_fasta, root / "genome.mmi")
    align_reads(mmi, *demo.samples[SAMPLE_A], out / "A.bam", sample_id=SAMPLE_A,
                reference_fasta=demo.reference_fasta, threads=2)
    aligned = time.monotonic()
    stats = call_variants(demo.reference_fasta, out / "A.bam", out / "A.vcf.gz", sample_id=SAMPLE_A)
    finished = time.monotonic()
    print(f"sample A: align {aligned - started:.1f} s, call {finished - aligned:.1f} s")
    return demo, out, stats, finished - started


def _records(path) -> dict[tuple[str, int, str, str], str]:
    calls = {}
    with pysam.VariantFile(str(path)) as vcf:
        for record in vcf:
            gt = record.samples[0]["GT"]
            zygosity = "hom_alt" if len(set(gt)) == 1 and gt[0] else "het"
            for alt in record.alts:
                calls[(record.chrom, record.pos, record.ref, alt)] = zygosity
    return calls


def test_align_and_call_fit_the_demo_budget(called):
    *_, seconds = called
    assert seconds < 40


def test_every_spiked_variant_is_recovered_exactly(called):
    demo, out, stats, _ = called
    calls = _records(out / "A.vcf.gz")
    truth = {v[:4]: v[4] for v in demo.spiked_variants}
    missing = sorted(set(truth) - set(calls))
    assert not missing
    right = sum(calls[k] == z for k, z in truth.items())
    assert right >= 0.9 * len(truth), f"zygosity right for {right}/{len(truth)}"
    assert len(calls) <= len(truth) + 3, "few false positives on clean simulated reads"
    assert stats["records"] == len(calls)
    assert stats["bcftools_version"]


def test_call_set_is_bgzipped_indexed_and_named_for_the_sample(called):
    _, out, _, _ = called
    vcf_gz = out / "A.vcf.gz"
    assert vcf_gz.read_bytes()[:2] == b"\x1f\x8b"
    assert (out / "A.vcf.gz.tbi").is_file()
    with pysam.VariantFile(str(vcf_gz)) as vcf:
        assert list(vcf.header.samples) == [SAMPLE_A]
        assert vcf.index is not None
        assert len(list(vcf.fetch("chr2"))) > 0
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "no temporary leftovers"


def test_uploaded_vcf_is_left_aligned_sorted_and_indexed(called, tmp_path):
    demo, *_ = called
    out = tmp_path / "C.vcf.gz"
    stats = normalise_vcf(demo.samples[SAMPLE_C][0], out, reference_fasta=demo.reference_fasta)
    assert stats["left_aligned"] is True and stats["records"] == 10
    assert sorted(_records(out)) == sorted(demo.sample_c_variants)
    assert (tmp_path / "C.vcf.gz.tbi").is_file()


def _write_vcf(path, rows, contigs=(("chr1", 80_000), ("chr2", 60_000))):
    header = ["##fileformat=VCFv4.2", *[f"##contig=<ID={c},length={n}>" for c, n in contigs],
              '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
              "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS1"]
    path.write_text("\n".join(header + ["\t".join(map(str, r)) for r in rows]) + "\n")
    return path


def test_unsorted_multiallelic_upload_is_split_and_sorted(called, tmp_path):
    demo, *_ = called
    with pysam.FastaFile(str(demo.reference_fasta)) as fasta:
        b1, b2 = fasta.fetch("chr1", 999, 1000), fasta.fetch("chr2", 499, 500)
    alts = [b for b in "ACGT" if b != b1]
    rows = [("chr2", 500, ".", b2, "A" if b2 != "A" else "C", 30, "PASS", ".", "GT", "0/1"),
            ("chr1", 1000, ".", b1, f"{alts[0]},{alts[1]}", 40, "PASS", ".", "GT", "1/2")]
    src = _write_vcf(tmp_path / "in.vcf", rows)
    stats = normalise_vcf(src, tmp_path / "out.vcf.gz", reference_fasta=demo.reference_fasta)
    assert stats["records"] == 3
    with pysam.VariantFile(str(tmp_path / "out.vcf.gz")) as vcf:
        keys = [(r.chrom, r.pos, r.alts) for r in vcf]
    assert keys == [("chr1", 1000, (alts[0],)), ("chr1", 1000, (alts[1],)), ("chr2", 500, keys[2][2])]


@pytest.mark.parametrize("reference", ["other contigs", None])
def test_upload_that_does_not_fit_the_reference_is_still_normalised(called, tmp_path, reference):
    demo, *_ = called
    src = _write_vcf(tmp_path / "in.vcf", [("chrX", 200, "rs1", "A", "G", 30, "PASS", ".", "GT", "0/1"),
                                           ("chrX", 100, ".", "C", "T", 30, "PASS", ".", "GT", "1/1")],
                     contigs=(("chrX", 1_000),))
    stats = normalise_vcf(src, tmp_path / "out.vcf.gz",
                          reference_fasta=demo.reference_fasta if reference else None)
    assert stats["left_aligned"] is False and stats["skipped"]
    with pysam.VariantFile(str(tmp_path / "out.vcf.gz")) as vcf:
        assert [r.pos for r in vcf] == [100, 200]


def test_failed_normalisation_leaves_no_output(called, tmp_path):
    demo, *_ = called
    bad = tmp_path / "bad.vcf"
    bad.write_text("this is not a VCF\n")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises((ValueError, OSError, pysam.utils.SamtoolsError)):
        normalise_vcf(bad, out_dir / "bad.vcf.gz", reference_fasta=demo.reference_fasta)
    assert list(out_dir.iterdir()) == []


def test_failed_calling_leaves_no_output(called, tmp_path):
    demo, *_ = called
    not_a_bam = tmp_path / "broken.bam"
    not_a_bam.write_bytes(b"not a bam")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(pysam.utils.SamtoolsError):
        call_variants(demo.reference_fasta, not_a_bam, out_dir / "x.vcf.gz", sample_id="X")
    assert list(out_dir.iterdir()) == []


def test_gzip_upload_without_contig_lines(called, tmp_path):
    """Plain gzip (not BGZF) and no ##contig lines: both are common in hand-made uploads."""
    demo, *_ = called
    with pysam.FastaFile(str(demo.reference_fasta)) as fasta:
        b1, b2 = fasta.fetch("chr1", 999, 1000), fasta.fetch("chr2", 499, 500)
    text = ("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
            f"chr2\t500\t.\t{b2}\t{'A' if b2 != 'A' else 'C'}\t.\t.\t.\n"
            f"chr1\t1000\t.\t{b1}\t{'A' if b1 != 'A' else 'C'}\t.\t.\t.\n")
    src = tmp_path / "in.vcf.gz"
    with gzip.open(src, "wt") as fh:
        fh.write(text)
    stats = normalise_vcf(src, tmp_path / "out.vcf.gz", reference_fasta=demo.reference_fasta)
    assert stats["records"] == 2 and stats["left_aligned"] is True
    with pysam.VariantFile(str(tmp_path / "out.vcf.gz")) as vcf:
        assert vcf.header.contigs["chr2"].length == 60_000
        assert [(r.chrom, r.pos) for r in vcf] == [("chr1", 1000), ("chr2", 500)]
