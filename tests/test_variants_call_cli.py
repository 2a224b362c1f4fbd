"""GenoFlow's calls against the reference tools' pipeline on the same reads.

Reads are simulated by dwgsim (diploid, 2x150, 30x, SNVs and indels) on 200 kb
of a real genome sequence (C. elegans, ../shared/corpora/_aux/ref/ce.fa). The
CLI pipeline is the one a bioinformatician runs by hand:

    minimap2 -ax sr REF R1 R2 | samtools sort
    bcftools mpileup -f REF -a FORMAT/AD,FORMAT/DP BAM | bcftools call -mv
        | bcftools norm -f REF -m -any

with bcftools' own defaults, which GenoFlow uses too (the FORMAT/AD,DP
annotations do not change calls).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pysam
import pytest

from genoflow_dagster.formats.validate import validate_file
from genoflow_dagster.variants import call as call_module
from genoflow_dagster.variants.align import align_reads
from genoflow_dagster.variants.call import call_variants, genome_chunks

GENOME = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "_aux" / "ref" / "ce.fa"
TOOLS = ("minimap2", "samtools", "bcftools", "dwgsim")

pytestmark = pytest.mark.skipif(any(shutil.which(t) is None for t in TOOLS),
                                reason=f"needs the {', '.join(TOOLS)} CLIs")


def _run(command: str, cwd: Path) -> None:
    subprocess.run(["bash", "-o", "pipefail", "-c", command], cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _sites(vcf: Path) -> list[tuple[str, int, str, str, str]]:
    with pysam.VariantFile(str(vcf)) as fh:
        return [(r.chrom, r.pos, r.ref, r.alts[0], "/".join(map(str, r.samples[0]["GT"]))) for r in fh]


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    root = tmp_path_factory.mktemp("calls")
    with pysam.FastaFile(str(GENOME)) as fasta:
        chunk = fasta.fetch("CHROMOSOME_I", 0, 120_000), fasta.fetch("CHROMOSOME_V", 0, 80_000)
    reference = root / "ref.fa"
    reference.write_text(f">I\n{chunk[0]}\n>V\n{chunk[1]}\n")
    pysam.faidx(str(reference))
    _run(f"dwgsim -z 7 -C 30 -1 150 -2 150 -d 350 -s 50 -e 0.002 -E 0.004 -r 0.002 -R 0.2 -y 0 {reference} sim",
         root)
    r1, r2 = root / "sim.bwa.read1.fastq.gz", root / "sim.bwa.read2.fastq.gz"
    if not r1.is_file():  # dwgsim 0.1.14 writes plain FASTQ
        r1, r2 = root / "sim.bwa.read1.fastq", root / "sim.bwa.read2.fastq"
    ours_bam = root / "ours.bam"
    align_reads(reference, r1, r2, ours_bam, sample_id="S", reference_fasta=reference, threads=2)
    ours_vcf = root / "ours.vcf.gz"
    call_variants(reference, ours_bam, ours_vcf, sample_id="S", threads=2)
    _run(f"minimap2 -ax sr {reference} {r1} {r2} | samtools sort -o cli.bam - && samtools index cli.bam", root)
    _run(f"bcftools mpileup -f {reference} -a FORMAT/AD,FORMAT/DP cli.bam "
         f"| bcftools call -mv | bcftools norm -f {reference} -m -any -Oz -o cli.vcf.gz", root)
    return root, reference, ours_bam, ours_vcf, root / "cli.vcf.gz"


def test_calls_equal_the_cli_pipeline_on_the_same_reads(sample):
    _, _, _, ours, cli = sample
    ours_sites, cli_sites = _sites(ours), _sites(cli)
    assert len(cli_sites) > 200, "200 kb at a 0.2% mutation rate"
    assert ours_sites == cli_sites


def test_own_calls_and_the_cli_calls_pass_strict_validation(sample, tmp_path):
    """GenoFlow must accept the VCF its calling step writes (bcftools' <*> and header lines included), in strict
    mode too, and bcftools' own output, plain and as BCF."""
    root, _, _, ours, cli = sample
    bcf = tmp_path / "cli.bcf"
    _run(f"bcftools view -Ob -o {bcf} {cli}", root)
    for path in (ours, cli, bcf):
        result = validate_file(path, strict=True)
        assert result.valid and not result.warnings, (path.name, result.reason, result.message, result.warnings)
        assert result.records > 200


def test_chunked_calling_equals_one_pass(sample, tmp_path, monkeypatch):
    _, reference, bam, _, _ = sample
    one = tmp_path / "one.vcf.gz"
    call_variants(reference, bam, one, sample_id="S", threads=1)
    monkeypatch.setattr(call_module, "MIN_CHUNK", 7_000)  # 12 chunks: boundaries cross reads and indels
    many = tmp_path / "many.vcf.gz"
    chunks_done: list[int] = []
    stats = call_variants(reference, bam, many, sample_id="S", threads=3,
                          progress=lambda done, _records: chunks_done.append(done))
    assert stats["chunks"] >= 10
    assert _sites(one) == _sites(many)
    # progress hears of every chunk as it is called (the log's 10 s cadence is tests/test_progress.py's)
    assert chunks_done == list(range(1, stats["chunks"] + 1))


def test_targets_restrict_calls_as_bcftools_targets_do(sample, tmp_path):
    root, reference, bam, ours_all, _ = sample
    bed = tmp_path / "targets.bed"
    bed.write_text("I\t1000\t30000\nI\t25000\t41000\nV\t50000\t60000\n")
    ours = tmp_path / "targets.vcf.gz"
    call_variants(reference, bam, ours, sample_id="S", threads=2, targets_bed=bed)
    cli = tmp_path / "cli_targets.vcf.gz"
    _run(f"bcftools mpileup -f {reference} -a FORMAT/AD,FORMAT/DP -T {bed} {bam} "
         f"| bcftools call -mv | bcftools norm -f {reference} -m -any -Oz -o {cli}", root)
    inside = _sites(ours)
    assert inside and inside == _sites(cli)
    assert all((c == "I" and 1000 < p <= 41000) or (c == "V" and 50000 < p <= 60000) for c, p, *_ in inside)
    assert set(inside) < set(_sites(ours_all))


def test_chunks_cover_the_genome_once_in_order():
    contigs = [("a", 130_000), ("b", 20_000), ("c", 5_000)]
    chunks = genome_chunks(contigs, 2)
    pieces = [p for c in chunks for p in c.sites]
    assert pieces[0] == ("a", 0, 50_000) and sum(e - s for _, s, e in pieces) == 155_000
    flat = [(n, i) for n, s, e in pieces for i in (s, e)]
    assert flat == sorted(flat, key=lambda x: ([n for n, _ in contigs].index(x[0]), x[1]))
    assert genome_chunks(contigs, 1) == [call_module.Chunk(None)]
    targeted = genome_chunks(contigs, 1, {"b": [(10, 20), (100, 200)]})
    assert targeted == [call_module.Chunk((("b", 10, 20), ("b", 100, 200)))]


def test_real_amplicon_reads_give_the_cli_pipelines_calls(tmp_path):
    """ERR5069949 (NextSeq ARTIC, SARS-CoV-2): the CLI pipeline with bcftools' own defaults calls the same."""
    realdata = GENOME.parents[3] / "realdata"
    reference = tmp_path / "MN908947.3.fasta"
    shutil.copyfile(realdata / "MN908947.3.fasta", reference)
    pysam.faidx(str(reference))
    r1, r2 = realdata / "ERR5069949_test_1.fastq.gz", realdata / "ERR5069949_test_2.fastq.gz"
    ours_bam, ours_vcf = tmp_path / "ours.bam", tmp_path / "ours.vcf.gz"
    align_reads(reference, r1, r2, ours_bam, sample_id="ERR5069949", reference_fasta=reference, threads=2)
    call_variants(reference, ours_bam, ours_vcf, sample_id="ERR5069949", threads=2)
    _run(f"minimap2 -ax sr {reference} {r1} {r2} | samtools sort -o cli.bam - && samtools index cli.bam "
         f"&& bcftools mpileup -f {reference} cli.bam | bcftools call -mv "
         f"| bcftools norm -f {reference} -m -any -Oz -o cli.vcf.gz", tmp_path)
    ours = [site[:4] for site in _sites(ours_vcf)]
    assert len(ours) >= 10 and ours == [site[:4] for site in _sites(tmp_path / "cli.vcf.gz")]


def test_targets_on_no_reference_contig_give_an_empty_call_set(sample, tmp_path):
    _, reference, bam, _, _ = sample
    bed = tmp_path / "elsewhere.bed"
    bed.write_text("chrZ\t100\t200\n")
    out = tmp_path / "none.vcf.gz"
    stats = call_variants(reference, bam, out, sample_id="S", threads=2, targets_bed=bed)
    assert stats["records"] == 0 and (tmp_path / "none.vcf.gz.tbi").is_file()
    with pysam.VariantFile(str(out)) as fh:
        assert list(fh.header.samples) == ["S"] and list(fh.header.contigs) == ["I", "V"]
