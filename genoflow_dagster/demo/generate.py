"""Deterministic demo data: a small genome, its annotation and known sites, and three samples.

Everything is derived from one seed, so the same call writes the same bytes
(gzip members carry no timestamp). Samples:

- ``SAMPLE_A``: good paired-end reads (2 x 100 bp, ~30x, Phred 30-40) simulated
  from a diploid genome carrying spiked SNVs and 1-5 bp indels, het and hom.
  Calling must recover every one of them; ``truth.json`` lists them. About
  0.5% of its pairs come from a bacterial-like contaminant genome
  (``contaminants/demo_bacterium.fa``, 65% GC), so the contamination screen
  shows a real, passing number.
- ``SAMPLE_B``: paired-end reads whose base qualities are mostly below Q15, so
  the FastQC-style per-base quality module fails and the QC gate stops it.
- ``SAMPLE_C``: an uploaded call set (``SAMPLE_C.vcf``, one indel written
  un-normalised on purpose) plus a malformed FASTQ (quality shorter than the
  sequence on its third record) that validation must quarantine.

The spiked indels are stored in their normalised (left-aligned, parsimonious)
form, which is what ``bcftools norm`` produces, so truth and calls compare by
exact (chrom, pos, ref, alt).
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pysam

SAMPLE_A = "SAMPLE_A"
SAMPLE_B = "SAMPLE_B"
SAMPLE_C = "SAMPLE_C"

DEFAULT_CONTIGS: tuple[tuple[str, int], ...] = (("chr1", 80_000), ("chr2", 60_000))
CONTAMINANT_NAME = "demo_bacterium"
CONTAMINANT_LENGTH = 50_000
CONTAMINANT_GC = 0.65  # a high-GC bacterium (Pseudomonas-like): its reads cannot pass for the 45% GC genome
CONTAMINANT_FRACTION = 0.005  # contaminant pairs per target pair in SAMPLE_A: under the standard 1% warn floor
# 100 bp: each read's GC% then falls on a whole percent, so a per-read GC histogram with 1% bins
# has no comb artefact (at 150 bp every third bin gets two GC counts) for a FastQC-style check to trip on.
READ_LENGTH = 100
FRAGMENT_MEAN = 350
FRAGMENT_SD = 35
GC_FRACTION = 0.45
EDGE_MARGIN = 800  # keep variants away from contig ends, where coverage tapers off
MIN_SPACING = 400  # one variant per read pair at most: no accidental MNVs or complex calls

_BASES = np.frombuffer(b"ACGT", dtype=np.uint8)
_TRANSITION = {"A": "G", "G": "A", "C": "T", "T": "C"}
_TRANSVERSIONS = {"A": "CT", "G": "CT", "C": "AG", "T": "AG"}


@dataclass(frozen=True)
class SpikedVariant:
    """One truth variant, normalised, 1-based like VCF."""

    chrom: str
    pos: int
    ref: str
    alt: str
    zygosity: str  # "het" or "hom_alt"

    def as_tuple(self) -> tuple[str, int, str, str, str]:
        return (self.chrom, self.pos, self.ref, self.alt, self.zygosity)


@dataclass
class DemoData:
    """Paths of everything `generate_demo` wrote, plus the truth set."""

    root: Path
    reference_fasta: Path
    annotation_gtf: Path
    known_sites_vcf: Path
    truth_json: Path
    samples: dict[str, list[Path]]
    spiked_variants: list[tuple[str, int, str, str, str]]
    genes: dict[str, tuple[str, int, int]] = field(default_factory=dict)  # name -> (chrom, start, end), 1-based
    known_variant_ids: set[str] = field(default_factory=set)  # chrom:pos:ref:alt of spiked variants in known sites
    sample_c_variants: list[tuple[str, int, str, str]] = field(default_factory=list)  # normalised truth
    contaminant_fasta: Path | None = None  # the contaminant reference SAMPLE_A carries reads of
    contaminant_pairs: int = 0  # how many of SAMPLE_A's pairs come from it


def generate_demo(
    out_dir: str | Path,
    *,
    seed: int = 7,
    contigs: tuple[tuple[str, int], ...] = DEFAULT_CONTIGS,
    coverage: float = 30.0,
    n_snvs: int = 16,
    n_indels: int = 6,
    low_quality_pairs: int = 3_000,
    read_length: int = READ_LENGTH,
    contaminant_fraction: float = CONTAMINANT_FRACTION,
) -> DemoData:
    """Write the demo inputs under `out_dir` and return their paths and the truth set.

    `contigs`, `coverage` and the variant counts exist so tests can shrink the
    data; the defaults are what `genoflow demo` uses (~140 kb genome, 30x).
    """
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)

    reference = {name: _random_sequence(rng, length) for name, length in contigs}
    fasta = root / "genome.fa"
    _write_fasta(fasta, reference)
    pysam.faidx(str(fasta))

    genes = _gene_layout(reference)
    variants = _spike_variants(rng, reference, genes, n_snvs, n_indels)
    gtf = root / "annotation.gtf"
    _write_gtf(gtf, genes, reference)

    known_spiked = {v for i, v in enumerate(variants) if i % 2 == 0}
    sample_c = _sample_c_calls(rng, reference, variants)
    known_vcf = root / "known_sites.vcf.gz"
    _write_known_sites(known_vcf, rng, reference, known_spiked, sample_c)

    # The contaminant draws from its own generator, so every other byte stays what this seed always gave.
    contaminant_rng = np.random.default_rng([seed, 1])
    bug = _random_sequence(contaminant_rng, CONTAMINANT_LENGTH, gc=CONTAMINANT_GC)
    contaminant_fasta = root / "contaminants" / f"{CONTAMINANT_NAME}.fa"
    contaminant_fasta.parent.mkdir(exist_ok=True)
    _write_fasta(contaminant_fasta, {CONTAMINANT_NAME: bug}, description="GenoFlow demo contaminant")
    contaminant_pairs = round(contaminant_fraction * _pair_count(reference, coverage, read_length))

    haplotypes = _haplotypes(reference, variants)
    samples: dict[str, list[Path]] = {}
    samples[SAMPLE_A] = _write_pairs(
        root, SAMPLE_A, rng, haplotypes, reference, coverage=coverage, qualities=(30, 41), error_rate=0.002,
        read_length=read_length, contaminant=(bug, contaminant_pairs, contaminant_rng),
    )
    total = sum(len(s) for s in reference.values())
    low_cov = low_quality_pairs * 2 * read_length / total
    samples[SAMPLE_B] = _write_pairs(
        root, SAMPLE_B, rng, {n: (s, s) for n, s in reference.items()}, reference,
        coverage=low_cov, qualities=(3, 15), error_rate=0.05, read_length=read_length,
    )
    vcf_c, normalised_c = _write_sample_c_vcf(root / f"{SAMPLE_C}.vcf", reference, sample_c)
    bad = root / f"{SAMPLE_C}_extra_reads.fastq"
    _write_malformed_fastq(bad, rng, reference)
    samples[SAMPLE_C] = [vcf_c, bad]

    gene_of = {v: _gene_at(genes, v.chrom, v.pos) for v in variants}
    truth = root / "truth.json"
    truth.write_text(
        json.dumps(
            {
                "seed": seed,
                "contigs": dict(contigs),
                "coverage": coverage,
                "variants": [
                    {
                        "chrom": v.chrom,
                        "pos": v.pos,
                        "ref": v.ref,
                        "alt": v.alt,
                        "zygosity": v.zygosity,
                        "variant_type": _variant_type(v.ref, v.alt),
                        "gene": gene_of[v],
                        "known": v in known_spiked,
                    }
                    for v in variants
                ],
                "sample_c_variants": [list(x) for x in normalised_c],
                "contaminant": {"fasta": f"contaminants/{contaminant_fasta.name}", "gc": CONTAMINANT_GC,
                                "sample": SAMPLE_A, "pairs": contaminant_pairs},
                "samples": {k: [p.name for p in ps] for k, ps in samples.items()},
            },
            indent=2,
        )
        + "\n"
    )
    return DemoData(
        root=root,
        reference_fasta=fasta,
        annotation_gtf=gtf,
        known_sites_vcf=known_vcf,
        truth_json=truth,
        samples=samples,
        spiked_variants=[v.as_tuple() for v in variants],
        genes={g["name"]: (g["chrom"], g["start"], g["end"]) for g in genes},
        known_variant_ids={f"{v.chrom}:{v.pos}:{v.ref}:{v.alt}" for v in known_spiked},
        sample_c_variants=normalised_c,
        contaminant_fasta=contaminant_fasta,
        contaminant_pairs=contaminant_pairs,
    )


# --- genome -------------------------------------------------------------------------------------


def _random_sequence(rng: np.random.Generator, length: int, gc: float = GC_FRACTION) -> str:
    at, gc = (1 - gc) / 2, gc / 2
    codes = rng.choice(4, size=length, p=[at, gc, gc, at])
    return _BASES[codes].tobytes().decode()


def _write_fasta(path: Path, sequences: dict[str, str], width: int = 60,
                 description: str = "GenoFlow demo contig") -> None:
    with open(path, "w") as fh:
        for name, seq in sequences.items():
            fh.write(f">{name} {description}\n")
            for i in range(0, len(seq), width):
                fh.write(seq[i : i + width] + "\n")


def _gene_layout(reference: dict[str, str]) -> list[dict]:
    """Three genes per contig at fixed fractions of its length, alternating strands."""
    genes = []
    number = 0
    for chrom, seq in reference.items():
        length = len(seq)
        for a, b in ((0.06, 0.22), (0.38, 0.52), (0.68, 0.86)):
            number += 1
            genes.append(
                {
                    "chrom": chrom,
                    "start": int(length * a) + 1,
                    "end": int(length * b),
                    "strand": "+" if number % 2 else "-",
                    "name": f"GFD{number}",
                    "id": f"GFDG{number:07d}",
                    "transcript": f"GFDT{number:07d}",
                }
            )
    return genes


def _gene_at(genes: list[dict], chrom: str, pos: int) -> str | None:
    for gene in genes:
        if gene["chrom"] == chrom and gene["start"] <= pos <= gene["end"]:
            return gene["name"]
    return None


def _write_gtf(path: Path, genes: list[dict], reference: dict[str, str]) -> None:
    """gene / transcript / exon lines in Ensembl style; three exons per transcript."""
    lines = ["#!genome-build GenoFlowDemo-1", "#!genome-version GFD1"]
    for g in genes:
        common = f'gene_id "{g["id"]}"; gene_version "1"; gene_name "{g["name"]}"; gene_source "genoflow"; ' \
                 'gene_biotype "protein_coding";'
        tx = f'{common} transcript_id "{g["transcript"]}"; transcript_version "1"; ' \
             f'transcript_name "{g["name"]}-201"; transcript_biotype "protein_coding";'
        start, end, strand = g["start"], g["end"], g["strand"]
        lines.append(f"{g['chrom']}\tgenoflow\tgene\t{start}\t{end}\t.\t{strand}\t.\t{common}")
        lines.append(f"{g['chrom']}\tgenoflow\ttranscript\t{start}\t{end}\t.\t{strand}\t.\t{tx}")
        span = end - start + 1
        exons = [(start, start + span // 6), (start + span * 2 // 5, start + span // 2), (end - span // 6, end)]
        ordered = exons if strand == "+" else exons[::-1]
        for n, (a, b) in enumerate(ordered, start=1):
            lines.append(
                f'{g["chrom"]}\tgenoflow\texon\t{a}\t{b}\t.\t{strand}\t.\t{tx} exon_number "{n}"; '
                f'exon_id "{g["transcript"]}.{n}";'
            )
    path.write_text("\n".join(lines) + "\n")


# --- variants -----------------------------------------------------------------------------------


def _spike_variants(
    rng: np.random.Generator, reference: dict[str, str], genes: list[dict], n_snvs: int, n_indels: int
) -> list[SpikedVariant]:
    """Pick well-spaced sites, most inside genes, and build normalised SNVs and indels there.

    An indel is kept only if it is already left-aligned: for a deletion of D
    after anchor a (or an insertion of S), shifting left is possible exactly
    when a == D[-1] (a == S[-1]). Sites next to long homopolymers are skipped
    so that the call, not the aligner's gap placement, decides the result.
    """
    names = list(reference)
    lengths = np.array([len(reference[n]) for n in names], dtype=float)
    total = n_snvs + n_indels
    chosen: list[tuple[str, int]] = []
    kinds = ["snv"] * n_snvs + ["indel"] * n_indels
    order = rng.permutation(total)
    kinds = [kinds[i] for i in order]
    variants: list[SpikedVariant] = []
    attempts = 0
    while len(variants) < total:
        attempts += 1
        if attempts > 100_000:
            raise RuntimeError("could not place the demo variants; use a larger genome")
        kind = kinds[len(variants)]
        chrom = names[rng.choice(len(names), p=lengths / lengths.sum())]
        seq = reference[chrom]
        in_gene = len(variants) % 5 != 4  # about one in five intergenic
        if in_gene:
            candidates = [g for g in genes if g["chrom"] == chrom]
            g = candidates[rng.integers(len(candidates))]
            pos0 = int(rng.integers(g["start"] + 50, g["end"] - 50)) - 1
        else:
            pos0 = int(rng.integers(EDGE_MARGIN, len(seq) - EDGE_MARGIN))
        if pos0 < EDGE_MARGIN or pos0 > len(seq) - EDGE_MARGIN:
            continue
        if in_gene != (_gene_at(genes, chrom, pos0 + 1) is not None):
            continue
        if any(c == chrom and abs(p - pos0) < MIN_SPACING for c, p in chosen):
            continue
        if _max_homopolymer(seq[pos0 - 12 : pos0 + 18]) > 3:
            continue
        zygosity = "hom_alt" if len(variants) % 5 in (1, 3) else "het"  # het/hom 1.5, as in a typical exome
        if kind == "snv":
            ref = seq[pos0]
            # two transitions per transversion, as in human germline calls (Ts/Tv ~2), so the call-set check passes
            n_snv = sum(len(v.ref) == len(v.alt) for v in variants)
            alt = _TRANSVERSIONS[ref][int(rng.integers(2))] if n_snv % 3 == 2 else _TRANSITION[ref]
            variant = SpikedVariant(chrom, pos0 + 1, ref, alt, zygosity)
        else:
            size = int(rng.integers(1, 6))
            anchor = seq[pos0]
            if sum(len(v.ref) > len(v.alt) for v in variants) <= sum(len(v.ref) < len(v.alt) for v in variants):
                deleted = seq[pos0 + 1 : pos0 + 1 + size]
                if deleted[-1] == anchor:
                    continue
                variant = SpikedVariant(chrom, pos0 + 1, anchor + deleted, anchor, zygosity)
            else:
                inserted = _random_sequence(rng, size)
                if inserted[-1] == anchor or _max_homopolymer(anchor + inserted + seq[pos0 + 1 : pos0 + 6]) > 3:
                    continue
                variant = SpikedVariant(chrom, pos0 + 1, anchor, anchor + inserted, zygosity)
        chosen.append((chrom, pos0))
        variants.append(variant)
    return sorted(variants, key=lambda v: (names.index(v.chrom), v.pos))


def _max_homopolymer(seq: str) -> int:
    best = run = 0
    previous = ""
    for base in seq:
        run = run + 1 if base == previous else 1
        previous = base
        best = max(best, run)
    return best


def _variant_type(ref: str, alt: str) -> str:
    if len(ref) == len(alt):
        return "SNV" if len(ref) == 1 else "MNV"
    return "INS" if len(alt) > len(ref) else "DEL"


def _apply(seq: str, variants: list[SpikedVariant]) -> str:
    parts = []
    cursor = 0
    for v in sorted(variants, key=lambda x: x.pos):
        start = v.pos - 1
        parts.append(seq[cursor:start])
        parts.append(v.alt)
        cursor = start + len(v.ref)
    parts.append(seq[cursor:])
    return "".join(parts)


def _haplotypes(reference: dict[str, str], variants: list[SpikedVariant]) -> dict[str, tuple[str, str]]:
    """Two haplotypes per contig: hom variants on both, het variants on the first."""
    out = {}
    for chrom, seq in reference.items():
        on_contig = [v for v in variants if v.chrom == chrom]
        out[chrom] = (_apply(seq, on_contig), _apply(seq, [v for v in on_contig if v.zygosity == "hom_alt"]))
    return out


# --- reads --------------------------------------------------------------------------------------


def _write_pairs(
    root: Path,
    sample_id: str,
    rng: np.random.Generator,
    haplotypes: dict[str, tuple[str, str]],
    reference: dict[str, str],
    *,
    coverage: float,
    qualities: tuple[int, int],
    error_rate: float,
    read_length: int,
    contaminant: tuple[str, int, np.random.Generator] | None = None,
) -> list[Path]:
    """Simulate FR pairs (Illumina-style names, gzip without timestamps) from both haplotypes.

    Vectorised over fragments with numpy so 30x of the demo genome takes well under a second.
    `contaminant` = (sequence, pairs, generator): that many pairs of the foreign
    sequence, drawn from their own generator, are mixed in at random places.
    """
    r1_chunks: list[np.ndarray] = []
    r2_chunks: list[np.ndarray] = []
    for chrom, haps in haplotypes.items():
        n_pairs = _pair_count({chrom: reference[chrom]}, coverage, read_length)
        for h, hap in enumerate(haps):
            n = n_pairs // 2 + (n_pairs % 2 if h == 0 else 0)
            fwd, rev = _fragments(rng, hap, n, read_length)
            r1_chunks.append(fwd)
            r2_chunks.append(rev)
    r1 = np.concatenate(r1_chunks)
    r2 = np.concatenate(r2_chunks)
    order = rng.permutation(len(r1))
    r1, r2 = r1[order], r2[order]
    foreign: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    if contaminant is not None and contaminant[1] > 0:
        bug, n_bug, bug_rng = contaminant
        b1, b2 = _fragments(bug_rng, bug, n_bug, read_length)
        at = np.zeros(len(r1) + n_bug, dtype=bool)
        at[bug_rng.choice(len(at), size=n_bug, replace=False)] = True
        foreign = (at, b1, b2)
    paths = []
    for mate, reads in ((1, r1), (2, r2)):
        quals = rng.integers(qualities[0], qualities[1], size=reads.shape).astype(np.uint8)
        reads = _add_errors(rng, reads, error_rate)
        if foreign is not None:
            at, b1, b2 = foreign
            bug_reads = _add_errors(bug_rng, b1 if mate == 1 else b2, error_rate)
            bug_quals = bug_rng.integers(qualities[0], qualities[1], size=bug_reads.shape).astype(np.uint8)
            reads, quals = _interleave(at, reads, bug_reads), _interleave(at, quals, bug_quals)
        path = root / f"{sample_id}_R{mate}.fastq.gz"
        _write_fastq_gz(path, sample_id, mate, reads, quals)
        paths.append(path)
    return paths


def _pair_count(reference: dict[str, str], coverage: float, read_length: int) -> int:
    return sum(round(coverage * len(seq) / (2 * read_length)) for seq in reference.values())


def _fragments(rng: np.random.Generator, seq: str, n: int, read_length: int) -> tuple[np.ndarray, np.ndarray]:
    """R1 and R2 of `n` FR fragments of `seq` (normal fragment lengths, random strand)."""
    arr = np.frombuffer(seq.encode(), dtype=np.uint8)
    frag = np.clip(rng.normal(FRAGMENT_MEAN, FRAGMENT_SD, n).round().astype(np.int64), read_length + 20, None)
    start = rng.integers(0, len(arr) - frag + 1)
    idx = np.arange(read_length)
    fwd = arr[start[:, None] + idx]
    rev = _revcomp_array(arr[(start + frag)[:, None] - read_length + idx])
    flip = rng.random(n) < 0.5  # fragment read from the reverse strand: R1 is the reverse read
    return np.where(flip[:, None], rev, fwd), np.where(flip[:, None], fwd, rev)


def _interleave(at: np.ndarray, rows: np.ndarray, inserted: np.ndarray) -> np.ndarray:
    """`rows` in order, with `inserted` in order at the positions where `at` is True."""
    out = np.empty((len(at), rows.shape[1]), dtype=rows.dtype)
    out[~at] = rows
    out[at] = inserted
    return out


def _revcomp_array(reads: np.ndarray) -> np.ndarray:
    table = np.zeros(256, dtype=np.uint8)
    for a, b in zip(b"ACGTN", b"TGCAN", strict=True):
        table[a] = b
    return table[reads][:, ::-1]


def _add_errors(rng: np.random.Generator, reads: np.ndarray, rate: float) -> np.ndarray:
    mask = rng.random(reads.shape) < rate
    if not mask.any():
        return reads
    out = reads.copy()
    current = out[mask]
    code = np.searchsorted(_BASES, current)  # A,C,G,T are sorted
    out[mask] = _BASES[(code + rng.integers(1, 4, size=code.shape)) % 4]
    return out


def _write_fastq_gz(path: Path, sample_id: str, mate: int, reads: np.ndarray, quals: np.ndarray) -> None:
    qual_text = (quals + 33).astype(np.uint8)
    lines = []
    for i in range(len(reads)):
        name = f"@GFDEMO:1:HDMOFLOW:1:{1101 + i // 10_000}:{i % 10_000}:{i // 100} {mate}:N:0:{sample_id[-1]}"
        lines.append(f"{name}\n{reads[i].tobytes().decode()}\n+\n{qual_text[i].tobytes().decode()}\n")
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=4, mtime=0) as gz:
        gz.write("".join(lines).encode())
    tmp.replace(path)


def _write_malformed_fastq(path: Path, rng: np.random.Generator, reference: dict[str, str]) -> None:
    """Three records from chr1; the third one's quality line is five characters short."""
    seq = next(iter(reference.values()))
    records = []
    for i in range(3):
        start = int(rng.integers(0, len(seq) - 100))
        read = seq[start : start + 100]
        qual = "I" * (95 if i == 2 else 100)
        records.append(f"@GFDEMO:1:HDMOFLOW:1:1101:{i}:0 1:N:0:C\n{read}\n+\n{qual}\n")
    path.write_text("".join(records))


