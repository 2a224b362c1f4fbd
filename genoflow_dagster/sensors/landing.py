"""The landing sensor: new or changed objects under `landing/` start a sample's pipeline run.

The cursor (JSON) keeps, per sample, the `key@etag` fingerprints of what it has
seen and what it last requested, plus when the sample last changed. Each tick
lists the landing zone page by page (at most `max_keys` objects), records bad
keys instead of failing, and requests a run for every sample whose files
changed and then stayed unchanged for the settle period, or at once when the
sample's `samplesheet.csv/tsv/xlsx` row names files that have all landed. The run key is a
hash of the sample's sorted `key@etag` list: the same objects never trigger
twice, a re-upload with new content triggers again.

dagster-aws's `get_objects` is not used: it re-lists the whole prefix on each
call and raises when the cursor's key has been deleted.
"""


import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from genoflow_dagster import settings, zones
from genoflow_dagster.formats.samplesheet import (
    MAX_SAMPLESHEET_BYTES,
    is_samplesheet,
    named_files,
    rows_for_sample,
)
from genoflow_dagster.formats.validate import validate_file
from genoflow_dagster.jobs import SAMPLE_PIPELINE_JOB
from genoflow_dagster.partitions import samples_partitions
from genoflow_dagster.resources.storage import Storage

MAX_KEYS_PER_TICK = 5000
MAX_BAD_KEYS_REMEMBERED = 200


@dataclass
class SampleState:
    files: dict[str, str] = field(default_factory=dict)  # key -> etag
    changed_at: float = 0.0
    requested: str | None = None  # fingerprint of the last requested run
    # The samplesheet as last read: {"marker": key@etag, "needs": [file names] or None when unusable}.
    sheet: dict[str, Any] | None = None


