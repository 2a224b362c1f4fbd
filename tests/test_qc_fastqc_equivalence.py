"""GenoFlow's FASTQ QC against FastQC itself: module statuses and the numbers of fastqc_data.txt.

FastQC runs once per file (module-scoped fixture) with its defaults, grouping on, as users run
it; its report is read by the small parser below. Skipped when `fastqc` is not on PATH.

What is compared, per module (FastQC's name -> GenoFlow's metric):
- statuses of every module GenoFlow grades (summary.txt vs `grade(..., standard)`); FastQC's
  per-tile module has no GenoFlow counterpart and is left out;
- per base sequence quality: every group's label, mean, median, quartiles, 10th/90th percentile;
- per sequence quality scores, per sequence GC content, per base N content, per base sequence
  content, sequence length distribution: every row;
- sequence duplication levels: the total deduplicated percentage;
- overrepresented sequences: sequence, count, percentage (not the possible source: GenoFlow
  names sources from its own short list);
- adapter content: every group of the adapters both lists have (FastQC 0.11 has a SOLiD
  adapter, 0.12 and GenoFlow poly-A and poly-G instead).
"""

from __future__ import annotations

import gzip
import math
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from genoflow_dagster.qc.fastq import fastq_metrics
from genoflow_dagster.qc.profiles import grade, load_profile

REALDATA = Path(__file__).resolve().parents[1].parent / "shared" / "realdata"
REAL_FASTQS = sorted(p.name for p in REALDATA.glob("*.fastq*")) if REALDATA.is_dir() else []
HAVE_FASTQC = shutil.which("fastqc") is not None
TOLERANCE = 1e-9  # relative: FastQC sums doubles in another order

pytestmark = pytest.mark.skipif(not HAVE_FASTQC, reason="fastqc not installed")

# FastQC's module names (fastqc_data.txt / summary.txt) -> GenoFlow's (qc.profiles.FASTQ_MODULES)
MODULES = {
    "Basic Statistics": "basic statistics",
    "Per base sequence quality": "per base sequence quality",
    "Per sequence quality scores": "per sequence quality scores",
    "Per base sequence content": "per base sequence content",
    "Per sequence GC content": "per sequence GC content",
    "Per base N content": "per base N content",
    "Sequence Length Distribution": "sequence length distribution",
    "Sequence Duplication Levels": "sequence duplication levels",
    "Overrepresented sequences": "overrepresented sequences",
    "Adapter Content": "adapter content",
}


# ---------------------------------------------------------------- FastQC's report, parsed

def parse_fastqc_data(text: str) -> dict[str, dict[str, Any]]:
    """fastqc_data.txt as {module: {"status", "columns", "rows", "meta"}}.

    A module is `>>Name<TAB>status`, then `#`-lines, then tab-separated rows, then
    `>>END_MODULE`. The last `#`-line before the rows names the columns; earlier ones with a
    value (`#Total Deduplicated Percentage<TAB>88.1`) go to `meta`. Raises ValueError on a line
    outside a module."""
    modules: dict[str, dict[str, Any]] = {}
    current: dict[str, Any] | None = None
    for number, line in enumerate(text.splitlines(), 1):
        if not line or line.startswith("##"):
            continue
        if line == ">>END_MODULE":
            current = None
            continue
        if line.startswith(">>"):
            name, _, status = line[2:].partition("\t")
            current = modules[name] = {"status": status, "columns": [], "rows": [], "meta": {}}
            continue
        if current is None:
            raise ValueError(f"line {number}: outside a module: {line!r}")
        if line.startswith("#"):
            if current["columns"]:
                key, value = current["columns"][0], current["columns"][1:]
                current["meta"][key] = value[0] if len(value) == 1 else value
            current["columns"] = line[1:].split("\t")
            continue
        current["rows"].append(line.split("\t"))
    return modules


def parse_summary(text: str) -> dict[str, str]:
    """summary.txt (`STATUS<TAB>Module<TAB>file`) as {module: "pass" | "warn" | "fail"}."""
    out = {}
    for line in text.splitlines():
        if line.strip():
            status, module, _ = line.split("\t")
            out[module] = status.lower()
    return out


