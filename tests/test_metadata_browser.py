"""Asset metadata as a user reads it in the Dagster UI, in headless Chromium (issue 14).

A real sample (the Illumina pair ERR5069949 against MN908947.3 and its GFF, ../shared/realdata) goes through
the whole sample pipeline on a SQLite instance in a temp DAGSTER_HOME; dagster-webserver then serves it on
127.0.0.1. The qc_metrics materialization's page must show its QC module table and read-pair table as
tables (not behind "[Show Markdown]"), read counts as whole numbers (not 2e+02), and the report asset
no empty narrative rows. Screenshots are left in the test's tmp_path.
"""

import base64
import json
import os
import re
import shutil
from pathlib import Path

import dagster as dg
import pytest

from genoflow_dagster import zones
from genoflow_dagster.assets.ingestion import raw_files, validated_files
from genoflow_dagster.assets.qc import qc_metrics
from genoflow_dagster.assets.reports import sample_report
from genoflow_dagster.assets.variants import aligned_reads, variant_calls, variant_results
from genoflow_dagster.partitions import SAMPLES_PARTITION_NAME
from genoflow_dagster.resources.ai import AIProvider
from genoflow_dagster.resources.compute import Compute
from genoflow_dagster.resources.reference import ReferenceData
from genoflow_dagster.resources.storage import LocalStorage
from tests.browser import chromium_page, dagster_webserver, requires_browser, skip_welcome_dialog

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"
pytestmark = [pytest.mark.integration, pytest.mark.slow, requires_browser,
              pytest.mark.skipif(not REALDATA.is_dir(), reason="../shared/realdata not present")]

SAMPLE = "ERR5069949"
E_NOTATION = re.compile(r"\b\d(?:\.\d+)?e[+-]?\d+\b", re.IGNORECASE)
TALL = {"width": 1600, "height": 3000}  # the metadata panel scrolls inside the page: a tall window shows it all


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    """The webserver's base URL over an instance holding one real sample's materializations."""
    root = tmp_path_factory.mktemp("metadata-ui")
    home = root / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    lab = root / "lab"
    lab.mkdir()
    for name in ("MN908947.3.fasta", "MN908947.3.gff"):
        shutil.copyfile(REALDATA / name, lab / name)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GENOFLOW_", "DAGSTER_"))}
    env.update(DAGSTER_HOME=str(home), GENOFLOW_DATA_DIR=str(root / "data"), GENOFLOW_STORAGE="local",
               GENOFLOW_AI_PROVIDER="offline", GENOFLOW_REFERENCE_CACHE=str(root / "reference-cache"),
               GENOFLOW_REFERENCE_FASTA=str(lab / "MN908947.3.fasta"),
               GENOFLOW_ANNOTATION=str(lab / "MN908947.3.gff"), GENOFLOW_KNOWN_SITES="off")
    storage = LocalStorage(base_dir=str(root / "data"))
    with pytest.MonkeyPatch.context() as mp:
        for key in [k for k in os.environ if k.startswith(("GENOFLOW_", "DAGSTER_"))]:
            mp.delenv(key)
        for key, value in env.items():
            if key.startswith(("GENOFLOW_", "DAGSTER_")):
                mp.setenv(key, value)
        for mate in (1, 2):
            storage.put_file(REALDATA / f"ERR5069949_test_{mate}.fastq.gz",
                             zones.landing_key(SAMPLE, f"ERR5069949_R{mate}.fastq.gz"))
        with dg.DagsterInstance.get() as instance:
            instance.add_dynamic_partitions(SAMPLES_PARTITION_NAME, [SAMPLE])
            result = dg.materialize(
                [raw_files, validated_files, qc_metrics, aligned_reads, variant_calls, variant_results,
                 sample_report], partition_key=SAMPLE, instance=instance,
                run_config={"ops": {"qc_metrics": {"config": {"profile": "amplicon"}}}},
                resources={"storage": storage, "compute": Compute(mode="in_process"),
                           "ai": AIProvider(provider="offline"),
                           "reference": ReferenceData(fasta_path=str(lab / "MN908947.3.fasta"),
                                                      annotation_path=str(lab / "MN908947.3.gff"))})
            assert result.success
    qc = json.loads(storage.get_bytes(zones.qc_summary_key(SAMPLE)))
    with dagster_webserver(env, root) as url:
        yield url, qc


def _open_materialization(page, url: str, asset: str) -> None:
    """The asset's Events tab with the sample's latest materialization, the community dialog dismissed."""
    skip_welcome_dialog(page)
    page.goto(f"{url}/assets/{asset}?view=events&partition={SAMPLE}")
    page.get_by_text("Metadata", exact=True).first.wait_for(timeout=60_000)


