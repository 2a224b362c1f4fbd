"""Each benchmark script owns one `## ...` section of benchmarks/RESULTS.md and rewrites only that one."""

from __future__ import annotations

import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def replace_section(heading: str, block: str, results: Path = RESULTS) -> None:
    """Replace the section starting at `heading` (up to the next `## `) with `block`, or append it."""
    text = results.read_text() if results.exists() else "# Benchmark results\n\n"
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    # A replacement function, not a string: backslashes in the block stay literal.
    text = pattern.sub(lambda _: block + "\n", text) if pattern.search(text) else text.rstrip() + "\n\n" + block
    results.write_text(text)
