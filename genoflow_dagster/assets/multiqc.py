"""The cohort QC report as a MultiQC report (reports/multiqc_inputs.py renders; this asset reads, calls, writes).

Each sample's stored metrics are written in the formats MultiQC parses (FastQC's fastqc_data.txt, samtools
flagstat/stats, bcftools stats, custom content for GenoFlow's verdict table) under `processed/<sample>/multiqc/`
when its report is written (`artifacts.write_multiqc_inputs`), so a lab can point its own MultiQC at
`processed/`. This asset fetches them and renders `reports/cohort/multiqc_report.html` with MultiQC's parsed
data beside it. A sample without stored inputs (still running, or reported before they were kept) is rendered
from its stored JSON here, for this report only.
"""

import shutil
import tempfile
from pathlib import Path

import dagster as dg

from genoflow_dagster import settings, zones
from genoflow_dagster.assets.artifacts import multiqc_inputs_prefix
from genoflow_dagster.assets.metadata import code_version
from genoflow_dagster.assets.transient import retry_storage_outages
from genoflow_dagster.partitions import SAMPLES_PARTITION_NAME
from genoflow_dagster.reports.multiqc_inputs import build_multiqc_report, read_sample_artifacts, write_sample_inputs
from genoflow_dagster.resources.storage import Storage

COHORT = "cohort"
MULTIQC_REPORT_NAME = "multiqc_report.html"
MULTIQC_DATA_NAME = "multiqc_data.zip"


@dg.asset(
    group_name=COHORT,
    deps=["qc_metrics", "variant_results"],
    kinds={"multiqc", "html"},
    code_version=code_version(),
    description="The cohort QC report as a MultiQC report: GenoFlow's verdict table first (every sample, "
    "gate-stopped ones included: status, failing gate, why), General Statistics, then FastQC, Samtools and "
    "Bcftools sections from each sample's MultiQC inputs, which its report writes under "
    "processed/<sample>/multiqc/ (so any MultiQC pointed at processed/ reads them too).",
)
@retry_storage_outages
def cohort_multiqc_report(context: dg.AssetExecutionContext, storage: Storage) -> dg.MaterializeResult:
    samples: list[str] = []
    with tempfile.TemporaryDirectory(dir=settings.work_dir(), prefix="multiqc-") as tmp:
        inputs = Path(tmp) / "inputs"
        rendered_here = 0
        for sample_id in sorted(context.instance.get_dynamic_partitions(SAMPLES_PARTITION_NAME)):
            stored = list(storage.list(multiqc_inputs_prefix(sample_id)))
            if stored:
                (inputs / sample_id).mkdir(parents=True)
                for obj in stored:
                    storage.get_file(obj.key, inputs / sample_id / obj.key.rsplit("/", 1)[-1])
            else:
                artifacts = read_sample_artifacts(storage, sample_id)
                if artifacts.validation is None and artifacts.qc is None:
                    continue  # landed, not validated yet: nothing to show
                write_sample_inputs(artifacts, inputs)
                rendered_here += 1
            samples.append(sample_id)
        if not samples:
            context.log.warning("no sample has been validated yet: no MultiQC report written")
            return dg.MaterializeResult(metadata={"samples": dg.MetadataValue.int(0)})
        context.log.info(f"MultiQC over {len(samples)} samples ({rendered_here} without stored inputs, rendered "
                         "from their JSON for this report)")
        report = build_multiqc_report(inputs, Path(tmp) / "out", title="GenoFlow cohort QC")
        seconds = float((report.parent / "multiqc_build_seconds.txt").read_text())
        data_zip = shutil.make_archive(str(Path(tmp) / "multiqc_data"), "zip", report.parent / "multiqc_data")
        page_bytes = report.stat().st_size
        storage.put_file(report, zones.cohort_key(MULTIQC_REPORT_NAME))
        storage.put_file(Path(data_zip), zones.cohort_key(MULTIQC_DATA_NAME))
    report_uri = storage.uri(zones.cohort_key(MULTIQC_REPORT_NAME))
    context.log.info(f"MultiQC cohort report of {len(samples)} samples built in {seconds:.1f} s: {report_uri}")
    return dg.MaterializeResult(metadata={
        "samples": dg.MetadataValue.int(len(samples)),
        "report": dg.MetadataValue.path(report_uri),
        "parsed data": dg.MetadataValue.path(storage.uri(zones.cohort_key(MULTIQC_DATA_NAME))),
        "build time (s)": dg.MetadataValue.float(round(seconds, 2)),
        "page size (MB)": dg.MetadataValue.float(round(page_bytes / 1e6, 2)),
    })