@dataclass
class LandingCursor:
    samples: dict[str, SampleState] = field(default_factory=dict)
    resume_after: str | None = None  # listing position when a tick stopped at max_keys
    bad_keys: dict[str, str] = field(default_factory=dict)  # key@etag -> reason

    def to_json(self) -> str:
        return json.dumps(
            {
                "samples": {s: {"files": st.files, "changed_at": st.changed_at, "requested": st.requested,
                                "sheet": st.sheet}
                            for s, st in self.samples.items()},
                "resume_after": self.resume_after,
                "bad_keys": self.bad_keys,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str | None) -> "LandingCursor":
        if not text:
            return cls()
        data = json.loads(text)
        return cls(
            samples={s: SampleState(files=v["files"], changed_at=v["changed_at"], requested=v.get("requested"),
                                    sheet=v.get("sheet"))
                     for s, v in data.get("samples", {}).items()},
            resume_after=data.get("resume_after"),
            bad_keys=data.get("bad_keys", {}),
        )


@dataclass(frozen=True)
class PlannedRun:
    sample_id: str
    run_key: str
    keys: tuple[str, ...]


@dataclass
class TickPlan:
    cursor: LandingCursor
    runs: list[PlannedRun]
    new_samples: list[str]
    skipped: list[tuple[str, str]]  # (key, reason) newly seen bad keys
    listed: int
    complete_pass: bool


def fingerprint(sample_id: str, files: dict[str, str]) -> str:
    body = "\n".join(f"{key}@{etag}" for key, etag in sorted(files.items()))
    return f"{sample_id}:{hashlib.sha256(body.encode()).hexdigest()[:32]}"


def plan_landing_tick(storage: Storage, cursor: LandingCursor | None, now: float, *, settle_seconds: float,
                      max_keys: int = MAX_KEYS_PER_TICK) -> TickPlan:
    """Decide one tick: which samples changed, which settled, which runs to request.

    A sample's view is only replaced after a complete pass over the landing zone
    (a tick cut short at `max_keys` resumes where it stopped next time), so a
    partial listing never makes files look deleted.
    """
    cursor = cursor or LandingCursor()
    seen: dict[str, dict[str, str]] = {}
    skipped: list[tuple[str, str]] = []
    listed = 0
    last_key = None
    complete = True
    for info in storage.list(zones.landing_prefix(), start_after=cursor.resume_after):
        if listed >= max_keys:
            complete = False
            break
        listed += 1
        last_key = info.key
        try:
            sample_id, _ = zones.parse_landing_key(info.key)
        except zones.UnsafeKeyError as exc:
            marker = f"{info.key}@{info.etag}"
            if marker not in cursor.bad_keys:
                skipped.append((info.key, exc.reason))
                cursor.bad_keys[marker] = exc.reason
            continue
        seen.setdefault(sample_id, {})[info.key] = info.etag
    while len(cursor.bad_keys) > MAX_BAD_KEYS_REMEMBERED:
        cursor.bad_keys.pop(next(iter(cursor.bad_keys)))

    new_samples: list[str] = []
    for sample_id, files in seen.items():
        state = cursor.samples.get(sample_id)
        if state is None:
            state = cursor.samples[sample_id] = SampleState()
            new_samples.append(sample_id)
        merged = dict(files) if cursor.resume_after is None and complete else {**state.files, **files}
        if merged != state.files:
            state.files = merged
            state.changed_at = now
    if complete and cursor.resume_after is None:
        for sample_id, state in cursor.samples.items():  # files deleted from landing are forgotten
            if sample_id not in seen and state.files:
                state.files = {}
    cursor.resume_after = None if complete else last_key

    runs: list[PlannedRun] = []
    for sample_id, state in sorted(cursor.samples.items()):
        if not state.files:
            continue
        current = fingerprint(sample_id, state.files)
        if current == state.requested:
            continue
        if now - state.changed_at < settle_seconds and not samplesheet_satisfied(storage, sample_id, state):
            continue
        runs.append(PlannedRun(sample_id, current, tuple(sorted(state.files))))
        state.requested = current
    return TickPlan(cursor=cursor, runs=runs, new_samples=new_samples, skipped=skipped, listed=listed,
                    complete_pass=complete)


def samplesheet_satisfied(storage: Storage, sample_id: str, state: SampleState) -> bool:
    """True when the sample's one samplesheet is valid, has a row for it, and every file it names has landed.

    The sheet is read once per version (its `key@etag` is kept in the cursor); a sheet that is missing,
    invalid or silent about this sample leaves the settle period in charge.
    """
    sheets = [key for key in state.files if is_samplesheet(key.rsplit("/", 1)[-1])]
    if len(sheets) != 1:
        return False
    marker = f"{sheets[0]}@{state.files[sheets[0]]}"
    if not state.sheet or state.sheet.get("marker") != marker:
        state.sheet = {"marker": marker, "needs": _files_named_by(storage, sheets[0], sample_id)}
    needs = state.sheet["needs"]
    landed = {key.rsplit("/", 1)[-1] for key in state.files}
    return needs is not None and set(needs) <= landed


def _files_named_by(storage: Storage, key: str, sample_id: str) -> list[str] | None:
    name = key.rsplit("/", 1)[-1]
    try:
        if storage.stat(key).size > MAX_SAMPLESHEET_BYTES:
            return None
        with storage.local_path(key) as path:
            result = validate_file(path, name=name)
    except Exception:  # an unreadable sheet must not fail the tick: the settle period still applies
        return None
    rows = rows_for_sample(result.details.get("samplesheet") or [], sample_id) if result.valid else []
    return named_files(rows[0]) if rows else None


@dg.sensor(
    name="landing_zone_upload_sensor",
    job_name=SAMPLE_PIPELINE_JOB,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Starts `sample_pipeline` for a sample once its uploads under landing/<sample>/ have settled, "
    "or as soon as every file its samplesheet row names has landed.",
)
def landing_zone_upload_sensor(context: dg.SensorEvaluationContext, storage: Storage) -> dg.SensorResult:
    plan = plan_landing_tick(
        storage,
        LandingCursor.from_json(context.cursor),
        time.time(),
        settle_seconds=settings.landing_settle_seconds(),
    )
    for key, reason in plan.skipped:
        context.log.warning(f"skipping landing key {key!r}: {reason}")
    if plan.runs:
        context.log.info(f"requesting {len(plan.runs)} run(s): {', '.join(r.sample_id for r in plan.runs)}")
    requests = [
        dg.RunRequest(
            run_key=run.run_key,
            partition_key=run.sample_id,
            tags={"genoflow/trigger": "landing", "genoflow/files": str(len(run.keys))},
        )
        for run in plan.runs
    ]
    partitions: list[Any] = []
    if plan.new_samples:
        partitions.append(samples_partitions.build_add_request(sorted(plan.new_samples)))
    return dg.SensorResult(run_requests=requests, dynamic_partitions_requests=partitions,
                           cursor=plan.cursor.to_json())
