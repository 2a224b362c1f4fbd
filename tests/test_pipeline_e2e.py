"""The whole demo, end to end, on a fresh SQLite instance: gates stop and quarantine as promised."""

import json
import shutil
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from genoflow_dagster.demo.run import run_demo
from genoflow_dagster.resources.storage import LocalStorage
from genoflow_dagster.sensors.landing import FINGERPRINT_TAG, landing_zone_upload_sensor

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    home, data = root / "home", root / "data"
    home.mkdir()
    shutil.copyfile(REPO / "dagster.yaml", home / "dagster.yaml")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DAGSTER_HOME", str(home))
        mp.setenv("GENOFLOW_DATA_DIR", str(data))
        mp.setenv("GENOFLOW_STORAGE", "local")
        mp.setenv("GENOFLOW_AI_PROVIDER", "offline")
        mp.delenv("GENOFLOW_QC_PROFILE", raising=False)
        mp.setenv("GENOFLOW_REFERENCE", "")  # run_demo selects its reference in os.environ; this undoes it after
        exit_code = run_demo()
        instance = dg.DagsterInstance.get()
        yield exit_code, data, instance


def test_demo_exits_zero_and_writes_reports(demo_run):
    exit_code, data, _ = demo_run
    assert exit_code == 0
    assert (data / "reports" / "SAMPLE_A" / "report.html").is_file()
    assert (data / "reports" / "SAMPLE_C" / "report.html").is_file()
    assert (data / "reports" / "cohort" / "qc_summary.html").is_file()


def test_sample_a_report_lists_the_spiked_variants(demo_run):
    _, data, _ = demo_run
    truth = json.loads((data / "demo_inputs" / "truth.json").read_text())
    variants = pd.read_parquet(data / "processed" / "SAMPLE_A" / "variant_results" / "variants.parquet")
    called = set(zip(variants["chrom"], variants["pos"], variants["ref"], variants["alt"], strict=True))
    spiked = {(v["chrom"], v["pos"], v["ref"], v["alt"]) for v in truth["variants"]}
    assert spiked <= called
    html = (data / "reports" / "SAMPLE_A" / "report.html").read_text()
    for chrom, pos, ref, alt in spiked:
        assert f"{pos:,}" in html or str(pos) in html, (chrom, pos, ref, alt)


def test_sample_b_is_stopped_by_the_qc_gate_before_alignment(demo_run):
    _, data, instance = demo_run
    qc = json.loads((data / "processed" / "SAMPLE_B" / "qc_metrics" / "qc.json").read_text())
    assert qc["status"] == "fail"
    assert qc["failing"], "the verdict names the failing module"
    assert not (data / "processed" / "SAMPLE_B" / "aligned_reads").exists()
    report = (data / "reports" / "SAMPLE_B" / "report.html").read_text()  # a stopped sample is never silent
    assert "FAIL" in report and "qc_metrics_within_profile" in report
    evaluation = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [dg.AssetCheckKey(dg.AssetKey("qc_metrics"), "qc_metrics_within_profile")]
    )
    assert evaluation, "the gate's evaluation is recorded in the instance"
    summary = pd.read_parquet(data / "processed" / "cohort" / "qc_summary.parquet").set_index("sample_id")
    assert summary.loc["SAMPLE_B", "status"] == "fail"
    assert summary.loc["SAMPLE_B", "stopped_at"] == "qc_metrics_within_profile"
    assert summary.loc["SAMPLE_A", "status"] != "fail"
    # 105 of SAMPLE_A's 21,105 R1 reads come from the demo's contaminant genome
    assert summary.loc["SAMPLE_A", "contamination_percent"] == 0.4975
    assert summary.loc["SAMPLE_B", "contamination_percent"] == 0.0


def test_sample_c_bad_file_is_quarantined_with_its_reason(demo_run):
    _, data, _ = demo_run
    reasons = list((data / "quarantine" / "SAMPLE_C").glob("*/reason.json"))
    assert len(reasons) == 1
    reason = json.loads(reasons[0].read_text())
    assert reason["error_code"] == "VALIDATION_ERROR" and reason["reason"]
    assert reason["original_key"].startswith("landing/SAMPLE_C/")
    folder = reasons[0].parent
    assert folder.name == reason["sha256"]
    assert len(list(folder.iterdir())) == 2, "the file itself sits beside reason.json"
    # The landed original is untouched: nothing is ever deleted.
    assert (data / reason["original_key"]).is_file()


