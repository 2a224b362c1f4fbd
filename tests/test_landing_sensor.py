"""The landing sensor, one test per cursor scenario, on both storages (local and S3 over HTTP)."""

import json
from pathlib import Path

import dagster as dg
import pytest

from genoflow_dagster.resources.storage import LocalStorage
from genoflow_dagster.sensors.landing import (
    LandingCursor,
    fingerprint,
    landing_zone_upload_sensor,
    plan_landing_tick,
)

pytestmark = pytest.mark.integration

SETTLE = 60.0


def tick(storage, cursor, now, **kwargs):
    plan = plan_landing_tick(storage, cursor, now, settle_seconds=kwargs.pop("settle", SETTLE), **kwargs)
    # round-trip through JSON like the daemon does
    return plan, LandingCursor.from_json(plan.cursor.to_json())


def test_first_tick_waits_for_the_settle_period_then_requests_one_run(storage):
    storage.put_bytes(b"@r\nA\n+\nI\n", "landing/S1/a_R1.fq")
    storage.put_bytes(b"@r\nA\n+\nI\n", "landing/S1/a_R2.fq")
    plan, cursor = tick(storage, None, now=1000)
    assert plan.new_samples == ["S1"] and plan.runs == []
    plan, cursor = tick(storage, cursor, now=1000 + SETTLE)
    assert [(r.sample_id, r.keys) for r in plan.runs] == [("S1", ("landing/S1/a_R1.fq", "landing/S1/a_R2.fq"))]


def test_nothing_new_means_no_run(storage):
    storage.put_bytes(b"x", "landing/S1/a.vcf")
    _, cursor = tick(storage, None, now=0, settle=0)
    plan, cursor = tick(storage, cursor, now=10, settle=0)
    assert plan.runs == [] and plan.new_samples == []


def test_a_new_sample_gets_its_own_run(storage):
    storage.put_bytes(b"x", "landing/S1/a.vcf")
    _, cursor = tick(storage, None, now=0, settle=0)
    storage.put_bytes(b"y", "landing/S2/b.vcf")
    plan, _ = tick(storage, cursor, now=5, settle=0)
    assert [r.sample_id for r in plan.runs] == ["S2"] and plan.new_samples == ["S2"]


def test_reupload_with_new_content_triggers_again(storage):
    storage.put_bytes(b"first", "landing/S1/a.vcf")
    first, cursor = tick(storage, None, now=0, settle=0)
    storage.put_bytes(b"second version", "landing/S1/a.vcf")
    second, _ = tick(storage, cursor, now=5, settle=0)
    assert len(first.runs) == 1 and len(second.runs) == 1
    assert first.runs[0].run_key != second.runs[0].run_key


def test_a_second_file_arriving_later_restarts_the_settle_clock(storage):
    storage.put_bytes(b"r1", "landing/S1/x_R1.fq")
    plan, cursor = tick(storage, None, now=0)
    assert plan.runs == []
    storage.put_bytes(b"r2", "landing/S1/x_R2.fq")
    plan, cursor = tick(storage, cursor, now=SETTLE - 1)  # R2 seen just before R1 would have settled
    assert plan.runs == []
    plan, cursor = tick(storage, cursor, now=SETTLE + 1)  # not yet SETTLE after R2
    assert plan.runs == []
    plan, cursor = tick(storage, cursor, now=2 * SETTLE)
    assert [r.keys for r in plan.runs] == [("landing/S1/x_R1.fq", "landing/S1/x_R2.fq")]


@pytest.mark.parametrize(
    ("key", "reason"),
    [("landing/S1/sub/deep.fq", "KEY_LAYOUT"), ("landing/bad|id/x.fq", "SAMPLE_ID_CHARACTERS"),
     ("landing/S1/tab\there.fq", "KEY_CONTROL_CHARACTERS")],
)
def test_a_bad_key_is_recorded_and_skipped_once(storage, key, reason):
    storage.put_bytes(b"ok", "landing/S1/good.vcf")
    storage.put_bytes(b"bad", key)
    plan, cursor = tick(storage, None, now=0, settle=0)
    assert plan.skipped == [(key, reason)]
    assert [r.keys for r in plan.runs] == [("landing/S1/good.vcf",)]
    plan, _ = tick(storage, cursor, now=1, settle=0)
    assert plan.skipped == []


def test_listing_is_bounded_per_tick_and_resumes(storage):
    for i in range(7):
        storage.put_bytes(b"v", f"landing/S{i}/a.vcf")
    requested, cursor, ticks = [], None, 0
    while ticks < 10:
        plan, cursor = tick(storage, cursor, now=ticks, settle=0, max_keys=3)
        requested += [r.sample_id for r in plan.runs]
        ticks += 1
        if plan.complete_pass and cursor.resume_after is None and len(requested) == 7:
            break
    assert sorted(requested) == [f"S{i}" for i in range(7)]
    assert ticks <= 4


