"""Variant calling and VCF normalisation with bcftools, as bundled in pysam.

Calling is `bcftools mpileup | call -mv | norm -m -any -f ref`, run as three
steps through uncompressed BCF in a private temporary folder (pysam's bundled
tools cannot pipe into each other). mpileup is single-threaded, so with
`threads` > 1 the genome is cut into chunks that are piled up and called in
forked worker processes, then concatenated in genome order before `norm`.
Each chunk's pileup starts `CHUNK_PAD` bases before it and only sites inside
the chunk are kept, so reads that start before a chunk boundary and the
per-position depth cap see the same reads as in one pass over the genome. Normalising after calling matters: the
caller may emit an indel in any equivalent position and multiallelic sites
as one record, while annotation and comparison want one allele per record,
left-aligned and trimmed, exactly as `bcftools norm` defines it.

Every output is written under a temporary name and renamed into place, index
first, so a VCF at the final path is always complete and indexed.
"""

from __future__ import annotations

import concurrent.futures
import gzip
import multiprocessing
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import pysam
import pysam.bcftools
from pysam.version import __bcftools_version__

from genoflow_dagster.progress import Progress, ProgressCallback
from genoflow_dagster.variants.align import ensure_faidx, read_fai

TBI_MAX_CONTIG = 2**29 - 1  # tabix cannot index beyond 512 Mbp; use .csi then


