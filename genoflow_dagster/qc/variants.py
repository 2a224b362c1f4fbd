"""Call-set metrics of one VCF/BCF: `bcftools stats` itself (pysam's bundle), plus known/novel.

Why bcftools and not a loop of our own: the numbers are meant to *be* bcftools stats',
and the counting rules (htslib's allele types, `<*>`/`<NON_REF>` as reference, `*` as
overlap, records counted once per type they contain, PSC's genotype classes, IDD's
clipping) are bcftools' code, not a spec. pysam bundles bcftools, so
`pysam.bcftools.stats("-I", "-s", "-", path)` runs it without a bcftools install: one
streaming pass in C over plain, gzip/BGZF or BCF input, no index needed, memory flat in
the file's size. It runs in a forked child (see `_bcftools`: htslib exit()s on some bad
records). The per-record Python loop over pysam this replaces took 18x bcftools' time
on 1M records x 10 samples; this takes bcftools' time plus Python's start-up.

Which bcftools: the one pysam bundles, so the version moves with pysam's (0.24: bcftools
and htslib 1.24). On VCF <= 4.3 every field below equals `bcftools stats` 1.16 except
per-sample `ts`/`tv` of het ALT/ALT calls: 1.24 counts both ALTs (C>T,A called 1/2 adds
a ts and a tv), 1.16 only the lower one. VCF 4.4 files are read the newer htslib's way.

Fields, as bcftools stats reports them (SN, TSTV, IDD and PSC lines):
- `records`, `no_alts`, `snps`, `mnps`, `indels`, `others`, `multiallelic_sites`,
  `multiallelic_snp_sites`: SN. A record counts once in each type its ALTs contain.
- `ts`, `tv` (per SNP ALT allele), `ts_first_alt`, `tv_first_alt`: TSTV; `ts_tv` and
  `ts_tv_first_alt` are their ratios (None without transversions).
- `indel_length_distribution`: IDD sites per length (ALT minus REF, deletions
  negative), one per indel ALT allele; bcftools clips lengths beyond +-60 to +-60.
- `per_sample`: PSC with `-s -` (so only when the file has samples): `hom_ref`,
  `hom_alt`, `het` (calls with a SNP or reference-like ALT), `hap_ref`, `hap_alt`,
  `missing` (any allele missing), `indels` (non-ref calls of an indel ALT), `ts`, `tv`.
- `known`: records whose ID is not '.', or, with `known_sites`, whose CHROM, POS and REF
  (REF case-insensitive) equal a known site's and that share an ALT with it (also
  case-insensitive); `novel`: the rest, records without ALT included, so `known + novel
  == records`. The ID split is bcftools' own `-I` (same pass, free). Known sites cost a
  second pass, over the records without an ID only (`_known_site_records`): about half
  a stats pass in bcftools plus set arithmetic on byte keys.

`het_hom_ratio` = sum of het / sum of hom_alt over samples; `call_rate` = called
genotypes / (records x samples).

bzip2 (.vcf.bz2, which validation accepts): htslib does not read it, so the file (and a
bzip2 known-sites file) is first decompressed, as a stream, into a temporary BGZF copy
(compression level 1: about a quarter of the plain size on disk, 0.2 s per 20 MB of VCF
on top of bzip2's own 0.5 s), which the same pass reads and which is removed afterwards.
"""

from __future__ import annotations

import bz2
import contextlib
import os
import signal
import tempfile
from collections.abc import Iterator
from itertools import compress
from pathlib import Path
from typing import Any

import pysam
import pysam.bcftools

