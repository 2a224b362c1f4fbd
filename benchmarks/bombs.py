"""Decompression bombs: how fast and in how much memory `validate_file` refuses them.

    python benchmarks/bombs.py [--gzip-gib 10] [--xlsx-gib 2]

Bombs built here (cached in benchmarks/work/, a few MB each on disk):
- `zeros.fastq.gz`: 10 GiB of NUL bytes as concatenated gzip members (one
  256 MiB member compressed once, repeated). Refused at the first look.
- `line.fastq.gz`: 10 GiB of 'A' and no line break (text, so it passes the
  binary check; the line-length cap stops it).
- `records.fastq.gz`: 10 GiB of one *valid* FASTQ record repeated, so the
  validator has to stream it until the decompression cap trips.
- `bomb.xlsx`: a workbook whose sheet part expands to `--xlsx-gib` GiB of
  well-formed rows (deflate ~1000:1).
Each is validated in its own process; wall time and that process's peak RSS
go to the `## Decompression bombs` section of benchmarks/RESULTS.md.
Acceptance (issue 3): refused in <= 5 s with peak RSS <= 256 MB.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import zipfile
import zlib
from pathlib import Path

from results_md import replace_section

HERE = Path(__file__).resolve().parent
WORK = HERE / "work"
SECTION = "## Decompression bombs"
MEMBER_BYTES = 256 * 1024**2
CHUNK = 8 * 1024**2


def gzip_member(pattern: bytes, size: int) -> bytes:
    """One gzip member holding `size` bytes of `pattern` repeated, compressed at level 9."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = pattern * (CHUNK // len(pattern))
    parts = []
    written = 0
    while written < size:
        piece = block[: min(len(block), size - written)]
        parts.append(compressor.compress(piece))
        written += len(piece)
    parts.append(compressor.flush())
    return b"".join(parts)


def gzip_bomb(path: Path, pattern: bytes, expanded_gib: int) -> Path:
    if not path.exists():
        member = gzip_member(pattern, MEMBER_BYTES - MEMBER_BYTES % len(pattern))
        with open(path, "wb") as out:
            for _ in range(expanded_gib * 1024**3 // MEMBER_BYTES):
                out.write(member)
    return path


def xlsx_bomb(path: Path, expanded_gib: int) -> Path:
    """A structurally complete workbook whose one sheet expands to `expanded_gib` GiB."""
    if path.exists():
        return path
    row = b'<row><c t="n"><v>1</v></c></row>'
    block = row * (CHUNK // len(row))
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as book:
        book.writestr("[Content_Types].xml",
                      '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/'
                      'package/2006/content-types"><Override PartName="/xl/workbook.xml" ContentType="application/'
                      'vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/></Types>')
        book.writestr("xl/workbook.xml",
                      '<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/'
                      'spreadsheetml/2006/main"><sheets><sheet name="s" sheetId="1"/></sheets></workbook>')
        with book.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as sheet:
            sheet.write(b'<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.'
                        b'openxmlformats.org/spreadsheetml/2006/main"><sheetData>')
            for _ in range(expanded_gib * 1024**3 // len(block)):
                sheet.write(block)
            sheet.write(b"</sheetData></worksheet>")
    return path


MEASURE = """
import json, resource, sys, time
from genoflow_dagster.formats.validate import validate_file
start = time.perf_counter()
result = validate_file(sys.argv[1])
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "valid": result.valid, "error_code": str(result.error_code), "reason": result.reason}))
"""


def measure(path: Path) -> dict:
    """Validate in a fresh process; seconds are the call's own (interpreter start-up excluded)."""
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", MEASURE, str(path)], check=True, capture_output=True, text=True)
    data = json.loads(out.stdout.strip().splitlines()[-1])
    data["process_seconds"] = time.perf_counter() - started
    return data


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gzip-gib", type=int, default=10)
    parser.add_argument("--xlsx-gib", type=int, default=2)
    args = parser.parse_args()
    WORK.mkdir(exist_ok=True)
    record = b"@bomb:1\nACGTACGTACGTACGTACGTACGTACGTACGTACGTACGT\n+\nIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIIII\n"
    bombs = [
        ("gzip of NUL bytes, named .fastq.gz", gzip_bomb(WORK / f"zeros_{args.gzip_gib}g.fastq.gz", b"\0",
                                                         args.gzip_gib), args.gzip_gib),
        ("gzip of one endless line of bases", gzip_bomb(WORK / f"line_{args.gzip_gib}g.fastq.gz", b"A",
                                                        args.gzip_gib), args.gzip_gib),
        ("gzip of one valid FASTQ record repeated", gzip_bomb(WORK / f"records_{args.gzip_gib}g.fastq.gz", record,
                                                              args.gzip_gib), args.gzip_gib),
        ("XLSX whose sheet part expands", xlsx_bomb(WORK / f"bomb_{args.xlsx_gib}g.xlsx", args.xlsx_gib),
         args.xlsx_gib),
    ]
    lines = [SECTION, "",
             "`python benchmarks/bombs.py`: each bomb validated in a fresh process; time of the `validate_file` "
             "call and the process's peak RSS. Target (issue 3): refused in <= 5 s, peak RSS <= 256 MB.", "",
             "| bomb | on disk MB | expands to GiB | verdict | reason | seconds | peak RSS MB | target met |",
             "|---|---|---|---|---|---|---|---|"]
    for label, path, gib in bombs:
        data = measure(path)
        met = not data["valid"] and data["seconds"] <= 5 and data["rss_kib"] / 1024 <= 256
        print(f"{label:45s} {data['reason'] or 'VALID':22s} {data['seconds']:6.2f}s {data['rss_kib'] / 1024:6.0f} MB",
              flush=True)
        lines.append(f"| {label} | {path.stat().st_size / 1e6:.1f} | {gib} | "
                     f"{'refused' if not data['valid'] else 'ACCEPTED'} | {data['reason'] or '-'} | "
                     f"{data['seconds']:.2f} | {data['rss_kib'] / 1024:.0f} | {'yes' if met else 'NO'} |")
    replace_section(SECTION, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
