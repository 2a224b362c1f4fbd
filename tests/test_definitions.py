"""The code location loads, and its public names are what run history and sensors depend on."""

import dagster as dg

from genoflow_dagster.definitions import defs
from genoflow_dagster.jobs import MAINTENANCE_JOB, SAMPLE_PIPELINE_JOB

# A rename of any of these is a visible diff here: it breaks run history.
EXPECTED_ASSET_KEYS = [
    "aligned_reads",
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
