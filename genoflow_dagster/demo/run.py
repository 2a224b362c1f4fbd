"""`genoflow demo`: make demo data, land it, let the landing sensor pick it up, run everything.

Runs against the persistent instance in $DAGSTER_HOME (default ./.dagster_home),
so `make dev` afterwards shows every materialization, check and partition. Its
runs are launched the way `genoflow run` launches one (launch.py): ordinary runs
of the instance from the `genoflow` code location, in the UI's timeline, tagged
with the sample and `genoflow/trigger=demo`, re-executable from the UI.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

from genoflow_dagster.launch import (
    TRIGGER_TAG,
    Followed,
    Launched,
    code_server,
    follow,
    follow_runs,
    launch_job,
    launch_sample,
    run_id_of,
)

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

    from genoflow_dagster import settings
    from genoflow_dagster.definitions import storage_from_env
    from genoflow_dagster.demo.generate import generate_demo
    from genoflow_dagster.instance_health import free_slots_of_dead_runs, this_host_tags
    from genoflow_dagster.references import DEMO_REFERENCE, add_reference, references_dir

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
    instance = dg.DagsterInstance.get()
    # A crashed demo or a dead worker may still hold pool slots that these runs would wait for for ever.
    for freed in free_slots_of_dead_runs(instance):
        _say(f"freed the pool slots of {freed.describe()}")
    log_dir = data / ".logs" / "runs"
    # The demo's reference goes into each run's config too, so a demo run re-executed from the UI (whose
    # code location has no GENOFLOW_REFERENCE=demo) still uses the demo's genome, and the run says which.
    pinned = {"resources": {"reference": {"config": settings.reference_paths()}}}
    # Every run is launched as `genoflow run` launches one (launch.py): from the `genoflow` code location, queued
    # when a dagster-daemon is running (`make dev`), else at once. So each shows in the UI's timeline and
    # re-executes from it like any other run. One code server serves the five launches: each would otherwise
    # load the definitions in a server of its own.
    with code_server(log_dir) as workspace:
        outcomes = _launch_and_follow(instance, storage, demo.samples, log_dir, workspace,
                                      tags={TRIGGER_TAG: "demo", **this_host_tags()}, run_config=pinned)
    if outcomes is None:
        return 1

    return print_summary(storage, demo, outcomes, time.monotonic() - started)


def _launch_and_follow(instance, storage, samples: dict[str, list[Path]], log_dir: Path, workspace: Path, *,
                       tags: dict[str, str], run_config: dict) -> dict[str, str] | None:
    """The reference job, then the samples side by side, then the cohort job; each sample's outcome, or None
    when the reference job failed (the samples cannot run without it)."""
    from genoflow_dagster.jobs import COHORT_JOB, REFERENCE_JOB

    _say(f"materializing reference data ... (run logs in {log_dir})")
    reference = launch_job(instance, REFERENCE_JOB, tags=tags, run_config=run_config, log_dir=log_dir,
                           log_name="reference", workspace=workspace)
    reference_outcome = _run_to_the_end(instance, reference)
    if reference_outcome.status != "SUCCESS":
        _say(f"{REFERENCE_JOB}: run {reference_outcome.status}; the samples cannot run without their reference "
             f"(log {reference.log_path})")
        return None
    launched = land_and_launch_samples(instance, storage, samples, log_dir, workspace, run_config)
    followed = follow_runs(instance, {sample: run_id_of(instance, run) for sample, run in launched.items()}, _say)
    for run in launched.values():
        if run.process is not None:
            run.process.wait()
    _say("running the cohort job ...")
    _run_to_the_end(instance, launch_job(instance, COHORT_JOB, tags=tags, log_dir=log_dir, log_name="cohort",
                                         workspace=workspace))
    return {sample: _outcome(outcome) for sample, outcome in followed.items()}


def land_and_launch_samples(instance, storage, samples: dict[str, list[Path]], log_dir: Path,
                            workspace: Path | None = None, run_config: dict | None = None) -> dict[str, Launched]:
    """Land the demo's samples and launch their runs at once, to run side by side.

    Which samples run is the landing sensor's decision: one evaluation, applied as the daemon would
    (partitions added), a run launched for each request. Every run is created, with the sensor's run key as
    its `genoflow/fingerprint` tag, right after its files landed, before this returns (the time is printed).
    With `make dev` running, the landing sensor waits for a sample's files to stay unchanged for the settle
    period (60 s) and then skips files a run already carries the fingerprint of, so it never starts a demo
    sample a second time. Requests for other samples in the landing zone (a lab's own) are left to the
    landing sensor: the demo's reference is for the demo's samples only.
    """
    import dagster as dg

    from genoflow_dagster import zones
    from genoflow_dagster.jobs import SAMPLE_PIPELINE_JOB
    from genoflow_dagster.partitions import SAMPLES_PARTITION_NAME
    from genoflow_dagster.sensors.landing import landing_zone_upload_sensor

    for sample_id, paths in samples.items():
        for path in paths:
            storage.put_file(path, zones.landing_key(sample_id, path.name))
            _say(f"landed {sample_id}/{path.name}")
    landed_at = time.time()
    requested: dict[str, str] = {}  # sample -> the sensor's run key
    cursor = None
    for _ in range(3):  # a tick lists at most MAX_KEYS_PER_TICK keys: a crowded landing zone takes more than one
        context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"storage": storage})
        result = landing_zone_upload_sensor(context)
        assert isinstance(result, dg.SensorResult)  # the landing sensor returns one result per evaluation
        cursor = result.cursor
        for partitions_request in result.dynamic_partitions_requests or []:
            instance.add_dynamic_partitions(SAMPLES_PARTITION_NAME, list(partitions_request.partition_keys))
        for request in result.run_requests or []:
            assert request.partition_key is not None and request.run_key is not None  # one run per sample
            requested[request.partition_key] = request.run_key
        if set(samples) <= set(requested) or not result.run_requests:
            break
    for other in sorted(set(requested) - set(samples)):
        _say(f"{other}: not a demo sample, left to the landing sensor")
    launched = {sample_id: launch_sample(instance, storage, sample_id, log_dir=log_dir, source="demo",
                                         fingerprint=requested[sample_id], run_config=run_config,
                                         workspace=workspace)
                for sample_id in samples if sample_id in requested}
    for sample_id, run in launched.items():
        record = instance.get_run_record_by_id(run_id_of(instance, run))
        how = "queued: the dagster-daemon starts it" if run.queued else "started"
        _say(f"{sample_id}: run {record.dagster_run.run_id} of {SAMPLE_PIPELINE_JOB} {how}, created "
             f"{record.create_timestamp.timestamp() - landed_at:.1f} s after its files landed")
    _say(f"landing sensor requested {len(launched)} demo run(s)")
    return launched


def _run_to_the_end(instance, run: Launched) -> Followed:
    """Follow a launched run until it has finished (its `dagster job launch` process ended when it started)."""
    followed = follow(instance, run_id_of(instance, run), _say)
    if run.process is not None:
        run.process.wait()
    return followed


def _outcome(followed: Followed) -> str:
    """'success', 'stopped by gate' when a blocking check failed, 'FAILED' when a step raised."""
    from genoflow_dagster.verdicts import BLOCKING_GATES

    if followed.status == "SUCCESS":
        return "success"
    return "stopped by gate" if any(check in BLOCKING_GATES for check in followed.failed_checks) else "FAILED"


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
    print(f"  MultiQC:  {storage.uri(zones.cohort_key('multiqc_report.html'))}")
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
