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


def prepare_environment(fresh: bool) -> tuple[Path, Path]:
    """Default DAGSTER_HOME / GENOFLOW_DATA_DIR to ./.dagster_home and ./data, seeded with dagster.yaml."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(Path(".dagster_home").resolve())))
    data = Path(os.environ.setdefault("GENOFLOW_DATA_DIR", str(Path("data").resolve())))
    if fresh:
        for path in (home, data):
            if path.exists():
                shutil.rmtree(path)
    home.mkdir(parents=True, exist_ok=True)
    data.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists() and REPO_DAGSTER_YAML.is_file():
        shutil.copyfile(REPO_DAGSTER_YAML, home / "dagster.yaml")
    # The demo lands every file at once; no need to wait for more uploads.
    os.environ.setdefault("GENOFLOW_LANDING_SETTLE_SECONDS", "0")
    return home, data


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_demo(fresh: bool = False) -> int:
    started = time.monotonic()
    home, data = prepare_environment(fresh)

    import dagster as dg

    from genoflow_dagster import settings, zones
    from genoflow_dagster.definitions import build_definitions, storage_from_env
    from genoflow_dagster.demo.generate import generate_demo
    from genoflow_dagster.jobs import COHORT_JOB, REFERENCE_JOB, SAMPLE_PIPELINE_JOB
    from genoflow_dagster.partitions import SAMPLES_PARTITION_NAME
    from genoflow_dagster.sensors.landing import landing_zone_upload_sensor

    _say(f"DAGSTER_HOME={home}\nGENOFLOW_DATA_DIR={data}")
    _say("generating demo data ...")
    demo = generate_demo(data / "demo_inputs")
    # The demo's references live in its own data dir; a reference configured elsewhere (a lab's real
    # genome) is neither overwritten nor used: this process points the settings at the demo's copies.
    ref_dir = data / "reference"
    for variable, source, target in (
        ("GENOFLOW_REFERENCE_FASTA", demo.reference_fasta, ref_dir / "genome.fa"),
        ("GENOFLOW_ANNOTATION", demo.annotation_gtf, ref_dir / "annotation.gtf"),
        ("GENOFLOW_KNOWN_SITES", demo.known_sites_vcf, ref_dir / "known_sites.vcf.gz"),
    ):
        configured = os.environ.get(variable)
        if configured and Path(configured).resolve() != target.resolve():
            _say(f"{variable}={configured} is left untouched: the demo uses its own {target}")
        os.environ[variable] = str(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        for suffix in (".fai", ".tbi", ".csi"):
            if Path(str(source) + suffix).exists():
                shutil.copyfile(str(source) + suffix, str(target) + suffix)
    # The contaminant goes where GENOFLOW_CONTAMINANTS defaults to, so this run and `make dev` both screen it.
    if demo.contaminant_fasta is not None:
        target = settings.contaminant_dir() / demo.contaminant_fasta.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(demo.contaminant_fasta, target)
    contaminants = settings.contaminant_paths()
    _say(f"GENOFLOW_CONTAMINANTS={','.join(contaminants) or '(none: contamination not screened)'}")

    storage = storage_from_env()
    for sample_id, paths in demo.samples.items():
        for path in paths:
            storage.put_file(path, zones.landing_key(sample_id, path.name))
            _say(f"landed {sample_id}/{path.name}")

    defs = build_definitions()
    instance = dg.DagsterInstance.get()
    _say("materializing reference data ...")
    defs.resolve_job_def(REFERENCE_JOB).execute_in_process(instance=instance)

    # One sensor evaluation, applied the way the daemon would: add partitions, launch runs.
    requests = []
    cursor = None
    for _ in range(3):
        context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"storage": storage})
        result = landing_zone_upload_sensor(context)
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
        _say(f"running {SAMPLE_PIPELINE_JOB} for {request.partition_key} ...")
        run = job.execute_in_process(
            instance=instance, partition_key=request.partition_key, tags=dict(request.tags), raise_on_error=False
        )
        outcomes[request.partition_key] = "success" if run.success else _why_not(run)
    defs.resolve_job_def(COHORT_JOB).execute_in_process(instance=instance, raise_on_error=False)

    return print_summary(storage, demo, outcomes, time.monotonic() - started)


def _why_not(run) -> str:
    """'stopped by gate' when a blocking check failed, 'failed' when a step raised."""
    failed_checks = [e for e in run.get_asset_check_evaluations() if not e.passed]
    blocking = {"validated_files_usable", "qc_metrics_reference_consistent", "qc_metrics_within_profile",
                "aligned_reads_within_profile"}
    return "stopped by gate" if any(e.check_name in blocking for e in failed_checks) else "FAILED"


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