# --- call sets ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _UploadedCall:
    chrom: str
    pos: int
    ref: str
    alt: str
    gt: str
    ident: str
    written: tuple[int, str, str] | None = None  # (pos, ref, alt) as it appears in the file, if not normalised


def _sample_c_calls(
    rng: np.random.Generator, reference: dict[str, str], spiked: list[SpikedVariant]
) -> list[_UploadedCall]:
    """Ten calls for the uploaded VCF, normalised.

    Three reuse spiked sites (two of them known), six are fresh SNVs (two in the
    known sites, one known only by its ID), and one
    is a 1 bp deletion in a homopolymer, written right-shifted in the file so
    normalisation has something to left-align.
    """
    calls = [_UploadedCall(v.chrom, v.pos, v.ref, v.alt, "0/1", ".") for v in spiked[:3]]
    taken = {(v.chrom, v.pos) for v in spiked}
    names = list(reference)
    while len(calls) < 9:
        chrom = names[int(rng.integers(len(names)))]
        seq = reference[chrom]
        pos0 = int(rng.integers(EDGE_MARGIN, len(seq) - EDGE_MARGIN))
        if any(c == chrom and abs(p - (pos0 + 1)) < 50 for c, p in taken):
            continue
        ref = seq[pos0]
        alt = _TRANSITION[ref] if len(calls) % 3 else _TRANSVERSIONS[ref][len(calls) % 2]
        gt = "1/1" if len(calls) % 3 == 0 else "0/1"
        ident = f"rs99{len(calls):05d}" if len(calls) == 6 else "."  # known by its ID alone
        calls.append(_UploadedCall(chrom, pos0 + 1, ref, alt, gt, ident))
        taken.add((chrom, pos0 + 1))
    chrom = names[-1]
    seq = reference[chrom]
    start = EDGE_MARGIN
    while True:
        run = seq.find("AAAA", start)
        if run < 0:
            raise RuntimeError("no homopolymer found for the demo deletion")
        if seq[run - 1] != "A" and not any(c == chrom and abs(p - run) < 50 for c, p in taken):
            break
        start = run + 10
    run_end = run
    while seq[run_end] == "A":
        run_end += 1
    # left-aligned, the anchor is the base before the run (1-based POS == run); right-shifted, the run's last two A
    anchor = seq[run - 1]
    calls.append(_UploadedCall(chrom, run, anchor + "A", anchor, "0/1", ".", written=(run_end - 1, "AA", "A")))
    return calls


