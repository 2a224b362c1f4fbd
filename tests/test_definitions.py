"""The code location loads, and its public names are what run history and sensors depend on."""

import dagster as dg
import pytest

from genoflow_dagster.definitions import defs
from genoflow_dagster.jobs import MAINTENANCE_JOB, SAMPLE_PIPELINE_JOB

# A rename of any of these is a visible diff here: it breaks run history.
EXPECTED_ASSET_KEYS = [
    "aligned_reads",
    "cohort_multiqc_report",
    "cohort_qc_summary",
    "gene_annotation",
    "known_sites",
    "qc_metrics",
    "raw_files",
    "reference_genome",
    "sample_report",
    "validated_files",
    "variant_calls",
    "variant_catalog",
    "variant_results",
]

EXPECTED_CHECKS = {
    ("validated_files", "validated_files_usable"),
    ("validated_files", "validated_files_all_valid"),
    ("qc_metrics", "qc_metrics_within_profile"),
    ("qc_metrics", "qc_metrics_reference_consistent"),
    ("aligned_reads", "aligned_reads_within_profile"),
    ("variant_results", "variant_results_within_profile"),
    ("cohort_qc_summary", "cohort_qc_summary_matches_schema"),
    ("cohort_qc_summary", "cohort_qc_summary_meets_expectations"),
}

PER_SAMPLE = ["raw_files", "validated_files", "qc_metrics", "aligned_reads", "variant_calls",
              "variant_results", "sample_report"]


def test_definitions_validate():
    dg.Definitions.validate_loadable(defs)


def test_asset_keys_snapshot():
    graph = defs.resolve_asset_graph()
    keys = sorted(key.to_user_string() for key in graph.get_all_asset_keys())
    assert keys == EXPECTED_ASSET_KEYS


def test_checks_exist_and_gates_block():
    graph = defs.resolve_asset_graph()
    found = {(c.asset_key.to_user_string(), c.name) for c in graph.asset_check_keys}
    assert found == EXPECTED_CHECKS
    specs = {spec.name: spec for key in graph.get_all_asset_keys()
             for spec in defs.resolve_assets_def(key).check_specs}
    assert specs["validated_files_usable"].blocking
    assert specs["qc_metrics_within_profile"].blocking
    assert specs["qc_metrics_reference_consistent"].blocking
    assert specs["aligned_reads_within_profile"].blocking
    assert not specs["validated_files_all_valid"].blocking


def test_sample_pipeline_job_holds_every_per_sample_asset_and_its_gates():
    job = defs.resolve_job_def(SAMPLE_PIPELINE_JOB)
    selected = {key.to_user_string() for key in job.asset_layer.selected_asset_keys}
    assert selected == set(PER_SAMPLE)
    checks = {key.name for key in job.asset_layer.asset_graph.asset_check_keys}
    assert {"validated_files_usable", "qc_metrics_within_profile", "qc_metrics_reference_consistent",
            "aligned_reads_within_profile"} <= checks
    assert job.partitions_def is not None and job.partitions_def.name == "samples"


def test_graph_order_puts_the_qc_gate_before_alignment():
    graph = defs.resolve_asset_graph()
    parents = {k.to_user_string() for k in graph.get(dg.AssetKey("aligned_reads")).parent_keys}
    assert "qc_metrics" in parents


def test_sensors_and_resources_snapshot():
    """Exact: a sensor or resource added, renamed or dropped is a visible diff here."""
    sensors = {s.name: (s.default_status.value, s.minimum_interval_seconds) for s in defs.sensors}
    assert sensors == {
        "failed_check_notification_sensor": ("RUNNING", 60),
        "landing_zone_upload_sensor": ("RUNNING", 30),
        "quarantine_release_sensor": ("STOPPED", 3600),
        "run_failure_notification_sensor": ("RUNNING", 30),
    }
    assert sorted(defs.resources) == ["ai", "compute", "notifier", "reference", "storage"]


def test_jobs_and_schedules_snapshot():
    assert sorted(job.name for job in defs.jobs) == ["cohort", "maintenance", "quarantine_review", "reference_data",
                                                       "sample_pipeline"]
    schedules = {s.name: (s.job_name, s.cron_schedule) for s in defs.schedules}
    assert schedules == {
        "daily_cohort_schedule": ("cohort", "0 6 * * *"),
        "daily_maintenance_schedule": (MAINTENANCE_JOB, "30 4 * * *"),
        "weekly_reference_data_schedule": ("reference_data", "0 5 * * 1"),
    }


def test_the_maintenance_job_touches_no_asset():
    job = defs.resolve_job_def(MAINTENANCE_JOB)
    assert not job.asset_layer.selected_asset_keys
    assert job.partitions_def is None
    assert "storage" in job.required_resource_keys


# What the UI's asset pages show beside each asset: what it is made of (kinds), who answers for it (owners,
# GENOFLOW_OWNERS) and its code version (assets.metadata.code_version).
EXPECTED_KINDS = {
    "aligned_reads": ["bam", "python"],
    "cohort_multiqc_report": ["html", "multiqc"],
    "cohort_qc_summary": ["html", "parquet"],
    "gene_annotation": ["python"],
    "known_sites": ["python"],
    "qc_metrics": ["python"],
    "raw_files": ["python"],  # plus "s3" when GENOFLOW_STORAGE=s3 (none on local storage)
    "reference_genome": ["python"],
    "sample_report": ["html", "pdf"],
    "validated_files": ["python"],
    "variant_calls": ["python", "vcf"],
    "variant_catalog": ["parquet"],
    "variant_results": ["parquet"],
}


def test_every_asset_has_its_kinds_owners_and_code_version():
    from genoflow_dagster import __version__
    from genoflow_dagster.qc.contamination import METHOD_VERSION
    from genoflow_dagster.qc.sample_qc import METRICS_VERSION

    graph = defs.resolve_asset_graph()
    nodes = {key.to_user_string(): graph.get(key) for key in graph.get_all_asset_keys()}
    assert {name: sorted(node.kinds) for name, node in nodes.items()} == EXPECTED_KINDS
    assert {tuple(node.owners) for node in nodes.values()} == {("team:genoflow",)}
    assert all(node.code_version and node.code_version.startswith(__version__) for node in nodes.values())
    assert nodes["qc_metrics"].code_version == f"{__version__}+metrics{METRICS_VERSION}+contamination{METHOD_VERSION}"


def test_owners_and_the_storage_kind_follow_the_environment(monkeypatch):
    from genoflow_dagster.definitions import build_definitions

    monkeypatch.setenv("GENOFLOW_OWNERS", "team:sequencing-lab, lead@lab.example")
    monkeypatch.setenv("GENOFLOW_STORAGE", "s3")
    monkeypatch.setenv("GENOFLOW_S3_BUCKET", "genoflow-test")
    graph = build_definitions().resolve_asset_graph()
    raw = graph.get(dg.AssetKey("raw_files"))
    assert sorted(raw.kinds) == ["python", "s3"] and raw.owners == ["team:sequencing-lab", "lead@lab.example"]
    assert sorted(graph.get(dg.AssetKey("validated_files")).kinds) == ["python"]
    monkeypatch.setenv("GENOFLOW_OWNERS", "the lab")
    with pytest.raises(ValueError, match="GENOFLOW_OWNERS: the lab is neither an e-mail address nor team:<name>"):
        build_definitions()
