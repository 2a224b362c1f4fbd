"""`genoflow demo`: make demo data, land it, let the landing sensor pick it up, run everything.

Runs against the persistent instance in $DAGSTER_HOME (default ./.dagster_home),
so `make dev` afterwards shows every materialization, check and partition.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

REPO_DAGSTER_YAML = Path(__file__).resolve().parents[2] / "dagster.yaml"

# What Dagster's embedded (SQLite) instance writes under DAGSTER_HOME: runs and their event logs
# (history/), schedule and sensor state (schedules/), compute logs and local artifacts (storage/, logs/).
# `--fresh` removes these and keeps DAGSTER_HOME/dagster.yaml, the operator's configuration.
SQLITE_INSTANCE_ENTRIES = ("history", "schedules", "storage", "logs", ".logs_queue", ".nux", ".telemetry")
_STORAGE_KEYS = ("storage", "run_storage", "event_log_storage", "schedule_storage")


class FreshRefused(Exception):
    """`--fresh` was asked for an instance whose storage GenoFlow will not empty; nothing was deleted."""


def storage_elsewhere(home: Path) -> str | None:
    """None when the instance configured in `home` keeps its storage in SQLite files under `home` (the
    embedded default, also when there is no dagster.yaml yet); otherwise what it uses instead."""
    import yaml

    config_file = home / "dagster.yaml"
    config = (yaml.safe_load(config_file.read_text()) or {}) if config_file.is_file() else {}
    storage = config.get("storage") or {}
    if storage:
        kind = next(iter(storage))
        if kind == "sqlite" and not (storage.get("sqlite") or {}).get("base_dir"):
            return None
        return {"postgres": "PostgreSQL", "mysql": "MySQL", "sqlite": "SQLite outside DAGSTER_HOME"}.get(kind, kind)
    custom = [key for key in _STORAGE_KEYS[1:] if key in config]
    return ", ".join(custom) if custom else None


def prepare_environment(fresh: bool) -> tuple[Path, Path]:
    """Default DAGSTER_HOME / GENOFLOW_DATA_DIR to ./.dagster_home and ./data, seeded with dagster.yaml.

    `fresh` empties the instance and the data dir but keeps DAGSTER_HOME/dagster.yaml, so an instance
    the operator configured stays the one the demo uses. Only the embedded SQLite storage under
    DAGSTER_HOME is emptied: a database (PostgreSQL) may hold other runs than the demo's, and emptying it
    cannot be undone, so `fresh` refuses (FreshRefused, nothing deleted) and says what to do instead.
    """
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(Path(".dagster_home").resolve())))
    data = Path(os.environ.setdefault("GENOFLOW_DATA_DIR", str(Path("data").resolve())))
    if fresh:
        elsewhere = storage_elsewhere(home)
        if elsewhere:
            raise FreshRefused(_fresh_refused_message(home, elsewhere))
        for entry in SQLITE_INSTANCE_ENTRIES:
            path = home / entry
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
        if data.exists():
            shutil.rmtree(data)
    home.mkdir(parents=True, exist_ok=True)
    data.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists() and REPO_DAGSTER_YAML.is_file():
        shutil.copyfile(REPO_DAGSTER_YAML, home / "dagster.yaml")
    # The demo lands every file at once; no need to wait for more uploads.
    os.environ.setdefault("GENOFLOW_LANDING_SETTLE_SECONDS", "0")
    return home, data


def _fresh_refused_message(home: Path, storage: str) -> str:
    env = os.environ
    connection = (f"-h {env.get('DAGSTER_PG_HOST', '<host>')} -p {env.get('DAGSTER_PG_PORT', '5432')} "
                  f"-U {env.get('DAGSTER_PG_USER', '<user>')}")
    database = env.get("DAGSTER_PG_DB", "<database>")
    return (
        f"genoflow demo --fresh: {home / 'dagster.yaml'} keeps the Dagster instance in {storage}, which the demo "
        "does not empty: it may hold other runs than the demo's, and emptying it cannot be undone. "
        "Nothing was deleted.\n"
        "To start the demo from scratch on this instance, recreate its database and remove the data dir:\n"
        f"  dropdb {connection} --force {database} && createdb {connection} {database}\n"
        f"  rm -rf {env.get('GENOFLOW_DATA_DIR', 'data')}\n"
        "then run `genoflow demo` (without --fresh). Without --fresh the demo adds its runs to this instance; "
        "with DAGSTER_HOME set to another directory it uses the embedded SQLite instance."
    )


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_demo(fresh: bool = False) -> int:
    started = time.monotonic()
    try:
        home, data = prepare_environment(fresh)
    except FreshRefused as refused:
        _say(str(refused))
        return 2

    import dagster as dg

    from genoflow_dagster import settings, zones
    from genoflow_dagster.definitions import build_definitions, storage_from_env
    from genoflow_dagster.demo.generate import generate_demo
    from genoflow_dagster.instance_health import free_slots_of_dead_runs, this_host_tags
    from genoflow_dagster.jobs import COHORT_JOB, REFERENCE_JOB, SAMPLE_PIPELINE_JOB
    from genoflow_dagster.partitions import SAMPLES_PARTITION_NAME
    from genoflow_dagster.references import DEMO_REFERENCE, add_reference, references_dir
    from genoflow_dagster.sensors.landing import landing_zone_upload_sensor

    _say(f"DAGSTER_HOME={home}\nGENOFLOW_DATA_DIR={data}")
    _say("generating demo data ...")
    demo = generate_demo(data / "demo_inputs")
    # The demo's genome, annotation, known sites and contaminant are added as the reference `demo`, which
    # only the demo's runs use (this process selects it); it is never picked for other samples, and a
    # reference configured for them (a lab's real genome) is neither overwritten nor used here.
    for variable in ("GENOFLOW_REFERENCE_FASTA", "GENOFLOW_ANNOTATION", "GENOFLOW_KNOWN_SITES",
                     "GENOFLOW_CONTAMINANTS", "GENOFLOW_REFERENCE"):
        configured = os.environ.pop(variable, None)
        if configured and configured != DEMO_REFERENCE:
            _say(f"{variable}={configured} is left untouched: the demo uses its own reference '{DEMO_REFERENCE}'")
    add_reference(demo.reference_fasta, name=DEMO_REFERENCE, annotation=demo.annotation_gtf,
                  known_sites=demo.known_sites_vcf,
                  contaminants=[demo.contaminant_fasta] if demo.contaminant_fasta is not None else [], force=True)
    os.environ["GENOFLOW_REFERENCE"] = DEMO_REFERENCE
    _remove_copies_of_old_demos(data / "reference", demo)
    _say(f"GENOFLOW_REFERENCE={DEMO_REFERENCE} ({references_dir() / DEMO_REFERENCE}), for the demo's runs only")
    contaminants = settings.contaminant_paths()
    _say(f"GENOFLOW_CONTAMINANTS={','.join(contaminants) or '(none: contamination not screened)'}")

    storage = storage_from_env()
    for sample_id, paths in demo.samples.items():
        for path in paths:
            storage.put_file(path, zones.landing_key(sample_id, path.name))
            _say(f"landed {sample_id}/{path.name}")

    defs = build_definitions()
    instance = dg.DagsterInstance.get()
    # Runs here execute in this process, with no daemon watching: give back the pool slots of earlier
    # runs that were killed (a crashed demo, a dead worker), or these runs would wait for them for ever.
    for freed in free_slots_of_dead_runs(instance):
        _say(f"freed the pool slots of {freed.describe()}")
    host_tags = this_host_tags()
    _say("materializing reference data ...")
    # The demo's reference goes into each run's config too, so a demo run re-executed from the UI (whose
    # code location has no GENOFLOW_REFERENCE=demo) still uses the demo's genome, and the run says which.
    pinned = {"resources": {"reference": {"config": settings.reference_paths()}}}
    defs.resolve_job_def(REFERENCE_JOB).execute_in_process(instance=instance, tags=host_tags, run_config=pinned)

    # One sensor evaluation, applied the way the daemon would: add partitions, launch runs.
    requests: list[dg.RunRequest] = []
    cursor = None
    for _ in range(3):
        context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"storage": storage})
        result = landing_zone_upload_sensor(context)
        assert isinstance(result, dg.SensorResult)  # the landing sensor returns one result per evaluation
        cursor = result.cursor
        for partitions_request in result.dynamic_partitions_requests or []:
            instance.add_dynamic_partitions(SAMPLES_PARTITION_NAME, list(partitions_request.partition_keys))
        requests.extend(result.run_requests or [])
        if requests and not result.run_requests:
            break
    _say(f"landing sensor requested {len(requests)} run(s)")

    job = defs.resolve_job_def(SAMPLE_PIPELINE_JOB)
    outcomes: dict[str, str] = {}
    for request in requests:
        partition = request.partition_key
        assert partition is not None  # the landing sensor requests one run per sample partition
        _say(f"running {SAMPLE_PIPELINE_JOB} for {partition} ...")
        run = job.execute_in_process(
            instance=instance, partition_key=partition, tags={**request.tags, **host_tags},
            raise_on_error=False, run_config=pinned,
        )
        outcomes[partition] = "success" if run.success else _why_not(run)
    defs.resolve_job_def(COHORT_JOB).execute_in_process(instance=instance, tags=host_tags, raise_on_error=False)

    return print_summary(storage, demo, outcomes, time.monotonic() - started)


def _remove_copies_of_old_demos(folder: Path, demo) -> None:
    """Earlier demos copied their files into data/reference/, where settings took them for every sample's
    defaults (the contaminant folder still is one). Remove those copies, only where byte-identical to
    this demo's files: a lab's own file of the same name stays."""
    from genoflow_dagster.formats.io import sha256_file

    copies = [(folder / "genome.fa", demo.reference_fasta), (folder / "annotation.gtf", demo.annotation_gtf),
              (folder / "known_sites.vcf.gz", demo.known_sites_vcf)]
    if demo.contaminant_fasta is not None:
        copies.append((folder / "contaminants" / demo.contaminant_fasta.name, demo.contaminant_fasta))
    for copy, original in copies:
        if copy.is_file() and sha256_file(copy) == sha256_file(original):
            for path in (copy, *(Path(f"{copy}{suffix}") for suffix in (".fai", ".tbi", ".csi"))):
                path.unlink(missing_ok=True)
            _say(f"removed {copy}, a copy an earlier demo left where every sample would have used it")


def _why_not(run) -> str:
    """'stopped by gate' when a blocking check failed, 'failed' when a step raised."""
    from genoflow_dagster.verdicts import BLOCKING_GATES

    failed_checks = [e for e in run.get_asset_check_evaluations() if not e.passed]
    return "stopped by gate" if any(e.check_name in BLOCKING_GATES for e in failed_checks) else "FAILED"


def print_summary(storage, demo, outcomes: dict[str, str], seconds: float) -> int:
    from genoflow_dagster import zones
    from genoflow_dagster.assets.artifacts import read_parquet

    summary = read_parquet(storage, zones.cohort_table_key("qc_summary.parquet"))
    print(f"\nGenoFlow demo finished in {seconds:.0f} s\n")
    header = f"{'sample':<10} {'run':<15} {'qc':<8} {'stopped at':<28} {'reads':>8} {'mapped%':>8} {'variants':>8}"
    print(header)
    print("-" * len(header))
    for row in summary.to_dict("records"):
        sample = row["sample_id"]
        print(
            f"{sample:<10} {outcomes.get(sample, '-'):<15} {row['status']:<8} {_text(row['stopped_at']):<28} "
            f"{_num(row['total_reads']):>8} {_num(row['mapped_percent']):>8} {_num(row['variants']):>8}"
        )
    print("\nReports:")
    exit_code = 0 if all(o != "FAILED" for o in outcomes.values()) else 1
    for sample in sorted(outcomes):
        key = zones.report_key(sample, "report.html")
        if storage.exists(key):
            print(f"  {sample}: {storage.uri(key)}")
    print(f"  cohort:   {storage.uri(zones.cohort_key('qc_summary.html'))}")
    quarantined = [info.key for info in storage.list(f"{zones.QUARANTINE}/") if info.key.endswith("reason.json")]
    if quarantined:
        print("\nQuarantined (with reason.json):")
        for key in quarantined:
            print(f"  {storage.uri(key)}")
    print("\nOpen the Dagster UI over the same instance with: make dev")
    return exit_code


def _text(value) -> str:
    return "-" if value is None or value != value else str(value)


def _num(value) -> str:
    if value is None or value != value:  # None or NaN
        return "-"
    if float(value).is_integer() or abs(value) >= 100:  # counts (cohort tables hold them as floats)
        return f"{value:,.0f}"
    return f"{value:.1f}"