def _write_sample_c_vcf(
    path: Path, reference: dict[str, str], calls: list[_UploadedCall]
) -> tuple[Path, list[tuple[str, int, str, str]]]:
    """Plain-text VCF 4.2 with GT:DP; returns the path and the normalised truth."""
    names = list(reference)
    rows = []
    for c in calls:
        pos, ref, alt = c.written or (c.pos, c.ref, c.alt)
        rows.append((c.chrom, pos, ref, alt, c.gt, c.ident))
    rows.sort(key=lambda r: (names.index(r[0]), r[1]))
    header = [
        "##fileformat=VCFv4.2",
        "##source=GenoFlowDemoUpload",
        "##reference=genome.fa",
        *[f"##contig=<ID={n},length={len(s)}>" for n, s in reference.items()],
        '##INFO=<ID=DP,Number=1,Type=Integer,Description="Total depth">',
        '##FILTER=<ID=LowQual,Description="Low quality">',
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        '##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Read depth">',
        f"#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t{SAMPLE_C}",
    ]
    body = []
    for i, (chrom, pos, ref, alt, gt, ident) in enumerate(rows):
        depth = 20 + 3 * i
        flt = "LowQual" if i == 5 else "PASS"
        body.append(f"{chrom}\t{pos}\t{ident}\t{ref}\t{alt}\t{50 + 7 * i}\t{flt}\tDP={depth}\tGT:DP\t{gt}:{depth}")
    path.write_text("\n".join(header + body) + "\n")
    normalised = sorted(((c.chrom, c.pos, c.ref, c.alt) for c in calls), key=lambda r: (names.index(r[0]), r[1]))
    return path, normalised


