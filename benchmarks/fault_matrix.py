"""Fault matrix (issue 11): one sample through the sample pipeline under each fault, then the recovery.

For every fault the real sample pipeline runs against a real instance, with a code server
(`dagster api grpc`) and `dagster-daemon run` launching, retrying and monitoring the runs
(runs submitted with `dagster job launch`, as in tests/test_instance_crash.py):

- SIGKILL of the run worker while each asset of the sample pipeline runs (one row per asset;
  local storage, SQLite instance, the shipped dagster.yaml: a crashed worker is retried once);
- S3 down: storage on moto's S3 server behind a loopback proxy (tests/test_storage_faults.py),
  the proxy swallowing every request (a hung endpoint; moto itself keeps running, since its
  objects live in its memory) from the start of aligned_reads, or 0.6 s into it, until that
  run has failed and 5 s more, with GENOFLOW_S3_TIMEOUT_SECONDS=2 and GENOFLOW_S3_MAX_ATTEMPTS=2;
- PostgreSQL restarted (`pg_ctlcluster <version> main restart`) while aligned_reads runs, on an
  instance in a throwaway database (deploy/postgres/dagster.yaml). PostgreSQL is always left running.

Recovery is what an operator gets without acting: the automatic retry of a crashed run when
the daemon makes one, otherwise the sample's next run (launched here the way the landing
sensor or an operator would), then the `maintenance` job. Each row records the run's status
and the error seen, whether the recovered artifacts equal a clean run's (validation verdicts,
QC metrics, VCF records, the report's presence; never timestamps or run ids), whether a step
that had completed was run again, leftovers (scratch under the work dir, hidden `.part`
files in the zones, unfinished multipart uploads) after the fault, after the recovery run and
after the maintenance job, and whether every landed file is still in landing/, raw/ or
quarantine/ (with its reason.json).

    .venv/bin/python benchmarks/fault_matrix.py               # whole matrix, writes RESULTS.md
    .venv/bin/python benchmarks/fault_matrix.py --only kill --no-write
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))  # the crash test's process helpers and the S3 proxy live in tests/

import dagster as dg  # noqa: E402
from results_md import replace_section  # noqa: E402

from genoflow_dagster import zones  # noqa: E402
from genoflow_dagster.definitions import build_definitions  # noqa: E402
from genoflow_dagster.demo.generate import DemoData, generate_demo  # noqa: E402
from genoflow_dagster.instance_health import worker_pid  # noqa: E402
from genoflow_dagster.jobs import MAINTENANCE_JOB, REFERENCE_JOB, SAMPLE_PIPELINE_JOB  # noqa: E402
from genoflow_dagster.partitions import SAMPLES_PARTITION_NAME  # noqa: E402
from genoflow_dagster.resources.storage import LocalStorage, S3Storage, Storage, storage_from_settings  # noqa: E402
from tests.test_instance_crash import (  # noqa: E402
    _alive,
    _finished_status,
    _free_port,
    _listening,
    _start,
    _stop,
    _wait_for,
)

SECTION = "## Fault matrix"
BIN = Path(sys.executable).parent
POOL = "compute"
ASSETS = ("raw_files", "validated_files", "qc_metrics", "aligned_reads", "variant_calls", "variant_results",
          "sample_report")
GENOME = (("chr1", 60_000),)
COVERAGE = 40.0  # ~12k read pairs: alignment lasts a few seconds, long enough to be caught in it
S3_TIMEOUT_SECONDS, S3_MAX_ATTEMPTS = 2, 2
# When the endpoint stops answering, in seconds after the step started: at once (the step's first reads),
# and once the alignment is under way (the outage meets the BAM and index uploads at its end).
S3_BLIP_SECONDS = 15.0  # shorter than the in-run step retries (3 x 30 s): the run rides it out
S3_OUTAGE_DELAYS = (0.0, 0.6)
PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
RUN_TIMEOUT = 300.0


# ---------------------------------------------------------------------------------------------- worlds


@contextlib.contextmanager
def scoped_env(values: dict[str, str | None]) -> Iterator[None]:
    """Set (or, for None, remove) environment variables for the block; the subprocesses inherit them."""
    saved = {key: os.environ.get(key) for key in values}
    try:
        for key, value in values.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@dataclass
class World:
    """One instance (DAGSTER_HOME), one data dir and storage, a code server and a daemon."""

    root: Path
    instance: dg.DagsterInstance
    storage: Storage  # reached directly (for S3: not through the fault proxy), to inspect the zones
    grpc: list[str]
    s3_client: Any = None
    bucket: str | None = None
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def work_dir(self) -> Path:
        return self.data_dir / ".work"

    def launch(self, job: str, sample: str | None = None, tags: dict[str, str] | None = None) -> str:
        run_id = str(uuid.uuid4())
        all_tags = {**({"dagster/partition": sample} if sample else {}), **(tags or {})}
        subprocess.run([BIN / "dagster", "job", "launch", *self.grpc, "-j", job, "--run-id", run_id,
                        *(["--tags", json.dumps(all_tags)] if all_tags else [])],
                       check=True, capture_output=True, timeout=120, cwd=REPO)
        return run_id

    def wait_finished(self, run_id: str, timeout: float = RUN_TIMEOUT) -> dg.DagsterRunStatus:
        return _wait_for(lambda: _finished_status(self.instance, run_id), timeout, f"run {run_id} to finish")

    def land(self, sample: str, demo: DemoData) -> list[str]:
        """Land the demo's SAMPLE_A pair under the sample's name; the landed file names."""
        names = []
        for path in demo.samples["SAMPLE_A"]:
            self.storage.put_file(path, zones.landing_key(sample, path.name))
            names.append(path.name)
        self.instance.add_dynamic_partitions(SAMPLES_PARTITION_NAME, [sample])
        return names


@contextlib.contextmanager
def open_world(root: Path, demo: DemoData, env: dict[str, str | None], dagster_yaml: Path,
               storage: Storage | None = None) -> Iterator[World]:
    """Seed DAGSTER_HOME with `dagster_yaml`, materialize the reference data, start code server and daemon."""
    home = root / "home"
    home.mkdir(parents=True)
    shutil.copyfile(dagster_yaml, home / "dagster.yaml")
    (root / "logs").mkdir()
    # The landing sensor runs by default under the daemon: landed samples never settle for it here, every run
    # is started by the matrix itself.
    base = {"DAGSTER_HOME": str(home), "GENOFLOW_DATA_DIR": str(root / "data"), "GENOFLOW_STORAGE": "local",
            "GENOFLOW_AI_PROVIDER": "offline", "GENOFLOW_LANDING_SETTLE_SECONDS": "86400",
            "GENOFLOW_REFERENCE_FASTA": str(demo.reference_fasta), "GENOFLOW_ANNOTATION": str(demo.annotation_gtf),
            "GENOFLOW_KNOWN_SITES": str(demo.known_sites_vcf), "GENOFLOW_QC_PROFILE": None,
            "GENOFLOW_TARGETS": None, "GENOFLOW_CONTAMINANTS": None, "GENOFLOW_COMPUTE": None,
            "GENOFLOW_WORK_DIR": None, "DAGSTER_CLI_API_GRPC_HOST": None}
    with scoped_env({**base, **env}), dg.DagsterInstance.get() as instance:
        world_storage = storage or storage_from_settings()
        ref = build_definitions().resolve_job_def(REFERENCE_JOB).execute_in_process(instance=instance)
        assert ref.success, "the reference data job failed"
        # The pool's limit row exists on any instance that ran once (dagster-io/dagster#33552).
        instance.event_log_storage.initialize_concurrency_limit_to_default(POOL)
        port = _free_port()
        world = World(root, instance, world_storage, ["--grpc-host", "127.0.0.1", "--grpc-port", str(port)])
        logs = root / "logs"
        try:
            world.processes.append(_start(
                [BIN / "dagster", "api", "grpc", "-m", "genoflow_dagster.definitions", "-h", "127.0.0.1",
                 "-p", str(port), "--location-name", "genoflow"], logs / "code_server.log"))
            _wait_for(lambda: _listening(port), 90, "the code server to listen")
            world.processes.append(_start([BIN / "dagster-daemon", "run", *world.grpc], logs / "daemon.log"))
            _wait_for(lambda: {"EVENT_LOG_CONSUMER", "MONITORING", "QUEUED_RUN_COORDINATOR"}
                      <= set(instance.get_daemon_heartbeats()), 90, "the daemon to start")
            yield world
        finally:
            for process in reversed(world.processes):
                _stop(process)


# ------------------------------------------------------------------------------------------ observations


def runs_of(instance: dg.DagsterInstance, sample: str) -> list[dg.DagsterRun]:
    runs = instance.get_runs(dg.RunsFilter(job_name=SAMPLE_PIPELINE_JOB, tags={"dagster/partition": sample}))
    return sorted(runs, key=lambda r: instance.get_run_record_by_id(r.run_id).create_timestamp)


def step_events(instance: dg.DagsterInstance, run_id: str, event_type: dg.DagsterEventType) -> list[str]:
    return [r.event_log_entry.step_key for r in instance.get_records_for_run(run_id, of_type=event_type).records]


def materialized_assets(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
    return [r.event_log_entry.dagster_event.asset_key.to_user_string() for r in records]


def completed_twice(instance: dg.DagsterInstance, sample: str) -> dict[str, int]:
    """Steps that succeeded, or assets materialized, more than once for the sample across all its runs."""
    successes: Counter[str] = Counter()
    materializations: Counter[str] = Counter()
    for run in runs_of(instance, sample):
        successes.update(step_events(instance, run.run_id, dg.DagsterEventType.STEP_SUCCESS))
        materializations.update(materialized_assets(instance, run.run_id))
    twice = {f"step {k}": n for k, n in successes.items() if n > 1}
    twice.update({f"asset {k}": n for k, n in materializations.items() if n > 1})
    return twice


def failure_message(instance: dg.DagsterInstance, run_id: str) -> str:
    """The first step failure's error as `step: ErrorClass: message` (the first error in the chain that is
    not Dagster's wrapper), else the run failure's message."""
    for record in instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_FAILURE).records:
        error = record.event_log_entry.dagster_event.event_specific_data.error
        chain = []
        while error is not None:
            chain.append(error)
            error = error.cause or error.context
        if chain:
            cause = next((e for e in chain if not e.cls_name.startswith("Dagster")), chain[-1])
            message = cause.message.split(": ", 1)[1] if cause.message.startswith(
                f"genoflow_dagster.errors.{cause.cls_name}: ") else cause.message
            return f"{record.event_log_entry.step_key}: {cause.cls_name}: {_one_line(message, 240)}"
    for record in instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records:
        entry = record.event_log_entry
        return _one_line(entry.dagster_event.message or entry.user_message or "")
    return ""


def _one_line(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "..."


@dataclass
class Leftovers:
    scratch: int  # entries under <work>/<sample>/
    part_files: int  # hidden .part files under the zones, in the sample's folders
    multipart_uploads: int  # unfinished S3 multipart uploads for the sample's keys

    def __str__(self) -> str:
        text = f"{self.scratch}/{self.part_files}"
        return text + (f"/{self.multipart_uploads}" if self.multipart_uploads >= 0 else "")

    @property
    def total(self) -> int:
        return self.scratch + self.part_files + max(self.multipart_uploads, 0)


def leftovers(world: World, sample: str) -> Leftovers:
    folder = world.work_dir / sample
    scratch = len(list(folder.iterdir())) if folder.is_dir() else 0
    parts = 0
    if isinstance(world.storage, LocalStorage):
        for zone in (zones.LANDING, zones.RAW, zones.QUARANTINE, zones.PROCESSED, zones.REPORTS):
            base = world.data_dir / zone / sample
            parts += len(list(base.rglob(".*.part"))) if base.is_dir() else 0
    uploads = -1
    if world.s3_client is not None:
        answer = world.s3_client.list_multipart_uploads(Bucket=world.bucket)
        uploads = sum(1 for u in answer.get("Uploads", []) if f"/{sample}/" in u["Key"])
    return Leftovers(scratch, parts, uploads)


def nothing_lost(world: World, sample: str, landed: list[str]) -> tuple[bool, str]:
    """Every landed file is still in landing/, copied into raw/, or in quarantine/ with a reason.json."""
    keys = {info.key for zone in (zones.LANDING, zones.RAW, zones.QUARANTINE)
            for info in world.storage.list(f"{zone}/{sample}/")}
    missing = []
    for name in landed:
        where = [k for k in keys if k.rsplit("/", 1)[-1] == name or f"/{name}" in k]
        quarantined = [k for k in where if k.startswith(f"{zones.QUARANTINE}/")]
        if not where or (quarantined and not any(k.endswith("reason.json") for k in keys
                                                  if k.startswith(quarantined[0].rsplit("/", 1)[0]))):
            missing.append(name)
    return not missing, ("all " + str(len(landed)) + " landed files kept") if not missing else \
        "missing: " + ", ".join(missing)


def artifacts(storage: Storage, sample: str) -> dict[str, Any]:
    """What must not depend on the run that made it: the validation verdicts, QC metrics and verdicts, the
    variant records (chrom, pos, ref, alt, GT) and summary, the report's presence. The sample's name is
    replaced by `<s>` and run ids and timestamps are dropped, so two samples of the same reads compare equal."""
    found: dict[str, Any] = {}
    keys = sorted(info.key for zone in (zones.PROCESSED, zones.REPORTS, zones.QUARANTINE)
                  for info in storage.list(f"{zone}/{sample}/"))
    for key in keys:
        name = key.rsplit("/", 1)[-1]
        label = key.replace(sample, "<s>")
        if name.endswith(".json") and "manifest" not in name:
            found[label] = _normalised(json.loads(storage.get_bytes(key)), sample)
        elif name.endswith(".vcf.gz") or name.endswith(".vcf"):
            found[label] = _vcf_records(storage.get_bytes(key))
        elif name.startswith("report"):
            found[label] = "present"
    return found


def _normalised(value: Any, sample: str) -> Any:
    if isinstance(value, dict):
        return {_normalised(k, sample): _normalised(v, sample) for k, v in value.items()
                if k not in ("run_id", "run_ids", "etag") and not k.endswith("_at")}
    if isinstance(value, list):
        return [_normalised(v, sample) for v in value]
    return value.replace(sample, "<s>") if isinstance(value, str) else value


def _vcf_records(data: bytes) -> list[tuple[str, ...]]:
    """Each variant record as (chrom, pos, ref, alt, GT)."""
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    records = []
    for line in data.decode().splitlines():
        if not line or line.startswith("#"):
            continue
        cols = line.split("\t")
        fmt, values = (cols[8].split(":"), cols[9].split(":")) if len(cols) > 9 else ([], [])
        records.append((cols[0], cols[1], cols[3], cols[4], dict(zip(fmt, values, strict=False)).get("GT", "")))
    return records


def differences(clean: Clean, recovered: dict[str, Any]) -> list[str]:
    diffs = [f"missing {k}" for k in clean if k not in recovered]
    diffs += [f"extra {k}" for k in recovered if k not in clean]
    diffs += [f"differs {k}" for k in clean if k in recovered and clean[k] != recovered[k]]
    return diffs


# ------------------------------------------------------------------------------------------------- rows


@dataclass
class Row:
    fault: str
    run: str = ""
    recovery: str = ""
    equal: str = ""
    twice: str = ""
    orphans: str = ""
    lost: str = ""
    holds: bool = True
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def fail(self, why: str) -> None:
        self.holds = False
        self.notes.append(why)


def wait_step_start(world: World, run_id: str, step: str, timeout: float = RUN_TIMEOUT) -> None:
    def started() -> bool:
        status = _finished_status(world.instance, run_id)
        if status is not None:
            raise RuntimeError(f"run {run_id} ended ({status.value}) before {step} started")
        return step in step_events(world.instance, run_id, dg.DagsterEventType.STEP_START)
    deadline = time.monotonic() + timeout
    while not started():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{step} did not start in run {run_id}")
        time.sleep(0.02)


def retry_or_next_run(world: World, failed: str, sample: str, row: Row, timeout: float = 20.0) -> str:
    """The automatic retry of `failed` when the daemon makes one; else the sample's next run, launched here."""
    try:
        retries = _wait_for(lambda: world.instance.get_runs(
            dg.RunsFilter(tags={"dagster/parent_run_id": failed})), timeout, "the automatic retry")
        row.recovery = "automatic retry"
        return retries[0].run_id
    except TimeoutError:
        row.recovery = "no automatic retry; next run of the sample"
        return world.launch(SAMPLE_PIPELINE_JOB, sample)


