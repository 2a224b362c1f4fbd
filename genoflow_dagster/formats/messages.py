"""How values from a file appear in the messages people read (docs/ERROR_CODES.md, "How values are shown").

A message names the offending value as text, never as a Python repr: in single
quotes, cut after a limit (then `...`); a byte that is not printable text (a
control character, or a byte that is not UTF-8) is shown as `<0xNN>`, so an
invisible byte is named rather than dropped or written as a Python escape.
"""

from __future__ import annotations

import re

_SURROGATES = range(0xDC80, 0xDD00)  # surrogateescape: the undecodable bytes 0x80..0xFF


def _char(c: str) -> str:
    if ord(c) in _SURROGATES:
        return f"<0x{ord(c) - 0xDC00:02X}>"
    return c if c.isprintable() else f"<0x{ord(c):02X}>"


def shown(value: bytes | str, limit: int = 30) -> str:
    """`value` for a message: quoted, cut after `limit` characters, unprintable bytes as <0xNN>."""
    text = value.decode("utf-8", errors="surrogateescape") if isinstance(value, bytes) else value
    body = "".join(_char(c) for c in text[:limit])
    return f"'{body}'" + ("..." if len(text) > limit else "")


def shown_character(value: bytes | str) -> str:
    """One offending character: 'Z', a space, a tab, or a byte 0xNN that is not printable text."""
    text = value.decode("utf-8", errors="surrogateescape") if isinstance(value, bytes) else value
    if text == " ":
        return "a space"
    if text == "\t":
        return "a tab"
    if len(text) == 1 and (ord(text) in _SURROGATES or not text.isprintable()):
        return f"the byte {_char(text)[1:-1]}"
    return shown(text, 8)


_BYTES_REPR = re.compile(r"""\bb(['"])((?:\\.|(?!\1).)*)\1""")
_ESCAPE = re.compile(r"\\x([0-9a-fA-F]{2})")


def library_error(exc: BaseException) -> str:
    """A decoder's or reader's exception as plain text: no `[Errno n]`, no Python byte reprs or escapes.

    htslib reports a damaged block through errno, often a misleading one ("No such file or directory"
    on close): an OSError with an errno becomes "damaged or truncated data".
    """
    if isinstance(exc, OSError) and exc.errno is not None:
        return "damaged or truncated data"
    if isinstance(exc, KeyError) and exc.args and isinstance(exc.args[0], str):
        text = exc.args[0]  # str(KeyError) is the repr of its argument
    else:
        text = str(exc) or type(exc).__name__
    text = _BYTES_REPR.sub(lambda m: "'" + m.group(2) + "'", text)
    return _ESCAPE.sub(lambda m: f"<0x{m.group(1).upper()}>", text)
