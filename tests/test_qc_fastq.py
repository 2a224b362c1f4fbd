"""FASTQ metrics against `seqkit stats -a -T` (skipped when seqkit is absent), plus the
vectorised path against the fallback parser and block boundaries."""

from __future__ import annotations

import gzip
import hashlib
import itertools
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from genoflow_dagster.qc import compute_metrics
from genoflow_dagster.qc import fastq as fq
from genoflow_dagster.qc.fastq import fastq_metrics

CORPORA = Path(__file__).resolve().parents[1].parent / "shared" / "corpora"
HAVE_SEQKIT = shutil.which("seqkit") is not None


def write_fastq(path: Path, n: int = 3000, *, seed: int = 7, fixed: int | None = None, wrap: int | None = None,
                crlf: bool = False) -> Path:
    rng = np.random.default_rng(seed)
    alphabet = np.frombuffer(b"ACGTACGTACGTACGTNacgtRY", dtype=np.uint8)
    nl = b"\r\n" if crlf else b"\n"
    chunks = []
    for i in range(n):
        length = fixed if fixed is not None else int(rng.integers(0, 160))
        seq = alphabet[rng.integers(0, len(alphabet), length)].tobytes()
        if length > 40 and rng.random() < 0.1:
            k = int(rng.integers(0, length - 13))
            seq = (seq[:k] + b"AGATCGGAAGAGC" + seq[k + 13:])[:length]
        qual = (rng.integers(0, 42, length) + 33).astype(np.uint8).tobytes()
        if wrap:
            seq = nl.join(seq[j:j + wrap] for j in range(0, len(seq), wrap)) or b""
            qual = nl.join(qual[j:j + wrap] for j in range(0, len(qual), wrap)) or b""
        chunks.append(b"@read" + str(i).encode() + nl + seq + nl + b"+" + nl + qual + nl)
    data = b"".join(chunks)
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def seqkit_stats(path: Path) -> dict[str, str]:
    out = subprocess.run(["seqkit", "stats", "-a", "-T", str(path)], capture_output=True, text=True, check=True)
    header, row = out.stdout.strip().split("\n")[:2]
    return dict(zip(header.split("\t"), row.split("\t"), strict=True))


def assert_matches_seqkit(m: dict, ref: dict[str, str]) -> None:
    assert m["total_reads"] == int(ref["num_seqs"])
    assert m["total_bases"] == int(ref["sum_len"])
    assert m["min_length"] == int(ref["min_len"])
    assert m["max_length"] == int(ref["max_len"])
    # equal to seqkit's printed precision (it rounds halves away from zero, Python to even)
    assert abs(m["mean_length"] - float(ref["avg_len"])) <= 0.05 + 1e-9
    for ours, theirs in (("q20_percent", "Q20(%)"), ("q30_percent", "Q30(%)"), ("gc_percent", "GC(%)")):
        assert abs(m[ours] - float(ref[theirs])) <= 0.005 + 1e-9, ours


@pytest.mark.skipif(not HAVE_SEQKIT, reason="seqkit not installed")
@pytest.mark.parametrize("name", ["reads.fastq", "reads.fastq.gz"])
def test_generated_reads_match_seqkit(tmp_path: Path, name: str) -> None:
    path = write_fastq(tmp_path / name)
    assert_matches_seqkit(fastq_metrics(path), seqkit_stats(path))


@pytest.mark.parametrize("name", ["reads.fastq", "reads.fastq.gz", "wrapped.fastq"])
def test_basic_stats_are_the_full_metrics_summary(tmp_path: Path, name: str) -> None:
    path = write_fastq(tmp_path / name, wrap=60 if name.startswith("wrapped") else None)
    basic = fq.fastq_basic_stats(path)
    full = fastq_metrics(path)
    assert basic == {key: full[key] for key in basic}
    if HAVE_SEQKIT:
        assert_matches_seqkit(basic, seqkit_stats(path))


@pytest.mark.skipif(not HAVE_SEQKIT, reason="seqkit not installed")
def test_fixed_length_reads_match_seqkit(tmp_path: Path) -> None:
    path = write_fastq(tmp_path / "fixed.fq", 5000, fixed=150)
    assert_matches_seqkit(fastq_metrics(path), seqkit_stats(path))