def _entry(page, key: str):
    """The metadata panel's row of one entry (its key cell holds exactly `key`)."""
    row = page.locator("tr").filter(has=page.get_by_text(key, exact=True)).last
    row.wait_for(timeout=30_000)
    return row


_TOP_LEVEL_ENTRIES = """() => {
  const shown = {};
  for (const row of document.querySelectorAll("tr")) {
    const cells = Array.from(row.children).filter((c) => c.tagName === "TD");
    // an entry's key is set in the UI's monospace type; the rows of a table value are plain cells
    if (cells.length < 2 || !cells[0].querySelector("span[class*=familyMono]")) continue;
    const key = cells[0].innerText.trim();
    if (!(key in shown)) shown[key] = cells[1].innerText.trim();
  }
  return shown;
}"""


def _metadata_values(page) -> dict[str, str]:
    """Each top-level metadata entry's key and the text of its value, as shown."""
    return page.evaluate(_TOP_LEVEL_ENTRIES)


def test_qc_metadata_shows_tables_and_whole_read_counts(ui, tmp_path):
    url, qc = ui
    with chromium_page(viewport=TALL) as page:
        _open_materialization(page, url, "qc_metrics")
        modules = _entry(page, "modules")
        table = modules.locator("table").first
        headers = [h.inner_text().strip() for h in table.locator("thead th").all()]
        assert headers == ["file", "module", "status", "value", "warn", "fail", "message"]
        graded = sum(len(f["verdict"]["modules"]) for f in qc["files"])
        assert table.locator("tbody tr").count() == graded
        assert "[Show Markdown]" not in modules.inner_text()
        pairs = _entry(page, "read_pairs").locator("table").first
        assert pairs.locator("tbody tr").count() == 1
        page.screenshot(path=str(tmp_path / "qc_metrics_materialization.png"), full_page=True)
        shown = _metadata_values(page)
    assert shown["reads (all FASTQ files)"] == str(qc["headline"]["total_reads"])
    assert shown["bases (all FASTQ files)"] == str(qc["headline"]["total_bases"])  # 27645: a float shows 2.765e+4
    assert shown["bases >= Q30 (%)"] == f"{qc['headline']['q30_percent']:.2f}".rstrip("0").rstrip(".")
    assert not [f"{k}: {v}" for k, v in shown.items() if E_NOTATION.search(v)]
    assert all(value for value in shown.values()), "an empty metadata entry"


def test_metadata_plots_are_drawn_large_enough_to_read(ui, tmp_path):
    """The UI shows a Markdown image in a dialog about 360 px wide: each plot's text, scaled to the width the
    image is shown at, must stay at 9 px or more (the plots drawn for the report page came out near 5 px)."""
    url, _ = ui
    with chromium_page(viewport={"width": 1600, "height": 1200}) as page:
        _open_materialization(page, url, "qc_metrics")
        _entry(page, "fastq_plots").get_by_text("[Show Markdown]").click()
        images = page.get_by_role("dialog").locator("img")
        images.first.wait_for(timeout=30_000)
        page.screenshot(path=str(tmp_path / "fastq_plots.png"))
        shown = [(img.get_attribute("src"), img.bounding_box()) for img in images.all()]
    assert len(shown) == 3  # per-position quality, GC content, read lengths
    for src, box in shown:
        svg = base64.b64decode(src.split(",", 1)[1]).decode()
        view_width = float(re.search(r'viewBox="0 0 ([0-9.]+) ', svg).group(1))
        font = float(re.search(r'font-size="([0-9.]+)"', svg).group(1))
        assert font * box["width"] / view_width >= 9, f"text {font * box['width'] / view_width:.1f} px"
        assert 'class="axis"' in svg and svg.count('class="axis"') == 2  # both axes labelled


def test_report_metadata_links_both_reports_and_has_no_empty_rows(ui, tmp_path):
    url, _ = ui
    with chromium_page(viewport=TALL) as page:
        _open_materialization(page, url, "sample_report")
        _entry(page, "report_pdf_uri")
        page.screenshot(path=str(tmp_path / "sample_report_materialization.png"), full_page=True)
        shown = _metadata_values(page)
    assert shown["report_uri"].endswith(f"reports/{SAMPLE}/report.html")
    assert shown["report_pdf_uri"].endswith(f"reports/{SAMPLE}/report.pdf")
    assert shown["narrative_provider"] == "offline"
    assert not [k for k in shown if k.startswith("narrative_") and k != "narrative_provider"]
    assert all(value for value in shown.values()), "an empty metadata entry"
