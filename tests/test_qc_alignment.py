"""Alignment metrics against `samtools flagstat` and `samtools depth` (skipped without samtools)."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from pathlib import Path

import pysam
import pytest

from genoflow_dagster.qc import compute_metrics
from genoflow_dagster.qc.alignment import alignment_metrics

CORPORA = Path(__file__).resolve().parents[1].parent / "shared" / "corpora"
HAVE_SAMTOOLS = shutil.which("samtools") is not None
CONTIGS = {"chr1": 5000, "chr2": 3000}

FLAGSTAT_FIELDS = {
    "total (QC-passed reads + QC-failed reads)": "total",
    "primary": "primary",
    "secondary": "secondary",
    "supplementary": "supplementary",
    "duplicates": "duplicates",
    "primary duplicates": "primary_duplicates",
    "mapped": "mapped",
    "primary mapped": "primary_mapped",
    "paired in sequencing": "paired",
    "read1": "read1",
    "read2": "read2",
    "properly paired": "properly_paired",
    "with itself and mate mapped": "with_mate_mapped",
    "singletons": "singletons",
    "with mate mapped to a different chr": "mate_on_other_chr",
    "with mate mapped to a different chr (mapQ>=5)": "mate_on_other_chr_mapq5",
}


def make_bam(path: Path, n_pairs: int = 400, seed: int = 3) -> Path:
    """Pairs in every flag situation flagstat distinguishes, coordinate-sorted and indexed."""
    rnd = random.Random(seed)
    header = {"HD": {"VN": "1.6", "SO": "unsorted"},
              "SQ": [{"SN": name, "LN": ln} for name, ln in CONTIGS.items()]}
    unsorted = path.with_suffix(".unsorted.bam")
    with pysam.AlignmentFile(str(unsorted), "wb", header=header) as out:
        def rec(name: str, flag: int, tid: int, pos: int, mtid: int, mpos: int, mapq: int, cigar: str,
                tlen: int = 0) -> None:
            a = pysam.AlignedSegment(out.header)
            a.query_name = name
            a.flag = flag
            length = 100
            a.query_sequence = "".join(rnd.choice("ACGT") for _ in range(length))
            a.query_qualities = pysam.qualitystring_to_array("".join(chr(33 + rnd.randint(2, 40))
                                                                     for _ in range(length)))
            a.reference_id = tid
            a.reference_start = pos
            a.mapping_quality = mapq
            a.cigarstring = cigar if tid >= 0 and not flag & 0x4 else None
            a.next_reference_id = mtid
            a.next_reference_start = mpos
            a.template_length = tlen
            if tid >= 0 and not flag & 0x4:
                a.set_tag("NM", rnd.randint(0, 3))
            out.write(a)

        for i in range(n_pairs):
            kind = rnd.random()
            extra = 0
            if rnd.random() < 0.08:
                extra |= 0x400
            if rnd.random() < 0.05:
                extra |= 0x200
            tid = rnd.randint(0, 1)
            pos = rnd.randint(0, CONTIGS[f"chr{tid + 1}"] - 400)
            mpos = pos + rnd.randint(50, 250)
            mapq = rnd.choice([0, 3, 20, 60])
            cig = rnd.choice(["100M", "50M2D50M", "40M10I50M", "10S90M", "60M300N40M"])
            name = f"p{i}"
            if kind < 0.6:  # proper pair
                rec(name, 0x1 | 0x2 | 0x20 | 0x40 | extra, tid, pos, tid, mpos, mapq, cig, mpos - pos + 100)
                rec(name, 0x1 | 0x2 | 0x10 | 0x80 | extra, tid, mpos, tid, pos, mapq, "100M", -(mpos - pos + 100))
            elif kind < 0.7:  # mate unmapped: a singleton and an unmapped mate placed beside it
                rec(name, 0x1 | 0x8 | 0x40 | extra, tid, pos, tid, pos, mapq, cig)
                rec(name, 0x1 | 0x4 | 0x80 | extra, tid, pos, tid, pos, 0, "")
            elif kind < 0.8:  # mates on different chromosomes
                rec(name, 0x1 | 0x40 | extra, tid, pos, 1 - tid, 100, mapq, cig)
                rec(name, 0x1 | 0x80 | extra, 1 - tid, 100, tid, pos, rnd.choice([0, 4, 5, 30]), "100M")
            elif kind < 0.88:  # both unmapped
                rec(name, 0x1 | 0x4 | 0x8 | 0x40 | extra, -1, -1, -1, -1, 0, "")
                rec(name, 0x1 | 0x4 | 0x8 | 0x80 | extra, -1, -1, -1, -1, 0, "")
            elif kind < 0.94:  # single-end, plus a secondary and a supplementary alignment
                rec(name, extra, tid, pos, -1, -1, mapq, cig)
                rec(name, 0x100 | extra, tid, mpos, -1, -1, 0, "100M")
                rec(name, 0x800, tid, pos + 10, -1, -1, mapq, "30M70S")
            else:  # pair not properly paired, read1 only flagged
                rec(name, 0x1 | 0x40 | extra, tid, pos, tid, mpos, mapq, cig)
                rec(name, 0x1 | 0x80 | 0x100, tid, mpos, tid, pos, mapq, "100M")
    pysam.sort("-o", str(path), str(unsorted))
    pysam.index(str(path))
    unsorted.unlink()
    return path


def flagstat(path: Path, *extra: str) -> dict[str, int]:
    out = subprocess.run(["samtools", "flagstat", "-O", "tsv", *extra, str(path)], capture_output=True, text=True,
                         check=True, env={**os.environ, "REF_PATH": str(CORPORA / "_aux" / "ref" / "md5" / "%s")})
    counts: dict[str, int] = {}
    for line in out.stdout.strip().splitlines():
        passed, failed, label = line.split("\t")
        if label in FLAGSTAT_FIELDS:
            counts[FLAGSTAT_FIELDS[label]] = int(passed) + int(failed)
    return counts


@pytest.fixture(scope="module")
def bam(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_bam(tmp_path_factory.mktemp("bam") / "reads.bam")


@pytest.mark.skipif(not HAVE_SAMTOOLS, reason="samtools not installed")
def test_every_flagstat_category(bam: Path) -> None:
    m = alignment_metrics(bam)
    ref = flagstat(bam)
    assert len(ref) == len(FLAGSTAT_FIELDS)
    assert {k: m[k] for k in ref} == ref
    assert m["mapped_percent"] == pytest.approx(100 * ref["mapped"] / ref["total"], abs=1e-4)
    assert m["properly_paired_percent"] == pytest.approx(100 * ref["properly_paired"] / ref["paired"], abs=1e-4)


@pytest.mark.skipif(not HAVE_SAMTOOLS, reason="samtools not installed")
def test_depth_and_breadth_match_samtools_depth(bam: Path) -> None:
    m = alignment_metrics(bam)
    out = subprocess.run(["samtools", "depth", "-a", "-a", str(bam)], capture_output=True, text=True, check=True)
    depths = [int(line.split("\t")[2]) for line in out.stdout.splitlines()]
    total = sum(CONTIGS.values())
    assert len(depths) == total
    assert m["reference_length"] == total
    assert m["mean_depth"] == pytest.approx(sum(depths) / total, abs=1e-4)
    for level in (1, 10, 30):
        assert m[f"breadth_{level}x"] == pytest.approx(100 * sum(d >= level for d in depths) / total, abs=1e-4)


def test_stats_like_summaries(bam: Path) -> None:
    m = compute_metrics(bam, "bam")
    assert m["format"] == "bam"
    assert m["average_length"] == 100
    assert 2 <= m["average_quality"] <= 40
    assert 0 < m["error_rate"] < 0.05
    assert m["insert_size_mean"] > 100 and m["insert_size_sd"] > 0
    assert sum(m["mapq_distribution"].values()) == m["primary_mapped"]


def samtools_stats_summary(path: Path) -> dict[str, float]:
    out = subprocess.run(["samtools", "stats", str(path)], capture_output=True, text=True, check=True).stdout
    sn = {f[1].rstrip(":"): f[2] for f in (line.split("\t") for line in out.splitlines()) if f[0] == "SN"}
    return {"average_length": float(sn["average length"]), "average_quality": float(sn["average quality"]),
            "bases_mapped_cigar": int(sn["bases mapped (cigar)"]), "mismatches": int(sn["mismatches"]),
            "error_rate": float(sn["error rate"]), "insert_size_mean": float(sn["insert size average"]),
            "insert_size_sd": float(sn["insert size standard deviation"])}


def assert_matches_samtools_stats(m: dict, ref: dict[str, float]) -> None:
    """Equal to the precision samtools prints: integers exactly, averages to 1 decimal, error rate to 6 digits."""
    assert (m["bases_mapped_cigar"], m["mismatches"]) == (ref["bases_mapped_cigar"], ref["mismatches"])
    assert (m["error_rate"] or 0.0) == pytest.approx(ref["error_rate"], rel=1e-6)  # samtools: float, %e
    for key in ("average_quality", "insert_size_mean", "insert_size_sd"):  # printed %.1f
        assert abs((m[key] or 0.0) - ref[key]) <= 0.05 + 1e-9, key
    assert int(m["average_length"] or 0) == ref["average_length"]  # integer division, printed %.0f


@pytest.mark.skipif(not HAVE_SAMTOOLS, reason="samtools not installed")
def test_stats_summaries_match_samtools_stats(bam: Path) -> None:
    assert_matches_samtools_stats(alignment_metrics(bam), samtools_stats_summary(bam))


def test_reference_lengths_override_and_sam(tmp_path: Path, bam: Path) -> None:
    sam = tmp_path / "reads.sam"
    pysam.view("-h", "-o", str(sam), str(bam), catch_stdout=False)
    m_bam = alignment_metrics(bam, reference_lengths={"chr1": 5000})
    m_sam = alignment_metrics(sam, reference_lengths={"chr1": 5000})
    assert m_bam["reference_length"] == 5000
    for key in ("total", "mapped", "mean_depth", "breadth_1x"):
        assert m_bam[key] == m_sam[key]


def corpus_alignments() -> list[Path]:
    files: list[Path] = []
    for fmt in ("bam", "sam", "cram"):
        folder = CORPORA / fmt / "valid"
        if folder.is_dir():
            files += sorted(folder.iterdir())
    return files


@pytest.mark.skipif(not HAVE_SAMTOOLS or not corpus_alignments(), reason="samtools or corpora absent")
@pytest.mark.parametrize("path", corpus_alignments(), ids=lambda p: p.name)
def test_corpus_matches_flagstat(path: Path) -> None:
    try:
        ref = flagstat(path)
    except subprocess.CalledProcessError:
        pytest.skip("samtools cannot read it")
    fasta = CORPORA / "_aux" / "ref" / "ce.fa"
    os.environ.setdefault("REF_PATH", str(CORPORA / "_aux" / "ref" / "md5" / "%s"))
    try:
        m = alignment_metrics(path, reference_fasta=str(fasta) if path.suffix == ".cram" else None)
    except (ValueError, OSError) as exc:
        pytest.skip(f"pysam cannot read it either way: {exc}")
    assert {k: m[k] for k in ref} == ref
    if path.suffix != ".cram":
        assert_matches_samtools_stats(m, samtools_stats_summary(path))


def test_unsorted_input_gives_the_same_coverage(tmp_path: Path, bam: Path) -> None:
    shuffled = tmp_path / "shuffled.bam"
    with pysam.AlignmentFile(str(bam)) as src:
        header = src.header.to_dict()
        header["HD"]["SO"] = "unsorted"
        records = list(src.fetch(until_eof=True))
        random.Random(1).shuffle(records)
        with pysam.AlignmentFile(str(shuffled), "wb", header=header) as out:
            for r in records:
                out.write(r)
    a, b = alignment_metrics(bam), alignment_metrics(shuffled)
    for key in ("total", "mean_depth", "breadth_1x", "breadth_10x", "breadth_30x"):
        assert a[key] == b[key]
