"""The Dagster UI, seen in headless Chromium, shows each sample's own gate result (issue 12).

Two samples of the demo's generator (genoflow_dagster/demo/generate.py, small) are materialized up to
qc_metrics on a SQLite instance in a temp DAGSTER_HOME: SAMPLE_A's reads pass the QC gate, SAMPLE_B's
(mostly below Q15) are stopped by it. dagster-webserver then serves that instance on 127.0.0.1, and the
check page of ``qc_metrics_within_profile`` must show SAMPLE_B failed and SAMPLE_A succeeded, not one
result for the whole asset.
"""

import os
import time
from pathlib import Path

import dagster as dg
import pytest

from genoflow_dagster import zones
from genoflow_dagster.assets.ingestion import raw_files, validated_files
from genoflow_dagster.assets.qc import qc_metrics
from genoflow_dagster.demo.generate import SAMPLE_A, SAMPLE_B, generate_demo
from genoflow_dagster.partitions import SAMPLES_PARTITION_NAME
from genoflow_dagster.resources.compute import Compute
from genoflow_dagster.resources.reference import ReferenceData
from genoflow_dagster.resources.storage import LocalStorage
from tests.browser import chromium_page, dagster_webserver, requires_browser, skip_welcome_dialog

pytestmark = [pytest.mark.integration, pytest.mark.slow, requires_browser]

GATE = "qc_metrics_within_profile"


def _materialize_two_samples(root: Path) -> dict[str, bool]:
    """SAMPLE_A (passes the QC gate) and SAMPLE_B (stopped by it), each its own run of the instance in
    DAGSTER_HOME; returns each sample's gate result as the run recorded it."""
    demo = generate_demo(root / "demo", contigs=(("chr1", 20_000),), coverage=8.0, n_snvs=4, n_indels=1,
                         low_quality_pairs=200)
    storage = LocalStorage(base_dir=str(root / "data"))
    outcomes = {}
    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions(SAMPLES_PARTITION_NAME, [SAMPLE_A, SAMPLE_B])
        for sample in (SAMPLE_A, SAMPLE_B):
            for path in demo.samples[sample]:
                storage.put_file(path, zones.landing_key(sample, path.name))
            result = dg.materialize(
                [raw_files, validated_files, qc_metrics], partition_key=sample, instance=instance,
                raise_on_error=False,
                resources={"storage": storage, "reference": ReferenceData(fasta_path=str(demo.reference_fasta)),
                           "compute": Compute(mode="in_process")})
            gate = next(e for e in result.get_asset_check_evaluations() if e.check_name == GATE)
            outcomes[sample] = gate.passed
    return outcomes


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    """The webserver's base URL over an instance holding SAMPLE_A's and SAMPLE_B's QC gate results."""
    root = tmp_path_factory.mktemp("ui")
    home = root / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GENOFLOW_", "DAGSTER_"))}
    env.update(DAGSTER_HOME=str(home), GENOFLOW_DATA_DIR=str(root / "data"), GENOFLOW_STORAGE="local",
               GENOFLOW_AI_PROVIDER="offline", GENOFLOW_REFERENCE_CACHE=str(root / "reference-cache"))
    with pytest.MonkeyPatch.context() as mp:
        for key in [k for k in os.environ if k.startswith(("GENOFLOW_", "DAGSTER_"))]:
            mp.delenv(key)
        for key, value in env.items():
            if key.startswith(("GENOFLOW_", "DAGSTER_")):
                mp.setenv(key, value)
        outcomes = _materialize_two_samples(root)
    assert outcomes == {SAMPLE_A: True, SAMPLE_B: False}, "the two samples are one pass and one stop"

    with dagster_webserver(env, root) as url:
        yield url


def _wait_for_text(page, text: str, timeout_seconds: float = 30) -> None:
    """Wait until the page's visible text contains `text` (the UI loads check results asynchronously)."""
    deadline = time.monotonic() + timeout_seconds
    while text not in page.inner_text("body"):
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} not shown; the page says:\n{page.inner_text('body')[-2000:]}")
        page.wait_for_timeout(250)


def test_check_pages_show_each_samples_own_gate_result(ui, tmp_path):
    """Execution history lists one result per sample partition; the Partitions tab counts one failed and one
    passed, and each sample's detail shows its own result (screenshots in tmp_path)."""
    with chromium_page() as page:
        skip_welcome_dialog(page)
        page.goto(f"{ui}/assets/qc_metrics?view=checks&checkDetail={GATE}")

        page.get_by_text("Execution history", exact=True).click()
        table = page.locator("table").filter(has_text="Evaluation result")
        table.get_by_text(SAMPLE_A, exact=True).wait_for(timeout=30_000)
        shown_by_partition = {}
        for row in table.locator("tbody tr").all():
            cells = [cell.inner_text().strip() for cell in row.locator("td").all()]
            if len(cells) >= 4:
                shown_by_partition[cells[3]] = cells[0]
        page.screenshot(path=str(tmp_path / "execution_history.png"), full_page=True)
        assert shown_by_partition == {SAMPLE_A: "Passed", SAMPLE_B: "Failed"}

        page.get_by_text("Partitions", exact=True).last.click()
        _wait_for_text(page, "Failed (1)")
        assert "Passed (1)" in page.inner_text("body")
        for sample, shown in ((SAMPLE_B, "Failed"), (SAMPLE_A, "Passed")):
            page.get_by_text(sample, exact=True).filter(visible=True).last.click()
            _wait_for_text(page, f"{sample}\n{shown}\nLatest execution")
            page.screenshot(path=str(tmp_path / f"partition_{sample}.png"), full_page=True)