def recover_and_check(world: World, row: Row, sample: str, landed: list[str], failed: str,
                      clean: Clean, after_fault: Leftovers) -> None:
    """Recovery run, maintenance job; fill the row's outcome columns."""
    recovery = retry_or_next_run(world, failed, sample, row)
    status = world.wait_finished(recovery)
    row.recovery += f": {status.value}"
    if status != dg.DagsterRunStatus.SUCCESS:
        row.fail(f"recovery run {status.value}: {failure_message(world.instance, recovery)}")
    after_recovery = leftovers(world, sample)
    maintenance = world.launch(MAINTENANCE_JOB)
    if world.wait_finished(maintenance) != dg.DagsterRunStatus.SUCCESS:
        row.fail(f"maintenance job failed: {failure_message(world.instance, maintenance)}")
    after_maintenance = leftovers(world, sample)
    row.orphans = f"{after_fault} → {after_recovery} → {after_maintenance}"
    if after_maintenance.total:
        row.fail(f"leftovers after the maintenance job: {after_maintenance}")
    diffs = differences(clean.artifacts, artifacts(world.storage, sample))
    row.equal = "yes" if not diffs else "NO: " + "; ".join(diffs)
    if clean.failure:
        row.equal += " (with the clean run, which itself failed: see notes)"
        row.fail(f"the clean run on this storage fails too: {clean.failure}")
    if diffs:
        row.fail("recovered output differs from the clean run's")
    twice = completed_twice(world.instance, sample)
    row.twice = "no" if not twice else "YES: " + ", ".join(f"{k} x{n}" for k, n in sorted(twice.items()))
    if twice and row.recovery.startswith("no automatic retry"):
        redone = sorted({k.split(" ", 1)[1] for k in twice if k.startswith("step ")})
        row.fail(f"steps that had completed before the failure ({', '.join(redone)}) ran again in the sample's "
                 "next run: a step failure is not retried (run_retries.retry_on_asset_or_op_failure: false) and "
                 "a new run starts from raw_files; what they wrote again equals the first time")
    elif twice:
        row.fail("a completed step ran again")
    kept, detail = nothing_lost(world, sample, landed)
    row.lost = "nothing" if kept else detail
    if not kept:
        row.fail(detail)


