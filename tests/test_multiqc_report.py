"""The MultiQC cohort report (issue 14) over real stored artifacts.

Two samples are run with `genoflow run` (as tests/test_cli_run.py does) on a temp instance and data dir:
- ERR5069949: the real ARTIC SARS-CoV-2 Illumina pair against MN908947.3 (../shared/realdata), which passes
  and is aligned and called;
- LOWQ: the demo generator's low-quality pair (genoflow_dagster/demo/generate.py, SAMPLE_B's reads), which
  the QC gate stops before alignment.
Their stored JSON is rendered as MultiQC inputs, MultiQC runs, and what MultiQC parsed must equal the stored
numbers; its parse of GenoFlow's fastqc_data.txt for a real FASTQ must equal its parse of real FastQC's.
"""

import ast
import csv
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from genoflow_dagster import verdicts as verdicts_module
from genoflow_dagster.qc.fastq import fastq_metrics
from genoflow_dagster.qc.profiles import grade, load_profile
from genoflow_dagster.reports.multiqc_inputs import (
    CONTAMINATION_SECTION_ID,
    FASTQC_MODULES,
    VERDICT_SECTION_ID,
    build_multiqc_report,
    fastqc_data,
    read_sample_artifacts,
    write_sample_inputs,
)
from genoflow_dagster.resources.storage import LocalStorage
from tests.browser import chromium_page, requires_browser

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"
GENOFLOW = Path(sys.executable).with_name("genoflow")
PASSING, STOPPED = "ERR5069949", "LOWQ"
R1 = "ERR5069949_test_1.fastq.gz"

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not REALDATA.is_dir(), reason="../shared/realdata not present")]


def _genoflow_run(env: dict[str, str], cwd: Path, sample: str, files: list[Path]) -> subprocess.CompletedProcess:
    return subprocess.run([str(GENOFLOW), "run", "--sample", sample, "--json", *map(str, files)],
                          env=env, capture_output=True, text=True, timeout=900, cwd=cwd)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """(storage over the data dir, MultiQC inputs dir, MultiQC output dir, report path) for the two samples."""
    from genoflow_dagster.demo.generate import SAMPLE_B, generate_demo

    root = tmp_path_factory.mktemp("multiqc")
    for name in ("MN908947.3.fasta", "MN908947.3.gff", R1, "ERR5069949_test_2.fastq.gz"):
        shutil.copyfile(REALDATA / name, root / name)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GENOFLOW_", "DAGSTER_"))}
    env.update(DAGSTER_HOME=str(root / "home"), GENOFLOW_DATA_DIR=str(root / "data"),
               GENOFLOW_REFERENCE_FASTA=str(root / "MN908947.3.fasta"),
               GENOFLOW_ANNOTATION=str(root / "MN908947.3.gff"), GENOFLOW_KNOWN_SITES="off",
               GENOFLOW_CONTAMINANTS="", GENOFLOW_QC_PROFILE="amplicon")
    passed = _genoflow_run(env, root, PASSING, [root / R1, root / "ERR5069949_test_2.fastq.gz"])
    assert passed.returncode == 0, passed.stderr[-3000:]
    demo = generate_demo(root / "demo", contigs=(("chr1", 5_000),), coverage=2.0, n_snvs=1, n_indels=0,
                         low_quality_pairs=300)
    stopped = _genoflow_run(env, root, STOPPED, demo.samples[SAMPLE_B])
    assert stopped.returncode == 1, stopped.stderr[-3000:]

    storage = LocalStorage(base_dir=str(root / "data"))
    inputs = root / "multiqc_inputs"
    for sample in (PASSING, STOPPED):
        write_sample_inputs(read_sample_artifacts(storage, sample), inputs)
    report = build_multiqc_report(inputs, root / "multiqc", title="GenoFlow cohort")
    return storage, inputs, root / "multiqc", report


def _table(path: Path) -> dict[str, dict[str, str]]:
    """A MultiQC data table (multiqc_data/*.txt, tab-separated, first column the sample) by sample."""
    with path.open() as handle:
        return {row["Sample"]: row for row in csv.DictReader(handle, delimiter="\t")}


def _stored(storage: LocalStorage, key: str) -> dict:
    return json.loads(storage.get_bytes(key))


