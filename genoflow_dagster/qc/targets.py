"""Target regions (exome, panel, amplicon BEDs) and the depth metrics over them.

A lab gives its targets as a BED: capture targets for an exome or panel, or
the amplicon scheme of an amplicon assay. Two shapes are read:
- a region BED: every line is one region (a capture target or an amplicon);
- a primer-scheme BED (ARTIC style: names `<scheme>_<n>_LEFT` / `_RIGHT`, with
  optional `_alt<k>` or `_<k>` suffixes for alternative primers): the primers
  of amplicon `<n>` are paired into one region, from the first LEFT primer's
  start to the last RIGHT primer's end (primer sites included: GenoFlow does
  not trim primers, so the reads do cover them).

Each region is an "amplicon" for the per-amplicon metrics; the union of the
regions (overlaps merged) is "the targets" for depth and breadth. The BED is
checked with the project's own BED validator before it is read.

Depth is `samtools depth`'s (see qc/alignment.py); the definitions, checked
against `samtools depth -a -b`, `samtools view -L` and `bedtools` in the tests:
- `target_bases`: bases in the union of the regions (on contigs the alignment knows).
- `target_mean_depth`: summed depth over those bases / `target_bases`.
- `target_breadth_Nx`: percent of `target_bases` with depth >= N (N = 1, 10, 20, 30).
- `on_target_reads`: primary mapped records (flags 0x4, 0x100, 0x800 clear;
  duplicates and QC-failed ones included) whose alignment span overlaps a
  region by at least one base; the span runs from POS over every reference-
  consuming CIGAR operation (M, D, N, =, X), at least one base, as htslib's
  `bam_endpos`. So `on_target_reads` = `samtools view -c -F 0x904 -L targets.bed`.
- `on_target_reads_percent`: `on_target_reads` / `primary_mapped` * 100: a read-
  level figure, like `samtools view -L` counts and unlike Picard's base-level
  PCT_SELECTED_BASES.
- `amplicon_depths`: each region's mean depth (as `target_mean_depth`, over that
  region alone); `min_amplicon_depth`, and `amplicons_below_floor` (count and
  percent of regions whose mean depth is below `amplicon_floor`, 20x by
  default: the depth ARTIC's pipelines ask for before a consensus base is called).

Memory depends on the number of regions, never on the BAM: depth arrives one
summed 1 Mb window at a time and only per-region sums are kept.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

TARGET_BREADTH_LEVELS = (1, 10, 20, 30)
AMPLICON_FLOOR = 20
MAX_LISTED_AMPLICONS = 5000  # per-region depths stored in the metrics up to this many regions
_PRIMER = re.compile(r"^(?P<amplicon>.+)_(?P<side>LEFT|RIGHT)(?:_(?:alt)?\d+)?$", re.IGNORECASE)


@dataclass(frozen=True)
class Region:
    chrom: str
    start: int
    end: int
    name: str


@dataclass(frozen=True)
class Targets:
    """The regions of one targets BED, and what kind of BED it was."""

    path: str
    kind: str  # "regions" | "primer scheme"
    regions: tuple[Region, ...]


def load_targets(path: str | Path) -> Targets:
    """Validate a targets BED (plain or gzip) and read its regions.

    A primer-scheme BED (every name ending `_LEFT`/`_RIGHT`) becomes one region per
    amplicon. Raises ValueError for a missing, invalid or empty BED, or a primer
    scheme with an amplicon missing one of its sides.
    """
    from genoflow_dagster.formats.validate import validate_file

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"targets BED not found: {path}")
    result = validate_file(path, "bed")
    if not result.valid:
        where = f" (line {result.line})" if result.line else ""
        raise ValueError(f"targets BED {path} is not valid BED{where}: {result.reason}: {result.message}")
    regions = list(_read_bed(path))
    if not regions:
        raise ValueError(f"targets BED {path} holds no regions")
    names = [r.name for r in regions]
    if all(_PRIMER.match(n) for n in names):
        return Targets(str(path), "primer scheme", _pair_primers(regions, path))
    return Targets(str(path), "regions", tuple(regions))


def _read_bed(path: Path) -> Iterator[Region]:
    with path.open("rb") as probe:
        magic = probe.read(2)
    opener = gzip.open if magic == b"\x1f\x8b" else open
    number = 0
    with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if not line.strip() or line.startswith(("#", "browser", "track")):
                continue
            fields = line.split()
            if fields[0] == "chrom" and not fields[1].isdigit():
                continue  # a column header, as the validator allows
            number += 1
            start, end = int(fields[1]), int(fields[2])
            name = fields[3] if len(fields) >= 4 else f"{fields[0]}:{start + 1}-{end}"
            yield Region(fields[0], start, end, name)


def _pair_primers(primers: list[Region], path: Path) -> tuple[Region, ...]:
    amplicons: dict[tuple[str, str], dict[str, list[Region]]] = {}
    for primer in primers:
        match = _PRIMER.match(primer.name)
        assert match is not None
        sides = amplicons.setdefault((primer.chrom, match["amplicon"]), {"LEFT": [], "RIGHT": []})
        sides[match["side"].upper()].append(primer)
    regions = []
    for (chrom, name), sides in amplicons.items():
        if not sides["LEFT"] or not sides["RIGHT"]:
            missing = "RIGHT" if sides["LEFT"] else "LEFT"
            raise ValueError(f"primer-scheme BED {path}: amplicon {name} on {chrom} has no {missing} primer")
        start = min(p.start for p in sides["LEFT"])
        end = max(p.end for p in sides["RIGHT"])
        if end <= start:
            raise ValueError(f"primer-scheme BED {path}: amplicon {name}'s RIGHT primer ends before its LEFT one")
        regions.append(Region(chrom, start, end, name))
    regions.sort(key=lambda r: (r.chrom, r.start, r.end))
    return tuple(regions)


class _Pieces:
    """Intervals [start, end) in the alignment's global coordinate, cut at window boundaries
    and ordered by window, each piece remembering its interval."""

    def __init__(self, starts: np.ndarray, ends: np.ndarray, window: int) -> None:
        first, last = starts // window, (ends - 1) // window
        counts = last - first + 1
        parent = np.repeat(np.arange(len(starts)), counts)
        step = np.arange(len(parent)) - np.repeat(np.cumsum(counts) - counts, counts)
        win = first[parent] + step
        order = np.argsort(win, kind="stable")
        self.parent = parent[order]
        self.win = win[order]
        self.start = np.maximum(starts[self.parent], self.win * window)
        self.end = np.minimum(ends[self.parent], (self.win + 1) * window)

    def in_window(self, w: int) -> slice:
        return slice(int(np.searchsorted(self.win, w, "left")), int(np.searchsorted(self.win, w, "right")))


class TargetScan:
    """Target metrics of one alignment scan: on-target reads per batch, depth per summed window.

    Built from the header's contig names and the global offsets the coverage uses;
    regions on contigs the alignment does not know (or past a contig's end) are counted in
    `target_regions_unmatched` and left out.
    Raises ValueError when no region is on a known contig (e.g. `chr1` vs `1`).
    """

    def __init__(self, targets: Targets, names: list[str], lengths: np.ndarray, offsets: np.ndarray,
                 window: int, *, amplicon_floor: int = AMPLICON_FLOOR) -> None:
        self.targets = targets
        self.window = window
        self.amplicon_floor = amplicon_floor
        tid_of = {name: i for i, name in enumerate(names)}
        kept, self.unmatched = [], 0
        starts, ends = [], []
        for region in targets.regions:
            tid = tid_of.get(region.chrom)
            if tid is None or lengths[tid] == 0:
                self.unmatched += 1
                continue
            start, end = min(region.start, int(lengths[tid])), min(region.end, int(lengths[tid]))
            if end <= start:  # empty, or wholly past the contig's end: no base to measure
                self.unmatched += 1
                continue
            kept.append(region)
            starts.append(int(offsets[tid]) + start)
            ends.append(int(offsets[tid]) + end)
        if not kept:
            contigs = ", ".join(sorted({r.chrom for r in targets.regions})[:5])
            raise ValueError(f"no region of the targets BED {targets.path} lies on a contig of the alignment "
                             f"(BED contigs: {contigs}; alignment: {', '.join(names[:5])})")
        self.regions = kept
        rs, re_ = np.array(starts, dtype=np.int64), np.array(ends, dtype=np.int64)
        self.region_bases = re_ - rs
        self.by_region = _Pieces(rs, re_, window)
        self.merged_start, self.merged_end = _merge(rs, re_)
        self.merged = _Pieces(self.merged_start, self.merged_end, window)
        self.target_bases = int((self.merged_end - self.merged_start).sum())
        self.region_sum = np.zeros(len(kept), dtype=np.int64)
        self.depth_sum = 0
        self.covered = dict.fromkeys(TARGET_BREADTH_LEVELS, 0)
        self.primary_mapped = 0
        self.on_target_reads = 0

    def add_reads(self, gstart: np.ndarray, gend: np.ndarray) -> None:
        """Primary mapped records' alignment spans [gstart, gend) in the global coordinate."""
        self.primary_mapped += len(gstart)
        if not len(gstart) or not len(self.merged_start):
            return
        # The first merged target ending after the read's start overlaps it if it starts before the read's end.
        idx = np.searchsorted(self.merged_end, gstart, side="right")
        inside = idx < len(self.merged_start)
        hit = np.zeros(len(gstart), dtype=bool)
        hit[inside] = self.merged_start[idx[inside]] < gend[inside]
        self.on_target_reads += int(np.count_nonzero(hit))

    def add_window(self, w: int, cov: np.ndarray | None, depth: int) -> None:
        """Window `w` of the global coordinate: its per-base depth `cov`, or a constant `depth`."""
        base = w * self.window
        merged = self.merged.in_window(w)
        regions = self.by_region.in_window(w)
        if cov is None:
            if depth:
                span = self.merged.end[merged] - self.merged.start[merged]
                self.depth_sum += depth * int(span.sum())
                for level in TARGET_BREADTH_LEVELS:
                    if depth >= level:
                        self.covered[level] += int(span.sum())
                piece = self.by_region.end[regions] - self.by_region.start[regions]
                np.add.at(self.region_sum, self.by_region.parent[regions], depth * piece)
            return
        if merged.stop > merged.start:
            mask = np.zeros(len(cov) + 1, dtype=np.int32)
            np.add.at(mask, self.merged.start[merged] - base, 1)
            np.add.at(mask, self.merged.end[merged] - base, -1)
            on_target = cov[np.cumsum(mask[:-1]) > 0]
            self.depth_sum += int(on_target.sum())
            for level in TARGET_BREADTH_LEVELS:
                self.covered[level] += int(np.count_nonzero(on_target >= level))
        if regions.stop > regions.start:
            cumulative = np.concatenate([[0], np.cumsum(cov, dtype=np.int64)])
            sums = cumulative[self.by_region.end[regions] - base] - cumulative[self.by_region.start[regions] - base]
            np.add.at(self.region_sum, self.by_region.parent[regions], sums)

    def metrics(self) -> dict[str, Any]:
        tb = self.target_bases
        means = self.region_sum / self.region_bases
        below = int(np.count_nonzero(means < self.amplicon_floor))
        m: dict[str, Any] = {
            "targets_bed": self.targets.path,
            "target_kind": self.targets.kind,
            "target_regions": len(self.regions),
            "target_regions_unmatched": self.unmatched,
            "target_bases": tb,
            "on_target_reads": self.on_target_reads,
            "on_target_reads_percent": round(100.0 * self.on_target_reads / self.primary_mapped, 4)
            if self.primary_mapped else None,
            "target_mean_depth": round(self.depth_sum / tb, 4) if tb else None,
        }
        for level in TARGET_BREADTH_LEVELS:
            m[f"target_breadth_{level}x"] = round(100.0 * self.covered[level] / tb, 4) if tb else None
        m["amplicons"] = len(self.regions)
        m["amplicon_floor"] = self.amplicon_floor
        m["amplicons_below_floor"] = below
        m["amplicons_below_floor_percent"] = round(100.0 * below / len(self.regions), 4)
        m["min_amplicon_depth"] = round(float(means.min()), 4)
        if len(self.regions) <= MAX_LISTED_AMPLICONS:
            m["amplicon_depths"] = [
                {"name": r.name, "chrom": r.chrom, "start": r.start, "end": r.end, "mean_depth": round(float(d), 4)}
                for r, d in zip(self.regions, means, strict=True)
            ]
        return m


def _merge(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The union of intervals [start, end) as sorted, disjoint, non-adjacent intervals."""
    if not len(starts):
        return starts, ends
    order = np.argsort(starts, kind="stable")
    s, e = starts[order], ends[order]
    reach = np.maximum.accumulate(e)
    new = np.concatenate([[True], s[1:] > reach[:-1]])
    group = np.cumsum(new) - 1
    merged_end = np.zeros(int(group[-1]) + 1, dtype=np.int64)
    np.maximum.at(merged_end, group, e)
    return s[new], merged_end
