"""Line iteration shared by the text validators."""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO


def numbered_lines(stream: BinaryIO) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, line without its line ending); CRLF endings are accepted."""
    for number, line in enumerate(stream, start=1):
        if line.endswith(b"\n"):
            line = line[:-1]
        if line.endswith(b"\r"):
            line = line[:-1]
        yield number, line


def printable(text: bytes) -> bool:
    """Only visible ASCII and space/tab: no control characters, no bytes above 126."""
    return not text.translate(None, bytes(range(32, 127)) + b"\t")
