"""The landing sensor: new or changed objects under `landing/` start a sample's pipeline run.

How a tick works. The landing zone is listed in key order, at most `max_keys`
objects per tick, resuming where the previous tick stopped; a tick that reaches
the end of the listing completes a pass and the next one starts from the top.
A tick is only ever cut at a sample boundary: when `max_keys` falls inside a
sample's keys, the tick gives that sample back (the next tick lists it again
from its first key), and when a single sample holds more than `max_keys` keys
the tick lists on to its end. So every sample the planner looks at has had all
its keys listed in one go: a sample is never requested on half of its files,
and a key that was deleted is simply absent from the sample's next listing. A
sample that used to be in the listed range and is no longer there has been
deleted and is forgotten.

What the cursor keeps. Per sample only a digest of its sorted `key@etag` list
(16 hex digits of the run key's hash), the digest last requested and, while a
request is pending, when the digest last changed. Bad keys (traversal, control
characters, nested folders) are kept as 12-hex-digit digests of `key@etag`: the
set seen in the last complete pass and the set seen so far in this pass, so a
bad key is reported once while it stays, however many there are, and the sets
shrink when bad keys are removed. The cursor is that JSON, zlib-compressed and
base64-encoded: about 15 bytes per sample, ~0.3 MB for 20,000 samples (100,000
objects), instead of every key and etag. Dagster 1.13 writes the cursor into
every tick row, skipped ticks included, even when the sensor returns it
unchanged (`SensorLaunchContext.update_state` stores `context.cursor`), so its
size is the one lever; keeping the state in the instance's key-value store
would shrink tick rows further but would no longer be committed atomically with
the tick's run requests, which is what makes a crashed tick safe to replay.

Runs. A sample is requested when its digest is new or changed and then stayed
the same for the settle period, or at once when its `samplesheet.csv/tsv/xlsx`
row names files that have all landed (the sheet is read only when the sample's
digest changes). The run key is the sample id plus a hash of its sorted
`key@etag` list: the same objects never trigger twice (Dagster also refuses a
run key it has already launched), a re-upload with new content triggers exactly
once more.

dagster-aws's `get_objects` is not used: it re-lists the whole prefix on each
call and raises when the cursor's key has been deleted.
"""


import base64
import hashlib
import json
import time
import zlib
from collections.abc import Iterable
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
from genoflow_dagster.resources.storage import ObjectInfo, Storage

MAX_KEYS_PER_TICK = 5000
DIGEST_HEX = 16  # per-sample digest kept in the cursor: 64 bits of the run key's hash
BAD_KEY_DIGEST_HEX = 12
MAX_NAMES_LOGGED = 20
CURSOR_PREFIX = "v2:"


@dataclass
class SampleState:
    digest: str  # first DIGEST_HEX hex digits of the hash of the sorted key@etag list
    changed_at: float = 0.0  # when the digest last changed (kept only while a request is pending)
    requested: str | None = None  # digest of the last requested run


@dataclass
class LandingCursor:
    samples: dict[str, SampleState] = field(default_factory=dict)
    resume_after: str | None = None  # listing position when the pass is not finished
    bad_known: set[str] = field(default_factory=set)  # bad keys seen in the last complete pass
    bad_seen: set[str] = field(default_factory=set)  # bad keys seen so far in this pass

    def to_json(self) -> str:
        """The compact wire form: `v2:` + base64(zlib(JSON))."""
        samples: dict[str, Any] = {}
        for sample_id, st in self.samples.items():
            if st.requested == st.digest:
                samples[sample_id] = st.digest
            else:
                samples[sample_id] = [st.digest, round(st.changed_at, 3), st.requested]
        body = json.dumps(
            {"samples": samples, "resume_after": self.resume_after,
             "bad_known": sorted(self.bad_known), "bad_seen": sorted(self.bad_seen)},
            sort_keys=True, separators=(",", ":"),
        )
        return CURSOR_PREFIX + base64.b64encode(zlib.compress(body.encode(), 9)).decode()

    @classmethod
    def from_json(cls, text: str | None) -> "LandingCursor":
        if not text:
            return cls()
        if not text.startswith(CURSOR_PREFIX):
            return cls._from_v1(json.loads(text))
        data = json.loads(zlib.decompress(base64.b64decode(text[len(CURSOR_PREFIX):])))
        samples = {}
        for sample_id, entry in data["samples"].items():
            if isinstance(entry, str):
                samples[sample_id] = SampleState(digest=entry, requested=entry)
            else:
                samples[sample_id] = SampleState(digest=entry[0], changed_at=entry[1], requested=entry[2])
        return cls(samples=samples, resume_after=data.get("resume_after"),
                   bad_known=set(data.get("bad_known", [])), bad_seen=set(data.get("bad_seen", [])))

    @classmethod
    def _from_v1(cls, data: dict[str, Any]) -> "LandingCursor":
        """The first cursor kept every key and etag; its digests are the same hash, so no sample runs twice."""
        samples = {}
        for sample_id, old in data.get("samples", {}).items():
            if not old["files"]:
                continue
            digest = _digest(fingerprint(sample_id, old["files"]))
            requested = old.get("requested")
            samples[sample_id] = SampleState(digest=digest, changed_at=old["changed_at"],
                                             requested=_digest(requested) if requested else None)
        # Start a fresh pass: resuming inside the old listing position could split a sample.
        return cls(samples=samples)


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
    skipped: list[tuple[str, str]]  # (key, reason) bad keys seen for the first time
    listed: int
    complete_pass: bool  # this tick reached the end of the landing zone
    forgotten: list[str] = field(default_factory=list)  # samples whose every key was deleted


