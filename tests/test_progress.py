"""Progress of long steps and the plain gate-stop lines.

The reporter is driven by an injected clock. The long steps run on real reads: ENA ERR5069949 (nf-core's
SARS-CoV-2 test pairs, ../shared/realdata) repeated into a file of several blocks, plain and gzip, and the
Nanopore FAK72834_barcode07.fastq as it is; a real BAM from ../shared/realworld (Augustus' eg1.s.bam);
the demo's reads for the contamination screen, calling and the failing SAMPLE_B.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from genoflow_dagster import verdicts
from genoflow_dagster.demo.generate import SAMPLE_A, SAMPLE_B, generate_demo
from genoflow_dagster.formats.validate import validate_file
from genoflow_dagster.progress import Progress, count, duration, size
from genoflow_dagster.qc import compute_metrics
from genoflow_dagster.qc.alignment import alignment_metrics
from genoflow_dagster.qc.contamination import screen_contamination
from genoflow_dagster.qc.fastq import fastq_metrics
from genoflow_dagster.qc.profiles import grade, load_profile
from genoflow_dagster.variants.align import align_reads, build_reference_index
from genoflow_dagster.variants.call import call_variants

SHARED = Path(__file__).resolve().parents[2] / "shared"
REALDATA = SHARED / "realdata"
REAL_BAM = SHARED / "realworld" / "bam" / "Augustus__auxprogs__auxBamFilters__eg1.s.bam"
NANOPORE = REALDATA / "FAK72834_barcode07.fastq"

needs_shared = pytest.mark.skipif(not REALDATA.is_dir() or not REAL_BAM.is_file(),
                                  reason="../shared/realdata and ../shared/realworld not present")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Calls:
    """A progress callback that keeps every (amount, records) it hears."""

    def __init__(self) -> None:
        self.calls: list[tuple[int | None, int | None]] = []

    def __call__(self, amount: int | None, records: int | None) -> None:
        self.calls.append((amount, records))

    @property
    def amounts(self) -> list[int | None]:
        return [a for a, _ in self.calls]


# ---------------------------------------------------------------- the reporter


def test_lines_follow_the_clock_not_the_number_of_calls():
    clock, lines = Clock(), []
    progress = Progress("validate S1_R1.fastq.gz", 1_200_000_000, lines.append, every_seconds=10.0, clock=clock)
    for i in range(1, 5001):  # 5,000 calls over 50 s: a line every 10 s, not one per call
        clock.now += 0.01
        progress(i * 1000, i * 10)
    assert len(lines) == 4  # at 10, 20, 30 and 40 s; 50 s is reached on the last call only if >= 50.0
    clock.now += 100  # a slow step: the next call, however late, writes a line
    progress(6_000_000, 60_000)
    assert len(lines) == 5
    burst = len(lines)
    for _ in range(1000):  # many calls in the same instant: nothing more
        progress(6_000_000, 60_000)
    assert len(lines) == burst


def test_a_line_says_how_far_how_fast_and_how_long_still():
    clock, lines = Clock(), []
    progress = Progress("validate S1_R1.fastq.gz", 1_200_000_000, lines.append, clock=clock)
    clock.now += 10
    progress(412_000_000, 2_100_000)
    assert lines == ["validate S1_R1.fastq.gz: 412 MB of 1.2 GB (34%), 2.1M records, 41 MB/s, ETA 19 s"]
    clock.now += 10
    progress.done()
    assert lines[-1] == "validate S1_R1.fastq.gz: done, 412 MB, 2.1M records in 20 s (21 MB/s)"


def test_chunks_and_records_only():
    clock, lines = Clock(), []
    chunks = Progress("calling S1", 12, lines.append, unit="chunks", clock=clock)
    clock.now += 30
    chunks(3, None)
    assert lines == ["calling S1: 3 of 12 chunks (25%), 0.1 chunks/s, ETA 1 min 30 s"]
    records = Progress("bam QC of S1.sam", 5_000, lines.append, clock=clock)
    clock.now += 10
    records(None, 250_000)  # a file read by a child process: no position, so no percentage or ETA
    assert lines[-1] == "bam QC of S1.sam: 250k records, 25,000 records/s"


def test_a_short_step_stays_quiet_and_a_failed_one_writes_no_closing_line():
    clock, lines = Clock(), []
    with Progress("qc x.fastq", 1000, lines.append, clock=clock) as progress:
        progress(1000, 4)
    assert lines == []
    with pytest.raises(RuntimeError), Progress("qc y.fastq", 1000, lines.append, clock=clock) as progress:
        clock.now += 11
        progress(500, 2)
        raise RuntimeError("stopped")
    assert lines == ["qc y.fastq: 500 bytes of 1.0 kB (50%), 2 records, 45 bytes/s, ETA 11 s"]


def test_sizes_counts_and_durations_read_plainly():
    assert [size(n) for n in (999, 9_800, 412_000_000, 1_234_000_000)] == ["999 bytes", "9.8 kB", "412 MB",
                                                                            "1.2 GB"]
    assert [count(n) for n in (950, 12_345, 2_100_000, 120_000_000)] == ["950", "12.3k", "2.1M", "120M"]
    assert [duration(s) for s in (8.4, 190, 3900)] == ["8 s", "3 min 10 s", "1 h 5 min"]


# ---------------------------------------------------------------- the long steps, on real files


@pytest.fixture(scope="module")
def real_reads(tmp_path_factory) -> dict[str, Path]:
    """ERR5069949's 100 real reads, repeated with numbered names into ~30 MB (several validation and QC
    blocks), plain and gzip."""
    root = tmp_path_factory.mktemp("progress")
    with gzip.open(REALDATA / "ERR5069949_test_1.fastq.gz", "rb") as fh:
        lines = fh.read().splitlines()
    records = [lines[i:i + 4] for i in range(0, len(lines), 4)]
    plain = root / "ERR5069949_x1000_1.fastq"
    with open(plain, "wb") as out:
        for copy in range(1000):
            out.write(b"".join(b"%s.%d\n%s\n+\n%s\n" % (r[0].split()[0], copy, r[1], r[3]) for r in records))
    assert plain.stat().st_size > 3 * 8 * 1024 * 1024  # several validator and QC blocks (8 MiB)
    packed = root / "ERR5069949_x1000_1.fastq.gz"
    with open(plain, "rb") as src, gzip.open(packed, "wb", compresslevel=1) as dst:
        dst.write(src.read())
    return {"plain": plain, "gzip": packed}


def _assert_climbs_to(calls: Calls, end: int) -> None:
    amounts = calls.amounts
    assert amounts, "progress was reported"
    assert amounts == sorted(amounts), "positions only grow"
    assert amounts[-1] == end


@needs_shared
@pytest.mark.parametrize("kind", ["plain", "gzip"])
def test_fastq_validation_reports_the_stored_bytes_up_to_the_file_size(real_reads, kind):
    path = real_reads[kind]
    calls = Calls()
    with_progress = validate_file(path, progress=calls)
    without = validate_file(path)
    assert with_progress.valid and with_progress.records == 100_000
    assert with_progress.to_json() == without.to_json()
    _assert_climbs_to(calls, path.stat().st_size)  # the compressed offset for gzip: the % is of the file
    assert len(calls.calls) >= 3, "reported between blocks, not only at the end"
    assert calls.calls[-1][1] == 100_000
    records = [r for _, r in calls.calls]
    assert records == sorted(records)


@needs_shared
def test_single_block_file_still_ends_at_its_size():
    calls = Calls()
    result = validate_file(NANOPORE, progress=calls)
    assert result.valid and result.records == 1_720
    _assert_climbs_to(calls, NANOPORE.stat().st_size)


@needs_shared
def test_bam_validation_and_qc_report_progress_with_the_same_results():
    calls = Calls()
    result = validate_file(REAL_BAM, progress=calls)
    assert result.valid
    assert result.to_json() == validate_file(REAL_BAM).to_json()
    _assert_climbs_to(calls, REAL_BAM.stat().st_size)
    assert calls.calls[-1][1] == result.records

    qc_calls = Calls()
    metrics = alignment_metrics(REAL_BAM, progress=qc_calls)
    assert metrics == alignment_metrics(REAL_BAM)
    _assert_climbs_to(qc_calls, REAL_BAM.stat().st_size)
    assert qc_calls.calls[-1][1] == result.records


@needs_shared
@pytest.mark.parametrize("kind", ["plain", "gzip"])
def test_fastq_qc_reports_the_stored_bytes_and_reads(real_reads, kind):
    path = real_reads[kind]
    calls = Calls()
    metrics = fastq_metrics(path, progress=calls)
    assert metrics == fastq_metrics(path)
    _assert_climbs_to(calls, path.stat().st_size)
    assert len(calls.calls) >= 3
    assert calls.calls[-1][1] == metrics["total_reads"] == 100_000
    through_dispatch = Calls()  # the assets pass it as compute_metrics' context
    compute_metrics(path, "fastq", progress=through_dispatch)
    assert through_dispatch.calls == calls.calls


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return generate_demo(tmp_path_factory.mktemp("demo"), contigs=(("chr1", 120_000),), n_snvs=6, n_indels=2,
                         coverage=15.0, low_quality_pairs=1_500)


def test_contamination_screen_reports_reads_screened(demo):
    calls = Calls()
    result = screen_contamination(demo.samples[SAMPLE_A][0], demo.reference_fasta, [demo.contaminant_fasta],
                                  sample_reads=5_000, progress=calls)
    assert calls.amounts == [*range(1024, 5_000, 1024), 5_000]
    assert result["reads_sampled"] == 5_000


def test_calling_reports_each_chunk_of_the_genome(demo, tmp_path):
    mmi = build_reference_index(demo.reference_fasta, tmp_path / "genome.mmi")
    align_reads(mmi, *demo.samples[SAMPLE_A], tmp_path / "A.bam", sample_id=SAMPLE_A,
                reference_fasta=demo.reference_fasta, threads=2)
    calls = Calls()
    stats = call_variants(demo.reference_fasta, tmp_path / "A.bam", tmp_path / "A.vcf.gz", sample_id=SAMPLE_A,
                          threads=2, progress=calls)
    assert stats["chunks"] >= 2
    assert calls.amounts == list(range(1, stats["chunks"] + 1))
    lines: list[str] = []  # with only a log, a Progress over the chunks is made (quiet for a short call)
    again = call_variants(demo.reference_fasta, tmp_path / "A.bam", tmp_path / "A2.vcf.gz", sample_id=SAMPLE_A,
                          threads=2, log=lines.append)
    assert again["records"] == stats["records"]


# ---------------------------------------------------------------- gate stops, in plain lines


def _sample_b_gate(demo) -> verdicts.GateOutcome:
    profile = load_profile("standard")
    files = [{"name": path.name, "verdict": grade(compute_metrics(path, "fastq"), profile)}
             for path in demo.samples[SAMPLE_B]]
    return verdicts.qc_within_profile(files, f"{profile.name} v{profile.version}")


def test_a_failing_sample_names_each_failed_module_with_value_and_threshold(demo):
    gate = _sample_b_gate(demo)
    assert gate.stops_sample
    lines = verdicts.gate_log_lines(gate, SAMPLE_B)
    failing = [m for m in gate.modules if m.status == verdicts.FAIL]
    assert len(lines) == len(failing) >= 2
    r1 = demo.samples[SAMPLE_B][0].name
    quality = next(line for line in lines if r1 in line and "per base sequence quality" in line)
    module = next(m for m in failing if m.file == r1 and m.module == "per base sequence quality")
    assert quality.startswith(f"qc_metrics_within_profile FAILED for {SAMPLE_B}: {r1}: per base sequence quality: ")
    assert f"median per-base quality {module.value:g} < fail threshold {module.threshold}" in quality
    assert module.value < module.threshold
    assert quality.endswith("(profile standard v1)")
    assert all("\n" not in line for line in lines)
    # the stored (JSON) outcome gives the same lines
    assert verdicts.gate_log_lines(verdicts.GateOutcome.from_dict(gate.to_dict()), SAMPLE_B) == lines


def test_gates_without_modules_give_their_problems_and_a_pass_gives_nothing():
    unusable = verdicts.usable_inputs(analysable_files=0, orphan_mates=["S1_R2.fastq.gz"])
    assert verdicts.gate_log_lines(unusable, "S1") == [
        "validated_files_usable FAILED for S1: no valid reads, alignments or call set",
        "validated_files_usable FAILED for S1: S1_R2.fastq.gz: mate file missing",
    ]
    assert verdicts.gate_log_lines(verdicts.usable_inputs(analysable_files=2), "S1") == []
    module = verdicts.ModuleOutcome("mapped reads", "fail", 12.5, 80, "")
    stored = verdicts.GateOutcome(verdicts.ALIGNMENT_WITHIN_PROFILE, "fail", summary="", modules=(module,))
    assert verdicts.gate_log_lines(stored, "S1") == [
        "aligned_reads_within_profile FAILED for S1: mapped reads: value 12.5, fail threshold 80"]



@pytest.mark.slow
def test_a_gate_stop_logs_its_failed_modules_in_the_run_log(demo, tmp_path, monkeypatch):
    """The low-quality SAMPLE_B materialized up to qc_metrics: the run log has one error line per failed module
    (not only the blocking check's failure)."""
    import dagster as dg

    from genoflow_dagster import zones
    from genoflow_dagster.assets.ingestion import raw_files, validated_files
    from genoflow_dagster.assets.qc import qc_metrics
    from genoflow_dagster.partitions import SAMPLES_PARTITION_NAME
    from genoflow_dagster.resources.reference import ReferenceData
    from genoflow_dagster.resources.storage import LocalStorage

    monkeypatch.setenv("GENOFLOW_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("GENOFLOW_REFERENCE_CACHE", str(tmp_path / "reference-cache"))
    monkeypatch.delenv("GENOFLOW_QC_PROFILE", raising=False)
    storage = LocalStorage(base_dir=str(tmp_path / "zones"))
    for mate, path in zip(("R1", "R2"), demo.samples[SAMPLE_B], strict=True):
        storage.put_file(path, zones.landing_key("S1", f"S1_{mate}.fastq.gz"))
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(SAMPLES_PARTITION_NAME, ["S1"])
    result = dg.materialize([raw_files, validated_files, qc_metrics], partition_key="S1", instance=instance,
                            raise_on_error=False,
                            resources={"storage": storage, "reference": ReferenceData(fasta_path=str(
                                demo.reference_fasta))})
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not checks["qc_metrics_within_profile"].passed
    logged = [(e.level, e.user_message) for e in instance.all_logs(result.run_id)
              if "qc_metrics_within_profile FAILED for S1: " in (e.user_message or "")]
    assert len(logged) >= 2
    assert all(level == 40 for level, _ in logged)  # logging.ERROR
    assert any("S1_R1.fastq.gz: per base sequence quality: median per-base quality" in m
               and "< fail threshold 20" in m and m.endswith("(profile standard v1)") for _, m in logged)