_SN_FIELDS = {
    "number of records:": "records",
    "number of no-ALTs:": "no_alts",
    "number of SNPs:": "snps",
    "number of MNPs:": "mnps",
    "number of indels:": "indels",
    "number of others:": "others",
    "number of multiallelic sites:": "multiallelic_sites",
    "number of multiallelic SNP sites:": "multiallelic_snp_sites",
}
# PSC columns after the set id and sample name, in bcftools' order
_PSC_COLUMNS = ("hom_ref", "hom_alt", "het", "ts", "tv", "indels", None, None, "hap_ref", "hap_alt", "missing")
_PER_SAMPLE = ("hom_ref", "hom_alt", "het", "hap_ref", "hap_alt", "missing", "indels", "ts", "tv")
# bcftools-query bytes of ID-less records matched with the known sites at a time (~180k
# records), and the largest gap (bp) between two of them one window of the known sites spans
_CHUNK_BYTES = 4 << 20
_KNOWN_BYTES = 2 << 20
_MERGE_GAP = 1_000


def vcf_metrics(path: str | Path, *, known_sites: str | None = None) -> dict[str, Any]:
    """bcftools-stats counts of one VCF (plain, gzip/BGZF, bzip2) or BCF; see the module docstring.

    `known` counts records with an ID, or with an allele present in `known_sites` (a
    VCF/BCF, indexed or not); `novel` the rest.
    Raises OSError when the file cannot be opened, ValueError when it cannot be parsed.
    """
    path = str(path)
    with open(path, "rb"):  # a missing or unreadable file is an OSError, as for every format
        pass
    with contextlib.ExitStack() as cleanup:
        path = _readable_by_htslib(path, cleanup)
        if known_sites:
            known_sites = _readable_by_htslib(str(known_sites), cleanup)
        return _metrics(path, known_sites)


def _metrics(path: str, known_sites: str | None) -> dict[str, Any]:
    # the header's sample names, read by bcftools too (pysam's VariantFile cannot open plain gzip)
    samples = _bcftools("query", "-l", path).splitlines()
    # -I: separate stats for records with an ID (set 0) and without (set 1); -s -: PSC
    # per sample, which bcftools refuses for a file without samples
    out = _bcftools("stats", "-I", *(("-s", "-") if samples else ()), path)
    counts, indel_lengths, psc = _parse_stats(out)

    c = {k: counts[0].get(k, 0) + counts[1].get(k, 0) for k in (*_SN_FIELDS.values(), "ts", "tv",
                                                                 "ts_first_alt", "tv_first_alt")}
    known = counts[0].get("records", 0)
    if known_sites and counts[1].get("records", 0):
        known += _known_site_records(path, str(known_sites))
    c["known"] = known
    c["novel"] = c["records"] - known

    m: dict[str, Any] = {"samples": len(samples), **c}
    m["ts_tv"] = round(c["ts"] / c["tv"], 4) if c["tv"] else None
    m["ts_tv_first_alt"] = round(c["ts_first_alt"] / c["tv_first_alt"], 4) if c["tv_first_alt"] else None
    m["indel_length_distribution"] = {str(k): indel_lengths[k] for k in sorted(indel_lengths)}
    m["per_sample"] = {s: {k: psc.get(s, {}).get(k, 0) for k in _PER_SAMPLE} for s in samples}
    het = sum(d["het"] for d in m["per_sample"].values())
    hom = sum(d["hom_alt"] for d in m["per_sample"].values())
    m["het_hom_ratio"] = round(het / hom, 4) if hom else None
    calls = c["records"] * len(samples)
    missing = sum(d["missing"] for d in m["per_sample"].values())
    m["call_rate"] = round((calls - missing) / calls, 6) if calls else None
    return m


# bzip2 -> BGZF copy: read size, and the decompression-bomb rule validation applies (past
# 256 MiB of output, more than 200 bytes out per byte in is refused)
_COPY_CHUNK = 1 << 20
_BOMB_MIN_BYTES = 256 << 20
_BOMB_MAX_RATIO = 200