def test_every_sample_has_inputs_and_a_stopped_sample_only_what_it_stored(cohort):
    _, inputs, _, _ = cohort
    passing = sorted(p.name for p in (inputs / PASSING).iterdir())
    assert passing == sorted([f"{R1}_fastqc_data.txt", "ERR5069949_test_2.fastq.gz_fastqc_data.txt",
                              f"{PASSING}.flagstat", f"{PASSING}.samtools_stats.txt",
                              f"{PASSING}.bcftools_stats.txt", f"{PASSING}.genoflow_verdict_mqc.tsv"])
    stopped = sorted(p.name for p in (inputs / STOPPED).iterdir())
    assert stopped == sorted(["SAMPLE_B_R1.fastq.gz_fastqc_data.txt", "SAMPLE_B_R2.fastq.gz_fastqc_data.txt",
                              f"{STOPPED}.genoflow_verdict_mqc.tsv"]), "no alignment or calls invented"


def test_multiqc_numbers_equal_the_stored_json(cohort):
    storage, _, out, _ = cohort
    data = out / "multiqc_data"
    qc = _stored(storage, f"processed/{PASSING}/qc_metrics/qc.json")
    fastqc = _table(data / "multiqc_fastqc.txt")
    for entry in qc["files"]:
        metrics = _stored(storage, entry["metrics_key"])
        row = fastqc[entry["name"].removesuffix(".fastq.gz")]
        assert float(row["Total Sequences"]) == metrics["total_reads"]
        assert float(row["%GC"]) == math.floor(metrics["gc_percent"])  # FastQC prints the integer part
        assert float(row["total_deduplicated_percentage"]) == pytest.approx(metrics["deduplicated_percent"],
                                                                           rel=1e-12)
        statuses = {m["name"]: m["status"] for m in entry["verdict"]["modules"]}
        for ours, theirs in FASTQC_MODULES.items():
            assert row[theirs.lower().replace(" ", "_")] == statuses[ours]

    aligned = _stored(storage, f"processed/{PASSING}/aligned_reads/manifest.json")["metrics"]
    stats = _table(data / "multiqc_samtools_stats.txt")[PASSING]
    assert float(stats["raw_total_sequences"]) == aligned["primary"]
    assert float(stats["reads_mapped"]) == aligned["primary_mapped"]
    assert float(stats["reads_properly_paired"]) == aligned["properly_paired"]
    assert float(stats["insert_size_average"]) == pytest.approx(aligned["insert_size_mean"])
    assert float(stats["error_rate"]) == pytest.approx(aligned["error_rate"])
    flagstat = _table(data / "multiqc_samtools_flagstat.txt")[PASSING]
    assert (int(flagstat["total_passed"]), int(flagstat["mapped_passed"])) == (aligned["total"], aligned["mapped"])
    assert int(flagstat["properly paired_passed"]) == aligned["properly_paired"]

    vcf = _stored(storage, f"processed/{PASSING}/variant_results/summary.json")["vcf_metrics"]
    bcftools = _table(data / "multiqc_bcftools_stats.txt")[PASSING]
    assert int(bcftools["number_of_records"]) == vcf["records"]
    assert int(bcftools["number_of_SNPs"]) == vcf["snps"]
    assert int(bcftools["number_of_indels"]) == vcf["indels"]
    assert float(bcftools["tstv"]) == pytest.approx(vcf["ts_tv"], abs=0.005)

    verdicts = _table(data / f"multiqc_{VERDICT_SECTION_ID}_table.txt")
    stored_gates = verdicts_module.stored_outcomes(
        *(_stored(storage, f"processed/{PASSING}/{key}") for key in (
            "validated_files/validation.json", "qc_metrics/qc.json", "aligned_reads/manifest.json",
            "variant_results/summary.json")))
    expected = verdicts_module.sample_verdict(stored_gates)
    assert expected.status in ("pass", "warn") and expected.stopped_at is None
    assert (verdicts[PASSING]["Status"], verdicts[PASSING]["Failing gate"]) == (expected.status.upper(), "")
    if expected.status == "warn":  # why it warned, in the gate's own words
        assert "ERR5069949_test_1.fastq.gz: per base sequence content" in verdicts[PASSING]["Why"]
    assert verdicts[STOPPED]["Status"] == "FAIL"
    assert verdicts[STOPPED]["Failing gate"] == "qc_metrics_within_profile"
    assert "SAMPLE_B_R1.fastq.gz: per base sequence quality" in verdicts[STOPPED]["Why"]
    assert not (data / f"multiqc_{CONTAMINATION_SECTION_ID}_table.txt").exists(), "no screen was configured"