def corpus_fastqs() -> list[Path]:
    folder = CORPORA / "fastq" / "valid"
    return sorted(folder.iterdir()) if folder.is_dir() else []


@pytest.mark.skipif(not HAVE_SEQKIT or not corpus_fastqs(), reason="seqkit or corpora absent")
@pytest.mark.parametrize("path", corpus_fastqs(), ids=lambda p: p.name)
def test_corpus_matches_seqkit(path: Path) -> None:
    out = subprocess.run(["seqkit", "stats", "-a", "-T", str(path)], capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip(f"seqkit cannot read {path.name}")
    assert_matches_seqkit(fastq_metrics(path), seqkit_stats(path))


def test_wrapped_and_crlf_equal_plain(tmp_path: Path) -> None:
    plain = fastq_metrics(write_fastq(tmp_path / "a.fq", 500))
    wrapped = fastq_metrics(write_fastq(tmp_path / "b.fq", 500, wrap=60))
    crlf = fastq_metrics(write_fastq(tmp_path / "c.fq", 500, crlf=True))
    for other in (wrapped, crlf):
        for key in ("total_reads", "total_bases", "gc_percent", "q30_percent", "per_position_quality",
                    "per_sequence_gc", "duplication_percent", "adapter_content", "length_distribution"):
            assert other[key] == plain[key], key


@pytest.mark.parametrize("position_cap", [10_000, 40])
def test_compiled_path_equals_the_line_parser_on_every_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              position_cap: int) -> None:
    """Plain 4-line FASTQ goes through the compiled loop, wrapped FASTQ through the line parser: same numbers."""
    monkeypatch.setattr(fq, "POSITION_CAP", position_cap)
    rng = np.random.default_rng(3)
    records = []
    for i in range(400):
        seq = bytearray(rng.choice(np.frombuffer(b"ACGTNacgt", dtype=np.uint8), int(rng.integers(0, 150))))
        for motif in (b"AGATCGGAAGAG", b"agatcggaagag", b"A" * 14, b"CTGTCTCTTATA"):
            if len(seq) > 20 and rng.random() < 0.3:  # adapters anywhere, including flush with the read's end
                at = int(rng.integers(0, len(seq) - len(motif) + 1))
                seq[at:at + len(motif)] = motif
        qual = (rng.integers(0, 42, len(seq)) + 33).astype(np.uint8).tobytes()
        records.append((b"@r%d" % i, bytes(seq), qual))
    plain = b"".join(h + b"\n" + s + b"\n+\n" + q + b"\n" for h, s, q in records)
    wrapped = b"".join(h + b"\n" + s[:70] + b"\n" + s[70:] + b"\n+\n" + q[:70] + b"\n" + q[70:] + b"\n"
                       if len(s) > 70 else h + b"\n" + s + b"\n+\n" + q + b"\n" for h, s, q in records)
    (tmp_path / "plain.fq").write_bytes(plain)
    (tmp_path / "wrapped.fq").write_bytes(wrapped)
    compiled = fastq_metrics(tmp_path / "plain.fq")
    parsed = fastq_metrics(tmp_path / "wrapped.fq")
    assert compiled["adapter_max_percent"] > 0
    for key in compiled.keys() - {"sha256", "size_bytes"}:
        assert compiled[key] == parsed[key], key


def test_small_blocks_equal_one_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_fastq(tmp_path / "a.fq", 800)
    whole = fastq_metrics(path)
    monkeypatch.setattr(fq, "BLOCK_BYTES", 4096 + 17)
    split = fastq_metrics(path)
    assert {k: v for k, v in split.items()} == whole


