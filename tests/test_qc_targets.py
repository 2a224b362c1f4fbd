"""Target metrics (qc/targets.py) on a real amplicon library, against samtools and bedtools.

The reads are real: ENA ERR5069949, an ARTIC SARS-CoV-2 amplicon library (100 pairs),
aligned to MN908947.3 with the Debian minimap2 + samtools sort. The BEDs are
synthetic (no ARTIC primer BED is available here): 400 bp windows tiling the
genome with 80 bp overlaps, the same as an ARTIC-style primer scheme, and a
sparse set with gaps, overlaps and regions off the reference. A second BAM
stacks copies of the real reads (read pair i copied i % 37 + 1 times) so that
depth reaches the 10x/20x/30x levels.
"""

from __future__ import annotations

import gzip
import random
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pysam
import pytest

from genoflow_dagster.qc import alignment
from genoflow_dagster.qc.alignment import alignment_metrics
from genoflow_dagster.qc.targets import TARGET_BREADTH_LEVELS, load_targets

REALDATA = Path(__file__).resolve().parents[1].parent / "shared" / "realdata"
REFERENCE = REALDATA / "MN908947.3.fasta"
READS = [REALDATA / f"ERR5069949_test_{n}.fastq.gz" for n in (1, 2)]
CONTIG, GENOME = "MN908947.3", 29_903
TOOLS = all(shutil.which(t) for t in ("minimap2", "samtools", "bedtools"))

pytestmark = pytest.mark.skipif(not (TOOLS and REFERENCE.is_file() and all(r.is_file() for r in READS)),
                                reason="needs minimap2, samtools, bedtools and ../shared/realdata")


def _align(out: Path, r1: Path, r2: Path, ref: Path) -> Path:
    sam = subprocess.run(["minimap2", "-ax", "sr", str(ref), str(r1), str(r2)], check=True,
                         capture_output=True).stdout
    subprocess.run(["samtools", "sort", "-o", str(out), "-"], input=sam, check=True, capture_output=True)
    subprocess.run(["samtools", "index", str(out)], check=True)
    return out


