"""Free the pool slots of runs that can no longer use them.

A step of `aligned_reads` or `variant_calls` holds a slot of the `compute` pool
while it runs, and gives it back when it ends. A run worker killed in the
middle (`kill -9`, the OOM killer, a reboot) never gives it back: the slot stays
claimed by a run that will never finish, and after two such crashes the pool
(limit 2) is full for ever.

With the daemon running, the instance settings in dagster.yaml handle the usual
case: the code server that started the worker reports the run failed when the
worker dies, and the monitoring daemon frees the slots of ended runs
(`run_monitoring.free_slots_after_run_end_seconds`). Two cases are left, and
this module covers them:

- runs executed in process (`genoflow demo`, tests): nobody watches the
  process, so a killed run stays STARTED for ever;
- no daemon at all: nobody frees the slots of ended runs.

`free_slots_of_dead_runs` is called before GenoFlow executes runs in process.
A run is judged dead only on evidence: it has ended (and its worker is gone or
it ended longer ago than the instance's grace period), or its worker process,
whose pid the run recorded in its event log, no longer runs on this machine. A
worker pid means something only on the machine that ran it: on the embedded
SQLite instance every run ran here; on a shared database (Postgres) only runs
tagged with this machine's name (`this_host_tags`) are judged by their pid.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

WORKER_HOST_TAG = "genoflow/worker_host"

# A run that ended this long ago cannot still be using a slot; the same setting the daemon uses.
DEFAULT_GRACE_SECONDS = 5

_ENDED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}
_LIVE = {dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING}


@dataclass(frozen=True)
class FreedRun:
    """A run whose pool slots were given back, and why."""

    run_id: str
    job_name: str
    partition: str | None
    reason: str

    def describe(self) -> str:
        sample = f" ({self.partition})" if self.partition else ""
        return f"run {self.run_id[:8]} of {self.job_name}{sample}: {self.reason}"


def this_host_tags() -> dict[str, str]:
    """Tags for a run executed in this process, so that a later check can tell its worker pid is ours."""
    return {WORKER_HOST_TAG: socket.gethostname()}


def free_slots_of_dead_runs(instance: dg.DagsterInstance) -> list[FreedRun]:
    """Give back the pool slots held by runs that ended or whose worker process is gone.

    A STARTED run whose worker is gone is first reported failed (with a message
    saying so), then its slots are freed. Returns what was freed, for the log.
    """
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return []
    holders = set(storage.get_concurrency_run_ids())
    for pool in storage.get_concurrency_keys():
        holders.update(slot.run_id for slot in storage.get_concurrency_info(pool).claimed_slots)
    grace = instance.run_monitoring_settings.get("free_slots_after_run_end_seconds") or DEFAULT_GRACE_SECONDS
    local_storage = _is_local_storage(instance)

    freed = []
    for run_id in sorted(holders):
        record = instance.get_run_record_by_id(run_id)
        reason = _why_dead(instance, record, grace, local_storage) if record else "the run no longer exists"
        if reason is None:
            continue
        if record and record.dagster_run.status in _LIVE:
            instance.report_run_failed(
                record.dagster_run, f"GenoFlow marked this run failed: {reason}. Its pool slots were freed."
            )
        storage.free_concurrency_slots_for_run(run_id)
        run = record.dagster_run if record else None
        freed.append(FreedRun(
            run_id=run_id,
            job_name=run.job_name if run else "?",
            partition=run.tags.get("dagster/partition") if run else None,
            reason=reason,
        ))
    return freed


def _why_dead(instance: dg.DagsterInstance, record: dg.RunRecord, grace: int, local_storage: bool) -> str | None:
    """Why this run can no longer use its slots, or None when it may still be running."""
    run = record.dagster_run
    knowable = local_storage or run.tags.get(WORKER_HOST_TAG) == socket.gethostname()
    pid = worker_pid(instance, run.run_id) if knowable else None
    if run.status in _ENDED:
        if pid is not None and not _process_running_since(pid, record.start_time):
            return f"it ended ({run.status.value}) and its worker (pid {pid}) is gone"
        if record.end_time is not None and time.time() - record.end_time > grace:
            return f"it ended ({run.status.value}) more than {grace} s ago"
        return None
    if run.status in _LIVE and pid is not None and not _process_running_since(pid, record.start_time):
        return f"its worker process (pid {pid}) is gone"
    return None


def _is_local_storage(instance: dg.DagsterInstance) -> bool:
    """The embedded instance keeps its runs in SQLite files: every run it has ran on this machine."""
    return type(instance.run_storage).__name__.startswith("Sqlite")


def worker_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    """The pid of the process that executes the run's steps, as the run recorded it.

    Dagster writes it as `pid` metadata on run-level engine events ("Started process for run",
    "Executing steps in process"); the latest one is the current worker.
    """
    pid = None
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT).records
    for record in records:
        entry = record.event_log_entry
        if entry.step_key is not None or entry.dagster_event is None:
            continue
        metadata = entry.dagster_event.engine_event_data.metadata or {}
        if "pid" in metadata:
            try:
                pid = int(metadata["pid"].value)  # type: ignore[arg-type]  # (not an int: skipped below)
            except (TypeError, ValueError):
                continue
    return pid


def _process_running_since(pid: int, run_started: float | None) -> bool:
    """Whether `pid` is a live process that was already running when the run started.

    A zombie (killed, not yet reaped) is not live; a process started after the
    run is another program that got the recycled pid.
    """
    stat = Path(f"/proc/{pid}/stat")
    if not stat.parent.parent.joinpath("self").exists():  # no procfs (macOS): existence only
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return False
    if fields[0] in ("Z", "X"):
        return False
    if run_started is None:
        return True
    started = _boot_time() + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    return started <= run_started + 1.0


def _boot_time() -> float:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    return 0.0