FINGERPRINT_TAG = "genoflow/fingerprint"  # the landed files a run analysed: `fingerprint()` of them


def fingerprint(sample_id: str, files: dict[str, str]) -> str:
    """The run key: the sample id and a hash of its sorted `key@etag` list."""
    body = "\n".join(f"{key}@{etag}" for key, etag in sorted(files.items()))
    return f"{sample_id}:{hashlib.sha256(body.encode()).hexdigest()[:32]}"


def _digest(run_key: str) -> str:
    return run_key.rsplit(":", 1)[-1][:DIGEST_HEX]


def _bad_key_digest(info: ObjectInfo) -> str:
    return hashlib.sha256(f"{info.key}@{info.etag}".encode()).hexdigest()[:BAD_KEY_DIGEST_HEX]


def _sample_group(key: str) -> str | None:
    """The `landing/<sample>/` prefix of a key (bad keys included); None for a key right under landing/."""
    parts = key.split("/", 2)
    return f"{parts[0]}/{parts[1]}/" if len(parts) == 3 else None


def _list_whole_samples(listing: Iterable[ObjectInfo], max_keys: int) -> tuple[list[ObjectInfo], str | None]:
    """Up to about `max_keys` objects, cut only between two samples.

    Returns the objects and the first key not taken (None when the listing ended).
    """
    batch: list[ObjectInfo] = []
    group_start = 0
    for info in listing:
        group = _sample_group(info.key)
        same_group = bool(batch) and group is not None and group == _sample_group(batch[-1].key)
        if len(batch) >= max_keys:
            if not same_group:
                return batch, info.key
            if group_start > 0:  # give the sample back: the next tick lists it from its first key
                next_key = batch[group_start].key
                del batch[group_start:]
                return batch, next_key
            # one sample larger than max_keys: list on to its end
        if not same_group:
            group_start = len(batch)
        batch.append(info)
    return batch, None


def plan_landing_tick(storage: Storage, cursor: LandingCursor | None, now: float, *, settle_seconds: float,
                      max_keys: int = MAX_KEYS_PER_TICK) -> TickPlan:
    """Decide one tick: which samples changed or vanished, which settled, which runs to request."""
    cursor = cursor or LandingCursor()
    low = cursor.resume_after
    batch, next_key = _list_whole_samples(storage.list(zones.landing_prefix(), start_after=low), max_keys)

    seen: dict[str, dict[str, str]] = {}
    skipped: list[tuple[str, str]] = []
    for info in batch:
        try:
            sample_id, _ = zones.parse_landing_key(info.key)
        except zones.UnsafeKeyError as exc:
            marker = _bad_key_digest(info)
            if marker not in cursor.bad_known and marker not in cursor.bad_seen:
                skipped.append((info.key, exc.reason))
            cursor.bad_seen.add(marker)
            continue
        seen.setdefault(sample_id, {})[info.key] = info.etag

    # Samples whose whole key range was listed by this tick and that had no key in it were deleted.
    forgotten = [
        sample_id for sample_id in cursor.samples
        if sample_id not in seen and _in_range(zones.landing_prefix(sample_id), low, next_key)
    ]
    for sample_id in forgotten:
        del cursor.samples[sample_id]

    complete = next_key is None
    if complete:
        cursor.bad_known, cursor.bad_seen = cursor.bad_seen, set()
    cursor.resume_after = None if complete else batch[-1].key if batch else low

    runs: list[PlannedRun] = []
    new_samples: list[str] = []
    for sample_id in sorted(seen):
        files = seen[sample_id]
        run_key = fingerprint(sample_id, files)
        digest = _digest(run_key)
        state = cursor.samples.get(sample_id)
        changed = state is None or state.digest != digest
        if state is None:
            state = cursor.samples[sample_id] = SampleState(digest=digest, changed_at=now)
            new_samples.append(sample_id)
        elif changed:
            state.digest, state.changed_at = digest, now
        if state.requested == digest:
            continue
        settled = now - state.changed_at >= settle_seconds
        if settled or (changed and samplesheet_satisfied(storage, sample_id, files)):
            runs.append(PlannedRun(sample_id, run_key, tuple(sorted(files))))
            state.requested = digest
    return TickPlan(cursor=cursor, runs=runs, new_samples=new_samples, skipped=skipped, listed=len(batch),
                    complete_pass=complete, forgotten=sorted(forgotten))


