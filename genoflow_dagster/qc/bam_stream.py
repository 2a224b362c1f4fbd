"""BAM records in numpy batches, for whole-file QC scans (no Dagster here).

`bam_batches(path)` opens a SAM, BAM or CRAM file as an uncompressed BAM
byte stream and yields its header, then `Batch`es of a few thousand records
each whose fields are numpy arrays: one vectorised pass per field instead of
one Python object per record. A BAM is inflated in-process (isal, BGZF is
multi-member gzip); SAM and CRAM are converted to uncompressed BAM by pysam's
bundled `samtools view -u` in a child process and read from its pipe, so
htslib still does every parse, and memory stays one batch whatever the size.

Raises ValueError when the stream is not BAM (bad magic, a truncated or
inconsistent record) or the converter fails.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import tempfile
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from isal import igzip

from genoflow_dagster.progress import ProgressCallback

CHUNK = 4 << 20  # bytes of uncompressed BAM per batch (about 13,000 short-read records)
MAX_RECORD = 1 << 28  # a larger record or header field is taken for corruption (a 100 Mb read is ~250 MB)

_I32 = struct.Struct("<i")
_U32 = struct.Struct("<I")
_AUX_FIXED = np.zeros(256, dtype=np.int64)  # value size of fixed-size aux types; 0: Z/H/B/unknown
for _t, _n in zip(b"AcCsSiIf", (1, 1, 1, 2, 2, 4, 4, 4), strict=True):
    _AUX_FIXED[_t] = _n
_B_ELEM = np.zeros(256, dtype=np.int64)
for _t, _n in zip(b"cCsSiIf", (1, 1, 2, 2, 4, 4, 4), strict=True):
    _B_ELEM[_t] = _n
_CSOFT, _CREF_SKIP = 4, 3


@dataclass
class Header:
    """The BAM header: its SAM text and the references' names and lengths, in tid order."""

    text: str
    names: list[str]
    lengths: list[int]