def check_completed_run(world: World, row: Row, sample: str, landed: list[str], clean: Clean,
                        recovery: str) -> None:
    """A run that rode out its fault: maintenance job, then the row's outcome columns against the clean run."""
    row.recovery = recovery
    after = leftovers(world, sample)
    maintenance = world.launch(MAINTENANCE_JOB)
    if world.wait_finished(maintenance) != dg.DagsterRunStatus.SUCCESS:
        row.fail(f"maintenance job failed: {failure_message(world.instance, maintenance)}")
    row.orphans = f"{after} → {after} → {leftovers(world, sample)}"
    diffs = differences(clean.artifacts, artifacts(world.storage, sample))
    row.equal = "yes" if not diffs else "NO: " + "; ".join(diffs)
    twice = completed_twice(world.instance, sample)
    row.twice = "no" if not twice else "YES: " + ", ".join(f"{k} x{n}" for k, n in sorted(twice.items()))
    kept, detail = nothing_lost(world, sample, landed)
    row.lost = "nothing" if kept else detail
    for bad, why in ((diffs, "output differs"), (twice, "a completed step ran again"), (not kept, detail)):
        if bad:
            row.fail(why)


@dataclass
class Clean:
    """The clean run of a world: its artifacts, and why it failed when it did (then rows note it)."""

    artifacts: dict[str, Any]
    failure: str = ""


