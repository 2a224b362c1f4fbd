"""The code location: every asset, check, job, schedule, sensor and resource GenoFlow has.

Resources are chosen from the environment (see `settings`): local storage and the
offline AI provider unless told otherwise. Building this object reads no files
and opens no connections.
"""


from typing import Any

import dagster as dg

from genoflow_dagster import settings
from genoflow_dagster.assets import cohort, ingestion, multiqc, qc, reference, reports, variants
from genoflow_dagster.jobs import (
    cohort_job,
    daily_cohort_schedule,
    daily_maintenance_schedule,
    maintenance_job,
    quarantine_review_job,
    reference_data_job,
    sample_pipeline_job,
    weekly_reference_data_schedule,
)
from genoflow_dagster.resources.ai import AIProvider
from genoflow_dagster.resources.compute import Compute
from genoflow_dagster.resources.notifier import WebhookNotifier
from genoflow_dagster.resources.reference import ReferenceData
from genoflow_dagster.resources.storage import Storage, storage_from_settings
from genoflow_dagster.sensors.landing import landing_zone_upload_sensor
from genoflow_dagster.sensors.notifications import (
    failed_check_notification_sensor,
    run_failure_notification_sensor,
)
from genoflow_dagster.sensors.quarantine import quarantine_release_sensor


def storage_from_env() -> Storage:
    """The configured storage resource (see `storage_from_settings`)."""
    return storage_from_settings()


def ai_from_env() -> AIProvider:
    ai = settings.ai_settings()
    api_key = {"openai": dg.EnvVar("OPENAI_API_KEY"), "anthropic": dg.EnvVar("ANTHROPIC_API_KEY")}.get(
        ai["provider"] or "offline"
    )
    return AIProvider(
        provider=ai["provider"] or "offline",
        model=ai["model"],
        base_url=ai["base_url"],
        api_key=api_key,
        cache_dir=str(settings.data_dir() / ".cache" / "ai"),
    )


def build_resources() -> dict[str, dg.ConfigurableResource]:
    reference_paths: dict[str, Any] = settings.reference_paths()
    return {
        "storage": storage_from_env(),
        "reference": ReferenceData(**reference_paths),
        "ai": ai_from_env(),
        "notifier": WebhookNotifier(webhook_urls=settings.webhook_urls()),
        "compute": Compute(mode=settings.compute_mode()),
    }


# the assets that read the landing zone: they show the storage's kind when it is S3 (on local storage, none)
READS_LANDING_ZONE = {dg.AssetKey("raw_files")}


def with_owners_and_storage_kind(assets: list[Any]) -> list[Any]:
    """Policy applied once to every asset: its owners (GENOFLOW_OWNERS), and the storage's kind on the asset
    that reads the landing zone when that storage is S3, so the UI's kinds say what is configured."""
    owners = settings.owners()
    on_s3 = settings.storage_kind() == "s3"

    def apply(spec: dg.AssetSpec) -> dg.AssetSpec:
        kinds = set(spec.kinds) | ({"s3"} if on_s3 and spec.key in READS_LANDING_ZONE else set())
        return spec.replace_attributes(owners=owners, kinds=kinds)

    return list(dg.map_asset_specs(apply, assets))


def build_definitions() -> dg.Definitions:
    return dg.Definitions(
        assets=with_owners_and_storage_kind(
            list(dg.load_assets_from_modules([reference, ingestion, qc, variants, reports, cohort, multiqc]))),
        jobs=[sample_pipeline_job, cohort_job, reference_data_job, maintenance_job, quarantine_review_job],
        schedules=[daily_cohort_schedule, weekly_reference_data_schedule, daily_maintenance_schedule],
        sensors=[
            landing_zone_upload_sensor,
            quarantine_release_sensor,
            run_failure_notification_sensor,
            failed_check_notification_sensor,
        ],
        resources=build_resources(),
    )


defs = build_definitions()
