"""Simulated paired reads with a truth set, and the reference command-line pipeline, for the variant benchmarks.

Shared by accuracy.py and pipeline_speed.py. Reads come from dwgsim (Debian
package) on a real genome sequence, `../shared/corpora/_aux/ref/ce.fa` (1 Mb
of C. elegans, 7 contigs), copied into the work folder: nothing is written
beside the corpus. Each simulation is cached in its own folder named by its
parameters and is reused while its `.complete` marker exists.

dwgsim options, chosen to look like a current Illumina run of a diploid sample:
  -1 150 -2 150          2 x 150 bp reads
  -d 400 -s 40           outer distance (fragment) 400 bp, sd 40
  -e/-E 0.001-0.01       per-base error rising from 0.1% at the read start to 1% at the end
  -r 0.001 -R 0.1 -X 0.3 one mutation per kb (about human heterozygosity), 10% of them
                         indels, each indel extended with probability 0.3 (lengths 1, 2, 3...)
  -y 0                   no random (unmappable) reads
  -o 1                   per-read-end FASTQ only (PREFIX.bwa.read1/2.fastq.gz)
  -z SEED                fixed seed
dwgsim is diploid by default (-H would make it haploid): its truth VCF marks
each mutation with INFO/pl, 1 or 2 for heterozygous on haplotype 1 or 2, 3
for homozygous on both (AF 0.5 or 1.0). The VCF (v4.1, contigs declared, no
sample column) is read by bcftools without complaint; `truth_vcf` adds a
sample column with GT from pl (0/1 or 1/1) so zygosity can be compared, then
normalises it like every call set.
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CORPUS_REFERENCE = REPO.parent / "shared" / "corpora" / "_aux" / "ref" / "ce.fa"
DEFAULT_WORKDIR = Path(os.environ.get("GENOFLOW_BENCH_DIR", "/tmp/genoflow-bench"))
DWGSIM_OPTIONS = ("-1", "150", "-2", "150", "-d", "400", "-s", "40", "-e", "0.001-0.01", "-E", "0.001-0.01",
                  "-r", "0.001", "-R", "0.1", "-X", "0.3", "-y", "0", "-o", "1")


@dataclass(frozen=True)
class SimulatedSample:
    """One dwgsim run: paired FASTQ (gzip) and dwgsim's own truth VCF."""

    r1: Path
    r2: Path
    truth: Path
    command: str


def prepare_reference(workdir: Path, source: Path = CORPUS_REFERENCE) -> Path:
    """Copy the reference FASTA into `workdir/ref/` (once) and index it there (.fai)."""
    ref_dir = workdir / "ref"
    ref_dir.mkdir(parents=True, exist_ok=True)
    ref = ref_dir / source.name
    if not ref.is_file() or ref.stat().st_size != source.stat().st_size:
        tmp = ref.with_suffix(".tmp")
        shutil.copyfile(source, tmp)
        tmp.chmod(0o644)
        tmp.replace(ref)
        Path(str(ref) + ".fai").unlink(missing_ok=True)
    if not Path(str(ref) + ".fai").is_file():
        subprocess.run(["samtools", "faidx", str(ref)], check=True)
    return ref


def simulate(workdir: Path, reference: Path, *, seed: int, coverage: float | None = None,
             pairs: int | None = None) -> SimulatedSample:
    """Run dwgsim for `coverage` (-C) or an exact number of `pairs` (-N), cached by those parameters."""
    if (coverage is None) == (pairs is None):
        raise ValueError("give exactly one of coverage and pairs")
    amount = ("-C", f"{coverage:g}") if coverage is not None else ("-N", str(pairs))
    folder = workdir / f"dwgsim_{reference.stem}_{amount[0][1]}{amount[1]}_z{seed}"
    prefix = folder / "sim"
    command = ["dwgsim", *amount, *DWGSIM_OPTIONS, "-z", str(seed), str(reference), str(prefix)]
    sample = SimulatedSample(r1=Path(f"{prefix}.bwa.read1.fastq.gz"), r2=Path(f"{prefix}.bwa.read2.fastq.gz"),
                             truth=Path(f"{prefix}.mutations.vcf"),
                             command=" ".join([*command[:-2], reference.name, "sim"]))
    marker = folder / ".complete"
    if marker.is_file() and marker.read_text() == " ".join(command):
        return sample
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    print(f"simulating: {sample.command}", flush=True)
    with open(folder / "dwgsim.log", "w") as log:
        subprocess.run(command, check=True, stdout=log, stderr=subprocess.STDOUT)
    for path in (sample.r1, sample.r2, sample.truth):
        if not path.is_file():
            raise RuntimeError(f"dwgsim did not write {path}")
    marker.write_text(" ".join(command))
    return sample