def _readable_by_htslib(path: str, cleanup: contextlib.ExitStack) -> str:
    """`path` itself, or for bzip2 a BGZF copy in a temporary directory `cleanup` removes."""
    from genoflow_dagster.formats.io import is_bzip2, sniff

    if not is_bzip2(sniff(path, 10)):
        return path
    tmp = cleanup.enter_context(tempfile.TemporaryDirectory(prefix="genoflow-bz2-"))
    copy = os.path.join(tmp, os.path.basename(path).removesuffix(".bz2").removesuffix(".vcf") + ".vcf.gz")
    produced = 0
    with open(path, "rb") as raw:
        out = pysam.BGZFile(copy, "wb1")  # type: ignore[call-arg]  # (pysam's stub lacks the level suffix, index=None)
        try:
            with bz2.BZ2File(raw) as source:
                while block := source.read(_COPY_CHUNK):
                    out.write(block)
                    produced += len(block)
                    if produced > _BOMB_MIN_BYTES and produced > _BOMB_MAX_RATIO * max(1, raw.tell()):
                        raise ValueError(f"{path}: the bzip2 file expands more than {_BOMB_MAX_RATIO}:1: refused "
                                         "as a decompression bomb")
        except (OSError, EOFError) as exc:  # a damaged or truncated bzip2 stream
            raise ValueError(f"{path}: the bzip2 stream cannot be read to its end: {exc}") from exc
        finally:
            out.close()
    return copy