def run_fastqc(paths: list[Path], outdir: Path) -> dict[str, tuple[dict[str, str], dict[str, dict[str, Any]]]]:
    """FastQC with its defaults on every file in one run (one JVM start, a few threads):
    {file name: (summary, data)}."""
    subprocess.run(["fastqc", "--extract", "--quiet", "--threads", "4", "-o", str(outdir), *map(str, paths)],
                   check=True, capture_output=True)
    out = {}
    for path in paths:
        stem = path.name
        for suffix in (".gz", ".bz2", ".fastq", ".fq"):
            stem = stem.removesuffix(suffix)
        folder = outdir / f"{stem}_fastqc"
        out[path.name] = (parse_summary((folder / "summary.txt").read_text()),
                          parse_fastqc_data((folder / "fastqc_data.txt").read_text()))
    return out


# ---------------------------------------------------------------- comparison

def _num(text: str) -> float | None:
    value = float(text)  # Java prints NaN as "NaN"
    return None if math.isnan(value) else value


def _close(ours: float | None, theirs: float | None) -> bool:
    if ours is None or theirs is None:
        return ours is None and theirs is None
    return math.isclose(ours, theirs, rel_tol=TOLERANCE, abs_tol=TOLERANCE)


def differences(metrics: dict[str, Any], summary: dict[str, str],
                data: dict[str, dict[str, Any]]) -> tuple[list[str], float]:
    """Every status and number where GenoFlow's metrics differ from FastQC's report, and the
    largest absolute numeric difference seen (0 when all are equal)."""
    out: list[str] = []
    worst = 0.0

    def same(where: str, ours: float | None, theirs: float | None) -> None:
        nonlocal worst
        if ours is not None and theirs is not None:
            worst = max(worst, abs(ours - theirs))
        if not _close(ours, theirs):
            out.append(f"{where}: ours {ours} FastQC {theirs}")

    def rows(module: str, ours: list[tuple[str, list[float | None]]]) -> None:
        theirs = data[module]["rows"]
        labels = [r[0] for r in theirs]
        if [label for label, _ in ours] != labels:
            out.append(f"{module}: groups {[label for label, _ in ours]} FastQC {labels}")
            return
        for (label, values), row in zip(ours, theirs, strict=True):
            for column, mine, text in zip(data[module]["columns"][1:], values, row[1:], strict=True):
                same(f"{module} {label} {column}", mine, _num(text))

    basic = dict(data["Basic Statistics"]["rows"])
    low, high = metrics["min_length"], metrics["max_length"]
    if (basic["Total Sequences"], basic["Sequence length"]) != (str(metrics["total_reads"]),
                                                                f"{low}-{high}" if low != high else str(high)):
        out.append(f"Basic Statistics: {basic} ours {metrics['total_reads']} reads of {low}-{high}")

    verdict = {m["name"]: m["status"] for m in grade({**metrics, "format": "fastq"},
                                                     load_profile("standard"))["modules"]}
    for fastqc_name, ours in MODULES.items():
        if verdict.get(ours) != summary[fastqc_name]:
            out.append(f"status {fastqc_name}: ours {verdict.get(ours)} FastQC {summary[fastqc_name]}")

    rows("Per base sequence quality", [(r["base"], [r["mean"], r["median"], r["lower_quartile"],
                                                    r["upper_quartile"], r["p10"], r["p90"]])
                                       for r in metrics["per_position_quality"]])
    rows("Per sequence quality scores", [(q, [float(n)]) for q, n in metrics["per_sequence_quality"].items()])
    rows("Per base sequence content", [(r["base"], [r["G"], r["A"], r["T"], r["C"]])
                                       for r in metrics["per_base_content"]])
    rows("Per sequence GC content", [(str(i), [v]) for i, v in enumerate(metrics["per_sequence_gc"])])
    rows("Per base N content", [(r["base"], [r["N"]]) for r in metrics["per_base_n"]])
    rows("Sequence Length Distribution", [(r["length"], [float(r["count"])])
                                          for r in metrics["length_distribution_groups"]])
    same("Sequence Duplication Levels total deduplicated %", metrics["deduplicated_percent"],
         _num(data["Sequence Duplication Levels"]["meta"]["Total Deduplicated Percentage"]))

    theirs_over = sorted((r[0], int(r[1]), float(r[2])) for r in data["Overrepresented sequences"]["rows"])
    ours_over = sorted((s["sequence"], s["count"], s["percent"]) for s in metrics["overrepresented_sequences"])
    if [(s, c) for s, c, _ in ours_over] != [(s, c) for s, c, _ in theirs_over]:
        out.append(f"Overrepresented sequences: ours {len(ours_over)} rows FastQC {len(theirs_over)}: "
                   f"{sorted(set(ours_over) ^ set(theirs_over))[:4]}")
    else:
        for (seq, _, mine), (_, _, percent) in zip(ours_over, theirs_over, strict=True):
            same(f"Overrepresented {seq}", mine, percent)

    adapters = data["Adapter Content"]
    labels = [r[0] for r in adapters["rows"]]
    ours_labels = metrics["adapter_content_positions"]
    # FastQC 0.12 drops trailing groups where every adapter is at 0
    if ours_labels[: len(labels)] != labels or any(v for values in metrics["adapter_content"].values()
                                                   for v in values[len(labels):]):
        out.append(f"Adapter Content: groups {ours_labels} FastQC {labels}")
    else:
        for column, name in enumerate(adapters["columns"][1:], 1):
            for label, mine, row in zip(labels, metrics["adapter_content"].get(name, []), adapters["rows"],
                                        strict=False):
                same(f"Adapter Content {name} {label}", mine, _num(row[column]))
    return out, worst