def truth_vcf(sample: SimulatedSample, reference: Path, out_vcf_gz: Path) -> Path:
    """dwgsim's truth with a GT column (INFO/pl 3 -> 1/1, else 0/1), then `bcftools norm -f REF -m -any`."""
    if out_vcf_gz.is_file() and out_vcf_gz.stat().st_mtime >= sample.truth.stat().st_mtime:
        return out_vcf_gz
    with_gt = out_vcf_gz.with_name(out_vcf_gz.name.replace(".vcf.gz", ".gt.vcf"))
    with open(sample.truth) as src, open(with_gt, "w") as dst:
        for line in src:
            if line.startswith("##"):
                dst.write(line)
            elif line.startswith("#CHROM"):
                dst.write('##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype, from dwgsim INFO/pl">\n')
                dst.write(line.rstrip("\n") + "\tFORMAT\ttruth\n")
            elif line.strip():
                fields = line.rstrip("\n").split("\t")
                info = dict(kv.split("=", 1) for kv in fields[7].split(";") if "=" in kv)
                fields[8:] = ["GT", "1/1" if info.get("pl") == "3" else "0/1"]
                dst.write("\t".join(fields) + "\n")
    normalise(with_gt, reference, out_vcf_gz)
    return out_vcf_gz


def normalise(in_vcf: Path, reference: Path, out_vcf_gz: Path) -> Path:
    """`bcftools norm -f REF -m -any` (the CLI), bgzipped and indexed: every call set is compared in this form."""
    tmp = out_vcf_gz.with_name(f".{out_vcf_gz.name}.tmp")
    subprocess.run(["bcftools", "norm", "--no-version", "-f", str(reference),
                    "-m", "-any", "-Oz", "-o", str(tmp), str(in_vcf)], check=True, stderr=subprocess.DEVNULL)
    tmp.replace(out_vcf_gz)
    subprocess.run(["bcftools", "index", "-f", "-t", str(out_vcf_gz)], check=True)
    return out_vcf_gz


# --- running and measuring commands ------------------------------------------------------------


@dataclass(frozen=True)
class Measured:
    """Wall seconds of one process (tree); peak RSS of its largest single process, peak PSS of the whole tree."""

    seconds: float
    max_rss_mb: float
    tree_pss_mb: float


def run_measured(cmd: list[str], *, log: Path) -> Measured:
    """Run `cmd` (stdout and stderr to `log`), reap it with wait4, and sample its process tree's PSS every 0.1 s.

    wait4's ru_maxrss covers the child and every descendant it waited for, but
    is the peak of the largest single process; processes running side by side
    (a pipe, worker processes) add up, which only the sampled tree sum shows.
    The sum is of PSS (proportional set size: a page shared by n processes
    counts 1/n in each), so forked workers sharing one index copy-on-write
    are not counted n times, as summed RSS would.
    Raises CalledProcessError on a non-zero exit, with the log's tail as stderr.
    """
    with open(log, "w") as log_fh:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=log_fh, stderr=subprocess.STDOUT)
        peak = [0]
        done = threading.Event()
        sampler = threading.Thread(target=_sample_tree, args=(proc.pid, peak, done), daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)  # this child's rusage, its waited-for descendants included
        seconds = time.perf_counter() - started
        done.set()
        sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, cmd, stderr=log.read_text()[-3000:])
    largest = usage.ru_maxrss / 1024
    return Measured(seconds, largest, peak[0] / 2**20)


