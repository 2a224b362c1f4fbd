"""Contamination screen, FastQ Screen style: which share of a read sample maps better elsewhere.

A deterministic sample of reads (the first `sample_reads` reads of the file,
default 100,000) is aligned with minimap2 (mappy, preset ``sr``) to the target
reference and to every configured contaminant reference, and each read is
assigned to the reference where it aligns best:

- a reference's score for a read is its best primary hit, ranked by matching
  bases (`mlen`) and then by fewer edits (`NM`); a read with no hit scores nothing;
- the read goes to the reference with the highest score; a tie between the
  target and a contaminant goes to the **target** (a read that fits the sample's
  own genome as well as a contaminant is no evidence of contamination), a tie
  between two contaminants to the one listed first;
- `contamination_percent` = reads whose best hit is a contaminant / reads sampled x 100;
  `unmapped_percent` = reads with no hit anywhere / reads sampled x 100.

Why one `mappy.Aligner` per reference rather than one combined index: each
reference keeps its own index (the target's is the one the alignment step
already caches), so adding or changing a contaminant never rebuilds the target's
index (minutes and gigabytes for a human genome); each reference scores every
read independently, which is what lets a read be counted as mapped to both and
gives per-reference mapping rates; and in a combined index minimap2 picks one
primary hit and splits MAPQ between near-equal hits, so the tie rule would be
minimap2's, not ours. The cost is one `map` call per reference per read.

Paired-end data: callers screen R1 only. R2 comes from the same fragments, so
it would double the cost for the same answer; the first N reads of R1 are the
sample.

Reading streams through `formats.io.open_decompressed` (plain, gzip/BGZF,
bzip2), record by record: memory is the indexes plus a few counters, whatever
the file size. No Dagster here.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mappy

from genoflow_dagster.formats.io import open_decompressed, sha256_file, sha256_file_cached
from genoflow_dagster.progress import ProgressCallback

PRESET = "sr"
DEFAULT_SAMPLE_READS = 100_000
PROGRESS_EVERY_READS = 1024
# Bump when the classification rule or the sampling changes, so stored screens are recomputed.
METHOD_VERSION = "1"
SCORE_RULE = "best primary hit by matching bases (mlen), then fewer edits (NM)"
TIE_RULE = "target wins a tie with a contaminant; between contaminants the first listed wins"

_FASTA_SUFFIXES = re.compile(r"(\.(fa|fasta|fna|fas|mmi))?(\.(gz|bgz|bz2))?$", re.IGNORECASE)

Score = tuple[int, int]  # (matching bases, -edits); larger is better
_NO_HIT: Score = (-1, 0)


@dataclass(frozen=True)
class ScreenReference:
    """One reference of the screen: a display name, its FASTA and fingerprint, and an optional prebuilt index.

    `index` is a minimap2 index built with the ``sr`` preset (a `.mmi`); without
    it the FASTA is indexed in memory when the screen starts.
    """

    name: str
    fasta: Path
    sha256: str
    index: Path | None = None


def reference_name(path: str | Path) -> str:
    """Display name of a reference file: its name without FASTA/index and compression suffixes."""
    name = Path(path).name
    return _FASTA_SUFFIXES.sub("", name) or name


def screen_reference(fasta: str | Path, *, name: str | None = None, index: str | Path | None = None,
                     sha256: str | None = None) -> ScreenReference:
    """A `ScreenReference` for `fasta`, fingerprinted by SHA-256 unless `sha256` is given.

    Raises FileNotFoundError when the FASTA does not exist.
    """
    path = Path(fasta)
    if not path.is_file():
        raise FileNotFoundError(f"reference FASTA not found: {path}")
    return ScreenReference(
        name=name or reference_name(path),
        fasta=path,
        sha256=sha256 or sha256_file(path),
        index=Path(index) if index else None,
    )


def cached_screen_index(fasta: str | Path, cache_dir: str | Path, *, name: str | None = None) -> ScreenReference:
    """A `ScreenReference` whose minimap2 index is built once under `cache_dir/<sha256[:16]>/`.

    The folder is named by the FASTA's checksum (as the reference genome's cache
    is), so a changed file gets a new index and an unchanged one is never rebuilt.
    Raises FileNotFoundError for a missing FASTA, ValueError when minimap2 cannot index it.
    """
    from genoflow_dagster.variants.align import build_reference_index

    if not Path(fasta).is_file():
        raise FileNotFoundError(f"reference FASTA not found: {fasta}")
    ref = screen_reference(fasta, name=name, sha256=sha256_file_cached(fasta, cache_dir))
    folder = Path(cache_dir) / ref.sha256[:16]
    mmi = folder / "contaminant-sr.mmi"
    if not mmi.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        build_reference_index(ref.fasta, mmi)
    return ScreenReference(name=ref.name, fasta=ref.fasta, sha256=ref.sha256, index=mmi)


def screen_contamination(
    fastq: str | Path | Sequence[str | Path],
    target: str | Path | ScreenReference,
    contaminants: Sequence[str | Path | ScreenReference],
    *,
    sample_reads: int = DEFAULT_SAMPLE_READS,
    threads: int = 1,
    progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    """Screen the first `sample_reads` reads of `fastq` against the target and the contaminants.

    `fastq` is one FASTQ (plain, gzip/BGZF or bzip2) or several read in order
    (lanes of one sample). References are FASTA paths or `ScreenReference`s;
    names must differ (a repeated name gets a `#2` suffix). `threads` goes to
    minimap2's indexing; mapping runs on one thread (mappy holds the GIL while
    mapping, see variants.align).

    Returns `reads_sampled`, `whole_file` (the sample was the whole input),
    `contamination_percent`, `unmapped_percent`, `target_percent` (None when no
    read was sampled), `classification` (counts of `unmapped`, `target_only`,
    `contaminant_only`, `both_target_best`, `both_contaminant_best`),
    `references` (target first: `name, role, path, sha256, reads_mapped,
    mapped_percent, reads_best_hit, percent`), `method` and `seconds`.

    `progress`, if given, is called every PROGRESS_EVERY_READS reads and at the end with (reads screened,
    None): make its reporter with `unit="reads"` and `total=sample_reads`.

    Raises FileNotFoundError for a missing FASTQ or reference, ValueError when
    there is no contaminant, when minimap2 cannot load a reference, or when a
    FASTQ record is malformed.
    """
    started = time.monotonic()
    if sample_reads < 1:
        raise ValueError(f"sample_reads must be at least 1, not {sample_reads}")
    if not contaminants:
        raise ValueError("no contaminant reference given: the contamination screen needs at least one")
    paths = [Path(fastq)] if isinstance(fastq, str | Path) else [Path(p) for p in fastq]
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"reads file not found: {path}")
    refs = _unique_names([_as_reference(target), *(_as_reference(c) for c in contaminants)])
    threads = max(1, int(threads))
    aligners = []
    for ref in refs:
        aligner = mappy.Aligner(str(ref.index or ref.fasta), preset=PRESET, n_threads=threads)
        if not aligner:
            raise ValueError(f"minimap2 could not load the reference {ref.index or ref.fasta}")
        aligners.append((aligner, mappy.ThreadBuffer()))

    mapped = [0] * len(refs)
    best = [0] * len(refs)
    classes = dict.fromkeys(
        ("unmapped", "target_only", "contaminant_only", "both_target_best", "both_contaminant_best"), 0)
    n = 0
    reads = _sequences(paths)
    try:
        for seq in itertools.islice(reads, sample_reads):
            n += 1
            if progress is not None and not n % PROGRESS_EVERY_READS:
                progress(n, None)
            scores = [_best_score(aligner.map(seq, buf=buf)) for aligner, buf in aligners]
            for i, score in enumerate(scores):
                mapped[i] += score != _NO_HIT
            winner = _winner(scores)
            on_target = scores[0] != _NO_HIT
            on_contaminant = any(s != _NO_HIT for s in scores[1:])
            if winner is None:
                classes["unmapped"] += 1
                continue
            best[winner] += 1
            if on_target and on_contaminant:
                classes["both_target_best" if winner == 0 else "both_contaminant_best"] += 1
            else:
                classes["target_only" if winner == 0 else "contaminant_only"] += 1
        whole_file = next(reads, None) is None
    finally:
        reads.close()
    if progress is not None:
        progress(n, None)

    def pct(count: int) -> float | None:
        return round(100.0 * count / n, 4) if n else None

    contaminated = classes["contaminant_only"] + classes["both_contaminant_best"]
    return {
        "reads_sampled": n,
        "whole_file": whole_file,
        "contamination_percent": pct(contaminated),
        "unmapped_percent": pct(classes["unmapped"]),
        "target_percent": pct(best[0]),
        "classification": classes,
        "references": [
            {
                "name": ref.name,
                "role": "target" if i == 0 else "contaminant",
                "path": str(ref.fasta),
                "sha256": ref.sha256,
                "reads_mapped": mapped[i],
                "mapped_percent": pct(mapped[i]),
                "reads_best_hit": best[i],
                "percent": pct(best[i]),
            }
            for i, ref in enumerate(refs)
        ],
        "method": {
            "tool": "minimap2 (mappy)",
            "mappy_version": mappy.__version__,
            "preset": PRESET,
            "sample": "first reads of the file",
            "sample_reads": sample_reads,
            "score": SCORE_RULE,
            "ties": TIE_RULE,
            "threads": threads,
            "version": METHOD_VERSION,
            "inputs": [p.name for p in paths],
        },
        "seconds": round(time.monotonic() - started, 3),
    }


def _as_reference(ref: str | Path | ScreenReference) -> ScreenReference:
    return ref if isinstance(ref, ScreenReference) else screen_reference(ref)


def _unique_names(refs: list[ScreenReference]) -> list[ScreenReference]:
    seen: dict[str, int] = {}
    out = []
    for ref in refs:
        count = seen.get(ref.name, 0) + 1
        seen[ref.name] = count
        if count > 1:
            ref = ScreenReference(name=f"{ref.name}#{count}", fasta=ref.fasta, sha256=ref.sha256, index=ref.index)
        out.append(ref)
    return out


def _best_score(hits: Iterator[Any]) -> Score:
    best = _NO_HIT
    for hit in hits:
        if hit.is_primary:
            score = (hit.mlen, -hit.NM)
            if score > best:
                best = score
    return best


def _winner(scores: list[Score]) -> int | None:
    """Index of the best-scoring reference (0 is the target); strict `>` keeps ties with the earlier one."""
    winner = None
    top = _NO_HIT
    for i, score in enumerate(scores):
        if score > top:
            winner, top = i, score
    return winner


def _sequences(paths: list[Path]) -> Generator[str, None, None]:
    """Read sequences of the FASTQ files in order; wrapped records allowed (as validation accepts them).

    Raises ValueError on a record that is not FASTQ (inputs are validated
    upstream, so this guards against being handed the wrong file).
    """
    for path in paths:
        with open_decompressed(path) as stream:
            lines = (raw.rstrip(b"\r\n") for raw in stream)
            number = 0
            for title in lines:
                if not title:
                    continue  # blank line at the end, or the empty quality of a zero-length read
                number += 1
                if not title.startswith(b"@"):
                    raise ValueError(f"{path.name}: record {number} does not start with '@'")
                parts = []
                for line in lines:
                    if line.startswith(b"+"):
                        break
                    parts.append(line)
                else:
                    raise ValueError(f"{path.name}: record {number} has no '+' line")
                seq = b"".join(parts)
                quality = 0
                while quality < len(seq):
                    quality_line = next(lines, None)
                    if quality_line is None:
                        raise ValueError(f"{path.name}: record {number} ends before its quality does")
                    quality += len(quality_line)
                yield seq.decode("ascii")
