"""The sample report's PDF and its provenance, on a real sample (issue 14).

Data (../shared/realdata): the Illumina pair ERR5069949 (ARTIC SARS-CoV-2 amplicons) against MN908947.3 and
its GFF annotation, no known sites; and a gate-stopped sample whose only reads are the same R1 cut off in the
middle of its 51st record (invalid, quarantined: no usable input, FAIL at validated_files).

Each stage stores the identity of the reference data it used and the run that computed it; the report's
provenance names them; `write_sample_report` also prints the page to reports/<sample>/report.pdf, for a
stopped sample too. The PDF is checked as a reader sees it: its text (pypdfium2) and page 1 rendered to PNG.
"""

import gzip
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from genoflow_dagster import zones
from genoflow_dagster.assets.reports import sample_report
from genoflow_dagster.partitions import SAMPLES_PARTITION_NAME
from genoflow_dagster.reports.pdf import pdf_page_count, pdf_page_png, pdf_page_text
from genoflow_dagster.resources.ai import AIProvider
from genoflow_dagster.resources.storage import LocalStorage
from genoflow_dagster.sample_record import AlignmentManifest, VariantResults, read_sample
from tests.real_samples import REALDATA, copy_reference, land_err5069949, materialize_sample, needs_realdata

pytestmark = pytest.mark.slow

def sha256sum(path: Path) -> str:
    """The checksum as coreutils' sha256sum prints it (the tool a lab checks a file with)."""
    return subprocess.run(["sha256sum", str(path)], capture_output=True, text=True, check=True).stdout.split()[0]


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    root = tmp_path_factory.mktemp("pdf")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GENOFLOW_DATA_DIR", str(root / "data"))
        mp.setenv("GENOFLOW_REFERENCE_CACHE", str(root / "reference-cache"))
        mp.delenv("GENOFLOW_QC_PROFILE", raising=False)
        lab = copy_reference(root / "lab")
        storage = LocalStorage(base_dir=str(root / "zones"))
        land_err5069949(storage, "S1")
        with gzip.open(REALDATA / "ERR5069949_test_1.fastq.gz", "rt") as fh:
            lines = fh.readlines()[:202]  # 50 of its 100 records and the first two lines of the 51st
        storage.put_bytes("".join(lines).encode(), zones.landing_key("STOP1", "cut_R1.fastq"))
        passed = materialize_sample(storage, lab, "S1")
        stopped = materialize_sample(storage, lab, "STOP1")
        yield {"storage": storage, "lab": lab, "S1": passed, "STOP1": stopped}


def _metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == asset]
    return event.materialization.metadata


def _pdf_text(pdf: bytes) -> str:
    return "\n".join(pdf_page_text(pdf, page) for page in range(pdf_page_count(pdf)))


def _compact(text: str) -> str:
    """PDF text without the line breaks a table cell wraps a long checksum with."""
    return re.sub(r"\s+", "", text)


def _badge(html: str) -> str:
    """The status the HTML page shows in its header badge."""
    match = re.search(r'<span class="badge [a-z_]+">([A-Z ]+)</span>', html)
    assert match, "no status badge in the HTML report"
    return match.group(1)


@needs_realdata
def test_each_stage_stores_the_reference_data_and_the_run_that_computed_it(samples):
    storage, lab, result = samples["storage"], samples["lab"], samples["S1"]
    run_id = result.run_id
    sample = read_sample(storage, "S1")
    genome = sha256sum(lab / "MN908947.3.fasta")
    assert sample.aligned.reference_genome.sha256 == genome
    assert sample.aligned.reference_genome.source == str(lab / "MN908947.3.fasta")
    assert sample.aligned.reference_genome.name is None  # configured by path, not added under a name
    assert sample.variant_results.annotation.sha256 == sha256sum(lab / "MN908947.3.gff")
    assert not sample.variant_results.known_sites.used  # not configured: stored as not used
    assert {sample.validation.run_id, sample.qc.run_id, sample.aligned.run_id, sample.calls.run_id,
            sample.variant_results.run_id} == {run_id}
    assert {f.run_id for f in sample.inventory.files} == {run_id}
    stored = json.loads(storage.get_bytes(zones.variants_summary_key("S1")))
    assert stored["known_sites"] == {"source": None, "sha256": None}


