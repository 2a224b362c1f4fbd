"""Throughput and peak memory of GenoFlow's streaming code against the reference tools.

Each measurement runs in its own process (so peak RSS is that process's own),
pinned to one core, on the same generated file; results are ratios against the
reference tool, written to the `## Throughput` section of benchmarks/RESULTS.md.
Times are whole processes (interpreter and JIT-cache start-up included), as a
user running `genoflow qc` would see them.

    python benchmarks/run.py [--fastq-mb 200 [1500 ...]] [--repeat 2] [--bam-reads 2000000]

Files (generated once, cached in benchmarks/work/): FASTQ of each size, plain
and gzip; a coordinate-sorted paired BAM of simulated 150 bp reads; a
bgzipped VCF of 10 samples.
"""

from __future__ import annotations

import argparse
import gzip
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

from results_md import replace_section

HERE = Path(__file__).resolve().parent
WORK = HERE / "work"
SECTION = "## Throughput"


def make_fastq(path: Path, target_bytes: int, read_length: int = 150, seed: int = 1) -> Path:
    """Random reads with realistic quality strings; a few Ns; deterministic."""
    if path.exists() and path.stat().st_size >= target_bytes:
        return path
    rng = random.Random(seed)
    quals = [chr(33 + q) for q in range(2, 42)]
    block = []
    for i in range(2000):
        seq = "".join(rng.choice("ACGT") if rng.random() > 0.002 else "N" for _ in range(read_length))
        qual = "".join(quals[min(len(quals) - 1, max(0, int(rng.gauss(34, 5))))] for _ in range(read_length))
        block.append(f"@bench:{i}\n{seq}\n+\n{qual}\n")
    chunk = "".join(block).encode()
    with open(path, "wb") as out:
        written = 0
        while written < target_bytes:
            out.write(chunk)
            written += len(chunk)
    return path


def make_bam(path: Path, pairs: int, seed: int = 2) -> Path:
    """Coordinate-sorted, indexed BAM of `pairs` read pairs on three random contigs (a few errors, some
    unmapped mates, duplicates and low MAPQ), written through pysam."""
    if path.exists():
        return path
    import numpy as np
    import pysam

    rng = np.random.default_rng(seed)
    contigs = [("chr1", 20_000_000), ("chr2", 15_000_000), ("chr3", 10_000_000)]
    header = {"HD": {"VN": "1.6", "SO": "coordinate"}, "SQ": [{"SN": n, "LN": ln} for n, ln in contigs],
              "RG": [{"ID": "bench", "SM": "bench"}]}
    unsorted = path.with_suffix(".unsorted.bam")
    quals = pysam.qualitystring_to_array("I" * 150)
    with pysam.AlignmentFile(str(unsorted), "wb", header=header) as out:
        weights = np.array([ln for _, ln in contigs], dtype=float)
        tids = rng.choice(len(contigs), size=pairs, p=weights / weights.sum())
        for i in range(pairs):
            tid = int(tids[i])
            start = int(rng.integers(0, contigs[tid][1] - 600))
            insert = int(rng.normal(350, 40))
            mate_start = start + insert - 150
            for mate in (0, 1):
                rec = pysam.AlignedSegment(out.header)
                rec.query_name = f"pair{i}"
                rec.query_sequence = "".join(rng.choice(list("ACGT"), 150))
                rec.query_qualities = quals
                unmapped = mate == 1 and i % 50 == 0
                rec.flag = 1 | (64 if mate == 0 else 128) | (4 if unmapped else 0) | (8 if (mate == 0 and i % 50 == 0)
                                                                                    else 0)
                rec.flag |= 0 if i % 50 == 0 else 2
                rec.flag |= (16 if mate == 1 else 32) if not unmapped else 0
                rec.flag |= 1024 if i % 97 == 0 else 0
                rec.reference_id = tid
                rec.reference_start = start if mate == 0 or unmapped else mate_start
                rec.next_reference_id = tid
                rec.next_reference_start = mate_start if mate == 0 else start
                if not unmapped:
                    rec.cigarstring = "150M" if i % 7 else "70M2D80M"
                    rec.mapping_quality = 60 if i % 11 else 3
                    rec.template_length = insert if mate == 0 else -insert
                    rec.set_tag("NM", int(i % 4))
                rec.set_tag("RG", "bench")
                out.write(rec)
    pysam.sort("-o", str(path), str(unsorted))
    pysam.index(str(path))
    unsorted.unlink()
    return path