def clean_run(world: World, demo: DemoData, sample: str = "CLEAN") -> Clean:
    world.land(sample, demo)
    run_id = world.launch(SAMPLE_PIPELINE_JOB, sample)
    status = world.wait_finished(run_id)
    failure = "" if status == dg.DagsterRunStatus.SUCCESS else failure_message(world.instance, run_id)
    if failure:
        print(f"the clean run failed: {failure}", flush=True)
    return Clean(artifacts(world.storage, sample), failure)


def kill_row(world: World, demo: DemoData, asset: str, clean: Clean) -> Row:
    """SIGKILL the run worker as soon as `asset`'s step has started."""
    started = time.monotonic()
    row = Row(f"SIGKILL of the run worker in {asset}")
    sample = f"KILL_{asset.upper()}"
    landed = world.land(sample, demo)
    run_id = world.launch(SAMPLE_PIPELINE_JOB, sample)
    wait_step_start(world, run_id, asset)
    pid = worker_pid(world.instance, run_id)
    assert pid is not None, f"no worker pid recorded for run {run_id}"
    os.kill(pid, signal.SIGKILL)
    _wait_for(lambda: not _alive(pid), 10, f"worker {pid} to die")
    done = step_events(world.instance, run_id, dg.DagsterEventType.STEP_SUCCESS)
    in_step = asset not in done
    status = world.wait_finished(run_id, 60)
    row.run = (f"{status.value}; killed {'inside' if in_step else 'just after'} {asset} "
               f"({len(done)} step(s) done); {failure_message(world.instance, run_id)}")
    if not in_step:
        row.notes.append(f"{asset} finished before the kill landed (a step of well under a second)")
    recover_and_check(world, row, sample, landed, run_id, clean, leftovers(world, sample))
    row.seconds = time.monotonic() - started
    return row


