"""The landing sensor, one test per cursor scenario, on both storages (local and S3 over HTTP)."""

import dagster as dg
import pytest

from genoflow_dagster.sensors.landing import LandingCursor, landing_zone_upload_sensor, plan_landing_tick

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
    assert cursor.samples["S9"].requested == result.run_requests[0].run_key


SHEET = b"sample,fastq_1,fastq_2\nS1,x_R1.fq,x_R2.fq\n"


def test_a_satisfied_samplesheet_row_starts_the_run_without_waiting(storage):
    storage.put_bytes(SHEET, "landing/S1/samplesheet.csv")
    storage.put_bytes(b"@r\nA\n+\nI\n", "landing/S1/x_R1.fq")
    plan, cursor = tick(storage, None, now=0)
    assert plan.runs == []  # x_R2.fq is named but has not landed: the settle period is in charge
    storage.put_bytes(b"@r\nA\n+\nI\n", "landing/S1/x_R2.fq")
    plan, cursor = tick(storage, cursor, now=1)
    assert [(r.sample_id, len(r.keys)) for r in plan.runs] == [("S1", 3)]
    assert cursor.samples["S1"].sheet["needs"] == ["x_R1.fq", "x_R2.fq"]


def test_an_invalid_or_silent_samplesheet_leaves_the_settle_period_in_charge(storage):
    storage.put_bytes(b"sample,fastq_1\nS2,x_R1.fq\n", "landing/S1/samplesheet.csv")  # no row for S1
    storage.put_bytes(b"@r\nA\n+\nI\n", "landing/S1/x_R1.fq")
    plan, cursor = tick(storage, None, now=0)
    assert plan.runs == [] and cursor.samples["S1"].sheet["needs"] is None
    plan, _ = tick(storage, cursor, now=SETTLE)
    assert [r.sample_id for r in plan.runs] == ["S1"]