def _sample_tree(root: int, peak: list[int], done: threading.Event) -> None:
    while not done.wait(0.1):
        parents: dict[int, int] = {}
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    with open(f"/proc/{entry.name}/stat") as fh:
                        stat = fh.read()
                    parents[int(entry.name)] = int(stat[stat.rindex(")") + 2:].split()[1])
                except (OSError, ValueError, IndexError):
                    continue
        tree = {root}
        grew = True
        while grew:
            grew = False
            for pid, ppid in parents.items():
                if ppid in tree and pid not in tree:
                    tree.add(pid)
                    grew = True
        total = 0
        for pid in tree:
            try:
                with open(f"/proc/{pid}/smaps_rollup") as fh:
                    total += next(int(line.split()[1]) for line in fh if line.startswith("Pss:")) * 1024
            except (OSError, ValueError, IndexError, StopIteration):
                continue
        peak[0] = max(peak[0], total)


def shell(script: str) -> list[str]:
    """A bash command line with pipefail, so a failing stage of a pipe fails the whole command."""
    return ["bash", "-o", "pipefail", "-c", script]


# --- versions and provenance --------------------------------------------------------------------


def first_line(cmd: list[str]) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace", check=False)
    except FileNotFoundError:
        return "not installed"
    return (proc.stdout or proc.stderr).strip().splitlines()[0] if (proc.stdout or proc.stderr).strip() else "?"


def tool_versions() -> dict[str, str]:
    """Versions of the CLI tools and of the libraries GenoFlow uses (mappy, pysam and its bundled bcftools)."""
    versions = {
        "minimap2 (CLI)": first_line(["minimap2", "--version"]),
        "samtools (CLI)": first_line(["samtools", "--version"]).removeprefix("samtools "),
        "bcftools (CLI)": first_line(["bcftools", "--version"]).removeprefix("bcftools "),
        "dwgsim": _dwgsim_version(),
    }
    try:
        import mappy
        import pysam
        from pysam.version import __bcftools_version__, __samtools_version__

        versions.update({"mappy": mappy.__version__, "pysam": pysam.__version__,
                         "pysam's bcftools": __bcftools_version__, "pysam's samtools": __samtools_version__})
    except ImportError:
        pass
    return versions


def _dwgsim_version() -> str:
    proc = subprocess.run(["dwgsim", "-h"], capture_output=True, text=True, errors="replace", check=False)
    for line in (proc.stdout + proc.stderr).splitlines():
        if line.startswith("Version:"):
            return line.split(":", 1)[1].strip()
    return "?"


def code_revision() -> str:
    """`git rev-parse --short HEAD`, plus the variant modules that differ from it (edited by others in this tree)."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                          check=False).stdout.strip() or "?"
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "genoflow_dagster/variants"], cwd=REPO,
                           capture_output=True, text=True, check=False).stdout.split("\n")
    changed = sorted(line[3:] for line in dirty if line.strip())
    return head + (f" + uncommitted changes in {', '.join(changed)}" if changed else "")


def machine() -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{os.cpu_count()} cores (nproc {len(os.sched_getaffinity(0))}), load average at start {load}"


def utc_now() -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())


def open_text(path: Path):
    """Plain or (b)gzip text."""
    with open(path, "rb") as fh:
        gz = fh.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rt") if gz else open(path)


def reference_index(ref: Path, out: Path) -> Path:
    """The .mmi the pipeline aligns against (`build_reference_index`), or the FASTA if that function is gone."""
    try:
        from genoflow_dagster.variants.align import build_reference_index
    except ImportError:
        return ref
    mmi = out / "ce.mmi"
    if not mmi.is_file() or mmi.stat().st_mtime < ref.stat().st_mtime:
        build_reference_index(ref, mmi)
    return mmi