def s3_down_row(world: World, proxy: Any, demo: DemoData, clean: Clean, step: str, delay: float = 0.0,
                outage_after_failure: float = 5.0) -> Row:
    """The S3 endpoint hangs (every request swallowed) from `delay` seconds after `step` started until the
    run failed, and for `outage_after_failure` seconds more."""
    started = time.monotonic()
    when = f"{delay:g} s into {step}" if delay else f"the start of {step}"
    row = Row(f"S3 endpoint hung from {when} until the run failed "
              f"(timeout {S3_TIMEOUT_SECONDS} s x {S3_MAX_ATTEMPTS} attempts)")
    sample = f"S3_DOWN_{int(delay * 1000)}MS" if delay else "S3_DOWN"
    landed = world.land(sample, demo)
    run_id = world.launch(SAMPLE_PIPELINE_JOB, sample)
    wait_step_start(world, run_id, step)
    time.sleep(delay)
    if step in step_events(world.instance, run_id, dg.DagsterEventType.STEP_SUCCESS):
        row.notes.append(f"{step} had already finished when the outage began")
    proxy.hang = True
    hung_at = time.time()
    try:
        status = world.wait_finished(run_id, 180)
        failures = world.instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_FAILURE).records
        failed_after = failures[0].event_log_entry.timestamp - hung_at if failures else None
        half_written = [info.key for info in world.storage.list(f"{zones.PROCESSED}/{sample}/{step}/")]
        after_fault = leftovers(world, sample)
        time.sleep(outage_after_failure)
    finally:
        proxy.hang = False
    message = failure_message(world.instance, run_id)
    bound = f"step failed {failed_after:.1f} s after the outage began" if failed_after is not None else \
        "no step failure recorded"
    row.run = f"{status.value}; {bound}; {message}"
    if "StorageError" not in message:
        row.fail("the step failure is not a StorageError")
    if half_written:
        row.fail(f"half-written objects under {step}/: {', '.join(half_written)}")
    else:
        row.notes.append(f"nothing under processed/<s>/{step}/ after the failure")
    recover_and_check(world, row, sample, landed, run_id, clean, after_fault)
    row.seconds = time.monotonic() - started
    return row