# ---------------------------------------------------------------- the files

def _generated(path: Path, lengths: list[int], seed: int) -> Path:
    """Reads of the given lengths: a GC-rich and an AT-rich population, a few repeated reads,
    adapters and N runs, lower case, quality falling along the read."""
    rng = np.random.default_rng(seed)
    alphabet = np.frombuffer(b"ACGT", dtype=np.uint8)
    repeat = bytes(alphabet[rng.integers(0, 4, 400)])
    records = []
    for i, length in enumerate(lengths):
        p = [0.15, 0.35, 0.35, 0.15] if i % 3 else [0.3, 0.2, 0.2, 0.3]
        seq = bytearray(alphabet[rng.choice(4, length, p=p)].tobytes())
        if i % 17 == 0:
            seq[:] = repeat[:length] if length <= len(repeat) else seq
        if length > 30 and i % 5 == 0:
            at = int(rng.integers(0, length - 12))
            seq[at:at + 12] = b"AGATCGGAAGAG" if i % 2 else b"CTGTCTCTTATA"
        if length > 20 and i % 11 == 0:
            seq[5:9] = b"NNNN"
        if i % 13 == 0:
            seq[:] = seq.lower()
        base = np.clip(38 - np.arange(length) * 25 // max(length, 1), 2, 41)
        qual = np.clip(base + rng.integers(-6, 4, length), 2, 41)
        records.append(b"@g%d\n%s\n+\n%s\n" % (i, bytes(seq), (qual + 33).astype(np.uint8).tobytes()))
    data = b"".join(records)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def _phred64(path: Path) -> Path:
    """Illumina 1.5 qualities (offset 64, lowest 'B'): FastQC guesses the offset from them."""
    rng = np.random.default_rng(64)
    alphabet = np.frombuffer(b"ACGT", dtype=np.uint8)
    path.write_bytes(b"".join(b"@p%d\n%s\n+\n%s\n" % (i, alphabet[rng.integers(0, 4, 50)].tobytes(),
                                                         (rng.integers(2, 41, 50) + 64).astype(np.uint8).tobytes())
                             for i in range(300)))
    return path


def _many_distinct(path: Path) -> Path:
    """150,000 reads of 36 bp, three in four distinct and the rest drawn from 2,000 sequences
    (a few of them hot): more than the 100,000 distinct sequences FastQC tracks, so its count
    goes on past the limit and its deduplicated % is corrected for what tracking missed."""
    rng = np.random.default_rng(100)
    alphabet = np.frombuffer(b"ACGT", dtype=np.uint8)
    reads = alphabet[rng.integers(0, 4, (150_000, 36))]
    pool = alphabet[rng.integers(0, 4, (2_000, 36))]
    drawn = rng.random(150_000) < 0.25
    picks = np.where(rng.random(150_000) < 0.05, rng.integers(0, 3, 150_000), rng.integers(0, 2_000, 150_000))
    reads[drawn] = pool[picks[drawn]]
    quals = (rng.integers(2, 41, (150_000, 36)) + 33).astype(np.uint8)
    path.write_bytes(b"".join(b"@m%d\n%s\n+\n%s\n" % (i, reads[i].tobytes(), quals[i].tobytes())
                             for i in range(150_000)))
    return path


def _mode_27(path: Path) -> Path:
    """Every read's mean quality exactly 27: FastQC warns (mode <= 27), per-base quality passes."""
    rng = np.random.default_rng(27)
    alphabet = np.frombuffer(b"ACGT", dtype=np.uint8)
    path.write_bytes(b"".join(b"@q%d\n%s\n+\n%s\n" % (i, alphabet[rng.integers(0, 4, 60)].tobytes(), b"<" * 60)
                             for i in range(300)))
    return path


# short fixed-length; variable length with empty reads; long reads (GC cut to 1000s, groups of 50/100)
GENERATED = {
    "fixed150.fastq": lambda folder: _generated(folder / "fixed150.fastq", [150] * 3000, 0),
    "variable.fastq.gz": lambda folder: _generated(
        folder / "variable.fastq.gz", [int(x) for x in np.random.default_rng(1).integers(0, 320, 2500)], 1),
    "long.fastq": lambda folder: _generated(
        folder / "long.fastq", [int(x) for x in np.random.default_rng(2).integers(150, 4200, 400)], 2),
    "mode27.fastq": lambda folder: _mode_27(folder / "mode27.fastq"),
    "phred64.fastq": lambda folder: _phred64(folder / "phred64.fastq"),
    "distinct150k.fastq": lambda folder: _many_distinct(folder / "distinct150k.fastq"),
}
OFFSETS = {"phred64.fastq": None}  # FastQC's guess; the others: the default, 33


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict[str, str], dict[str, Any]]]:
    """FastQC's summary and data for every realdata and generated file, run once for the module."""
    folder = tmp_path_factory.mktemp("generated")
    paths = [REALDATA / name for name in REAL_FASTQS] + [make(folder) for make in GENERATED.values()]
    found = run_fastqc(paths, tmp_path_factory.mktemp("fastqc"))
    return {path.name: (path, *found[path.name]) for path in paths}