def _bcftools(command: str, *args: str, writes_file: bool = False) -> str:
    """Run pysam's bundled bcftools and return its stdout (`writes_file`: it writes its own `-o`).

    htslib calls exit() on some malformed records (a GT allele beyond the ALTs, in
    bcf_calc_ac), which would end the calling process, a Dagster run worker included. So
    the command runs in a forked child (the same C code as in-process; the fork costs
    milliseconds, and the child of a threaded process runs only bcftools and os._exit):
    a crash or exit there becomes a ValueError here. Where there is no fork, in-process.
    """
    with tempfile.TemporaryDirectory(prefix="genoflow-bcftools-") as tmp:
        stdout = os.path.join(tmp, "stdout")
        stderr = os.path.join(tmp, "stderr")
        tool = getattr(pysam.bcftools, command)
        kwargs: dict[str, Any] = {"catch_stdout": False} if writes_file else {"save_stdout": stdout}
        if not hasattr(os, "fork"):
            try:
                tool(*args, **kwargs)
            except pysam.utils.SamtoolsError as exc:
                raise ValueError(f"bcftools {command}: {str(exc).strip()[-500:]}") from exc
            return "" if writes_file else Path(stdout).read_text(errors="replace")
        pid = os.fork()
        if pid == 0:  # the child: never returns into the caller's stack
            code = 3
            try:
                fd = os.open(stderr, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                os.dup2(fd, 2)  # htslib's own messages
                tool(*args, **kwargs)
                code = 0
            except BaseException as exc:  # reported to the parent through stderr
                os.write(2, f"\n{exc}".encode(errors="replace"))
            finally:
                os._exit(code)
        try:
            _, status = os.waitpid(pid, 0)
        except BaseException:  # interrupted: the child must not outlive the call
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise
        if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
            return "" if writes_file else Path(stdout).read_text(errors="replace")
        how = f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else f"status {os.WEXITSTATUS(status)}"
        message = Path(stderr).read_text(errors="replace").strip()[-500:] if os.path.exists(stderr) else ""
        raise ValueError(f"bcftools {command} failed ({how}): {message}")


def _parse_stats(
    text: str,
) -> tuple[tuple[dict[str, int], dict[str, int]], dict[int, int], dict[str, dict[str, int]]]:
    """SN and TSTV per set (0: with ID, 1: without), IDD sites and PSC summed over both sets."""
    counts: tuple[dict[str, int], dict[str, int]] = ({}, {})
    indel_lengths: dict[int, int] = {}
    psc: dict[str, dict[str, int]] = {}
    for line in text.splitlines():
        f = line.split("\t")
        kind = f[0]
        if kind == "SN" and f[2] in _SN_FIELDS:
            counts[int(f[1])][_SN_FIELDS[f[2]]] = int(f[3])
        elif kind == "TSTV":
            counts[int(f[1])].update(ts=int(f[2]), tv=int(f[3]), ts_first_alt=int(f[5]), tv_first_alt=int(f[6]))
        elif kind == "IDD":
            length = int(f[2])
            indel_lengths[length] = indel_lengths.get(length, 0) + int(f[3])
        elif kind == "PSC":
            d = psc.setdefault(f[2], {})
            for key, value in zip(_PSC_COLUMNS, f[3:], strict=False):
                if key:
                    d[key] = d.get(key, 0) + int(value)
    return counts, indel_lengths, psc


def _known_site_records(path: str, known_sites: str) -> int:
    """How many records without an ID share CHROM, POS, REF and an ALT with a known site.

    Both sides become "CHROM POS REF ALT" lines: the known sites' from bcftools query,
    the calls' cut by `_novel_alleles`; numpy upper-cases REF and ALT in place and each
    line becomes a byte key, so matching is set arithmetic in C. The ID-less records go
    in chunks of about `_CHUNK_BYTES`. A known-sites file of up to `_LOAD_WHOLE` records
    (or one without an index) is read once into a set; a larger indexed one (dbSNP) only
    in windows around each chunk's positions, so memory stays bounded by the chunk.
    """
    with tempfile.TemporaryDirectory(prefix="genoflow-vcf-") as tmp:
        n_known = _indexed_records(known_sites)
        known_tsv = os.path.join(tmp, "known.tsv")
        everything: set[bytes] | None = None
        if n_known is None or n_known <= _LOAD_WHOLE:
            _bcftools("query", "-f", _ALLELES, "-o", known_tsv, known_sites, writes_file=True)
            everything = set()
            for piece in _line_chunks(known_tsv, _KNOWN_BYTES):
                everything |= _Alleles(piece).key_set()
        hits = 0
        for chunk in _novel_alleles(path, tmp):
            calls = _Alleles(chunk)
            if not calls.keys:
                continue
            if everything is not None:
                hits += calls.count_in(everything)
                continue
            regions = _windows(calls, os.path.join(tmp, "windows.tsv"), max(1, (n_known or 0) // _RECORDS_PER_REGION))
            _bcftools("query", "-R", regions, "-f", _ALLELES, "-o", known_tsv, known_sites, writes_file=True)
            wanted = calls.key_set()
            matched: set[bytes] = set()
            for piece in _line_chunks(known_tsv, _KNOWN_BYTES):
                matched |= wanted.intersection(_Alleles(piece).key_set())
            hits += calls.count_in(matched)
        return hits


_ALLELES = r"%CHROM\t%POS\t%REF\t%ALT\n"
_VCF_BLOCK = 2 << 20


def _novel_alleles(path: str, tmp: str) -> Iterator[bytes]:
    """CHROM, POS, REF and ALT lines (tab-separated) of the records whose ID is '.'.

    VCF text (plain, gzip, BGZF) is cut with numpy from the decompressed bytes, at twice
    the speed of `bcftools query`, which parses every sample column too; BCF goes
    through `bcftools query`. The stats pass has read the file already, so it is a VCF.
    """
    import numpy as np

    from genoflow_dagster.formats.io import open_decompressed

    with open_decompressed(path) as fh:
        block = fh.read(_VCF_BLOCK)
        if block.startswith(b"BCF"):
            novel = os.path.join(tmp, "novel.tsv")
            _bcftools("query", "-i", 'ID="."', "-f", _ALLELES, "-o", novel, path, writes_file=True)
            yield from _line_chunks(novel, _CHUNK_BYTES)
            return
        rest = b""
        out: list[bytes] = []
        size = 0
        while block:
            data = rest + block
            block = fh.read(_VCF_BLOCK)
            if block:  # up to the last whole line; the rest goes with the next block
                cut = data.rfind(b"\n") + 1
                rest = data[cut:]
            else:
                data = data if data.endswith(b"\n") else data + b"\n"
                cut = len(data)
            a = np.frombuffer(data, dtype=np.uint8, count=cut)
            ends = np.flatnonzero(a == 10)
            starts = np.concatenate(([0], ends[:-1] + 1)).astype(np.int64)[:len(ends)]
            rows = (ends > starts) & (a[np.minimum(starts, max(cut - 1, 0))] != 35)  # not '#', not empty
            starts, ends = starts[rows], ends[rows]
            # CHROM t0 POS t1 ID t2 REF t3 ALT t4 ...: the tabs after each line start
            tabs = np.concatenate((np.flatnonzero(a == 9), np.full(5, cut, dtype=np.int64)))
            i = np.searchsorted(tabs, starts)
            t1, t2, t4 = (np.minimum(tabs[i + k], ends) for k in (1, 2, 4))
            novel = (t2 - t1 == 2) & (a[np.minimum(t1 + 1, max(cut - 1, 0))] == 46)
            starts, ends, t1, t2, t4 = starts[novel], ends[novel], t1[novel], t2[novel], t4[novel]
            # "CHROM<tab>POS" + "<tab>REF<tab>ALT" + the line's newline, gathered in one go
            begs = np.stack((starts, t2, ends), axis=1).ravel()
            lens = np.stack((t1 - starts, t4 - t2, np.ones_like(ends)), axis=1).ravel()
            offsets = np.cumsum(lens) - lens
            piece = a[np.repeat(begs - offsets, lens) + np.arange(int(lens.sum()))].tobytes()
            out.append(piece)
            size += len(piece)
            if size >= _CHUNK_BYTES:
                yield b"".join(out)
                out, size = [], 0
        if size:
            yield b"".join(out)


# one region query of an indexed file costs about as much as reading this many records;
# known-sites files up to _LOAD_WHOLE records are read whole into a set (~100 bytes a key)
_RECORDS_PER_REGION = 1_000
_LOAD_WHOLE = 1_000_000


class _Alleles:
    """bcftools-query lines (CHROM, POS, REF, ALT) as byte keys, REF and ALT upper case
    (CHROM stays case-sensitive), one key per line and, for a multi-ALT line, one per ALT."""

    def __init__(self, chunk: bytes) -> None:
        import numpy as np  # only the known-sites path needs it

        if chunk and not chunk.endswith(b"\n"):
            chunk += b"\n"
        a = np.frombuffer(chunk, dtype=np.uint8)
        self._a = a
        self.ends = np.flatnonzero(a == 10)
        self.starts = np.concatenate(([0], self.ends[:-1] + 1)).astype(np.int64)[:len(self.ends)]
        tabs = np.flatnonzero(a == 9)
        i = np.searchsorted(tabs, self.starts)
        self.tab1, self.tab2 = tabs[i], tabs[i + 1]
        alt_at = tabs[i + 2] + 1
        edge = np.zeros(a.size + 1, dtype=np.int8)  # +1 from REF's first byte to the line end
        edge[self.tab2 + 1] = 1
        edge[self.ends] -= 1
        alleles = np.cumsum(edge[:-1], dtype=np.int8).view(np.bool_)
        upper = a.copy()
        upper[alleles & (a >= 97) & (a <= 122)] -= 32
        self.keys = upper.tobytes().split(b"\n")[:-1]
        commas = np.flatnonzero(alleles & (a == 44))
        several = np.zeros(len(self.keys), dtype=np.bool_)
        several[np.searchsorted(self.ends, commas)] = True
        no_alt = (a[self.ends - 1] == 46) & (a[self.ends - 2] == 9)
        self.single = (~several & ~no_alt).tolist()
        # multi-ALT lines, one "CHROM POS REF ALT" line per ALT, gathered in one go: the ALT
        # pieces are disjoint and in order, so sorted starts and sorted ends pair up
        lines = np.flatnonzero(several)
        piece_beg = np.sort(np.concatenate((alt_at[lines], commas + 1)))
        piece_end = np.sort(np.concatenate((commas, self.ends[lines])))
        self.piece_line = np.searchsorted(self.ends, piece_beg)
        line_beg = self.starts[self.piece_line]
        begs = np.stack((line_beg, piece_beg, self.ends[self.piece_line]), axis=1).ravel()
        lens = np.stack((alt_at[self.piece_line] - line_beg, piece_end - piece_beg,
                         np.ones_like(piece_beg)), axis=1).ravel()
        offsets = np.cumsum(lens) - lens
        gather = np.repeat(begs - offsets, lens) + np.arange(int(lens.sum()))
        self.pieces = upper[gather].tobytes().split(b"\n")[:-1]

    def key_set(self) -> set[bytes]:
        keys = set(compress(self.keys, self.single))
        keys.update(self.pieces)
        return keys

    def count_in(self, matched: set[bytes]) -> int:
        import numpy as np

        n = sum(map(matched.__contains__, compress(self.keys, self.single)))
        hit = np.fromiter(map(matched.__contains__, self.pieces), dtype=np.bool_, count=len(self.pieces))
        return n + len(np.unique(self.piece_line[hit]))

    def chrom_pos(self) -> tuple[list[bytes], Any]:
        """Each line's CHROM, and its POS (an int64 array) from the digits between the first two tabs."""
        import numpy as np

        a, tab1, tab2 = self._a, self.tab1, self.tab2
        chunk = a.tobytes()
        chroms = [chunk[s:e] for s, e in zip(self.starts.tolist(), tab1.tolist(), strict=True)]
        width = tab2 - tab1 - 1
        pos = np.zeros(len(chroms), dtype=np.int64)
        for k in range(int(width.max(initial=0))):
            has = width > k
            pos[has] += (a[tab2[has] - 1 - k].astype(np.int64) - 48) * 10**k
        return chroms, pos


def _indexed_records(known_sites: str) -> int | None:
    """The record count of an indexed known-sites file (from its index), None without an index."""
    if not any(os.path.exists(known_sites + suffix) for suffix in (".tbi", ".csi")):
        return None
    try:
        return int(_bcftools("index", "-n", known_sites).strip() or 0)
    except ValueError:  # an index without record counts: take it for a large file
        return 1 << 40


def _windows(calls: _Alleles, out: str, budget: int) -> str:
    """A bcftools regions file of at most about `budget` windows over the calls' positions:
    gaps up to `_MERGE_GAP` merged, and wider ones (x4 at a time) until the budget holds."""
    import numpy as np

    chroms, pos = calls.chrom_pos()
    names = list(dict.fromkeys(chroms))
    code = {c: i for i, c in enumerate(names)}
    codes = np.fromiter(map(code.__getitem__, chroms), dtype=np.int64, count=len(chroms))
    order = np.lexsort((pos, codes))
    c, p = codes[order], pos[order]
    new_chrom = c[1:] != c[:-1]
    gaps = p[1:] - p[:-1]
    gap = _MERGE_GAP
    while True:
        first = np.concatenate(([True], new_chrom | (gaps > gap)))
        if np.count_nonzero(first) <= budget or gap > int(gaps.max(initial=0)):
            break
        gap = max(4 * gap, 1)
    begins = np.flatnonzero(first)
    lasts = np.concatenate((begins[1:] - 1, [len(p) - 1]))
    with open(out, "wb") as fh:
        for b, e in zip(begins.tolist(), lasts.tolist(), strict=True):
            fh.write(b"%s\t%d\t%d\n" % (names[c[b]], p[b], p[e]))
    return out


def _line_chunks(path: str, size: int) -> Iterator[bytes]:
    """The file in pieces of about `size` bytes, each ending at a line end."""
    with open(path, "rb") as fh:
        rest = b""
        while block := fh.read(size):
            block = rest + block
            cut = block.rfind(b"\n") + 1
            rest = block[cut:]
            if cut:
                yield block[:cut]
        if rest:
            yield rest + b"\n"
