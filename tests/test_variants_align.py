"""Alignment with mappy: proper SAM records, sorted and indexed BAM, atomic output."""

import gzip
import re
import time

import mappy
import pysam
import pytest

from genoflow_dagster.demo.generate import SAMPLE_A, generate_demo
from genoflow_dagster.variants.align import align_reads, build_reference_index, ensure_faidx


@pytest.fixture(scope="module")
def aligned(tmp_path_factory):
    root = tmp_path_factory.mktemp("align")
    demo = generate_demo(root / "demo")
    ensure_faidx(demo.reference_fasta)
    mmi = build_reference_index(demo.reference_fasta, root / "genome.mmi")
    out = root / "out" / "SAMPLE_A.bam"
    out.parent.mkdir()
    messages: list[str] = []
    started = time.monotonic()
    stats = align_reads(mmi, *demo.samples[SAMPLE_A], out, sample_id=SAMPLE_A,
                        reference_fasta=demo.reference_fasta, threads=2, log=messages.append, log_every=10_000)
    seconds = time.monotonic() - started
    print(f"align_reads on sample A: {stats['reads']:,} reads in {seconds:.1f} s")
    return demo, mmi, out, stats, messages, seconds


def _flagstat(bam) -> dict[str, int]:
    text = pysam.flagstat(str(bam))
    counts = {}
    for line in text.splitlines():
        number = int(line.split(" + ")[0])
        label = re.sub(r"\s*\(.*", "", line.split(" + ")[1].split(" ", 1)[1]).strip()
        counts.setdefault(label, number)
    return counts


def test_index_is_built_atomically(aligned):
    _, mmi, *_ = aligned
    assert mmi.is_file() and mmi.stat().st_size > 0
    assert not list(mmi.parent.glob(".*tmp"))
    assert mappy.Aligner(str(mmi), preset="sr").seq_names == ["chr1", "chr2"]


def test_bam_is_sorted_indexed_and_maps_well(aligned):
    _, _, out, stats, messages, seconds = aligned
    assert sorted(p.name for p in out.parent.iterdir()) == ["SAMPLE_A.bam", "SAMPLE_A.bam.bai"]
    with pysam.AlignmentFile(str(out)) as bam:
        assert bam.header["HD"]["SO"] == "coordinate"
        assert bam.check_index()
        positions = [(r.reference_id, r.reference_start) for r in bam.fetch(until_eof=True) if not r.is_unmapped]
        assert positions == sorted(positions)
        assert bam.count("chr2", 20_000, 20_001) > 5
    flagstat = _flagstat(out)
    assert flagstat["in total"] == stats["reads"] == stats["paired"]
    assert flagstat["mapped"] == stats["mapped"]
    assert flagstat["properly paired"] == stats["properly_paired"]
    assert flagstat["secondary"] == 0 and flagstat["supplementary"] == 0
    assert stats["mapped"] / stats["reads"] > 0.95
    assert stats["properly_paired"] / stats["reads"] > 0.9
    assert stats["mappy_version"] == mappy.__version__
    assert any("reads aligned" in m for m in messages), "progress is logged"
    assert seconds < 30


def test_read_group_and_program_in_header(aligned):
    out = aligned[2]
    with pysam.AlignmentFile(str(out)) as bam:
        header = bam.header.to_dict()
        assert header["RG"][0]["SM"] == SAMPLE_A
        assert any(pg["ID"] == "minimap2" for pg in header["PG"])
        read = next(bam.fetch("chr1"))
        assert read.get_tag("RG") == header["RG"][0]["ID"]


def test_records_have_consistent_mate_fields_nm_and_tlen(aligned):
    demo, _, out, *_ = aligned
    with pysam.FastaFile(str(demo.reference_fasta)) as fasta, pysam.AlignmentFile(str(out)) as bam:
        reference = {name: fasta.fetch(name) for name in fasta.references}
        by_name: dict[str, list[pysam.AlignedSegment]] = {}
        for read in bam.fetch("chr1", 30_000, 33_000):
            by_name.setdefault(read.query_name, []).append(read)
        checked = 0
        for reads in by_name.values():
            for read in reads:
                ref = reference[read.reference_name]
                mismatches = sum(
                    1 for q, r in read.get_aligned_pairs(matches_only=True) if read.query_sequence[q] != ref[r]
                )
                gaps = sum(n for op, n in read.cigartuples if op in (1, 2))
                assert read.get_tag("NM") == mismatches + gaps
                clipped = sum(n for op, n in read.cigartuples if op == 4)
                assert read.query_alignment_length + clipped == read.query_length == 100
            if len(reads) == 2:
                a, b = reads
                assert a.is_read1 != b.is_read1
                assert a.next_reference_start == b.reference_start and b.next_reference_start == a.reference_start
                assert a.template_length == -b.template_length != 0
                assert a.mate_is_reverse == b.is_reverse and a.is_reverse != b.is_reverse
                assert a.get_tag("MC") == b.cigarstring
                checked += 1
        assert checked > 50


def _write_fastq(path, records):
    with gzip.open(path, "wt") as fh:
        for name, seq in records:
            fh.write(f"@{name}\n{seq}\n+\n{'I' * len(seq)}\n")


