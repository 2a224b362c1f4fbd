"""Alignment metrics against `samtools flagstat`, `samtools stats` and `samtools depth` (1.16, the CLI;
those comparisons are skipped without samtools), on generated files in every flag situation and
encoding corner of the BAM records, and on the corpora."""

from __future__ import annotations

import array
import os
import random
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pysam
import pytest

from genoflow_dagster.qc import alignment, bam_stream, compute_metrics
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
    return _flagstat_counts(out.stdout)


def _flagstat_counts(out: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for line in out.strip().splitlines():
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


def samtools_stats_summary(path: Path, *extra: str) -> dict[str, float]:
    out = subprocess.run(["samtools", "stats", *extra, str(path)], capture_output=True, text=True, check=True).stdout
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


EDGE_CONTIGS = {"chrA": 120_000, "chrB": 4_000}


def make_edge_bam(path: Path, seed: int = 5) -> Path:
    """Records in every encoding corner the raw-record scan has to read as htslib does: NM of each
    integer type (and a float NM, which samtools ignores) behind Z/H/B tags short and long, no
    tags, missing SEQ or QUAL, a CIGAR of 70,000 operations (stored in the CG tag), =/X/H/P ops,
    reads running off the contig end, mates on other contigs; coordinate-sorted and indexed."""
    rnd = random.Random(seed)
    header = {"HD": {"VN": "1.6", "SO": "unsorted"},
              "SQ": [{"SN": name, "LN": ln} for name, ln in EDGE_CONTIGS.items()]}
    unsorted = path.with_suffix(".unsorted.bam")
    tag_sets = [
        [("NM", 2, "c")], [("NM", 3, "C")], [("NM", 300, "s")], [("NM", 4, "S")], [("NM", 70000, "i")],
        [("NM", 5, "I")], [("NM", 1.5, "f")], [],
        [("XZ", "x" * 5, "Z"), ("NM", 1, "C")], [("XZ", "y" * 90, "Z"), ("NM", 2, "c")],
        [("XH", "1AE301", "H"), ("NM", 3, "S")],
        [("XB", array.array("b", [1, -2, 3]), None), ("XF", array.array("f", [0.5] * 40), None), ("NM", 6, "i")],
        [("XR", "grp", "Z"), ("XA", "q", "A"), ("NM", 1, "s"), ("AS", 55, "i")],
    ]
    with pysam.AlignmentFile(str(unsorted), "wb", header=header) as out:
        def rec(name: str, flag: int, tid: int, pos: int, cigar: list[tuple[int, int]] | None, *, mtid: int = -1,
                mpos: int = -1, tlen: int = 0, mapq: int = 30, seq: bool = True, qual: bool = True,
                tags: list | None = None) -> None:
            a = pysam.AlignedSegment(out.header)
            a.query_name = name
            a.flag = flag
            length = sum(n for op, n in cigar or [] if op in (0, 1, 4, 7, 8)) or 60
            if seq:
                a.query_sequence = "".join(rnd.choice("ACGTN") for _ in range(length))
                if qual:
                    a.query_qualities = array.array("B", (rnd.randint(0, 41) for _ in range(length)))
            a.reference_id, a.reference_start = tid, pos
            a.mapping_quality = mapq
            if cigar:
                a.cigartuples = cigar
            a.next_reference_id, a.next_reference_start, a.template_length = mtid, mpos, tlen
            for tag, value, kind in tags if tags is not None else rnd.choice(tag_sets):
                a.set_tag(tag, value, value_type=kind) if kind else a.set_tag(tag, value)
            out.write(a)

        for i in range(300):
            tid = rnd.randint(0, 1)
            pos = rnd.randint(0, EDGE_CONTIGS[["chrA", "chrB"][tid]] - 50)  # some run off the end
            cigar = rnd.choice([[(0, 80)], [(5, 10), (4, 5), (7, 30), (8, 2), (7, 40), (5, 3)], [(0, 20), (6, 2),
                               (1, 3), (0, 20), (2, 4), (0, 30)], [(0, 10), (3, 500), (0, 50)]])
            flag = rnd.choice([0x1 | 0x2 | 0x20 | 0x40, 0x1 | 0x2 | 0x10 | 0x80, 0x10, 0, 0x1 | 0x8 | 0x40,
                               0x1 | 0x40 | 0x80, 0x1, 0x400, 0x200 | 0x1 | 0x40, 0x800, 0x100])
            mtid = rnd.choice([tid, 1 - tid]) if flag & 0x1 else -1
            rec(f"r{i}", flag, tid, pos, cigar, mtid=mtid, mpos=rnd.randint(0, 3000) if mtid >= 0 else -1,
                tlen=rnd.choice([0, 250, -250, 9000, -30]) if mtid >= 0 else 0, mapq=rnd.choice([0, 4, 5, 60]),
                seq=rnd.random() > 0.05, qual=rnd.random() > 0.1)
        long_cigar = [(0, 1), (1, 1)] * 35_000  # 70,000 operations over 35,000 reference bases
        rec("long", 0, 0, 1000, long_cigar, tags=[("NM", 35_000, "i")])
        rec("long_dup", 0x400, 0, 2000, long_cigar, tags=[])
        rec("unplaced", 0x4, -1, -1, None, tags=[])
        rec("placed_unmapped", 0x1 | 0x4 | 0x80, 0, 5000, None, mtid=0, mpos=5000, tags=[])
    pysam.sort("-o", str(path), str(unsorted))
    pysam.index(str(path))
    unsorted.unlink()
    return path


def rewrite(src: Path, dst: Path, *, shuffle: bool, sort_order: str | None) -> Path:
    """The same records, shuffled or not, under a header claiming `sort_order` (None: no @HD line)."""
    with pysam.AlignmentFile(str(src)) as inp:
        header = inp.header.to_dict()
        records = list(inp.fetch(until_eof=True))
    if sort_order is None:
        header.pop("HD", None)
    else:
        header["HD"] = {"VN": "1.6", "SO": sort_order}
    if shuffle:
        random.Random(7).shuffle(records)
    with pysam.AlignmentFile(str(dst), "wb", header=header) as out:
        for r in records:
            out.write(r)
    return dst


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("edge")
    bam = make_edge_bam(folder / "edge.bam")
    fasta = folder / "ref.fa"
    rnd = random.Random(11)
    with open(fasta, "w") as fh:
        for name, ln in EDGE_CONTIGS.items():
            fh.write(f">{name}\n" + "".join(rnd.choice("ACGT") for _ in range(ln)) + "\n")
    pysam.faidx(str(fasta))
    files = {"bam": bam, "fasta": fasta}
    files["sam"] = folder / "edge.sam"
    pysam.view("-h", "-o", str(files["sam"]), str(bam), catch_stdout=False)
    files["sam.gz"] = folder / "edge.sam.gz"
    pysam.tabix_compress(str(files["sam"]), str(files["sam.gz"]))  # BGZF, but SAM text inside
    files["cram"] = folder / "edge.cram"
    pysam.view("-C", "-T", str(fasta), "-o", str(files["cram"]), str(bam), catch_stdout=False)
    files["shuffled"] = rewrite(bam, folder / "shuffled.bam", shuffle=True, sort_order="unsorted")
    files["shuffled_says_sorted"] = rewrite(bam, folder / "lying.bam", shuffle=True, sort_order="coordinate")
    files["sorted_without_hd"] = rewrite(bam, folder / "nohd.bam", shuffle=False, sort_order=None)
    return files


EDGE_VARIANTS = ("sam", "sam.gz", "cram", "shuffled", "shuffled_says_sorted", "sorted_without_hd")


def metrics_of(files: dict[str, Path], kind: str) -> dict:
    fasta = str(files["fasta"]) if kind == "cram" else None
    return alignment_metrics(files[kind], reference_fasta=fasta)


@pytest.mark.skipif(not HAVE_SAMTOOLS, reason="samtools not installed")
def test_edge_records_match_samtools(edge: dict[str, Path]) -> None:
    m = alignment_metrics(edge["bam"])
    assert {k: m[k] for k in FLAGSTAT_FIELDS.values()} == flagstat(edge["bam"])
    ref = samtools_stats_summary(edge["bam"])
    assert_matches_samtools_stats(m, ref)
    assert m["mismatches"] == ref["mismatches"]  # the float NM counts 0, as samtools' bam_aux2i reads it
    out = subprocess.run(["samtools", "depth", "-a", "-a", str(edge["bam"])], capture_output=True, text=True,
                         check=True).stdout
    # samtools depth also reports the positions where reads run past a contig's end: not reference bases.
    depths = [int(d) for c, p, d in (line.split("\t") for line in out.splitlines()) if int(p) <= EDGE_CONTIGS[c]]
    assert len(depths) == sum(EDGE_CONTIGS.values())
    assert m["mean_depth"] == pytest.approx(sum(depths) / len(depths), abs=1e-4)
    for level in (1, 10, 30):
        assert m[f"breadth_{level}x"] == pytest.approx(100 * sum(d >= level for d in depths) / len(depths), abs=1e-4)
    assert m["breadth_1x"] > 20  # the long CIGAR's blocks are counted


@pytest.mark.parametrize("kind", EDGE_VARIANTS)
def test_every_encoding_and_order_gives_the_same_metrics(edge: dict[str, Path], kind: str) -> None:
    """SAM (plain and BGZF), CRAM with a local reference, shuffled records under an honest or a lying
    header, sorted records without @HD: every metric equal to the sorted, indexed BAM's."""
    m, expected = metrics_of(edge, kind), alignment_metrics(edge["bam"])
    if kind == "cram":  # htslib's CRAM decoder computes an NM for the records stored without one
        for key in ("mismatches", "error_rate"):
            assert m.pop(key) > expected.pop(key)
    assert m == expected


@pytest.mark.skipif(not HAVE_SAMTOOLS, reason="samtools not installed")
def test_cram_matches_samtools(edge: dict[str, Path]) -> None:
    m = metrics_of(edge, "cram")
    ref_opt = f"reference={edge['fasta']}"
    assert {k: m[k] for k in FLAGSTAT_FIELDS.values()} == flagstat(edge["cram"], "--input-fmt-option", ref_opt)
    assert_matches_samtools_stats(m, samtools_stats_summary(edge["cram"], "--reference", str(edge["fasta"])))


def test_mapq_distribution_is_over_primary_mapped_records(edge: dict[str, Path]) -> None:
    with pysam.AlignmentFile(str(edge["bam"])) as inp:
        expected = Counter(str(r.mapping_quality) for r in inp.fetch(until_eof=True)
                           if not r.is_unmapped and not r.is_secondary and not r.is_supplementary)
    m = alignment_metrics(edge["bam"])
    assert m["mapq_distribution"] == dict(expected)
    n = sum(expected.values())
    assert m["mean_mapq"] == pytest.approx(sum(int(q) * c for q, c in expected.items()) / n, abs=1e-4)


def test_small_batches_windows_and_spills_change_nothing(monkeypatch: pytest.MonkeyPatch,
                                                         edge: dict[str, Path]) -> None:
    """Records split across reads of the stream, depth windows of 1 kb, and the unsorted mode's spill
    file with a bucket per 2 windows: the same numbers as with the defaults."""
    expected = {kind: metrics_of(edge, kind) for kind in ("bam", "shuffled")}
    spills: list[int] = []
    spill = alignment._Coverage._spill
    monkeypatch.setattr(alignment._Coverage, "_spill", lambda self: (spills.append(self.pending_n), spill(self))[1])
    monkeypatch.setattr(bam_stream, "CHUNK", 3000)
    monkeypatch.setattr(alignment, "WINDOW", 1000)
    monkeypatch.setattr(alignment, "BUCKET_WINDOWS", 2)
    monkeypatch.setattr(alignment, "SPILL_EVENTS", 64)
    for kind, m in expected.items():
        assert metrics_of(edge, kind) == m, kind
    assert len(spills) > 3


def test_header_only_bam(tmp_path: Path) -> None:
    path = tmp_path / "empty.bam"
    with pysam.AlignmentFile(str(path), "wb", header={"SQ": [{"SN": "chr1", "LN": 1000}]}):
        pass
    m = alignment_metrics(path)
    assert (m["total"], m["mapped"], m["mean_depth"], m["breadth_1x"]) == (0, 0, 0.0, 0.0)
    assert m["mapped_percent"] is None and m["mean_mapq"] is None and m["insert_size_mean"] is None


def test_damaged_input_raises_value_error(tmp_path: Path, bam: Path) -> None:
    data = bam.read_bytes()
    cut = tmp_path / "cut.bam"
    cut.write_bytes(data[: len(data) // 2])
    garbage = tmp_path / "garbage.bam"
    garbage.write_bytes(bytes(random.Random(2).randrange(256) for _ in range(5000)))
    bad_sam = tmp_path / "bad.sam"
    bad_sam.write_text("@SQ\tSN:chr1\tLN:100\nread1\tnotaflag\tchr1\t1\t60\t4M\t*\t0\t0\tACGT\tIIII\n")
    for path in (cut, garbage, bad_sam):
        with pytest.raises(ValueError):
            alignment_metrics(path)


def test_a_warning_per_record_does_not_stall_the_converter(tmp_path: Path) -> None:
    """htslib warns once per mapped SAM record without a CIGAR (and treats it as unmapped): far more
    text than a pipe holds, which must not block the child converting the SAM."""
    sam = tmp_path / "warns.sam"
    with open(sam, "w") as fh:
        fh.write("@SQ\tSN:chr1\tLN:100000\n")
        fh.writelines(f"r{i}\t0\tchr1\t{i + 1}\t60\t*\t*\t0\t0\tACGT\tIIII\n" for i in range(5000))
    m = alignment_metrics(sam)
    assert (m["total"], m["mapped"]) == (5000, 0)


def test_mutated_records_give_metrics_or_value_error(tmp_path: Path, edge: dict[str, Path]) -> None:
    """Bytes of the uncompressed records overwritten at random: the scan returns metrics or raises
    ValueError, never another exception (an index past a record, a negative size, a loop)."""
    from isal import igzip

    raw = bytearray(igzip.decompress(edge["bam"].read_bytes()))
    header_end = raw.index(b"chrB") + 8  # the records start after the last reference's name and length
    rnd = random.Random(17)
    outcomes = Counter()
    for i in range(150):
        data = bytearray(raw)
        for _ in range(rnd.choice([1, 4, 16])):
            data[rnd.randrange(header_end, len(data))] = rnd.choice([0, 1, 0x7F, 0xFF, rnd.randrange(256)])
        path = tmp_path / f"m{i}.bam"
        with pysam.BGZFile(str(path), "wb") as out:
            out.write(bytes(data))
        try:
            alignment_metrics(path)
            outcomes["metrics"] += 1
        except ValueError:
            outcomes["ValueError"] += 1
    assert outcomes["metrics"] and outcomes["ValueError"]


def test_sorted_scan_holds_only_the_windows_around_the_current_reads(monkeypatch: pytest.MonkeyPatch,
                                                                     bam: Path) -> None:
    """Flat memory on coordinate-sorted input: with 500 bp windows over 8 kb of reference, the depth
    windows behind the current read are summed and freed as the stream advances."""
    held: list[int] = []
    add = alignment._Coverage.add

    def spy(self: alignment._Coverage, *args: object) -> None:
        add(self, *args)
        held.append(len(self.windows))

    monkeypatch.setattr(alignment._Coverage, "add", spy)
    monkeypatch.setattr(bam_stream, "CHUNK", 2000)
    monkeypatch.setattr(alignment, "WINDOW", 500)
    expected_windows = sum(CONTIGS.values()) // 500
    m = alignment_metrics(bam)
    assert len(held) > 20 and max(held) <= 3 < expected_windows
    monkeypatch.undo()
    assert m == alignment_metrics(bam)