def s3_blip_row(world: World, proxy: Any, demo: DemoData, clean: Clean, step: str, outage: float) -> Row:
    """The S3 endpoint hangs for `outage` seconds from the start of `step`, then answers again: the step is
    retried inside the run (assets.transient) and the run completes without redoing any finished step."""
    started = time.monotonic()
    row = Row(f"S3 endpoint hung for {outage:g} s from the start of {step}, then back "
              f"(timeout {S3_TIMEOUT_SECONDS} s x {S3_MAX_ATTEMPTS} attempts)")
    sample = "S3_BLIP"
    landed = world.land(sample, demo)
    run_id = world.launch(SAMPLE_PIPELINE_JOB, sample)
    wait_step_start(world, run_id, step)
    proxy.hang = True
    try:
        time.sleep(outage)
    finally:
        proxy.hang = False
    status = world.wait_finished(run_id, RUN_TIMEOUT)
    retries = world.instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_UP_FOR_RETRY).records
    row.run = f"{status.value}; {len(retries)} step retr{'y' if len(retries) == 1 else 'ies'} inside the run"
    if status != dg.DagsterRunStatus.SUCCESS:
        row.run += f"; {failure_message(world.instance, run_id)}"
        recover_and_check(world, row, sample, landed, run_id, clean, leftovers(world, sample))
    else:
        check_completed_run(world, row, sample, landed, clean, "none needed: the step was retried in its run")
    row.seconds = time.monotonic() - started
    return row


def postgres_restart_row(world: World, demo: DemoData, clean: Clean, step: str, version: str) -> Row:
    """`pg_ctlcluster <version> main restart` while `step` runs; PostgreSQL is always left running."""
    started = time.monotonic()
    row = Row(f"PostgreSQL restarted while {step} runs (instance on PostgreSQL)")
    sample = "PG_RESTART"
    landed = world.land(sample, demo)
    run_id = world.launch(SAMPLE_PIPELINE_JOB, sample)
    wait_step_start(world, run_id, step)
    logs_before = {log: log.stat().st_size for log in (world.root / "logs").iterdir()}
    restart_began = time.monotonic()
    try:
        subprocess.run(["pg_ctlcluster", version, "main", "restart"], check=True, capture_output=True, timeout=120)
    finally:
        ensure_postgres_running(version)
    row.notes.append(f"restart took {time.monotonic() - restart_began:.1f} s")
    finished = _tolerant(lambda: step in step_events(world.instance, run_id, dg.DagsterEventType.STEP_SUCCESS))
    row.notes.append(f"{step} {'had finished' if finished else 'was still running'} when PostgreSQL was back")
    status = _wait_for(lambda: _tolerant(lambda: _finished_status(world.instance, run_id)), RUN_TIMEOUT,
                       f"run {run_id} to finish")
    done = step_events(world.instance, run_id, dg.DagsterEventType.STEP_SUCCESS)
    row.run = f"{status.value} ({len(done)} step(s) succeeded)"
    errors = _database_errors(logs_before)
    row.notes.append(f"database errors logged by the code server, run worker and daemon after the restart: "
                     f"{errors or 'none'}")
    if status != dg.DagsterRunStatus.SUCCESS:
        row.run += f"; {failure_message(world.instance, run_id)}"
        recover_and_check(world, row, sample, landed, run_id, clean, leftovers(world, sample))
    else:
        check_completed_run(world, row, sample, landed, clean, "none needed: the run completed")
    row.seconds = time.monotonic() - started
    return row


def _database_errors(sizes_before: dict[Path, int]) -> str:
    """Distinct database error lines the processes logged after the given log sizes (first 3)."""
    seen: Counter[str] = Counter()
    for log, size in sizes_before.items():
        with log.open("rb") as handle:
            handle.seek(size)
            for line in handle.read().decode(errors="replace").splitlines():
                if "OperationalError" in line or "server closed the connection" in line or "psycopg2" in line:
                    seen[_one_line(line, 140)] += 1
    return "; ".join(f"{n} x {line}" for line, n in seen.most_common(3))


def _tolerant(poll: Callable[[], Any]) -> Any:
    """A poll that a dropped database connection (the server restarting) turns into 'not yet'."""
    try:
        return poll()
    except Exception:  # sqlalchemy's OperationalError and friends while PostgreSQL restarts
        return None


def postgres_version() -> str:
    versions = sorted(p.name for p in Path("/etc/postgresql").iterdir() if (p / "main").is_dir())
    if not versions:
        raise RuntimeError("no PostgreSQL cluster under /etc/postgresql")
    return versions[-1]


def postgres_ready() -> bool:
    return subprocess.run(["pg_isready", "-h", PG_HOST, "-p", str(PG_PORT)], capture_output=True).returncode == 0