def call_variants(
    reference_fasta: str | Path,
    bam: str | Path,
    out_vcf_gz: str | Path,
    *,
    sample_id: str,
    min_base_quality: int = 13,
    min_mapq: int = 0,
    max_depth: int = 250,
    threads: int = 1,
    targets_bed: str | Path | None = None,
    log: Callable[[str], None] | None = None,
    progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    """Call SNVs and indels from a sorted, indexed BAM into a normalised, bgzipped, indexed VCF.

    `targets_bed` (a BED file) restricts calling to the sites inside its
    intervals (exome, panel); without it the whole reference is called.
    `threads` worker processes call chunks of the genome in parallel.

    Read groups are ignored (every read belongs to this sample) and the single
    sample column is renamed to `sample_id`, so an uploaded BAM whose SM tags
    say something else still yields a call set for this sample.
    `min_base_quality` 13, `min_mapq` 0 and `max_depth` 250 (per file and
    position) are bcftools' own defaults, so the calls are those of
    `bcftools mpileup -f REF | bcftools call -mv | bcftools norm` on the same
    BAM. mpileup already caps each base's quality by its read's MAPQ; a hard
    MAPQ 20 floor was measured to cost indel F1 (3 dwgsim samples at 30x on
    ce.fa: 0.9917 with -q 20, 0.9967 without; SNV F1 0.9969 and 0.9965).
    Progress is counted in chunks: `progress` is called with (chunks called, None) as each one finishes;
    without it, a `log` gets a progress line (chunks done of all, rate, ETA) every 10 s. One worker without
    targets calls the genome as one chunk, so it has no progress to report before the end.
    Returns records, counts by kind, seconds and the bcftools version.
    Raises pysam.utils.SamtoolsError when a bcftools step fails.
    """
    started = time.monotonic()
    say = log or (lambda _message: None)
    reference_fasta = str(reference_fasta)
    ensure_faidx(reference_fasta)
    contigs = read_fai(reference_fasta)
    threads = max(1, int(threads))
    targets = _read_targets(targets_bed) if targets_bed is not None else None
    out = Path(out_vcf_gz)
    mpileup_args = (
        "--fasta-ref", reference_fasta,
        "--min-BQ", str(min_base_quality),
        "--min-MQ", str(min_mapq),
        "--max-depth", str(max_depth),
        "--ignore-RG",
        "--annotate", "FORMAT/AD,FORMAT/DP",
    )
    with tempfile.TemporaryDirectory(prefix=".call-", dir=out.parent) as tmp_dir:
        tmp = Path(tmp_dir)
        raw, renamed, names = tmp / "calls.bcf", tmp / "renamed.bcf", tmp / "samples.txt"
        chunks = genome_chunks(contigs, threads, targets)
        target_bases = sum(e - s for v in (targets or {}).values() for s, e in v)
        say(f"calling {len(chunks)} chunk(s) of the genome with bcftools mpileup | call on {threads} process(es)"
            + (f", restricted to {target_bases:,} target bases" if targets is not None else ""))
        header_only = not chunks
        if header_only:  # no target on any reference contig: call one base, keep the header, no record
            chunks = [Chunk(((contigs[0][0], 0, 1),))]
        if progress is None and log is not None:
            progress = Progress(f"calling {sample_id}", len(chunks), log, unit="chunks")
        parts = _call_chunks(str(bam), chunks, mpileup_args, tmp, threads, progress)
        if isinstance(progress, Progress):
            progress.done()
        if header_only:
            pysam.bcftools.view("--header-only", "--output-type", "u", "--output", str(raw), str(parts[0]),
                                catch_stdout=False)
        elif len(parts) == 1:
            parts[0].replace(raw)
        else:
            pysam.bcftools.concat("--output-type", "u", "--output", str(raw), *map(str, parts),
                                  catch_stdout=False)
        names.write_text(f"{sample_id}\n")
        pysam.bcftools.reheader("--samples", str(names), "--output", str(renamed), str(raw), catch_stdout=False)
        result = tmp / "out.vcf.gz"
        pysam.bcftools.norm(
            "--fasta-ref", reference_fasta, "--multiallelics", "-any", "--check-ref", "w",
            "--threads", str(max(1, threads)),
            "--output-type", "z", "--output", str(result), str(renamed),
            catch_stdout=False,
        )
        _index_and_publish(result, out, contig_lengths=[n for _, n in read_fai(reference_fasta)])
    stats = vcf_counts(out)
    stats.update(
        seconds=round(time.monotonic() - started, 3),
        caller="bcftools mpileup | call -mv | norm -m -any",
        bcftools_version=__bcftools_version__,
        min_base_quality=min_base_quality,
        min_mapq=min_mapq,
        max_depth=max_depth,
        chunks=len(chunks),
        threads=threads,
        targets_bed=str(targets_bed) if targets_bed is not None else None,
    )
    return stats


# --- chunks -------------------------------------------------------------------------------------

CHUNK_PAD = 2_000  # bases of pileup before a chunk: longer than a short-read fragment, so the pileup has settled
MIN_CHUNK = 50_000


class Chunk(NamedTuple):
    """The sites one worker calls: 0-based half-open intervals, in genome order; None means the whole genome."""

    sites: tuple[tuple[str, int, int], ...] | None


def genome_chunks(contigs: list[tuple[str, int]], workers: int,
                  targets: dict[str, list[tuple[int, int]]] | None = None) -> list[Chunk]:
    """Cut the sites to call into about 4 chunks per worker (at least MIN_CHUNK bases each), in genome order.

    The sites are the whole genome, or the target intervals when there are
    targets (contigs without one are left out). Small contigs share a chunk;
    a long one is cut. One worker without targets gets a single whole-genome chunk.
    """
    if workers == 1 and targets is None:
        return [Chunk(None)]
    intervals = [(name, s, e) for name, length in contigs
                 for s, e in (targets.get(name, []) if targets is not None else [(0, length)]) if e > s]
    total = sum(e - s for _, s, e in intervals)
    size = max(MIN_CHUNK, -(-total // (4 * workers))) if workers > 1 else max(total, 1)
    chunks: list[Chunk] = []
    current: list[tuple[str, int, int]] = []
    filled = 0
    for name, s, e in intervals:
        while s < e:
            take = min(e - s, size - filled)
            current.append((name, s, s + take))
            filled += take
            s += take
            if filled >= size:
                chunks.append(Chunk(tuple(current)))
                current, filled = [], 0
    if current:
        chunks.append(Chunk(tuple(current)))
    return chunks


def _read_targets(bed: str | Path) -> dict[str, list[tuple[int, int]]]:
    """BED intervals by contig, sorted and merged (header, track and browser lines skipped)."""
    by_contig: dict[str, list[tuple[int, int]]] = {}
    with open(bed) as fh:
        for line in fh:
            if not line.strip() or line.startswith(("#", "track", "browser")):
                continue
            fields = line.rstrip("\n").split("\t")
            by_contig.setdefault(fields[0], []).append((int(fields[1]), int(fields[2])))
    merged: dict[str, list[tuple[int, int]]] = {}
    for contig, intervals in by_contig.items():
        out: list[tuple[int, int]] = []
        for start, end in sorted(intervals):
            if out and start <= out[-1][1]:
                out[-1] = (out[-1][0], max(out[-1][1], end))
            else:
                out.append((start, end))
        merged[contig] = out
    return merged


def _call_chunks(bam: str, chunks: list[Chunk], mpileup_args: tuple[str, ...], tmp: Path, workers: int,
                 progress: ProgressCallback | None) -> list[Path]:
    """Pile up and call each chunk into its own BCF (in worker processes when workers > 1); genome order.
    `progress` hears of each chunk called (in genome order)."""
    jobs = [(bam, chunk, mpileup_args, tmp / f"chunk{number:05d}") for number, chunk in enumerate(chunks)]
    parts: list[Path] = []
    if workers == 1 or len(jobs) == 1 or "fork" not in multiprocessing.get_all_start_methods():
        for job in jobs:
            parts.append(_call_chunk(*job))
            if progress is not None:
                progress(len(parts), None)
        return parts
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        for part in pool.map(_call_chunk, *zip(*jobs, strict=True)):
            parts.append(part)
            if progress is not None:
                progress(len(parts), None)
    return parts


def _call_chunk(bam: str, chunk: Chunk, mpileup_args: tuple[str, ...], prefix: Path) -> Path:
    """mpileup | call over the chunk's sites; the pileup reads from CHUNK_PAD bases before each stretch."""
    pileup, calls = Path(f"{prefix}.pileup.bcf"), Path(f"{prefix}.bcf")
    where: list[str] = []
    if chunk.sites is not None:
        regions, sites = Path(f"{prefix}.regions.tsv"), Path(f"{prefix}.sites.tsv")
        padded: list[tuple[str, int, int]] = []
        for name, s, e in chunk.sites:
            s = max(0, s - CHUNK_PAD)
            if padded and padded[-1][0] == name and s <= padded[-1][2]:
                padded[-1] = (name, padded[-1][1], e)
            else:
                padded.append((name, s, e))
        # tab-separated CHROM, BEG, END, 1-based inclusive (bcftools' own region-file layout)
        regions.write_text("".join(f"{n}\t{s + 1}\t{e}\n" for n, s, e in padded))
        sites.write_text("".join(f"{n}\t{s + 1}\t{e}\n" for n, s, e in chunk.sites))
        where = ["--regions-file", str(regions), "--targets-file", str(sites)]
    pysam.bcftools.mpileup(*mpileup_args, *where, "--output-type", "u", "--output", str(pileup), bam,
                           catch_stdout=False)
    pysam.bcftools.call("--multiallelic-caller", "--variants-only", "--output-type", "u", "--output", str(calls),
                        str(pileup), catch_stdout=False)
    pileup.unlink()
    return calls


def normalise_vcf(in_vcf: str | Path, out_vcf_gz: str | Path, *, reference_fasta: str | Path | None) -> dict[str, Any]:
    """Sort, split multiallelics, left-align (when the reference fits), bgzip and index an uploaded VCF.

    Left-alignment needs the reference the calls were made on. It is used only
    when every contig of the VCF is in the reference with the same length
    (when the header states it); otherwise the file is split and sorted but
    not left-aligned, and `left_aligned` is False with the reason in
    `skipped`. REF bases that disagree with the reference are reported by
    bcftools as warnings, not errors: an upload is normalised as far as it can be.
    Returns records, counts, seconds, bcftools version, left_aligned, skipped.
    Raises ValueError when the file cannot be read as VCF/BCF.
    """
    started = time.monotonic()
    out = Path(out_vcf_gz)
    with tempfile.TemporaryDirectory(prefix=".norm-", dir=out.parent) as tmp_dir:
        tmp = Path(tmp_dir)
        source = _bgzf_or_plain(Path(in_vcf), tmp)
        contigs_used, declared, header_lengths = _vcf_contigs(source)
        ref_contigs = dict(read_fai(reference_fasta)) if reference_fasta is not None else {}
        skipped = _reference_mismatch(contigs_used, header_lengths, ref_contigs if reference_fasta else None)
        left_aligned = skipped is None
        undeclared = sorted(contigs_used - declared)
        if undeclared:
            source = _declare_contigs(source, undeclared, ref_contigs, tmp)

        normed, result = tmp / "normed.bcf", tmp / "out.vcf.gz"
        norm_args = ["--multiallelics", "-any"]
        if left_aligned:
            norm_args += ["--fasta-ref", str(reference_fasta), "--check-ref", "w"]
        pysam.bcftools.norm(*norm_args, "--output-type", "u", "--output", str(normed), source, catch_stdout=False)
        pysam.bcftools.sort(
            "--temp-dir", str(tmp / "sort"), "--output-type", "z", "--output", str(result), str(normed),
            catch_stdout=False,
        )
        lengths = list(ref_contigs.values()) if left_aligned else list(header_lengths.values())
        _index_and_publish(result, out, contig_lengths=lengths)
    stats = vcf_counts(out)
    stats.update(
        seconds=round(time.monotonic() - started, 3),
        bcftools_version=__bcftools_version__,
        left_aligned=left_aligned,
        skipped=skipped,
    )
    return stats


def vcf_counts(vcf: str | Path) -> dict[str, Any]:
    """Records and a rough split by kind (streaming): snvs, indels, others, samples."""
    counts = {"records": 0, "snvs": 0, "indels": 0, "others": 0}
    with pysam.VariantFile(str(vcf)) as fh:
        samples = list(fh.header.samples)
        for record in fh:
            counts["records"] += 1
            alts = record.alts or ()
            ref = record.ref or ""
            if any(a.startswith("<") or a == "*" for a in alts) or not alts:
                counts["others"] += 1
            elif all(len(a) == len(ref) for a in alts):
                counts["snvs"] += 1
            else:
                counts["indels"] += 1
    return {**counts, "samples": samples}


def _vcf_contigs(path: str) -> tuple[set[str], set[str], dict[str, int]]:
    """Contigs used by records, contigs the header declares, and the lengths it gives."""
    try:
        with pysam.VariantFile(path) as fh:
            # Before reading: htslib declares unknown contigs on the fly. Names from the contig records
            # (pysam's stub types the mapping's keys as int | str, as it also looks contigs up by index).
            contigs = list(fh.header.contigs.values())
            declared = {c.name for c in contigs}
            lengths = {c.name: c.length for c in contigs if c.length}
            used = {record.chrom for record in fh}
    except (OSError, ValueError, NotImplementedError) as exc:
        raise ValueError(f"cannot read {Path(path).name} as VCF/BCF: {exc}") from exc
    return used, declared, lengths


def _bgzf_or_plain(path: Path, tmp: Path) -> str:
    """htslib reads plain text and BGZF but cannot open ordinary gzip: inflate that into `tmp` first."""
    with open(path, "rb") as fh:
        head = fh.read(18)
    is_gzip = head[:2] == b"\x1f\x8b"
    is_bgzf = is_gzip and len(head) >= 14 and head[3] & 4 and head[12:14] == b"BC"
    if not is_gzip or is_bgzf:
        return str(path)
    plain = tmp / "input.vcf"
    with gzip.open(path, "rb") as src, open(plain, "wb") as dst:
        shutil.copyfileobj(src, dst, 4 * 1024 * 1024)
    return str(plain)


def _declare_contigs(source: str, names: list[str], lengths: dict[str, int], tmp: Path) -> str:
    """Copy a text VCF into `tmp` with ##contig lines for `names`: BCF (used between steps) requires them."""
    fixed = tmp / "declared.vcf"
    with open(source, "rb") as fh:
        opener = gzip.open if fh.read(2) == b"\x1f\x8b" else open
    with opener(source, "rt") as src, open(fixed, "w") as dst:
        for line in src:
            if line.startswith("#CHROM"):
                for name in names:
                    length = f",length={lengths[name]}" if name in lengths else ""
                    dst.write(f"##contig=<ID={name}{length}>\n")
                dst.write(line)
                break
            dst.write(line)
        shutil.copyfileobj(src, dst, 4 * 1024 * 1024)
    return str(fixed)


def _reference_mismatch(used: set[str], header_lengths: dict[str, int], reference: dict[str, int] | None) -> str | None:
    """Why the VCF cannot be left-aligned against `reference`, or None when it can."""
    if reference is None:
        return "no reference configured"
    unknown = sorted(c for c in used if c not in reference)
    if unknown:
        return f"contigs not in the reference: {', '.join(unknown[:5])}"
    wrong = sorted(c for c, n in header_lengths.items() if c in used and c in reference and n != reference[c])
    if wrong:
        return f"contig lengths differ from the reference: {', '.join(wrong[:5])}"
    return None


def _index_and_publish(result: Path, out: Path, *, contig_lengths: list[int]) -> None:
    """Index `result` (tbi, or csi for contigs over 512 Mbp), then move index and VCF to `out`, VCF last."""
    csi = any(n > TBI_MAX_CONTIG for n in contig_lengths)
    suffix = ".csi" if csi else ".tbi"
    pysam.bcftools.index("--csi" if csi else "--tbi", "--force", str(result), catch_stdout=False)
    # `result` sits in a temporary folder beside `out`, so these renames are atomic.
    for stale in (".tbi", ".csi"):
        Path(str(out) + stale).unlink(missing_ok=True)
    Path(str(result) + suffix).replace(str(out) + suffix)
    result.replace(out)