class Batch:
    """Complete records of one buffer; each fixed field (SAM spec 4.2) is an array with one value per record."""

    def __init__(self, buf: np.ndarray, offsets: np.ndarray) -> None:
        self.buf = buf
        self.n = len(offsets)
        # Every byte offset viewed as the start of a little-endian integer: one gather per field, no copies.
        self.i32, self.u32, self.u16, self.i16 = (_at_every_byte(buf, t) for t in ("<i4", "<u4", "<u2", "<i2"))
        i32, u16 = self.i32, self.u16
        self.tid, self.pos, self.mtid, self.mpos, self.tlen = (i32[offsets + k] for k in (4, 8, 24, 28, 32))
        self.mapq = buf[offsets + 13]
        self.n_cigar = u16[offsets + 16].astype(np.int64)
        self.flag = u16[offsets + 18]
        self.l_seq = i32[offsets + 20].astype(np.int64)
        self.end = offsets + 4 + i32[offsets]
        self.cigar_start = offsets + 36 + buf[offsets + 12]
        self.qual_start = self.cigar_start + 4 * self.n_cigar + (self.l_seq + 1) // 2
        self.aux_start = self.qual_start + self.l_seq
        if (self.l_seq < 0).any() or (self.aux_start > self.end).any():
            raise ValueError("BAM record fields run past the record's block size")
        self._cigar: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None

    def cigar(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(record index, op, length) of every CIGAR operation in record order, and the ops per record.

        A CIGAR longer than 65,535 operations is stored in the CG tag behind a
        `<l_seq>S<ref_len>N` placeholder; it is read from there, as htslib does.
        """
        if self._cigar is None:
            counts = self.n_cigar
            rec, raw = self._gather_u32(self.cigar_start, counts)
            long_cigar = self._long_cigar_records(counts, raw)
            if long_cigar.size:
                cg = self.find_tag(b"CG")
                counts = counts.copy()
                starts = self.cigar_start.copy()
                for i in long_cigar.tolist():
                    at = int(cg[i])
                    if at < 0 or self.buf[at] != ord("B") or self.buf[at + 1] != ord("I"):
                        continue
                    counts[i] = int(self.i32[at + 2])
                    starts[i] = at + 6
                rec, raw = self._gather_u32(starts, counts)
            self._cigar = (rec, (raw & 0xF).astype(np.int8), (raw >> 4).astype(np.int64), counts)
        return self._cigar

    def _gather_u32(self, starts: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rec = np.repeat(np.arange(self.n), counts)
        first = np.cumsum(counts) - counts
        at = np.repeat(starts, counts) + 4 * (np.arange(int(counts.sum())) - np.repeat(first, counts))
        return rec, self.u32[at]

    def _long_cigar_records(self, n_cigar: np.ndarray, raw: np.ndarray) -> np.ndarray:
        two = np.flatnonzero(n_cigar == 2)
        if not two.size:
            return two
        first = np.cumsum(n_cigar) - n_cigar
        op0, op1 = raw[first[two]], raw[first[two] + 1]
        l_seq = self.l_seq[two].astype(np.uint32)
        hit = (op0 == (l_seq << 4 | _CSOFT)) & ((op1 & 0xF) == _CREF_SKIP)
        return two[hit]

    def byte_sums(self, start: np.ndarray, length: np.ndarray) -> np.ndarray:
        """Sum of the bytes [start, start + length) of each record (e.g. its qualities), as int64.

        Records of one length are summed together as rows of a sliding-window view, which copies
        whole rows: far faster than a segmented reduction, and read lengths repeat.
        """
        out = np.zeros(len(start), dtype=np.int64)
        if len(length) and length.min() == length.max():  # the usual case: one read length
            if length[0] > 0:
                out[:] = np.lib.stride_tricks.sliding_window_view(self.buf, int(length[0]))[start].sum(axis=1)
            return out
        sizes, group = np.unique(length, return_inverse=True)
        for g, size in enumerate(sizes.tolist()):
            if size > 0:
                members = np.flatnonzero(group == g)
                rows = np.lib.stride_tricks.sliding_window_view(self.buf, size)[start[members]]
                out[members] = rows.sum(axis=1, dtype=np.int64)
        return out

    def find_tag(self, tag: bytes) -> np.ndarray:
        """Offset of the type byte of each record's first `tag` aux field, -1 where absent."""
        buf = self.buf
        key = tag[0] | tag[1] << 8
        found = np.full(self.n, -1, dtype=np.int64)
        cur = self.aux_start.copy()
        idx = np.flatnonzero(cur + 3 <= self.end)
        while idx.size:
            c = cur[idx]
            typ = buf[c + 2]
            hit = (self.u16[c] == key) & (found[idx] < 0)
            found[idx[hit]] = c[hit] + 2
            size = _AUX_FIXED[typ]
            var = size == 0
            if var.any():
                v = np.flatnonzero(var)
                vt = typ[v]
                string = (vt == ord("Z")) | (vt == ord("H"))
                if string.any():
                    s = v[string]
                    size[s] = self._string_sizes(c[s] + 3)
                arrays = v[vt == ord("B")]
                if arrays.size:
                    head = c[arrays] + 3
                    if (head + 5 > self.end[idx[arrays]]).any():
                        raise ValueError("BAM aux array runs past the record's block size")
                    count = self.u32[head + 1].astype(np.int64)
                    elem = _B_ELEM[buf[head]]
                    if (elem == 0).any():
                        raise ValueError("BAM aux array of an unknown element type")
                    size[arrays] = 5 + count * elem
                if (size == 0).any():
                    raise ValueError("BAM aux field of an unknown type")
            cur[idx] = c + 3 + size
            if (cur[idx] > self.end[idx]).any():
                raise ValueError("BAM aux field runs past the record's block size")
            idx = idx[~hit & (cur[idx] + 3 <= self.end[idx])]  # records still looking for the tag
        return found

    def _string_sizes(self, start: np.ndarray) -> np.ndarray:
        """Bytes of each NUL-terminated string from `start`, the NUL included."""
        buf = self.buf
        size = np.zeros(len(start), dtype=np.int64)
        # Most tag strings are short: look for the NUL in a window of the next 32 bytes of each.
        window = min(32, len(buf))
        near = np.minimum(start, len(buf) - window)
        rows = np.lib.stride_tricks.sliding_window_view(buf, window)[near] == 0
        rows &= np.arange(window) >= (start - near)[:, None]
        first = rows.argmax(axis=1)
        hit = rows[np.arange(len(start)), first]
        size[hit] = near[hit] + first[hit] - start[hit] + 1
        if not hit.all():
            raw = buf.tobytes()
            for i in np.flatnonzero(~hit).tolist():
                nul = raw.find(b"\0", int(start[i]))
                if nul < 0:
                    raise ValueError("BAM aux string without its terminating NUL")
                size[i] = nul - int(start[i]) + 1
        return size

    def int_tag(self, tag: bytes) -> tuple[np.ndarray, np.ndarray]:
        """(value, present) of an integer aux tag, as htslib's bam_aux2i reads it (other types count as 0)."""
        at = self.find_tag(tag)
        value = np.zeros(self.n, dtype=np.int64)
        present = at >= 0
        typ = np.zeros(self.n, dtype=np.uint8)
        typ[present] = self.buf[at[present]]
        for code, view in ((ord("c"), self.buf.view(np.int8)), (ord("C"), self.buf), (ord("s"), self.i16),
                           (ord("S"), self.u16), (ord("i"), self.i32), (ord("I"), self.u32)):
            sel = np.flatnonzero(typ == code)
            if sel.size:
                value[sel] = view[at[sel] + 1]
        return value, present


def _at_every_byte(buf: np.ndarray, dtype: str) -> np.ndarray:
    """A read-only view whose element i is the integer stored at bytes [i, i + size) (unaligned reads)."""
    size = np.dtype(dtype).itemsize
    n = max(len(buf) - size + 1, 0)
    return np.ndarray((n,), dtype=dtype, buffer=buf, strides=(1,))


def _record_offsets(buf: bytearray) -> tuple[np.ndarray, int]:
    """Offsets of the complete records in `buf`, and where the first incomplete one begins.

    The one sequential step of the scan (each record's size says where the next begins),
    kept to the least Python per record; sizes are read unsigned, so it always advances.
    """
    unpack = _U32.unpack_from
    offsets: list[int] = []
    append = offsets.append
    o = 0
    try:
        while True:
            append(o)
            o += 4 + unpack(buf, o)[0]
    except struct.error:  # fewer than 4 bytes left at o
        pass
    # The last offset is where fewer than 4 bytes were left; the ones before end at their successor.
    starts = np.asarray(offsets, dtype=np.int64)
    ends = starts[1:]
    n = int(np.searchsorted(ends, len(buf), side="right"))  # ends increase: complete records come first
    sizes = ends[:n] - starts[:n] - 4
    if (sizes < 32).any():
        raise ValueError(f"BAM record with block size {int(sizes.min())} (at least 32 expected)")
    if n < len(ends) and ends[n] - starts[n] - 4 > MAX_RECORD:
        raise ValueError(f"BAM record with block size {int(ends[n] - starts[n] - 4)} (corrupt?)")
    return starts[:n], int(starts[n])


def _is_bam(path: str) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(18)
    if head[:4] != b"\x1f\x8b\x08\x04" or head[12:14] != b"BC":
        return False
    try:
        with igzip.open(path, "rb") as gz:
            return gz.read(4) == b"BAM\x01"
    except (OSError, EOFError):
        return False


_CONVERT = (
    "import sys\n"
    "import pysam.samtools, pysam.utils\n"
    "args = ['-u', '--no-PG', '-o', '-']\n"
    "if sys.argv[2]:\n"
    "    args += ['--reference', sys.argv[2]]\n"
    "try:\n"
    "    pysam.samtools.view(*args, sys.argv[1], catch_stdout=False)\n"
    "except pysam.utils.SamtoolsError as exc:\n"
    "    sys.exit(str(exc))\n"
)


class _Stream:
    """A readable uncompressed BAM stream: the inflated file, or the converter's pipe."""

    def __init__(self, path: str, reference_fasta: str | None) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.fh: Any
        if _is_bam(path):
            self.fh = igzip.open(path, "rb")
        else:
            self.errors = tempfile.TemporaryFile(prefix="genoflow-samtools-")  # noqa: SIM115 - closed in close()
            env = os.environ.copy()
            if "REF_PATH" not in env:
                # Without REF_PATH htslib fetches CRAM references by MD5 from the EBI server: never.
                local = Path(reference_fasta).resolve().parent / "md5" if reference_fasta else Path(os.devnull)
                env["REF_PATH"] = str(local / "%s")
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _CONVERT, f"./{path}" if path.startswith("-") else path, reference_fasta or ""],
                # stderr to a file, not a pipe: a warning per record must not fill a pipe nobody reads yet.
                stdout=subprocess.PIPE, stderr=self.errors, env=env)
            # `-u` is BGZF at level 0: stored deflate blocks, cheap to inflate.
            self.fh = igzip.IGzipFile(fileobj=self.proc.stdout, mode="rb")

    def position(self) -> int | None:
        """Bytes of the file read so far (the compressed offset), or None when a converter reads it."""
        return self.fh.fileobj.tell() if self.proc is None else None

    def read(self, n: int) -> bytes:
        try:
            return self.fh.read(n)
        except (OSError, EOFError) as exc:
            raise ValueError(f"cannot read the alignment stream: {exc}") from exc

    def close(self, *, check: bool) -> None:
        """Close the stream; with `check`, a converter that failed raises ValueError with its message."""
        if self.fh is None:
            return
        self.fh.close()
        self.fh = None
        if self.proc is None:
            return
        if self.proc.stdout:
            self.proc.stdout.close()
        if not check:
            self.proc.kill()
        code = self.proc.wait()
        self.errors.seek(max(0, self.errors.seek(0, os.SEEK_END) - (64 << 10)))  # the tail says why
        err = self.errors.read().decode(errors="replace")
        self.errors.close()
        if check and code:
            lines = [line for line in err.splitlines() if line.startswith("[E::")] or err.strip().splitlines()[-1:]
            raise ValueError(f"samtools view could not read the file: {' '.join(lines[:3])[:500]}")