def test_unmapped_mates_are_kept_and_placed(aligned, tmp_path):
    demo, mmi, *_ = aligned
    with pysam.FastaFile(str(demo.reference_fasta)) as fasta:
        left = fasta.fetch("chr1", 40_000, 40_150)
    junk = "ACGT" * 37 + "AC"
    r1, r2 = tmp_path / "x_R1.fastq.gz", tmp_path / "x_R2.fastq.gz"
    _write_fastq(r1, [("p1/1", left), ("p2/1", junk)])
    _write_fastq(r2, [("p1/2", junk), ("p2/2", junk)])
    out = tmp_path / "x.bam"
    stats = align_reads(mmi, r1, r2, out, sample_id="X", reference_fasta=demo.reference_fasta)
    assert stats["reads"] == 4 and stats["mapped"] == 1 and stats["properly_paired"] == 0
    with pysam.AlignmentFile(str(out)) as bam:
        reads = {(r.query_name, r.is_read1): r for r in bam.fetch(until_eof=True)}
    mapped, placed = reads[("p1", True)], reads[("p1", False)]
    assert not mapped.is_unmapped and mapped.mate_is_unmapped and not mapped.is_proper_pair
    assert placed.is_unmapped and placed.reference_start == mapped.reference_start == 40_000
    assert placed.next_reference_start == 40_000
    both = reads[("p2", True)]
    assert both.is_unmapped and both.mate_is_unmapped and both.reference_id == -1


def test_single_end_reads(aligned, tmp_path):
    demo, *_ = aligned
    with pysam.FastaFile(str(demo.reference_fasta)) as fasta:
        seqs = [fasta.fetch("chr2", s, s + 150) for s in (1_000, 5_000, 9_000)]
    r1 = tmp_path / "se.fastq.gz"
    _write_fastq(r1, [(f"r{i}", s) for i, s in enumerate(seqs)])
    out = tmp_path / "se.bam"
    stats = align_reads(str(demo.reference_fasta), r1, None, out, sample_id="SE", reference_fasta=demo.reference_fasta)
    assert stats["reads"] == 3 and stats["mapped"] == 3 and stats["paired"] == 0
    with pysam.AlignmentFile(str(out)) as bam:
        assert [r.reference_start for r in bam.fetch("chr2")] == [1_000, 5_000, 9_000]
        assert not any(r.is_paired for r in bam.fetch("chr2"))


def test_mismatched_mates_raise_and_leave_nothing(aligned, tmp_path):
    demo, mmi, *_ = aligned
    r1, r2 = tmp_path / "m_R1.fastq.gz", tmp_path / "m_R2.fastq.gz"
    _write_fastq(r1, [("a", "ACGT" * 20), ("b", "ACGT" * 20)])
    _write_fastq(r2, [("a", "ACGT" * 20), ("c", "ACGT" * 20)])
    out = tmp_path / "out" / "m.bam"
    out.parent.mkdir()
    with pytest.raises(ValueError, match="mate names differ"):
        align_reads(mmi, r1, r2, out, sample_id="M", reference_fasta=demo.reference_fasta)
    assert list(out.parent.iterdir()) == []


def test_interrupted_alignment_leaves_no_output(aligned, tmp_path):
    demo, mmi, *_ = aligned

    def interrupt(message: str) -> None:
        if "reads aligned" in message:
            raise KeyboardInterrupt

    out = tmp_path / "out" / "i.bam"
    out.parent.mkdir()
    with pytest.raises(KeyboardInterrupt):
        align_reads(mmi, *demo.samples[SAMPLE_A], out, sample_id=SAMPLE_A, reference_fasta=demo.reference_fasta,
                    log=interrupt, log_every=4_000)
    assert list(out.parent.iterdir()) == []


def test_missing_reads_file_is_an_error_not_an_empty_bam(aligned, tmp_path):
    demo, mmi, *_ = aligned
    with pytest.raises(FileNotFoundError):
        align_reads(mmi, tmp_path / "nope_R1.fastq.gz", None, tmp_path / "n.bam", sample_id="N",
                    reference_fasta=demo.reference_fasta)
    assert not (tmp_path / "n.bam").exists()


def test_a_sorter_that_dies_is_an_error_and_leaves_nothing(aligned, tmp_path, monkeypatch):
    """samtools sort failing mid-way (disk full, killed) must not hang the run or leave a partial BAM."""
    import genoflow_dagster.variants.align as align

    demo, mmi, *_ = aligned

    def dying_sort(sort_args, source):
        with open(source, "rb") as fh:
            fh.read(1000)
        raise SystemExit(3)

    monkeypatch.setattr(align, "_sort", dying_sort)
    out = tmp_path / "out" / "d.bam"
    out.parent.mkdir()
    with pytest.raises(RuntimeError, match="samtools sort"):
        align_reads(mmi, *demo.samples[SAMPLE_A], out, sample_id=SAMPLE_A, reference_fasta=demo.reference_fasta,
                    threads=2)
    assert list(out.parent.iterdir()) == []