def make_vcf(path: Path, records: int, samples: int = 10, seed: int = 3) -> Path:
    """bgzipped, indexed VCF: SNVs, MNPs, indels and multiallelic sites, genotypes for `samples` samples."""
    if path.exists():
        return path
    import numpy as np
    import pysam

    rng = np.random.default_rng(seed)
    names = [f"S{i}" for i in range(samples)]
    plain = path.with_suffix("")
    genotypes = np.array(["0/0", "0/1", "1/1", "./.", "0|1"])
    with open(plain, "w") as out:
        out.write("##fileformat=VCFv4.2\n##contig=<ID=chr1,length=250000000>\n"
                  '##INFO=<ID=DP,Number=1,Type=Integer,Description="Depth">\n'
                  '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
                  '##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Depth">\n'
                  "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + "\t".join(names) + "\n")
        pos = 0
        kinds = rng.integers(0, 10, records)
        steps = rng.integers(1, 200, records)
        gts = rng.choice(genotypes, size=(records, samples), p=[0.5, 0.25, 0.15, 0.05, 0.05])
        bases = "ACGT"
        for i in range(records):
            pos += int(steps[i])
            ref = bases[i % 4]
            kind = kinds[i]
            if kind < 6:
                alt = bases[(i + 1 + kind % 3) % 4]
            elif kind == 6:
                ref, alt = ref + bases[(i + 1) % 4], bases[(i + 2) % 4] + bases[(i + 3) % 4]
            elif kind == 7:
                alt = ref + "AC"
            elif kind == 8:
                ref, alt = ref + "TT", ref
            else:
                alt = f"{bases[(i + 1) % 4]},{bases[(i + 2) % 4]}"
            cells = "\t".join(f"{g}:{10 + j}" for j, g in enumerate(gts[i]))
            out.write(f"chr1\t{pos}\t.\t{ref}\t{alt}\t{30 + i % 70}\tPASS\tDP={100 + i % 50}\tGT:DP\t{cells}\n")
    pysam.tabix_compress(str(plain), str(path), force=True)
    pysam.tabix_index(str(path), preset="vcf", force=True)
    plain.unlink()
    return path


def gzip_copy(src: Path, dst: Path) -> Path:
    if not dst.exists():
        with open(src, "rb") as fin, gzip.open(dst, "wb", compresslevel=4) as fout:
            shutil.copyfileobj(fin, fout, 8 * 1024 * 1024)
    return dst


def timed(cmd: list[str], repeat: int) -> tuple[float, int]:
    """Best wall time of `repeat` runs and the peak RSS (KiB) of the child, pinned to core 0."""
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", "0", *cmd]
    best = float("inf")
    peak = 0
    for _ in range(repeat):
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage, not all children's
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise subprocess.CalledProcessError(proc.returncode, cmd)
        best = min(best, time.perf_counter() - start)
        peak = max(peak, usage.ru_maxrss)
    return best, peak


def py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


CODE = {
    "validate": "from genoflow_dagster.formats.validate import validate_file as v; import sys; "
                "r = v(sys.argv[1]); assert r.valid, r",
    "basic": "from genoflow_dagster.qc.fastq import fastq_basic_stats as m; import sys; m(sys.argv[1])",
    "fastq_qc": "from genoflow_dagster.qc.fastq import fastq_metrics as m; import sys; m(sys.argv[1])",
    "bam_qc": "from genoflow_dagster.qc.alignment import alignment_metrics as m; import sys; m(sys.argv[1])",
    "vcf_qc": "from genoflow_dagster.qc.variants import vcf_metrics as m; import sys; m(sys.argv[1])",
}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fastq-mb", type=int, nargs="+", default=[200])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--bam-pairs", type=int, default=1_000_000)
    parser.add_argument("--vcf-records", type=int, default=1_000_000)
    parser.add_argument("--skip-fastqc", action="store_true", help="FastQC is slow; skip it on big files")
    args = parser.parse_args()
    WORK.mkdir(exist_ok=True)
    rows: list[dict] = []

    def compare(label: str, ours: list[str], theirs: list[str], tool: str, size_mb: float,
                target: float | None) -> None:
        our_s, our_rss = timed(ours, args.repeat)
        if shutil.which(theirs[0]):
            ref_s, ref_rss = timed(theirs, args.repeat)
        else:
            ref_s, ref_rss = float("nan"), 0
        ratio = ref_s / our_s
        rows.append({"label": label, "tool": tool, "ours": our_s, "ref": ref_s, "our_rss": our_rss,
                     "ref_rss": ref_rss, "size_mb": size_mb, "target": target})
        print(f"{label:45s} ours {our_s:7.2f}s ({size_mb / our_s:7.1f} MB/s, {our_rss / 1024:6.0f} MB)  "
              f"{tool} {ref_s:7.2f}s  ratio {ratio:5.2f}x" + (f" (target {target}x)" if target else ""), flush=True)

    fastqc_out = WORK / "fastqc_out"
    fastqc_out.mkdir(exist_ok=True)
    for mb in args.fastq_mb:
        fastq = make_fastq(WORK / f"reads_{mb}mb.fastq", mb * 1024 * 1024)
        fastq_gz = gzip_copy(fastq, WORK / f"reads_{mb}mb.fastq.gz")
        size_mb = fastq.stat().st_size / 1e6
        for label, path in (("plain", fastq), ("gzip", fastq_gz)):
            tag = f"{size_mb:.0f} MB FASTQ {label}"
            compare(f"validate, {tag}", [*py(CODE["validate"]), str(path)],
                    ["seqkit", "stats", "-j", "1", str(path)], "seqkit stats", size_mb, None)
            compare(f"basic stats, {tag}", [*py(CODE["basic"]), str(path)],
                    ["seqkit", "stats", "-a", "-j", "1", str(path)], "seqkit stats -a", size_mb,
                    1.0 if label == "plain" else 1.5)
            compare(f"QC all modules, {tag}", [*py(CODE["fastq_qc"]), str(path)],
                    ["fastp", "-w", "1", "-i", str(path), "-o", os.devnull, "-j", str(WORK / "fastp.json"),
                     "-h", str(WORK / "fastp.html")], "fastp", size_mb, 5.0)
            if not args.skip_fastqc:
                compare(f"QC all modules, {tag}", [*py(CODE["fastq_qc"]), str(path)],
                        ["fastqc", "-t", "1", "-q", "-o", str(fastqc_out), str(path)], "FastQC", size_mb, 10.0)
    bam = make_bam(WORK / f"bench_{args.bam_pairs}.bam", args.bam_pairs)
    compare(f"BAM QC, {args.bam_pairs * 2:,} records", [*py(CODE["bam_qc"]), str(bam)],
            ["samtools", "stats", str(bam)], "samtools stats", bam.stat().st_size / 1e6, 0.5)
    compare(f"BAM QC, {args.bam_pairs * 2:,} records", [*py(CODE["bam_qc"]), str(bam)],
            ["samtools", "flagstat", str(bam)], "samtools flagstat", bam.stat().st_size / 1e6, None)
    vcf = make_vcf(WORK / f"bench_{args.vcf_records}.vcf.gz", args.vcf_records)
    compare(f"VCF QC, {args.vcf_records:,} records x 10 samples", [*py(CODE["vcf_qc"]), str(vcf)],
            ["bcftools", "stats", "-s", "-", str(vcf)], "bcftools stats -s -", vcf.stat().st_size / 1e6, 0.5)
    write_results(rows)
    return 0


def write_results(rows: list[dict]) -> None:
    lines = [
        SECTION,
        "",
        "Generated files, one core each (taskset), best of N runs, whole processes (start-up included); "
        "ratio = reference time / GenoFlow time (above 1: GenoFlow is faster). "
        f"Machine: {os.cpu_count()} cores. Command: `make bench`.",
        "",
        "| measurement | reference | GenoFlow s | reference s | ratio | target | GenoFlow MB/s "
        "| GenoFlow peak RSS MB | reference peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = r["ref"] / r["ours"]
        target = "-" if r["target"] is None else f"{r['target']}x {'met' if ratio >= r['target'] else 'NOT met'}"
        lines.append(f"| {r['label']} | {r['tool']} | {r['ours']:.2f} | {r['ref']:.2f} | {ratio:.2f}x | {target} "
                     f"| {r['size_mb'] / r['ours']:.0f} | {r['our_rss'] / 1024:.0f} | {r['ref_rss'] / 1024:.0f} |")
    replace_section(SECTION, "\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