def _write_known_sites(
    path: Path,
    rng: np.random.Generator,
    reference: dict[str, str],
    known_spiked: set[SpikedVariant],
    sample_c: list[_UploadedCall],
) -> None:
    """Known sites (dbSNP-like, sites only): half the spiked variants, two Sample C calls, decoys."""
    records = {(v.chrom, v.pos, v.ref, v.alt) for v in known_spiked}
    records.update((c.chrom, c.pos, c.ref, c.alt) for c in sample_c[3:5])
    names = list(reference)
    while len(records) < len(known_spiked) + 2 + 12:
        chrom = names[int(rng.integers(len(names)))]
        seq = reference[chrom]
        pos0 = int(rng.integers(EDGE_MARGIN, len(seq) - EDGE_MARGIN))
        ref = seq[pos0]
        alt = "ACGT"[("ACGT".index(ref) + int(rng.integers(1, 4))) % 4]
        records.add((chrom, pos0 + 1, ref, alt))
    ordered = sorted(records, key=lambda r: (names.index(r[0]), r[1], r[2], r[3]))
    header = [
        "##fileformat=VCFv4.2",
        "##source=GenoFlowDemoKnownSites",
        *[f"##contig=<ID={n},length={len(s)}>" for n, s in reference.items()],
        '##INFO=<ID=GFSRC,Number=1,Type=String,Description="Origin of the demo site">',
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO",
    ]
    body = [f"{c}\t{p}\trs{7_000_000 + i}\t{r}\t{a}\t.\t.\tGFSRC=demo" for i, (c, p, r, a) in enumerate(ordered)]
    plain = path.with_name(path.name.removesuffix(".gz"))
    plain.write_text("\n".join(header + body) + "\n")
    pysam.tabix_index(str(plain), preset="vcf", force=True, keep_original=False)
