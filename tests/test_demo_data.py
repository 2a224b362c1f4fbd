"""The demo data generator: deterministic, fast, and shaped the way the pipeline's gates expect."""

import gzip
import hashlib
import json
import time
from pathlib import Path

import pysam
import pytest

from genoflow_dagster.demo.generate import SAMPLE_A, SAMPLE_B, SAMPLE_C, generate_demo


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    started = time.monotonic()
    data = generate_demo(tmp_path_factory.mktemp("demo"))
    data.seconds = time.monotonic() - started
    return data


def _digests(root: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.iterdir()) if p.is_file()}


def _fastq(path: Path) -> list[tuple[str, str, str]]:
    with gzip.open(path, "rt") if path.suffix == ".gz" else open(path) as fh:
        lines = fh.read().splitlines()
    return [(lines[i], lines[i + 1], lines[i + 3]) for i in range(0, len(lines) - 3, 4)]


def test_generates_in_a_few_seconds(demo):
    assert demo.seconds < 10


def test_same_seed_same_bytes_other_seed_other_bytes(demo, tmp_path):
    again = generate_demo(tmp_path / "again")
    assert _digests(again.root) == _digests(demo.root)
    other = generate_demo(tmp_path / "other", seed=8)
    assert _digests(other.root)["genome.fa"] != _digests(demo.root)["genome.fa"]


def test_reference_is_indexed_with_about_45_percent_gc(demo):
    with pysam.FastaFile(str(demo.reference_fasta)) as fasta:
        assert list(fasta.references) == ["chr1", "chr2"]
        assert all(50_000 <= n <= 100_000 for n in fasta.lengths)
        seq = "".join(fasta.fetch(name) for name in fasta.references)
    gc = (seq.count("G") + seq.count("C")) / len(seq)
    assert 0.43 < gc < 0.47


def test_truth_matches_the_reference_and_is_normalised(demo):
    truth = json.loads(demo.truth_json.read_text())["variants"]
    assert [(v["chrom"], v["pos"], v["ref"], v["alt"], v["zygosity"]) for v in truth] == demo.spiked_variants
    kinds = {v["variant_type"] for v in truth}
    assert kinds == {"SNV", "INS", "DEL"}
    assert 10 <= sum(v["variant_type"] == "SNV" for v in truth) <= 20
    assert 4 <= sum(v["variant_type"] != "SNV" for v in truth) <= 6
    assert {v["zygosity"] for v in truth} == {"het", "hom_alt"}
    with pysam.FastaFile(str(demo.reference_fasta)) as fasta:
        for v in truth:
            assert fasta.fetch(v["chrom"], v["pos"] - 1, v["pos"] - 1 + len(v["ref"])) == v["ref"]
            if v["variant_type"] in ("INS", "DEL"):
                assert 1 <= abs(len(v["ref"]) - len(v["alt"])) <= 5
                # left-aligned: the anchor base differs from the last inserted/deleted base
                longer = v["alt"] if v["variant_type"] == "INS" else v["ref"]
                assert longer[0] != longer[-1], v


def test_genes_cover_most_variants_and_known_sites_some(demo):
    truth = json.loads(demo.truth_json.read_text())["variants"]
    in_genes = [v for v in truth if v["gene"]]
    assert len(in_genes) >= len(truth) * 0.6
    assert len(in_genes) < len(truth), "some variants are intergenic"
    known = [v for v in truth if v["known"]]
    assert 0 < len(known) < len(truth)
    with pysam.VariantFile(str(demo.known_sites_vcf)) as vcf:
        assert vcf.index is not None
        keys = {(r.chrom, r.pos, r.ref, r.alts[0]) for r in vcf}
    assert {(v["chrom"], v["pos"], v["ref"], v["alt"]) for v in known} <= keys
    gtf = demo.annotation_gtf.read_text().splitlines()
    features = {line.split("\t")[2] for line in gtf if not line.startswith("#")}
    assert features == {"gene", "transcript", "exon"}
    assert all('gene_name "' in line for line in gtf if not line.startswith("#"))


def test_sample_a_is_a_good_pair(demo):
    r1, r2 = demo.samples[SAMPLE_A]
    assert (r1.name, r2.name) == ("SAMPLE_A_R1.fastq.gz", "SAMPLE_A_R2.fastq.gz")
    reads1, reads2 = _fastq(r1), _fastq(r2)
    assert len(reads1) == len(reads2) > 10_000
    for (h1, s1, q1), (h2, s2, q2) in zip(reads1[:500], reads2[:500], strict=True):
        assert h1.split()[0] == h2.split()[0]
        assert h1.split()[1].startswith("1:") and h2.split()[1].startswith("2:")
        assert len(s1) == len(q1) == len(s2) == len(q2) == 100
        assert min(q1 + q2) >= chr(33 + 30) and max(q1 + q2) <= chr(33 + 40)


def test_sample_b_has_low_base_quality(demo):
    reads = _fastq(demo.samples[SAMPLE_B][0])
    quals = [ord(c) - 33 for _, _, q in reads[:1000] for c in q]
    assert sum(q < 15 for q in quals) / len(quals) > 0.9


def test_sample_c_has_a_valid_vcf_and_a_malformed_fastq(demo):
    vcf, bad = demo.samples[SAMPLE_C]
    with pysam.VariantFile(str(vcf)) as fh:
        assert list(fh.header.samples) == [SAMPLE_C]
        assert sum(1 for _ in fh) == 10
    lines = bad.read_text().splitlines()
    assert len(lines[9]) == 100 and len(lines[11]) == 95, "third record: quality 5 shorter than sequence"