def _read_exact(stream: _Stream, buf: bytearray, need: int) -> None:
    while len(buf) < need:
        more = stream.read(max(CHUNK, need - len(buf)))
        if not more:
            raise ValueError("BAM stream ends inside its header")
        buf += more


def _parse_header(stream: _Stream, buf: bytearray) -> tuple[Header, int]:
    _read_exact(stream, buf, 12)
    if bytes(buf[:4]) != b"BAM\x01":
        raise ValueError("not a BAM stream (bad magic)")
    l_text = _I32.unpack_from(buf, 4)[0]
    if not 0 <= l_text <= MAX_RECORD:
        raise ValueError(f"BAM header text of {l_text} bytes (corrupt?)")
    _read_exact(stream, buf, 8 + l_text + 4)
    text = bytes(buf[8: 8 + l_text]).split(b"\0", 1)[0].decode(errors="replace")
    n_ref = _I32.unpack_from(buf, 8 + l_text)[0]
    if n_ref < 0:
        raise ValueError("BAM header with a negative reference count")
    o = 12 + l_text
    names: list[str] = []
    lengths: list[int] = []
    for _ in range(n_ref):
        _read_exact(stream, buf, o + 4)
        l_name = _I32.unpack_from(buf, o)[0]
        if not 0 < l_name <= MAX_RECORD:
            raise ValueError(f"BAM reference name of {l_name} bytes (corrupt?)")
        _read_exact(stream, buf, o + 8 + l_name)
        names.append(bytes(buf[o + 4: o + 4 + l_name]).rstrip(b"\0").decode(errors="replace"))
        lengths.append(_I32.unpack_from(buf, o + 4 + l_name)[0])
        o += 8 + l_name
    return Header(text, names, lengths), o