def test_demo_runs_name_the_demo_reference_in_their_config(demo_run):
    """Re-executed from the UI, where GENOFLOW_REFERENCE=demo is not set, a demo run still uses the demo's genome."""
    _, data, instance = demo_run
    runs = instance.get_runs(dg.RunsFilter(job_name="sample_pipeline"))
    assert len(runs) == 3
    for run in runs:
        reference = run.run_config["resources"]["reference"]["config"]
        assert reference["fasta_path"] == str(data / "references" / "demo" / "genome.fa")
        assert reference["contaminant_paths"] == [str(data / "references" / "demo" / "contaminants" /
                                                      "demo_bacterium.fa")]


def test_demo_writes_a_multiqc_cohort_report_of_every_sample(demo_run, tmp_path):
    """`make demo`'s cohort job renders the MultiQC report: every sample in the verdict table (the stopped one
    too, with its gate), FastQC, Samtools and Bcftools sections, General Statistics equal to the stored JSON."""
    import zipfile

    from genoflow_dagster.reports.multiqc_inputs import VERDICT_SECTION_ID
    from tests.browser import chromium_page

    _, data, _ = demo_run
    report = data / "reports" / "cohort" / "multiqc_report.html"
    assert report.is_file()
    with zipfile.ZipFile(data / "reports" / "cohort" / "multiqc_data.zip") as parsed:
        fastqc_rows = [line.split("\t") for line in parsed.read("multiqc_fastqc.txt").decode().splitlines()]
    header, rows = fastqc_rows[0], {row[0]: dict(zip(fastqc_rows[0], row, strict=True)) for row in fastqc_rows[1:]}
    assert "Total Sequences" in header
    for sample in ("SAMPLE_A", "SAMPLE_B"):
        qc = json.loads((data / "processed" / sample / "qc_metrics" / "qc.json").read_text())
        for entry in qc["files"]:
            metrics = json.loads((data / entry["metrics_key"]).read_text())
            row = rows[entry["name"].removesuffix(".fastq.gz")]
            assert float(row["Total Sequences"]) == metrics["total_reads"], entry["name"]
            assert float(row["%GC"]) == int(metrics["gc_percent"]), entry["name"]  # FastQC prints the integer part
    try:
        page_context = chromium_page()
        page = page_context.__enter__()
    except Exception as exc:  # no browser on this machine: the file checks above still ran
        pytest.skip(f"headless Chromium unavailable: {exc}")
    try:
        page.goto(report.as_uri())
        table = page.locator(f"#{VERDICT_SECTION_ID}_table_table")
        table.wait_for(timeout=60_000)
        verdicts = {cells[0]: cells[1:] for cells in (
            [c.strip() for c in row.inner_text().split("\t")] for row in table.locator("tbody tr").all())}
        assert set(verdicts) == {"SAMPLE_A", "SAMPLE_B", "SAMPLE_C"}
        assert verdicts["SAMPLE_B"][:2] == ["FAIL", "qc_metrics_within_profile"]
        assert verdicts["SAMPLE_A"][0] == "PASS" and verdicts["SAMPLE_C"][0] == "WARN"
        for tool in ("fastqc", "samtools", "bcftools"):
            assert page.locator(f"#{tool}").count() == 1, f"no {tool} section"
    finally:
        page_context.__exit__(None, None, None)


def test_demo_runs_are_ordinary_runs_of_the_genoflow_code_location(demo_run, monkeypatch):
    """Launched the way `genoflow run` launches a run: from the code location `make dev` serves, so the UI's
    timeline lists them and Re-execute loads the same job; each sample's run names its sample, says the demo
    started it and carries its files' fingerprint, so the landing sensor started later does not run them again."""
    _, data, instance = demo_run
    runs = instance.get_runs()
    assert sorted(run.job_name for run in runs) == ["cohort", "reference_data", *["sample_pipeline"] * 3]
    for run in runs:
        assert run.remote_job_origin is not None and run.remote_job_origin.location_name == "genoflow", run.job_name
        assert run.tags["genoflow/trigger"] == "demo" and run.tags["genoflow/worker_host"]
    samples = {run.tags["genoflow/sample"]: run for run in runs if run.job_name == "sample_pipeline"}
    assert sorted(samples) == ["SAMPLE_A", "SAMPLE_B", "SAMPLE_C"]
    for sample, run in samples.items():
        assert run.tags["dagster/partition"] == sample
        assert run.tags[FINGERPRINT_TAG].startswith(f"{sample}:")
    # launched side by side: all three were created before any of them ended
    records = instance.get_run_records(dg.RunsFilter(job_name="sample_pipeline"))
    assert max(r.create_timestamp.timestamp() for r in records) < min(r.end_time for r in records)

    monkeypatch.setenv("GENOFLOW_LANDING_SETTLE_SECONDS", "0")
    context = dg.build_sensor_context(instance=instance, resources={"storage": LocalStorage(base_dir=str(data))})
    tick = landing_zone_upload_sensor(context)
    assert tick.run_requests == [], "the landing sensor does not run the demo's samples again"