@pytest.mark.skipif(not REAL_FASTQS, reason="realdata absent")
@pytest.mark.parametrize("name", REAL_FASTQS)
def test_realdata_equals_fastqc(reports: dict[str, Any], name: str) -> None:
    path, summary, data = reports[name]
    problems, _ = differences(fastq_metrics(path), summary, data)
    assert not problems, "\n".join(problems[:40])


@pytest.mark.parametrize("name", list(GENERATED))
def test_generated_files_equal_fastqc(reports: dict[str, Any], name: str) -> None:
    path, summary, data = reports[name]
    problems, _ = differences(fastq_metrics(path, quality_offset=OFFSETS.get(name, 33)), summary, data)
    assert not problems, "\n".join(problems[:40])
    if name == "mode27.fastq":
        assert summary["Per sequence quality scores"] == "warn"


def test_parser_reads_modules_columns_and_meta() -> None:
    text = ("##FastQC\t0.11.9\n>>Basic Statistics\tpass\n#Measure\tValue\nTotal Sequences\t3\n>>END_MODULE\n"
            ">>Sequence Duplication Levels\twarn\n#Total Deduplicated Percentage\t66.6\n"
            "#Duplication Level\tPercentage of total\n1\t50.0\n>>END_MODULE\n")
    data = parse_fastqc_data(text)
    assert data["Basic Statistics"] == {"status": "pass", "columns": ["Measure", "Value"],
                                        "rows": [["Total Sequences", "3"]], "meta": {}}
    assert data["Sequence Duplication Levels"]["meta"] == {"Total Deduplicated Percentage": "66.6"}
    assert data["Sequence Duplication Levels"]["columns"] == ["Duplication Level", "Percentage of total"]
    with pytest.raises(ValueError, match="line 1"):
        parse_fastqc_data("stray\n")
    assert parse_summary("PASS\tBasic Statistics\tx.fq\nWARN\tAdapter Content\tx.fq\n") == {
        "Basic Statistics": "pass", "Adapter Content": "warn"}
