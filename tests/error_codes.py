"""The reason codes the validators emit, found in their source, and the ones docs/ERROR_CODES.md documents.

    .venv/bin/python tests/error_codes.py    # lists codes missing from the catalogue, as rows to fill in

A code is an upper-case string literal with an underscore (`"FASTQ_TRUNCATED"`) anywhere in
genoflow_dagster/formats/*.py, or an f-string `f"{prefix}_SCORE_INVALID"` (gff.py: GFF3_ and GTF_). Its
severity is read where the literal is the reason of a call: `warn(...)` is a warning, `FormatError(...)`,
`_fail(...)` and `Detection(...)` an error; codes passed on through variables or helpers have no severity
read here, and only their presence in the catalogue is checked.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORMATS = ROOT / "genoflow_dagster" / "formats"
CATALOGUE = ROOT / "docs" / "ERROR_CODES.md"
CODE = re.compile(r"^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$")
NOT_CODES = {"REF_PATH", "REF_CACHE", "GENOFLOW_DATA_DIR"}  # environment variable names
PREFIXES = {"gff.py": ("GFF3", "GTF")}  # files that build codes as f"{prefix}_..."
SEVERITY = {"warn": "warning", "FormatError": "error", "_fail": "error", "Detection": "error"}


def emitted_codes(formats: Path = FORMATS) -> dict[str, set[str]]:
    """Every code in the validators' source -> the severities read where it is raised or warned."""
    codes: dict[str, set[str]] = {}
    for path in sorted(formats.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
                for arg in node.args:
                    for code in _codes_in(arg, path.name):
                        codes.setdefault(code, set()).update({SEVERITY[name]} if name in SEVERITY else set())
            for code in _codes_in(node, path.name):
                codes.setdefault(code, set())
    return codes


def _codes_in(node: ast.AST, filename: str) -> list[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value] if CODE.match(node.value) and node.value not in NOT_CODES else []
    if isinstance(node, ast.JoinedStr) and len(node.values) == 2 and isinstance(node.values[0], ast.FormattedValue):
        tail = node.values[1]
        if isinstance(tail, ast.Constant) and re.match(r"^_[A-Z0-9]+(?:_[A-Z0-9]+)*$", str(tail.value)):
            return [prefix + str(tail.value) for prefix in PREFIXES.get(filename, ())]
    return []


def documented_codes(catalogue: Path = CATALOGUE) -> dict[str, str]:
    """Code -> the severity cell of its catalogue row (rows start `| \\`CODE\\``, several codes may share one)."""
    rows: dict[str, str] = {}
    for line in catalogue.read_text().splitlines():
        if not line.startswith("| `"):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        for code in re.findall(r"`([A-Z][A-Z0-9_]+)`", cells[0]):
            rows[code] = cells[1].lower() if len(cells) > 1 else ""
    return rows


def problems(emitted: dict[str, set[str]], documented: dict[str, str]) -> list[str]:
    found = []
    for code, severities in sorted(emitted.items()):
        if code not in documented:
            found.append(f"{code}: not in docs/ERROR_CODES.md")
            continue
        for severity in sorted(severities):
            if severity not in documented[code]:
                found.append(f"{code}: raised as a {severity} in the source, the catalogue says "
                             f"'{documented[code]}'")
    return found


if __name__ == "__main__":
    emitted, documented = emitted_codes(), documented_codes()
    missing = [code for code in sorted(emitted) if code not in documented]
    for problem in problems(emitted, documented):
        print(problem, file=sys.stderr)
    print("\nRows to complete (code | severity | specification, version, section | meaning):")
    for code in missing:
        print(f"| `{code}` | {' / '.join(sorted(emitted[code])) or '?'} | ? | ? |")
    sys.exit(1 if missing else 0)