@pytest.mark.skipif(shutil.which("fastqc") is None, reason="fastqc not installed")
def test_multiqc_parses_our_fastqc_data_as_it_parses_real_fastqc(tmp_path):
    """Real FastQC and GenoFlow's rendering of the same real FASTQ (graded under the standard profile, FastQC's
    thresholds), each read by MultiQC: every value of every rendered module is the same."""
    real, ours = tmp_path / "real", tmp_path / "ours"
    real.mkdir()
    (ours / "sample").mkdir(parents=True)
    subprocess.run(["fastqc", "--extract", "--quiet", "-o", str(real), str(REALDATA / R1)], check=True,
                   capture_output=True)
    for extra in real.iterdir():  # only the data file, as ours
        if extra.name != "ERR5069949_test_1_fastqc":
            extra.unlink()
    metrics = fastq_metrics(REALDATA / R1)
    statuses = {m["name"]: m["status"] for m in grade({**metrics, "format": "fastq"},
                                                      load_profile("standard"))["modules"]}
    (ours / "sample" / f"{R1}_fastqc_data.txt").write_text(fastqc_data(R1, metrics, statuses))
    parsed = {}
    for name, folder in (("real", real), ("ours", ours)):
        build_multiqc_report(folder, tmp_path / f"{name}_out", title=name)
        parsed[name] = tmp_path / f"{name}_out" / "multiqc_data"

    skip_columns = {"per_tile_sequence_quality"}  # not rendered: GenoFlow does not measure tiles
    real_row, our_row = (_table(parsed[n] / "multiqc_fastqc.txt")["ERR5069949_test_1"] for n in ("real", "ours"))
    assert {k: v for k, v in real_row.items() if k not in skip_columns} == our_row
    plots = sorted(p.name for p in parsed["real"].glob("fastqc_*plot*.txt"))
    duplication = "fastqc_sequence_duplication_levels_plot.txt"  # histogram not stored: absent from ours
    assert sorted(p.name for p in parsed["ours"].glob("fastqc_*plot*.txt")) == [p for p in plots if p != duplication]
    for plot in plots:
        if plot == duplication:
            continue
        real_rows, our_rows = (_numbers(parsed[n] / plot) for n in ("real", "ours"))
        assert real_rows.keys() == our_rows.keys(), plot
        for key, value in real_rows.items():
            assert our_rows[key] == pytest.approx(value, rel=1e-9, abs=1e-9), (plot, key)


def _numbers(path: Path) -> dict[tuple[str, str], tuple[float, ...]]:
    """A MultiQC plot data file as {(sample, column): value}; a cell is a number or an `(x, y)` point."""
    with path.open() as handle:
        rows = list(csv.reader(handle, delimiter="\t"))
    header = rows[0]
    out = {}
    for row in rows[1:]:
        for column, cell in zip(header[1:], row[1:], strict=True):
            if cell:
                value = ast.literal_eval(cell)
                out[(row[0], column)] = tuple(map(float, value)) if isinstance(value, tuple) else (float(value),)
    return out


@requires_browser
def test_report_opens_with_the_verdict_table_first_and_the_tool_sections(cohort, tmp_path):
    _, _, _, report = cohort
    with chromium_page() as page:
        page.goto(report.as_uri())
        table = page.locator(f"#{VERDICT_SECTION_ID}_table_table")
        table.wait_for(timeout=60_000)
        rows = {cells[0]: cells[1:] for cells in (
            [c.strip() for c in row.inner_text().split("\t")] for row in table.locator("tbody tr").all())}
        assert rows[PASSING][:2] in (["PASS", ""], ["WARN", ""])
        assert rows[STOPPED][:2] == ["FAIL", "qc_metrics_within_profile"]
        for tool in ("fastqc", "samtools", "bcftools"):
            assert page.locator(f"#{tool}").count() == 1, f"no {tool} section"
        tops = page.evaluate("""ids => ids.map(id => document.getElementById(id).getBoundingClientRect().top)""",
                             [f"mqc-module-section-{VERDICT_SECTION_ID}", "fastqc", "samtools", "bcftools"])
        assert tops[0] < min(tops[1:]), f"the verdict table comes first: {tops}"
        page.screenshot(path=str(tmp_path / "multiqc.png"))