def test_the_dagster_sensor_returns_runs_partitions_and_cursor(storage, monkeypatch):
    monkeypatch.setenv("GENOFLOW_LANDING_SETTLE_SECONDS", "0")
    storage.put_bytes(b"v", "landing/S9/a.vcf")
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, resources={"storage": storage})
        result = landing_zone_upload_sensor(context)
    assert [r.partition_key for r in result.run_requests] == ["S9"]
    assert result.run_requests[0].run_key.startswith("S9:")
    assert list(result.dynamic_partitions_requests[0].partition_keys) == ["S9"]
    cursor = LandingCursor.from_json(result.cursor)
    # the cursor keeps a 64-bit prefix of the run key's hash, not the keys
    assert result.run_requests[0].run_key.split(":")[1].startswith(cursor.samples["S9"].requested)


SHEET = b"sample,fastq_1,fastq_2\nS1,x_R1.fq,x_R2.fq\n"


def test_a_satisfied_samplesheet_row_starts_the_run_without_waiting(storage):
    storage.put_bytes(SHEET, "landing/S1/samplesheet.csv")
    storage.put_bytes(b"@r\nA\n+\nI\n", "landing/S1/x_R1.fq")
    plan, cursor = tick(storage, None, now=0)
    assert plan.runs == []  # x_R2.fq is named but has not landed: the settle period is in charge
    storage.put_bytes(b"@r\nA\n+\nI\n", "landing/S1/x_R2.fq")
    plan, cursor = tick(storage, cursor, now=1)
    assert [(r.sample_id, len(r.keys)) for r in plan.runs] == [("S1", 3)]
    plan, cursor = tick(storage, cursor, now=2)
    assert plan.runs == []


def test_an_invalid_or_silent_samplesheet_leaves_the_settle_period_in_charge(storage):
    storage.put_bytes(b"sample,fastq_1\nS2,x_R1.fq\n", "landing/S1/samplesheet.csv")  # no row for S1
    storage.put_bytes(b"@r\nA\n+\nI\n", "landing/S1/x_R1.fq")
    plan, cursor = tick(storage, None, now=0)
    assert plan.runs == []
    plan, cursor = tick(storage, cursor, now=SETTLE - 1)
    assert plan.runs == []
    plan, _ = tick(storage, cursor, now=SETTLE)
    assert [r.sample_id for r in plan.runs] == ["S1"]


def run_until_quiet(storage, cursor, *, start, max_keys, settle=0, passes=2, limit=200):
    """Tick until `passes` complete passes went by; every planned run, in order."""
    runs, done, now = [], 0, start
    for _ in range(limit):
        plan, cursor = tick(storage, cursor, now=now, settle=settle, max_keys=max_keys)
        runs += plan.runs
        now += 1
        done += plan.complete_pass
        if done >= passes:
            return runs, cursor, now
    raise AssertionError("the listing never completed a pass")


def test_a_sample_straddling_the_tick_limit_is_requested_once_with_all_its_keys(storage):
    """The operator's duplicate: a tick cut inside a sample's keys requested half the sample (settle 0)."""
    for name in ("a.vcf", "b.vcf"):
        storage.put_bytes(b"v", f"landing/S0/{name}")
    for name in ("a.vcf", "b.vcf", "c.vcf"):
        storage.put_bytes(b"v", f"landing/S1/{name}")
    plan, cursor = tick(storage, None, now=0, settle=0, max_keys=3)  # the 3rd key is S1's first
    assert [r.sample_id for r in plan.runs] == ["S0"] and not plan.complete_pass
    assert cursor.resume_after == "landing/S0/b.vcf"  # S1 is given back whole
    runs, _, _ = run_until_quiet(storage, cursor, start=1, max_keys=3)
    assert [(r.sample_id, r.keys) for r in runs] == [
        ("S1", ("landing/S1/a.vcf", "landing/S1/b.vcf", "landing/S1/c.vcf"))]


def test_a_sample_larger_than_the_tick_limit_is_listed_to_its_end(storage):
    for i in range(5):
        storage.put_bytes(b"v", f"landing/BIG/f{i}.vcf")
    storage.put_bytes(b"v", "landing/Z/z.vcf")
    runs, _, _ = run_until_quiet(storage, None, start=0, max_keys=2)
    assert [(r.sample_id, len(r.keys)) for r in runs] == [("BIG", 5), ("Z", 1)]