def bam_batches(path: str | Path, reference_fasta: str | None = None,
                progress: ProgressCallback | None = None) -> Generator[Header | Batch, None, None]:
    """The header, then every record in file order in `Batch`es (see the module docstring).

    `progress`, if given, is called after each batch with (bytes of a BAM read, or None for SAM/CRAM read
    through the converter; records so far), and with the file size at the end of a BAM.
    """
    stream = _Stream(str(path), reference_fasta)
    finished = False
    try:
        buf = bytearray()
        header, start = _parse_header(stream, buf)
        yield header
        del buf[:start]
        records = 0
        while True:
            more = stream.read(CHUNK)
            if more:
                buf += more
            offsets, used = _record_offsets(buf)
            if len(offsets):
                arr = np.frombuffer(buf, dtype=np.uint8, count=used).copy()  # the copy frees buf for resizing
                yield Batch(arr, offsets)
                del buf[:used]
                records += len(offsets)
                if progress is not None:
                    progress(stream.position(), records)
            if not more:
                if buf:
                    raise ValueError("BAM stream ends inside a record")
                if progress is not None:
                    progress(stream.position(), records)
                break
        finished = True
    except ValueError:
        if stream.proc is not None:  # the converter's own message explains a broken stream best
            finished = True
            stream.close(check=True)
        raise
    finally:
        if stream.fh is not None:
            stream.close(check=finished)