def ensure_postgres_running(version: str) -> None:
    """Other tests and CI use this server: whatever happened, leave it accepting connections."""
    if not _wait_for_quietly(postgres_ready, 30):
        subprocess.run(["pg_ctlcluster", version, "main", "start"], capture_output=True, timeout=120)
        if not _wait_for_quietly(postgres_ready, 60):
            raise RuntimeError(f"PostgreSQL {version} does not accept connections on {PG_HOST}:{PG_PORT}")


def _wait_for_quietly(condition: Callable[[], bool], timeout: float) -> bool:
    try:
        return bool(_wait_for(condition, timeout, "a condition"))
    except TimeoutError:
        return False


@contextlib.contextmanager
def throwaway_database() -> Iterator[dict[str, str]]:
    """A new database on the machine's PostgreSQL, dropped afterwards; the DAGSTER_PG_* settings for it."""
    import psycopg2

    name = f"genoflow_faults_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    admin.close()
    try:
        yield {"DAGSTER_PG_HOST": PG_HOST, "DAGSTER_PG_PORT": str(PG_PORT), "DAGSTER_PG_USER": PG_USER,
               "DAGSTER_PG_PASSWORD": "", "DAGSTER_PG_DB": name}
    finally:
        admin = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres")
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


# ------------------------------------------------------------------------------------------ the matrix


def kill_rows(work: Path, demo: DemoData, assets: tuple[str, ...]) -> list[Row]:
    with open_world(work / "kill", demo, {}, REPO / "dagster.yaml") as world:
        clean = clean_run(world, demo)
        rows = []
        for asset in assets:
            rows.append(_guarded(f"SIGKILL of the run worker in {asset}",
                                 lambda asset=asset: kill_row(world, demo, asset, clean)))
            print(_row_line(rows[-1]), flush=True)
        return rows


def s3_rows(work: Path, demo: DemoData, step: str) -> list[Row]:
    from moto.server import ThreadedMotoServer

    from tests.test_storage_faults import LoopbackProxy

    port = _free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    proxy = None
    try:
        endpoint = f"http://127.0.0.1:{port}"
        proxy = LoopbackProxy(endpoint)
        bucket = f"genoflow-faults-{uuid.uuid4().hex[:8]}"
        credentials = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
        direct = S3Storage(bucket=bucket, endpoint_url=endpoint, region_name="us-east-1", **credentials)
        direct._s3().create_bucket(Bucket=bucket)
        env = {"GENOFLOW_STORAGE": "s3", "GENOFLOW_S3_BUCKET": bucket, "GENOFLOW_S3_PREFIX": "",
               "GENOFLOW_S3_ENDPOINT_URL": proxy.endpoint, "AWS_ACCESS_KEY_ID": "testing",
               "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
               "GENOFLOW_S3_TIMEOUT_SECONDS": str(S3_TIMEOUT_SECONDS),
               "GENOFLOW_S3_MAX_ATTEMPTS": str(S3_MAX_ATTEMPTS)}
        with open_world(work / "s3", demo, env, REPO / "dagster.yaml", storage=direct) as world:
            world.s3_client, world.bucket = direct._s3(), bucket
            clean = clean_run(world, demo)
            rows = []
            rows.append(_guarded(f"S3 endpoint hung {S3_BLIP_SECONDS:g} s in {step}",
                                 lambda: s3_blip_row(world, proxy, demo, clean, step, S3_BLIP_SECONDS)))
            print(_row_line(rows[-1]), flush=True)
            for delay in S3_OUTAGE_DELAYS:
                rows.append(_guarded(f"S3 endpoint hung {delay:g} s into {step}",
                                     lambda delay=delay: s3_down_row(world, proxy, demo, clean, step, delay)))
                print(_row_line(rows[-1]), flush=True)
    finally:
        if proxy is not None:
            proxy.close()
        moto.stop()
    return rows


def postgres_rows(work: Path, demo: DemoData, step: str) -> list[Row]:
    version = postgres_version()
    if not postgres_ready():
        raise RuntimeError(f"PostgreSQL is not accepting connections on {PG_HOST}:{PG_PORT}")
    try:
        with throwaway_database() as settings, \
                open_world(work / "postgres", demo, settings, REPO / "deploy" / "postgres" / "dagster.yaml") as world:
            clean = clean_run(world, demo)
            rows = [_guarded(f"PostgreSQL restarted during {step}",
                             lambda: postgres_restart_row(world, demo, clean, step, version))]
    finally:
        ensure_postgres_running(version)
    print(_row_line(rows[-1]), flush=True)
    return rows