def test_sha256_of_stored_bytes_and_modules(tmp_path: Path) -> None:
    path = write_fastq(tmp_path / "a.fastq.gz", 300, fixed=100)
    m = compute_metrics(path, "fastq")
    assert m["format"] == "fastq"
    assert m["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert sum(m["per_sequence_gc"]) <= m["total_reads"]
    assert m["per_position_quality"][0]["base"] == "1"
    assert m["per_position_quality"][-1]["end"] == 100
    assert set(m["adapter_content"]) >= {"Illumina Universal Adapter", "Nextera Transposase Sequence"}
    assert m["adapter_content"]["Illumina Universal Adapter"][-1] > 0
    assert m["length_distribution"] == {"100": 300}


def test_duplicates_and_overrepresented(tmp_path: Path) -> None:
    seq = b"ACGTTGCAAGGCTTACCGATTACG" * 2
    body = b"".join(b"@r%d\n%s\n+\n%s\n" % (i, seq if i % 2 else seq[::-1] + b"A" * (i % 7), b"I" * 48 +
                    b"I" * (0 if i % 2 else i % 7)) for i in range(1000))
    path = tmp_path / "dup.fq"
    path.write_bytes(body)
    m = fastq_metrics(path)
    assert m["total_reads"] == 1000
    assert m["duplication_percent"] == pytest.approx(100 - 100 * 8 / 1000)
    top = m["overrepresented_sequences"][0]
    assert top["sequence"] == seq.decode() and top["count"] == 500 and top["percent"] == 50.0


def test_truncated_record_raises(tmp_path: Path) -> None:
    path = tmp_path / "bad.fq"
    path.write_bytes(b"@r1\nACGT\n+\nIIII\n@r2\nACGT\n+\n")
    with pytest.raises(fq.FastqFormatError):
        fastq_metrics(path)


def test_read_gc_histogram_has_no_rounding_comb_for_150bp_reads(tmp_path):
    """Rounding g/150 to whole percents doubles every third bin; the spread histogram must not."""
    import random

    from genoflow_dagster.qc.profiles import grade, load_profile

    rng = random.Random(11)
    path = tmp_path / "clean150.fastq"
    with open(path, "w") as out:
        for i in range(20_000):
            seq = "".join(rng.choice("ACGT") for _ in range(150))
            out.write(f"@r{i}\n{seq}\n+\n{'I' * 150}\n")
    metrics = fastq_metrics(path)
    hist = metrics["per_sequence_gc"]
    assert abs(sum(hist) - 20_000) < 1e-6
    # neighbouring bins near the mode differ smoothly, not by a factor of ~2
    assert all(0.7 < hist[i] / hist[i + 1] < 1.4 for i in range(46, 54))
    verdict = grade({**metrics, "format": "fastq"}, load_profile("standard"))
    gc_module = next(m for m in verdict["modules"] if m["name"] == "per sequence GC content")
    assert gc_module["status"] == "pass"


def _mixed_reads(path: Path, n: int = 600, seed: int = 5, max_len: int = 400) -> Path:
    """Reads of every length up to max_len: case, N, IUPAC, U, adapters anywhere (also flush with
    the end and lower case), poly-A/G runs, CRLF on some records, zero-length reads."""
    rng = np.random.default_rng(seed)
    alphabet = np.frombuffer(b"ACGTACGTACGTNacgtnRYUu.", dtype=np.uint8)
    out = []
    for i in range(n):
        length = int(rng.integers(0, max_len))
        seq = bytearray(alphabet[rng.integers(0, len(alphabet), length)].tobytes())
        for motif in (*fq.ADAPTERS.values(), b"agatcggaagag", b"A" * 30, b"G" * 13):
            if length > 20 and rng.random() < 0.15:
                at = int(rng.integers(0, length - min(len(motif), length) + 1))
                seq[at:at + len(motif)] = motif[: length - at]
        qual = (rng.integers(0, 45, length) + 33).astype(np.uint8).tobytes()
        nl = b"\r\n" if rng.random() < 0.1 else b"\n"
        plus = b"+" if rng.random() < 0.8 else b"+r%d" % i
        out.append(b"@r%d" % i + nl + bytes(seq) + nl + plus + nl + qual + nl)
    path.write_bytes(b"".join(out))
    return path


@pytest.mark.parametrize("name", ["mixed.fq", "mixed.fq.gz"])
def test_vector_loops_equal_scalar_loops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """The AVX2 and SSE2/SSSE3 loops (bases per position, read GC, adapter prefilter) and their
    scalar twins give the same numbers, also with positions pooled past a small POSITION_CAP."""
    path = _mixed_reads(tmp_path / "mixed.fq")
    if name.endswith(".gz"):
        path = tmp_path / name
        path.write_bytes(gzip.compress((tmp_path / "mixed.fq").read_bytes()))
    for cap in (10_000, 37):
        monkeypatch.setattr(fq, "POSITION_CAP", cap)
        monkeypatch.setattr(fq.kernel, "VECTOR", 0)
        scalar = fastq_metrics(path)
        basic_scalar = fq.fastq_basic_stats(path)
        assert scalar["adapter_max_percent"] > 0
        for level in (1, 2):  # SSE2 (+SSSE3), AVX2 where the CPU has them
            monkeypatch.setattr(fq.kernel, "VECTOR", level)
            assert fastq_metrics(path) == scalar
            assert fq.fastq_basic_stats(path) == basic_scalar


def test_maps_blocks_and_overflow_batches_do_not_change_numbers(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Small maps (plain) and blocks (gzip), a small dense GC table and overflow batch, and reads
    longer than the counters as they grow: the same numbers as one pass over one buffer."""
    plain = _mixed_reads(tmp_path / "m.fq", max_len=3000)
    gz = tmp_path / "m.fq.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    whole = fastq_metrics(plain)
    whole_basic = fq.fastq_basic_stats(plain)
    monkeypatch.setattr(fq, "MAP_BYTES", 4096 + 17)
    monkeypatch.setattr(fq, "BLOCK_BYTES", 4096 + 17)
    monkeypatch.setattr(fq, "GC_DIM", 40)
    monkeypatch.setattr(fq, "_OVERFLOW", 3)
    for path in (plain, gz):
        small = fastq_metrics(path)
        assert {k: v for k, v in small.items() if k not in ("sha256", "size_bytes")} == \
            {k: v for k, v in whole.items() if k not in ("sha256", "size_bytes")}
        assert small["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert small["size_bytes"] == path.stat().st_size
        assert fq.fastq_basic_stats(path) == whole_basic


def test_irregular_record_midway_hands_over_to_the_line_parser(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A wrapped record after many plain ones: counted records before it stay counted once."""
    plain = _mixed_reads(tmp_path / "p.fq", 300)
    wrapped_record = b"@w\nACGTACGTAC\nGTACGT\n+\nIIIIIIIIII\nIIIIII\n"
    last = b"@z\nAGATCGGAAGAGTT\n+\nIIIIIIIIIIIIII\n"
    (tmp_path / "w.fq").write_bytes(plain.read_bytes() + wrapped_record + last)
    (tmp_path / "u.fq").write_bytes(plain.read_bytes() + b"@w\nACGTACGTACGTACGT\n+\nIIIIIIIIIIIIIIII\n" + last)
    (tmp_path / "w.fq.gz").write_bytes(gzip.compress((tmp_path / "w.fq").read_bytes()))
    monkeypatch.setattr(fq, "MAP_BYTES", 8192)
    monkeypatch.setattr(fq, "BLOCK_BYTES", 8192)
    unwrapped = fastq_metrics(tmp_path / "u.fq")
    for name in ("w.fq", "w.fq.gz"):
        wrapped = fastq_metrics(tmp_path / name)
        assert wrapped["total_reads"] == 302
        for key in unwrapped.keys() - {"sha256", "size_bytes"}:
            assert wrapped[key] == unwrapped[key], key
        assert wrapped["sha256"] == hashlib.sha256((tmp_path / name).read_bytes()).hexdigest()
        assert fq.fastq_basic_stats(tmp_path / name) == fq.fastq_basic_stats(tmp_path / "u.fq")


@pytest.mark.parametrize("tail", [b"", b"\n", b"\n\n", b"\n  \n", b"\r\n"])
def test_final_record_without_line_break_and_trailing_blank_lines(tmp_path: Path, tail: bytes) -> None:
    body = b"@a\nACGT\n+\nIIII\n@b\nGGCC\n+\nIIII"
    path = tmp_path / "t.fq"
    path.write_bytes(body + tail)
    m = fastq_metrics(path)
    assert m["total_reads"] == 2 and m["total_bases"] == 8
    assert fq.fastq_basic_stats(path)["total_reads"] == 2


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "e.fq"
    path.write_bytes(b"")
    m = fastq_metrics(path)
    assert m["total_reads"] == 0 and m["sha256"] == hashlib.sha256(b"").hexdigest()
    assert fq.fastq_basic_stats(path)["total_reads"] == 0


# ---------------------------------------------------------------- FastQC's rules, without FastQC
# (tests/test_qc_fastqc_equivalence.py runs FastQC itself on real and generated files)

def test_base_groups_are_fastqcs() -> None:
    assert fq.base_groups(75) == [(i, i) for i in range(1, 76)]
    groups = fq.base_groups(151)  # Illumina 2x151: 1-9, then 5 wide
    assert groups[8:11] == [(9, 9), (10, 14), (15, 19)] and groups[-1] == (150, 151) and len(groups) == 38
    groups = fq.base_groups(1000)  # 20 wide, the first group from 10 to 19
    assert groups[9:12] == [(10, 19), (20, 39), (40, 59)] and groups[-2:] == [(980, 999), (1000, 1000)]
    groups = fq.base_groups(2492)  # nanopore: 50 wide, 10-49 first
    assert groups[9:12] == [(10, 49), (50, 99), (100, 149)] and groups[-1] == (2450, 2492)
    for length in range(76, 20_000, 37):
        groups = fq.base_groups(length)
        assert len(groups) <= 75 and groups[-1][1] == length  # FastQC plans 10-59, 60-109..: 10-49 may add one
        assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(groups))


def test_position_percentiles_need_more_than_100_bases_and_use_an_integer_target(tmp_path: Path) -> None:
    """101 reads, 25 at Q10 and 76 at Q30: the 25th percentile's target is 101 * 25 // 100 = 25
    bases, reached at Q10 (a fractional target, 25.25, would give Q30). With 100 reads FastQC
    leaves the percentiles out (NaN), but still reports the mean."""
    def reads(n: int) -> bytes:
        return b"".join(b"@r%d\nACGT\n+\n%s\n" % (i, (b"+" if i < 25 else b"?") * 4) for i in range(n))

    (tmp_path / "a.fq").write_bytes(reads(101))
    (tmp_path / "b.fq").write_bytes(reads(100))
    row = fastq_metrics(tmp_path / "a.fq")["per_position_quality"][0]
    assert (row["lower_quartile"], row["p10"], row["median"], row["p90"]) == (10.0, 10.0, 30.0, 30.0)
    assert row["mean"] == pytest.approx((25 * 10 + 76 * 30) / 101)
    row = fastq_metrics(tmp_path / "b.fq")["per_position_quality"][0]
    assert row["median"] is None and row["lower_quartile"] is None and row["mean"] == pytest.approx(25.0)


def test_group_statistics_average_the_positions(tmp_path: Path) -> None:
    """A group's median is the mean of its positions' medians (here 10 and 40 in a 10-11 group),
    not the median of the pooled bases."""
    qual = b"I" * 9 + b"+I" + b"I" * 69  # position 10 at Q10, 11 at Q40; 80 bp reads: groups of 2 from 10
    (tmp_path / "g.fq").write_bytes(b"".join(b"@r%d\n%s\n+\n%s\n" % (i, b"A" * 80, qual) for i in range(200)))
    rows = {r["base"]: r for r in fastq_metrics(tmp_path / "g.fq")["per_position_quality"]}
    assert rows["10-11"]["median"] == 25.0 and rows["10-11"]["mean"] == 25.0


def test_gc_table_follows_fastqcs_model(tmp_path: Path) -> None:
    """Reads past 100 bp count over whole hundreds only, and a read adds 1 / (counts claiming a
    bin) to each bin it claims: one all-G read of 4 bp adds 1/2 to bin 88 and 1 to 89..100."""
    (tmp_path / "g.fq").write_bytes(b"@a\nGGGG\n+\nIIII\n")
    hist = fastq_metrics(tmp_path / "g.fq")["per_sequence_gc"]
    assert hist[88] == 0.5 and hist[89:] == [1.0] * 12 and sum(hist[:88]) == 0
    # 100 G then 99 A: GC over the first 100 bases only, so 100% (199 bases would give 50%); bin 100
    # is claimed by 99 and 100 G/C of 100, so the read adds 1/2
    (tmp_path / "h.fq").write_bytes(b"@a\n" + b"G" * 100 + b"A" * 99 + b"\n+\n" + b"I" * 199 + b"\n")
    hist = fastq_metrics(tmp_path / "h.fq")["per_sequence_gc"]
    assert hist[100] == 0.5 and sum(hist) == 0.5


def test_overrepresented_on_a_tiny_file_lists_every_sequence_over_0_1_percent(tmp_path: Path) -> None:
    """FastQC lists any sequence above 0.1% of reads, a single read among 100 included."""
    rng = np.random.default_rng(1)
    seqs = [bytes(rng.choice(np.frombuffer(b"ACGT", dtype=np.uint8), 60)) for _ in range(99)]
    seqs.append(seqs[0].lower())  # upper-cased as FastQC reads it: the same sequence as the first
    (tmp_path / "t.fq").write_bytes(b"".join(b"@r%d\n%s\n+\n%s\n" % (i, s, b"I" * 60) for i, s in enumerate(seqs)))
    m = fastq_metrics(tmp_path / "t.fq")
    over = m["overrepresented_sequences"]
    assert len(over) == 99 and over[0] == {"sequence": seqs[0].decode(), "count": 2, "percent": 2.0,
                                           "possible_source": None}
    assert {row["count"] for row in over[1:]} == {1} and m["deduplicated_percent"] == 99.0


def test_lower_case_adapters_count_as_fastqc_upper_cases_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    body = b"".join(b"@r%d\n%s\n+\n%s\n" % (i, b"ACGTTGCA" + (b"agatcggaagag" if i % 2 else b"AGATCGGAAGAG") + b"TT",
                                            b"I" * 22) for i in range(40))
    (tmp_path / "a.fq").write_bytes(body)
    for level in (0, 1, 2):
        monkeypatch.setattr(fq.kernel, "VECTOR", level)
        m = fastq_metrics(tmp_path / "a.fq")
        assert m["adapter_content_positions"][-1] == "11" and m["adapter_content"]["Illumina Universal Adapter"] == \
            [0.0] * 8 + [100.0] * 3


@pytest.mark.parametrize(("mode", "status"), [(20, "fail"), (21, "warn"), (27, "warn"), (28, "pass")])
def test_per_sequence_quality_grades_its_bound_inclusively_as_fastqc(mode: int, status: str) -> None:
    from genoflow_dagster.qc.profiles import grade, load_profile

    metrics = {"format": "fastq", "total_reads": 10, "min_length": 50, "max_length": 50,
               "per_sequence_quality": {str(mode): 10}}
    verdict = {m["name"]: m for m in grade(metrics, load_profile("standard"))["modules"]}
    assert verdict["per sequence quality scores"]["status"] == status


def test_duplicates_track_the_first_distinct_sequences_and_count_them_to_the_end(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """FastQC's rule with a limit of 5 distinct sequences: A-E are tracked (the set is frozen at
    read 5), F and G never are, A's later copies still count; all 9 reads are the denominator.
    The deduplicated % corrects each duplication level for what tracking missed: a level seen
    `observed` times is scaled by 1 / (1 - prod_{i < 5} (9 - i - level) / (9 - i))."""
    monkeypatch.setattr(fq, "DUP_UNIQUE", 5)
    reads = [b"AAAA", b"CCCC", b"GGGG", b"TTTT", b"ACAC", b"GTGT", b"aaaa", b"AAAA", b"CGCG"]
    (tmp_path / "d.fq").write_bytes(b"".join(b"@r%d\n%s\n+\nIIII\n" % (i, s) for i, s in enumerate(reads)))
    m = fastq_metrics(tmp_path / "d.fq")
    over = {row["sequence"]: (row["count"], row["percent"]) for row in m["overrepresented_sequences"]}
    assert over == {"AAAA": (3, 3 / 9 * 100), **{s: (1, 1 / 9 * 100) for s in ("CCCC", "GGGG", "TTTT", "ACAC")}}
    assert m["duplication_reads_examined"] == 9

    def unseen(level: int) -> float:
        p = 1.0
        for i in range(5):
            p *= (9 - i - level) / (9 - i)
        return p

    ones, threes = 4 / (1 - unseen(1)), 1 / (1 - unseen(3))
    assert m["deduplicated_percent"] == pytest.approx(100 * (ones + threes) / (ones + 3 * threes), rel=1e-12)