def _stacked_reads(src: Path, dst: Path) -> Path:
    """Read pair i copied i % 37 + 1 times under new names (synthetic depth from real reads)."""
    with gzip.open(src, "rt") as fh:
        lines = fh.read().splitlines()
    out = []
    for i in range(0, len(lines), 4):
        name, seq, plus, qual = lines[i:i + 4]
        head, _, tail = name[1:].partition(" ")
        for copy in range((i // 4) % 37 + 1):
            out += [f"@{head}.c{copy} {tail}".rstrip(), seq, plus, qual]
    dst.write_text("\n".join(out) + "\n")
    return dst


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("targets")
    ref = tmp / "MN908947.3.fa"
    shutil.copy(REFERENCE, ref)
    pysam.faidx(str(ref))
    files = {"ref": ref, "real": _align(tmp / "real.bam", *READS, ref)}
    stacked = [_stacked_reads(r, tmp / f"stacked_{n}.fq") for n, r in enumerate(READS, 1)]
    files["stacked"] = _align(tmp / "stacked.bam", *stacked, ref)

    # Synthetic tiling "amplicons": 400 bp, 80 bp overlaps, as region BED and as primer-scheme BED.
    amplicons, primers, start, n = [], [], 30, 0
    while start + 400 <= GENOME - 30:
        n += 1
        end = start + 400
        amplicons.append(f"{CONTIG}\t{start}\t{end}\tsynthetic_{n}\n")
        primers.append(f"{CONTIG}\t{start}\t{start + 24}\tsynthetic_{n}_LEFT\t1\t+\n")
        primers.append(f"{CONTIG}\t{end - 24}\t{end}\tsynthetic_{n}_RIGHT\t{n % 2 + 1}\t-\n")
        if n % 10 == 0:  # an alternative primer, ARTIC style
            primers.append(f"{CONTIG}\t{end - 30}\t{end - 4}\tsynthetic_{n}_RIGHT_alt1\t{n % 2 + 1}\t-\n")
        start = end - 80
    files["amplicons"] = tmp / "synthetic_amplicons.bed"
    files["amplicons"].write_text("".join(amplicons))
    files["primers"] = tmp / "synthetic_primers.bed"
    files["primers"].write_text("".join(primers))

    # Sparse synthetic targets: gaps, an overlapping pair, one region running off the contig's end.
    rng = random.Random(7)
    sparse = [f"{CONTIG}\t{s}\t{s + rng.randint(50, 300)}\tt{s}\n" for s in range(100, 29_000, 900)]
    sparse += [f"{CONTIG}\t5000\t5600\tover_a\n", f"{CONTIG}\t5400\t5900\tover_b\n",
               f"{CONTIG}\t29800\t30500\tpast_end\n"]
    files["sparse"] = tmp / "synthetic_sparse.bed"
    files["sparse"].write_text("".join(sparse))
    return files


def samtools_depth(bam: Path, bed: Path) -> dict[int, int]:
    out = subprocess.run(["samtools", "depth", "-a", "-b", str(bed), str(bam)], check=True,
                         capture_output=True, text=True).stdout
    return {int(pos): int(depth) for _, pos, depth in (line.split("\t") for line in out.splitlines())}


def count(*args: str) -> int:
    return int(subprocess.run(list(args), check=True, capture_output=True, text=True).stdout)


@pytest.mark.parametrize("bam_name", ["real", "stacked"])
@pytest.mark.parametrize("bed_name", ["amplicons", "sparse"])
def test_target_metrics_equal_samtools_and_bedtools(data: dict[str, Path], bam_name: str, bed_name: str) -> None:
    bam, bed = data[bam_name], data[bed_name]
    m = alignment_metrics(bam, targets_bed=bed)

    # on-target reads: samtools view -L, and bedtools intersect -u, over primary mapped records
    on_target = count("samtools", "view", "-c", "-F", "0x904", "-L", str(bed), str(bam))
    assert m["on_target_reads"] == on_target
    intersect = subprocess.run(["bedtools", "intersect", "-u", "-a", str(bam), "-b", str(bed)], check=True,
                               capture_output=True).stdout
    assert count_stdin(intersect) == on_target
    assert m["on_target_reads_percent"] == round(100 * on_target / count("samtools", "view", "-c", "-F", "0x904",
                                                                         str(bam)), 4)

    # depth and breadth over the union of the targets: samtools depth -a -b
    depth = samtools_depth(bam, bed)
    values = np.array(list(depth.values()))
    assert m["target_bases"] == len(depth)
    assert m["target_mean_depth"] == round(values.sum() / len(values), 4)
    for level in TARGET_BREADTH_LEVELS:
        assert m[f"target_breadth_{level}x"] == round(100 * np.count_nonzero(values >= level) / len(values), 4)

    # per-amplicon mean depth: samtools depth per region, and bedtools coverage -mean
    by_region = {(a["start"], a["end"]): a["mean_depth"] for a in m["amplicon_depths"]}
    for line in bed.read_text().splitlines():
        _, s, e, _ = line.split("\t")[:4]
        start, end = int(s), min(int(e), GENOME)
        expected = sum(depth.get(p, 0) for p in range(start + 1, end + 1)) / (end - start)
        assert by_region[(int(s), int(e))] == round(expected, 4)
    # bedtools counts deleted bases as covered (samtools depth -J); samtools depth, and we, do not
    with pysam.AlignmentFile(str(bam)) as aln:
        deletions = [(r.reference_start, r.reference_end) for r in aln.fetch(until_eof=True)
                     if not r.is_unmapped and "D" in (r.cigarstring or "")]
    bedtools = subprocess.run(["bedtools", "coverage", "-a", str(bed), "-b", str(bam), "-mean"], check=True,
                              capture_output=True, text=True).stdout
    compared = 0
    for line in bedtools.splitlines():
        fields = line.split("\t")
        start, end, mean = int(fields[1]), int(fields[2]), float(fields[-1])
        if end > GENOME:  # bedtools averages a region past the end over its whole length
            continue
        if any(s < end and e > start for s, e in deletions):
            assert by_region[(start, end)] <= mean + 1e-4
        else:
            assert by_region[(start, end)] == pytest.approx(mean, abs=1e-4)
            compared += 1
    assert compared > len(by_region) // 2
    means = [a["mean_depth"] for a in m["amplicon_depths"]]
    assert m["min_amplicon_depth"] == min(means)
    assert m["amplicons_below_floor"] == sum(d < m["amplicon_floor"] for d in means)
    assert m["amplicons_below_floor_percent"] == round(100 * m["amplicons_below_floor"] / len(means), 4)
    if bam_name == "stacked":  # the stacked copies reach every level on part of the targets
        assert 0 < m["target_breadth_30x"] < m["target_breadth_1x"]
        assert 0 < m["amplicons_below_floor"] < m["amplicons"]


def count_stdin(bam_bytes: bytes) -> int:
    return int(subprocess.run(["samtools", "view", "-c", "-F", "0x904", "-"], input=bam_bytes, check=True,
                              capture_output=True).stdout)


def test_primer_scheme_pairs_into_amplicons(data: dict[str, Path]) -> None:
    targets = load_targets(data["primers"])
    assert targets.kind == "primer scheme"
    assert load_targets(data["amplicons"]).kind == "regions"
    from_primers = alignment_metrics(data["stacked"], targets_bed=data["primers"])
    from_regions = alignment_metrics(data["stacked"], targets_bed=data["amplicons"])
    for key in ("targets_bed", "target_kind"):
        from_primers.pop(key), from_regions.pop(key)
    assert from_primers == from_regions


def test_unsorted_input_and_small_windows_give_the_same_target_metrics(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, data: dict[str, Path]) -> None:
    expected = alignment_metrics(data["stacked"], targets_bed=data["sparse"])
    shuffled = tmp_path / "shuffled.bam"
    with pysam.AlignmentFile(str(data["stacked"])) as src:
        header = src.header.to_dict()
        header["HD"]["SO"] = "unsorted"
        records = list(src.fetch(until_eof=True))
        random.Random(3).shuffle(records)
        with pysam.AlignmentFile(str(shuffled), "wb", header=header) as out:
            for record in records:
                out.write(record)
    assert alignment_metrics(shuffled, targets_bed=data["sparse"]) == expected
    monkeypatch.setattr(alignment, "WINDOW", 1000)  # regions and reads across window boundaries
    monkeypatch.setattr(alignment, "SPILL_EVENTS", 64)
    assert alignment_metrics(data["stacked"], targets_bed=data["sparse"]) == expected
    assert alignment_metrics(shuffled, targets_bed=data["sparse"]) == expected


def test_without_targets_the_metrics_say_so(data: dict[str, Path]) -> None:
    m = alignment_metrics(data["real"])
    assert m["targets_bed"] is None
    assert "on_target_reads_percent" not in m and "target_mean_depth" not in m


def test_unusable_targets_bed_is_refused(tmp_path: Path, data: dict[str, Path]) -> None:
    bad = tmp_path / "bad.bed"
    bad.write_text(f"{CONTIG}\t100\t200\n{CONTIG}\t300\t250\n")
    with pytest.raises(ValueError, match=r"not valid BED \(line 2\): BED_START_AFTER_END"):
        alignment_metrics(data["real"], targets_bed=bad)
    other = tmp_path / "other.bed"
    other.write_text("chr1\t100\t200\n")
    with pytest.raises(ValueError, match="no region of the targets BED"):
        alignment_metrics(data["real"], targets_bed=other)
    half = tmp_path / "half.bed"
    half.write_text(f"{CONTIG}\t30\t54\tx_1_LEFT\n{CONTIG}\t400\t424\tx_2_RIGHT\n")
    with pytest.raises(ValueError, match=r"amplicon x_1 .* has no RIGHT primer"):
        load_targets(half)
    with pytest.raises(ValueError, match="not found"):
        load_targets(tmp_path / "missing.bed")


def test_cli_qc_grades_target_metrics_or_says_not_graded(data: dict[str, Path]) -> None:
    import json
    import sys

    def qc(*args: str) -> dict:
        out = subprocess.run([sys.executable, "-m", "genoflow_dagster.cli", "qc", "--json", str(data["real"]), *args],
                             check=True, capture_output=True, text=True).stdout
        return json.loads(out)

    with_targets = qc("--profile", "amplicon", "--targets", str(data["primers"]))
    assert with_targets["target_kind"] == "primer scheme" and with_targets["not_graded"] == []
    depth = [m for m in with_targets["modules"] if m["name"] == "amplicon depth"]
    assert depth and depth[0]["status"] == "fail"  # 100 read pairs: every amplicon under 20x
    without = qc("--profile", "exome")
    assert without["targets_bed"] is None
    assert {m["metric"] for m in without["not_graded"]} == {"on_target_reads_percent", "target_mean_depth",
                                                            "target_breadth_20x"}
    assert all(m["message"].endswith("not graded (no targets BED configured)") for m in without["not_graded"])