def test_a_deleted_key_leaves_the_fingerprint_and_a_deleted_sample_is_forgotten(storage, tmp_path):
    storage.put_bytes(b"1", "landing/S1/a.vcf")
    storage.put_bytes(b"2", "landing/S1/b.vcf")
    storage.put_bytes(b"3", "landing/S2/c.vcf")
    first, cursor, now = run_until_quiet(storage, None, start=0, max_keys=2)
    assert sorted(r.sample_id for r in first) == ["S1", "S2"]
    _delete(storage, "landing/S1/b.vcf")
    _delete(storage, "landing/S2/c.vcf")
    again, cursor, _ = run_until_quiet(storage, cursor, start=now, max_keys=2)
    only_a = {"landing/S1/a.vcf": storage.stat("landing/S1/a.vcf").etag}
    assert [(r.sample_id, r.keys, r.run_key) for r in again] == [
        ("S1", ("landing/S1/a.vcf",), fingerprint("S1", only_a))]
    assert sorted(cursor.samples) == ["S1"]


def _delete(storage, key):
    if isinstance(storage, LocalStorage):
        (Path(storage.base_dir) / key).unlink()
    else:
        storage._s3().delete_object(Bucket=storage.bucket, Key=key)


def test_a_reupload_of_a_requested_sample_requests_exactly_one_more_run(storage):
    storage.put_bytes(b"first", "landing/S1/a.vcf")
    storage.put_bytes(b"x", "landing/S2/b.vcf")
    first, cursor, now = run_until_quiet(storage, None, start=0, max_keys=1, passes=3)
    storage.put_bytes(b"second version", "landing/S1/a.vcf")
    again, _, _ = run_until_quiet(storage, cursor, start=now, max_keys=1, passes=3)
    assert [r.sample_id for r in first] == ["S1", "S2"] and [r.sample_id for r in again] == ["S1"]
    assert again[0].run_key != first[0].run_key


def test_hundreds_of_bad_keys_are_each_reported_once(storage):
    bad = [f"landing/S1/nested/bad{i:03d}.fq" for i in range(250)]
    for key in bad:
        storage.put_bytes(b"x", key)
    storage.put_bytes(b"ok", "landing/S1/good.vcf")
    reported, cursor, now = [], None, 0
    for _ in range(12):  # four passes of three ticks (the bad keys are one sample's, listed in one go)
        plan, cursor = tick(storage, cursor, now=now, settle=0, max_keys=100)
        reported += plan.skipped
        now += 1
    assert sorted(k for k, _ in reported) == bad and {r for _, r in reported} == {"KEY_LAYOUT"}
    storage.put_bytes(b"changed", bad[0])  # new content under a bad key is reported again, once
    plan, cursor = tick(storage, cursor, now=now, settle=0, max_keys=100)
    assert plan.skipped == [(bad[0], "KEY_LAYOUT")]


def test_the_cursor_stays_small_and_every_sample_runs_once_at_20k_keys(tmp_path):
    """4,000 samples x 5 files on local storage, 5,000 keys a tick: ~15 bytes of cursor per sample."""
    storage = LocalStorage(base_dir=str(tmp_path))
    for s in range(4000):
        folder = tmp_path / "landing" / f"S{s:05d}"
        folder.mkdir(parents=True)
        for f in range(5 if s % 3 else 4):  # 4 or 5 files: tick limits fall inside samples
            (folder / f"f{f}.fq").touch()
    runs, cursor, _ = run_until_quiet(storage, None, start=0, max_keys=5000, passes=2)
    assert len(runs) == 4000 and len({r.sample_id for r in runs}) == 4000
    assert all(len(r.keys) == (5 if int(r.sample_id[1:]) % 3 else 4) for r in runs)
    size = len(cursor.to_json())
    assert size < 4000 * 25, size


def test_a_cursor_written_by_the_previous_sensor_does_not_run_a_sample_twice(storage):
    """The first cursor kept every key; a sample it had requested is not requested again."""
    storage.put_bytes(b"v", "landing/S1/a.vcf")
    files = {"landing/S1/a.vcf": storage.stat("landing/S1/a.vcf").etag}
    old = json.dumps({"samples": {"S1": {"files": files, "changed_at": 0.0, "requested": fingerprint("S1", files),
                                         "sheet": None}}, "resume_after": None, "bad_keys": {}})
    storage.put_bytes(b"w", "landing/S2/b.vcf")
    plan, _ = tick(storage, LandingCursor.from_json(old), now=5, settle=0)
    assert [r.sample_id for r in plan.runs] == ["S2"]