@needs_realdata
def test_records_stored_before_provenance_was_recorded_still_read(samples):
    storage = samples["storage"]
    for key_of, record, added in ((zones.aligned_manifest_key, AlignmentManifest, ("reference_genome", "run_id")),
                                  (zones.variants_summary_key, VariantResults,
                                   ("annotation", "known_sites", "run_id"))):
        old = {k: v for k, v in json.loads(storage.get_bytes(key_of("S1"))).items() if k not in added}
        read = record.from_json(old)
        assert all(getattr(read, name) is None for name in added)
        assert json.loads(json.dumps(read.to_json())) == old  # written back unchanged: no field appears


@needs_realdata
def test_the_report_and_its_pdf_name_the_reference_data_and_the_runs(samples, tmp_path):
    storage, lab, result = samples["storage"], samples["lab"], samples["S1"]
    metadata = _metadata(result, "sample_report")
    assert metadata["report_pdf_uri"].value.endswith("reports/S1/report.pdf")
    assert not [key for key, value in metadata.items() if value.value in (None, "")]
    html = storage.get_bytes(zones.sample_report_key("S1")).decode()
    pdf = storage.get_bytes(zones.sample_report_pdf_key("S1"))
    assert pdf.startswith(b"%PDF-") and pdf_page_count(pdf) >= 1
    genome, annotation = sha256sum(lab / "MN908947.3.fasta"), sha256sum(lab / "MN908947.3.gff")
    status = _badge(html)
    assert status == metadata["sample_status"].value.upper()
    for page in (html, _pdf_text(pdf)):
        flat = _compact(page)
        assert "S1" in page and status in page
        assert genome in flat and annotation in flat
        assert "knownsites" in flat and "notused" in flat
        assert result.run_id in flat  # the run that computed each step, not only the one that rendered
    assert html.count(f"<code>{result.run_id}</code>") >= 7  # six steps and the report's own run
    first = pdf_page_text(pdf, 0)
    assert "S1" in first and status in first

    png = pdf_page_png(pdf, 0)
    (tmp_path / "report-page-1.png").write_bytes(png)
    from PIL import Image, ImageStat

    page = Image.open(io.BytesIO(png)).convert("L")
    assert page.width > 800 and page.height > 1100  # A4 portrait at 1.5x
    assert ImageStat.Stat(page).stddev[0] > 20, "page 1 is blank"
    ink = sum(page.histogram()[:128]) / (page.width * page.height)
    assert 0.01 < ink < 0.5, f"{ink:.3f} of page 1 is dark"


@needs_realdata
def test_a_gate_stopped_sample_gets_a_pdf_saying_fail(samples, tmp_path):
    storage, result = samples["storage"], samples["STOP1"]
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not checks["validated_files_usable"].passed
    html = storage.get_bytes(zones.sample_report_key("STOP1")).decode()
    pdf = storage.get_bytes(zones.sample_report_pdf_key("STOP1"))
    assert _badge(html) == "FAIL"
    text = _pdf_text(pdf)
    assert "STOP1" in text and "FAIL" in pdf_page_text(pdf, 0) and "validated_files_usable" in _compact(text)
    (tmp_path / "stopped-page-1.png").write_bytes(pdf_page_png(pdf, 0))
    metadata = _metadata(result, "validated_files")
    results = {r.data["path"]: r.data for r in metadata["results"].records}
    assert results["cut_R1.fastq"]["valid"] is False and results["cut_R1.fastq"]["line"] > 200


# Run in a child process: WeasyPrint's system libraries are loaded once, when it is first imported.
WITHOUT_PANGO = """
import json, sys
import cffi
real = cffi.FFI.dlopen
def dlopen(self, name, *args, **kwargs):  # the loader's answer on a machine without Pango
    if "pango" in str(name):
        raise OSError(f"cannot load library '{name}': {name}: cannot open shared object file")
    return real(self, name, *args, **kwargs)
cffi.FFI.dlopen = dlopen
from genoflow_dagster.assets.artifacts import write_sample_report
from genoflow_dagster.resources.storage import LocalStorage
report = write_sample_report(LocalStorage(base_dir=sys.argv[1]), "S1", run_id="no-pango-run", narrator=None)
print(json.dumps({"uri": report.uri, "pdf_uri": report.pdf_uri, "problem": report.pdf_problem}))
"""