def _sn(text: str, prefix: str) -> dict[str, float]:
    """The `SN` lines of samtools/bcftools stats text as {label: value} (comments after the value dropped)."""
    out = {}
    for line in text.splitlines():
        if line.startswith(prefix):
            parts = line.split("\t")
            label, value = (parts[1], parts[2]) if prefix == "SN\t" else (parts[2], parts[3])
            out[label.rstrip(":")] = float(value)
    return out


@pytest.mark.skipif(shutil.which("samtools") is None or shutil.which("bcftools") is None,
                    reason="samtools and bcftools are needed")
def test_rendered_tool_texts_equal_the_tools_own_output_on_the_stored_files(cohort, tmp_path):
    """flagstat byte for byte, and every samtools stats / bcftools stats number we write, against the tools
    run on the BAM and VCF the sample stored."""
    storage, inputs, _, _ = cohort
    bam = tmp_path / "sample.bam"
    storage.get_file(f"processed/{PASSING}/aligned_reads/{PASSING}.bam", bam)
    flagstat = subprocess.run(["samtools", "flagstat", str(bam)], check=True, capture_output=True, text=True).stdout
    assert (inputs / PASSING / f"{PASSING}.flagstat").read_text() == flagstat

    real = _sn(subprocess.run(["samtools", "stats", str(bam)], check=True, capture_output=True, text=True).stdout,
               "SN\t")
    ours = _sn((inputs / PASSING / f"{PASSING}.samtools_stats.txt").read_text(), "SN\t")
    assert ours.keys() <= real.keys()
    rounded = {"average quality", "insert size average", "insert size standard deviation", "average length"}
    for label, value in ours.items():  # samtools prints these to 1 decimal (average length: integer part)
        tolerance = 1.0 if label == "average length" else 0.05 if label in rounded else 1e-6 * abs(real[label])
        assert value == pytest.approx(real[label], abs=tolerance), label

    vcf = tmp_path / "sample.vcf.gz"
    storage.get_file(f"processed/{PASSING}/variant_calls/{PASSING}.vcf.gz", vcf)
    real_text = subprocess.run(["bcftools", "stats", str(vcf)], check=True, capture_output=True, text=True).stdout
    ours_text = (inputs / PASSING / f"{PASSING}.bcftools_stats.txt").read_text()
    assert _sn(ours_text, "SN\t0\t") == _sn(real_text, "SN\t0\t")
    for section in ("TSTV\t", "IDD\t"):
        real_rows = [line.split("\t")[2:4] for line in real_text.splitlines() if line.startswith(section)]
        ours_rows = [line.split("\t")[2:4] for line in ours_text.splitlines() if line.startswith(section)]
        assert ours_rows == real_rows, section


def test_each_sample_run_keeps_its_multiqc_inputs_and_a_rerun_drops_what_it_no_longer_has(cohort):
    """`genoflow run` wrote each sample's MultiQC inputs with its report (no cohort job ran in this module):
    the same files the renderer makes from the stored JSON. A file an earlier run left there (a re-run that
    stops earlier has no calls) is removed when the sample's inputs are written again."""
    from genoflow_dagster.assets.artifacts import multiqc_inputs_prefix, write_multiqc_inputs

    storage, inputs, _, _ = cohort
    for sample in (PASSING, STOPPED):
        kept = {obj.key.rsplit("/", 1)[-1]: storage.get_bytes(obj.key)
                for obj in storage.list(multiqc_inputs_prefix(sample))}
        rendered = {p.name: p.read_bytes() for p in (inputs / sample).iterdir()}
        assert kept == rendered, sample

    stale = multiqc_inputs_prefix(STOPPED) + f"{STOPPED}.bcftools_stats.txt"
    storage.put_bytes(b"# from an earlier run of this sample\n", stale)
    keys = write_multiqc_inputs(storage, STOPPED)
    assert not storage.exists(stale) and stale not in keys
    assert sorted(obj.key for obj in storage.list(multiqc_inputs_prefix(STOPPED))) == sorted(keys)
    with pytest.raises(Exception, match="never deleted"):
        storage.delete_derived(f"raw/{STOPPED}/anything")