def _in_range(prefix: str, low: str | None, high: str | None) -> bool:
    """True when every key starting with `prefix` lies after `low` and before `high` (None: unbounded).

    `low` is the last key of a whole sample and `high` the first key of another one, so neither starts
    with `prefix` when the sample was listed in between.
    """
    return (low is None or prefix > low) and (high is None or prefix < high) and not (
        high is not None and high.startswith(prefix))


def samplesheet_satisfied(storage: Storage, sample_id: str, files: dict[str, str]) -> bool:
    """True when the sample's one samplesheet is valid, has a row for it, and every file it names has landed.

    `files` maps the sample's landed keys to their etags. A sheet that is missing, invalid or silent
    about this sample leaves the settle period in charge.
    """
    sheets = [key for key in files if is_samplesheet(key.rsplit("/", 1)[-1])]
    if len(sheets) != 1:
        return False
    needs = _files_named_by(storage, sheets[0], sample_id)
    landed = {key.rsplit("/", 1)[-1] for key in files}
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


def _names(items: list[str]) -> str:
    shown = ", ".join(items[:MAX_NAMES_LOGGED])
    return shown + (f" and {len(items) - MAX_NAMES_LOGGED} more" if len(items) > MAX_NAMES_LOGGED else "")


@dg.sensor(
    name="landing_zone_upload_sensor",
    job_name=SAMPLE_PIPELINE_JOB,
    minimum_interval_seconds=30,
    # Running by default: with `make dev` (webserver + daemon) a file dropped into landing/<sample>/ is
    # processed without a click. Files a run already analysed are skipped by their fingerprint tag, so a
    # daemon started after `genoflow demo` or `genoflow run` does not run them again.
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Starts `sample_pipeline` for a sample once its uploads under landing/<sample>/ have settled "
    "(GENOFLOW_LANDING_SETTLE_SECONDS, 60 s), or as soon as every file its samplesheet row names has landed. "
    "Files a run already analysed (same fingerprint) are not run again.",
)
def landing_zone_upload_sensor(context: dg.SensorEvaluationContext, storage: Storage) -> dg.SensorResult:
    plan = plan_landing_tick(
        storage,
        LandingCursor.from_json(context.cursor),
        time.time(),
        settle_seconds=settings.landing_settle_seconds(),
    )
    for key, reason in plan.skipped[:MAX_NAMES_LOGGED]:
        context.log.warning(f"skipping landing key {key!r}: {reason}")
    if len(plan.skipped) > MAX_NAMES_LOGGED:
        context.log.warning(f"skipping {len(plan.skipped) - MAX_NAMES_LOGGED} more bad landing keys "
                            "(each is reported once)")
    if plan.forgotten:
        context.log.info(f"every file of {len(plan.forgotten)} sample(s) was removed from landing: "
                         f"{_names(plan.forgotten)}")
    # Files already run by another path (`genoflow run`, `genoflow demo`, a launch from the UI) carry the same
    # fingerprint tag: starting the sensor afterwards does not run them again.
    already = [run for run in plan.runs if context.instance.get_run_ids(
        dg.RunsFilter(tags={FINGERPRINT_TAG: run.run_key}), limit=1)]
    if already:
        context.log.info(f"{len(already)} sample(s) already ran on these files: "
                         f"{_names([r.sample_id for r in already])}")
    runs = [run for run in plan.runs if run not in already]
    if runs:
        context.log.info(f"requesting {len(runs)} run(s): {_names([r.sample_id for r in runs])}")
    requests = [
        dg.RunRequest(
            run_key=run.run_key,
            partition_key=run.sample_id,
            tags={"genoflow/trigger": "landing", "genoflow/files": str(len(run.keys)), FINGERPRINT_TAG: run.run_key},
        )
        for run in runs
    ]
    partitions: list[Any] = []
    if plan.new_samples:
        partitions.append(samples_partitions.build_add_request(sorted(plan.new_samples)))
    where = "end of the landing zone" if plan.complete_pass else "pass continues next tick"
    skip = None if requests else dg.SkipReason(f"listed {plan.listed} landing object(s) ({where}); "
                                               "no sample is new, changed and settled")
    return dg.SensorResult(run_requests=requests, dynamic_partitions_requests=partitions,
                           cursor=plan.cursor.to_json(), skip_reason=skip)
