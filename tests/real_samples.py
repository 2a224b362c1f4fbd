"""One real SARS-CoV-2 sample through every per-sample stage, for tests that need what the pipeline stores.

The reference MN908947.3 with its GFF and the 100 read pairs of ERR5069949 come from ../shared/realdata; the
reads are an ARTIC amplicon library, so QC grades them with the `amplicon` profile.
"""

from __future__ import annotations

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

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"
needs_realdata = pytest.mark.skipif(not REALDATA.is_dir(), reason="../shared/realdata not present")
SAMPLE_ASSETS = [raw_files, validated_files, qc_metrics, aligned_reads, variant_calls, variant_results, sample_report]


def copy_reference(lab: Path) -> Path:
    """MN908947.3's FASTA and GFF copied into `lab` (the lab's own folder; realdata stays untouched)."""
    lab.mkdir(parents=True, exist_ok=True)
    for name in ("MN908947.3.fasta", "MN908947.3.gff"):
        shutil.copyfile(REALDATA / name, lab / name)
    return lab


def land_err5069949(storage: LocalStorage, sample_id: str) -> None:
    """ERR5069949's two read files into landing/<sample>/ as an upload would put them."""
    for mate in (1, 2):
        storage.put_file(REALDATA / f"ERR5069949_test_{mate}.fastq.gz",
                         zones.landing_key(sample_id, f"ERR5069949_R{mate}.fastq.gz"))


def materialize_sample(storage: LocalStorage, lab: Path, sample_id: str,
                       profile: str = "amplicon") -> dg.ExecuteInProcessResult:
    """Every per-sample asset for `sample_id` on an ephemeral instance, against the reference in `lab`;
    gate failures are results, not exceptions."""
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(SAMPLES_PARTITION_NAME, [sample_id])
    return dg.materialize(
        SAMPLE_ASSETS, partition_key=sample_id, instance=instance, raise_on_error=False,
        run_config={"ops": {"qc_metrics": {"config": {"profile": profile}}}},
        resources={"storage": storage, "compute": Compute(mode="in_process"), "ai": AIProvider(provider="offline"),
                   "reference": ReferenceData(fasta_path=str(lab / "MN908947.3.fasta"),
                                              annotation_path=str(lab / "MN908947.3.gff"))})
