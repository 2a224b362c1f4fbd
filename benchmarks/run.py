"""Throughput and peak memory of GenoFlow's streaming code against the reference tools.

Each measurement runs in its own process (so peak RSS is that process's own),
pinned to one core, on the same generated file; results are ratios against the
reference tool, written to the `## Throughput` section of benchmarks/RESULTS.md.

    python benchmarks/run.py [--fastq-mb 200] [--repeat 3] [--keep]
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


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fastq-mb", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    WORK.mkdir(exist_ok=True)
    fastq = make_fastq(WORK / f"reads_{args.fastq_mb}mb.fastq", args.fastq_mb * 1024 * 1024)
    fastq_gz = gzip_copy(fastq, WORK / f"reads_{args.fastq_mb}mb.fastq.gz")
    size_mb = fastq.stat().st_size / 1e6

    rows: list[tuple[str, str, float, float, int, int]] = []

    def compare(label: str, ours: list[str], theirs: list[str] | None, tool: str) -> None:
        our_s, our_rss = timed(ours, args.repeat)
        if theirs and shutil.which(theirs[0]):
            ref_s, ref_rss = timed(theirs, args.repeat)
        else:
            ref_s, ref_rss = float("nan"), 0
        rows.append((label, tool, our_s, ref_s, our_rss, ref_rss))
        print(f"{label:40s} ours {our_s:7.2f}s ({size_mb / our_s:7.1f} MB/s, {our_rss / 1024:6.0f} MB)  "
              f"{tool} {ref_s:7.2f}s  ratio {ref_s / our_s:5.2f}x", flush=True)

    validate = "from genoflow_dagster.formats.validate import validate_file as v; import sys; " \
               "r = v(sys.argv[1]); assert r.valid, r"
    metrics = "from genoflow_dagster.qc.fastq import fastq_metrics as m; import sys; m(sys.argv[1])"
    for label, path in (("plain", fastq), ("gzip", fastq_gz)):
        compare(f"validate FASTQ ({label})", [*py(validate), str(path)],
                ["seqkit", "stats", "-j", "1", str(path)], "seqkit stats")
        compare(f"FASTQ QC, all modules ({label})", [*py(metrics), str(path)],
                ["seqkit", "stats", "-a", "-j", "1", str(path)], "seqkit stats -a")
        compare(f"FASTQ QC, all modules ({label}) vs fastp", [*py(metrics), str(path)],
                ["fastp", "-w", "1", "-i", str(path), "-o", os.devnull, "-j", str(WORK / "fastp.json"),
                 "-h", str(WORK / "fastp.html")], "fastp")

    write_results(rows, size_mb)
    return 0


def write_results(rows, size_mb: float) -> None:
    lines = [
        SECTION,
        "",
        f"Generated FASTQ of {size_mb:.0f} MB (150 bp reads), one core each (taskset), best of N runs; "
        "ratio = reference time / GenoFlow time (above 1 means GenoFlow is faster). "
        f"Machine: {os.cpu_count()} cores. Command: `make bench`.",
        "",
        "| measurement | reference | GenoFlow s | reference s | ratio | GenoFlow MB/s | GenoFlow peak RSS MB "
        "| reference peak RSS MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, tool, ours, ref, our_rss, ref_rss in rows:
        lines.append(f"| {label} | {tool} | {ours:.2f} | {ref:.2f} | {ref / ours:.2f}x | {size_mb / ours:.0f} | "
                     f"{our_rss / 1024:.0f} | {ref_rss / 1024:.0f} |")
    replace_section(SECTION, "\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
