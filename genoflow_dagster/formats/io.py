"""Streaming access to possibly compressed files.

gzip and BGZF (a gzip variant made of many members) are read through isal's
igzip, several times faster than the standard library, with `gzip` as the
fallback; bzip2 (some archives still ship .vcf.bz2) through the standard
library. Compression is recognised from magic bytes, never from the name.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import os
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import BinaryIO, cast

_gzip_impl: ModuleType
_isal_error: type[BaseException]
try:  # isal is a hard dependency, but keep the pipeline alive on a platform without wheels
    from isal import igzip as _gzip_impl
    from isal import isal_zlib

    _isal_error = cast(type[BaseException], isal_zlib.error)  # isal's stub declares an instance; it is the class
except ImportError:  # pragma: no cover
    _gzip_impl = gzip
    _isal_error = zlib.error

# Everything a damaged zip archive (XLSX) can raise while its directory or members are read.
ZIP_ERRORS: tuple[type[BaseException], ...] = (
    zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, UnicodeDecodeError, ValueError,
)

# Everything a damaged gzip/BGZF stream can raise while being read.
DECOMPRESSION_ERRORS: tuple[type[BaseException], ...] = (OSError, EOFError, zlib.error, _isal_error)

GZIP_MAGIC = b"\x1f\x8b"
BZIP2_MAGIC = b"BZh"
ZIP_MAGIC = b"PK\x03\x04"

READ_CHUNK = 4 * 1024 * 1024


def sha256_file(path: str | Path) -> str:
    """SHA-256 (hex) of a file's bytes as stored, read in chunks (memory stays flat)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(READ_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def remembered_per_version(path: str | Path, memo_dir: str | Path, compute: Callable[[Path], str], *,
                           refresh: bool = False, salt: str = "") -> str:
    """`compute(path)`, remembered in `memo_dir` per version of the file: its real path, size, mtime and
    inode (plus `salt`, e.g. the code version whose verdict it is).

    A replaced file gets a new mtime (or inode, or size) and is computed again; `refresh=True` computes
    whatever the memo says. A file that changes while it is read is not remembered.
    """
    before = os.stat(path)
    stamp = f"{salt}\0{os.path.realpath(path)}\0{before.st_size}\0{before.st_mtime_ns}\0{before.st_ino}"
    memo = Path(memo_dir) / hashlib.sha256(stamp.encode()).hexdigest()[:32]
    if not refresh:
        try:
            return memo.read_text()
        except OSError:
            pass
    value = compute(Path(path))
    after = os.stat(path)
    if (after.st_size, after.st_mtime_ns, after.st_ino) == (before.st_size, before.st_mtime_ns, before.st_ino):
        memo.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo.with_name(f".{memo.name}.{os.getpid()}.part")
        tmp.write_text(value)
        tmp.replace(memo)
    return value


def sha256_file_cached(path: str | Path, cache_dir: str | Path, *, refresh: bool = False) -> str:
    """`sha256_file`, remembered per version of the file in `cache_dir/checksums/` (`remembered_per_version`).

    A multi-gigabyte reference is hashed once, not by every step that uses it; `refresh=True` re-hashes (the
    weekly reference job does, for a file rewritten in place with its old timestamp).
    """
    value = remembered_per_version(path, Path(cache_dir) / "checksums", sha256_file, refresh=refresh)
    if len(value) != 64:  # a damaged memo: hash again
        value = remembered_per_version(path, Path(cache_dir) / "checksums", sha256_file, refresh=True)
    return value


def sniff(path: str | Path, n: int = 512) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(n)


def is_bgzf(head: bytes) -> bool:
    """BGZF: gzip with FEXTRA carrying the 'BC' subfield (SAM spec section 4.1)."""
    return (
        len(head) >= 18
        and head[:2] == GZIP_MAGIC
        and head[3] & 4 == 4
        and head[12:14] == b"BC"
    )


def is_bzip2(head: bytes) -> bool:
    """'BZh' then the block size digit 1-9, then a block or end-of-stream magic."""
    return len(head) >= 10 and head[:3] == BZIP2_MAGIC and 0x31 <= head[3] <= 0x39 and \
        head[4:10] in (b"1AY&SY", b"\x17rE8P\x90")


def compression_of(path: str | Path) -> str:
    """'bgzf', 'gzip', 'bzip2', 'zip' or 'none', from the first bytes of the file."""
    head = sniff(path, 18)
    if head[:2] == GZIP_MAGIC:
        return "bgzf" if is_bgzf(head) else "gzip"
    if is_bzip2(head):
        return "bzip2"
    if head[:4] == ZIP_MAGIC:
        return "zip"
    return "none"


def open_decompressed(path: str | Path) -> BinaryIO:
    """A binary stream of the file's content: gzip/BGZF decompressed, anything else as is."""
    head = sniff(path, 10)
    if head[:2] == GZIP_MAGIC:
        return _gzip_impl.open(path, "rb")
    if is_bzip2(head):
        return bz2.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb", buffering=READ_CHUNK)