@needs_realdata
def test_without_pango_the_html_is_still_written_and_the_problem_names_what_to_install(samples):
    storage = samples["storage"]
    before = storage.get_bytes(zones.sample_report_pdf_key("S1"))
    done = subprocess.run([sys.executable, "-c", WITHOUT_PANGO, str(storage.base_dir)], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "GENOFLOW_DATA_DIR": str(storage.base_dir)})
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["pdf_uri"] is None
    assert "apt-get install libpango-1.0-0" in report["problem"] and "cannot load library" in report["problem"]
    assert "no-pango-run" in storage.get_bytes(zones.sample_report_key("S1")).decode()
    assert storage.get_bytes(zones.sample_report_pdf_key("S1")) == before  # the earlier PDF is left whole


@needs_realdata
def test_a_gate_lists_its_modules_outside_the_profile_as_a_table(samples):
    """The QC gate's check result carries the modules behind its warning (ERR5069949's amplicon library warns
    on base composition and GC, as FastQC does) as a table with their value and threshold."""
    result = samples["S1"]
    gate = next(e for e in result.get_asset_check_evaluations() if e.check_name == "qc_metrics_within_profile")
    rows = [r.data for r in gate.metadata["modules"].records]
    composition = next(r for r in rows if r["module"] == "per base sequence content"
                       and r["file"] == "ERR5069949_R1.fastq.gz")
    assert (composition["status"], composition["value"], composition["threshold"]) == ("warn", 25.0, "10")
    assert {r["status"] for r in rows} == {"warn"}


@needs_realdata
def test_a_reference_added_under_a_name_is_stored_with_that_name(tmp_path, monkeypatch):
    """`genoflow reference add --name` then GENOFLOW_REFERENCE: the stored identity names the reference."""
    from genoflow_dagster.assets.artifacts import reference_file
    from genoflow_dagster.references import add_reference, chosen_reference

    monkeypatch.setenv("GENOFLOW_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("GENOFLOW_REFERENCE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GENOFLOW_REFERENCE_FASTA", raising=False)
    add_reference(REALDATA / "MN908947.3.fasta", name="sars-cov-2", annotation=REALDATA / "MN908947.3.gff")
    monkeypatch.setenv("GENOFLOW_REFERENCE", "sars-cov-2")
    chosen = chosen_reference()
    genome, annotation = reference_file(chosen.fasta), reference_file(chosen.annotation)
    assert (genome.name, genome.sha256) == ("sars-cov-2", sha256sum(REALDATA / "MN908947.3.fasta"))
    assert (annotation.name, annotation.sha256) == ("sars-cov-2", sha256sum(REALDATA / "MN908947.3.gff"))
    assert reference_file(REALDATA / "MN908947.3.fasta").name is None  # a file configured by its path


@needs_realdata
def test_a_report_rendered_later_names_the_runs_that_computed_each_step(samples):
    """sample_report alone, in a new run: its provenance still names the run that computed each step."""
    storage, lab, first = samples["storage"], samples["lab"], samples["S1"]
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(SAMPLES_PARTITION_NAME, ["S1"])
    again = dg.materialize([sample_report], partition_key="S1", instance=instance,
                           resources={"storage": storage, "ai": AIProvider(provider="offline")})
    assert again.run_id != first.run_id
    html = storage.get_bytes(zones.sample_report_key("S1")).decode()
    steps = dict(re.findall(r"<tr><td>(\w+)</td><td><code>([0-9a-f-]{36})</code></td></tr>", html))
    assert steps == {"raw_files": first.run_id, "validated_files": first.run_id, "qc_metrics": first.run_id,
                     "aligned_reads": first.run_id, "variant_calls": first.run_id,
                     "variant_results": first.run_id, "sample_report": again.run_id}
    assert sha256sum(lab / "MN908947.3.fasta") in html  # the genome stays named, as aligned_reads stored it