def _guarded(fault: str, make_row: Callable[[], Row]) -> Row:
    """A row that breaks is reported as failing, with what broke; the matrix goes on."""
    try:
        return make_row()
    except Exception as exc:
        row = Row(fault)
        row.fail(f"the benchmark could not complete the row: {_one_line(str(exc))}")
        return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=("kill", "s3", "postgres"), action="append")
    parser.add_argument("--assets", nargs="*", default=list(ASSETS))
    parser.add_argument("--s3-step", default="aligned_reads", help="the step during which S3 hangs")
    parser.add_argument("--postgres-step", default="aligned_reads", help="the step during which PostgreSQL restarts")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, zones)")
    args = parser.parse_args(argv)
    only = set(args.only or ("kill", "s3", "postgres"))
    work = Path(tempfile.mkdtemp(prefix="fault_matrix_"))
    started = time.monotonic()
    rows: list[Row] = []
    try:
        demo = generate_demo(work / "demo", contigs=GENOME, coverage=COVERAGE, n_snvs=4, n_indels=1,
                             low_quality_pairs=10)
        demo_pairs = _pairs(demo.samples["SAMPLE_A"][0])
        if "kill" in only:
            rows += kill_rows(work, demo, tuple(args.assets))
        if "s3" in only:
            rows += s3_rows(work, demo, args.s3_step)
        if "postgres" in only:
            rows += postgres_rows(work, demo, args.postgres_step)
    finally:
        print(f"work folder: {work}", flush=True)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    total = time.monotonic() - started
    print(f"matrix: {len(rows)} rows in {total:.0f} s")
    if not args.no_write:
        replace_section(SECTION, render(rows, total, demo_pairs))
    return 0 if all(r.holds for r in rows) else 1


def _pairs(fastq_gz: Path) -> int:
    with gzip.open(fastq_gz, "rb") as handle:
        return sum(1 for _ in handle) // 4


def _row_line(row: Row) -> str:
    return (f"{'OK  ' if row.holds else 'FAIL'} {row.fault}: run {row.run} | {row.recovery} | equal {row.equal} | "
            f"twice {row.twice} | orphans {row.orphans} | lost {row.lost} | {'; '.join(row.notes)} "
            f"[{row.seconds:.0f} s]")


def render(rows: list[Row], total: float, demo_pairs: int) -> str:
    cell = lambda text: str(text).replace("|", "/").replace("\n", " ")  # noqa: E731
    lines = [
        SECTION, "",
        f"`.venv/bin/python benchmarks/fault_matrix.py` ({time.strftime('%Y-%m-%d', time.gmtime())}, "
        f"{total:.0f} s for the matrix on 2 shared cores): one demo sample ({demo_pairs:,} read pairs on a "
        f"{GENOME[0][1] // 1000} kb genome) per row, run by a real code server (`dagster api grpc`) and "
        "`dagster-daemon run` with the shipped dagster.yaml (deploy/postgres/dagster.yaml for the PostgreSQL "
        "row), runs submitted with `dagster job launch`. Recovery is what happens without an operator: the "
        "daemon's automatic retry when it makes one, otherwise the sample's next run (launched by the "
        "benchmark, as the operator or a re-landing would), then the `maintenance` job with its default "
        "config. Equality with a clean run of the same reads compares every JSON artifact of the sample "
        "(validation verdicts, inventory, QC metrics and verdicts, variant summary) without run ids, "
        "timestamps and landing etags, the VCF records (chrom, pos, ref, alt, GT) and the report's presence. "
        "\"Run twice\" counts STEP_SUCCESS and materializations per step/asset over all the sample's runs. "
        "Leftovers are counted as scratch entries under `data/.work/<sample>/` / hidden `.part` files in the "
        "sample's zone folders / unfinished multipart uploads (S3 only).", "",
        "| # | fault | what the run did | recovery | recovered output = clean run | completed step run twice "
        "| leftovers: after fault → after recovery → after maintenance | landed files | holds | s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for number, row in enumerate(rows, 1):
        lines.append(f"| {number} | {cell(row.fault)} | {cell(row.run)} | {cell(row.recovery)} | {cell(row.equal)} "
                     f"| {cell(row.twice)} | {cell(row.orphans)} | {cell(row.lost)} "
                     f"| {'yes' if row.holds else '**no**'} | {row.seconds:.0f} |")
    lines += ["", "Notes and what did not hold, by row:", ""]
    for number, row in enumerate(rows, 1):
        if row.notes:
            lines.append(f"- {number}. " + "; ".join(cell(n) for n in row.notes))
    failing = [str(number) for number, row in enumerate(rows, 1) if not row.holds]
    lines += ["", ("Did not hold: row(s) " + ", ".join(failing) + " (see the notes above)." if failing else
                   "Every row held."),
              "", "Re-run: `.venv/bin/python benchmarks/fault_matrix.py` (about ten minutes; `--only kill|s3|postgres` "
              "for one part, `--assets aligned_reads` for some kill rows, `--keep` keeps the work folder with the "
              "code server's and daemon's logs, `--no-write` leaves RESULTS.md alone). The PostgreSQL row restarts "
              "the machine's server with `pg_ctlcluster` (root; every client's connections drop for ~3 s) and "
              "always leaves it accepting connections; it needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust)."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
