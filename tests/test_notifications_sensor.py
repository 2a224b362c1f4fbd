"""Failed gates reach a loopback webhook, on the default SQLite instance and on Postgres (issue 12).

A partitioned asset with a failing check (as GenoFlow's gates are) is materialized for two samples on a
real instance; the sensor, evaluated as the daemon does (same instance, the code location's definitions),
posts one message per failed gate, names the sample and the gate's problems, and never posts twice.
"""

import socket
import uuid

import dagster as dg
import pytest

from genoflow_dagster.resources.notifier import WebhookNotifier
from genoflow_dagster.sensors.notifications import failed_check_notification_sensor
from tests.webhook_server import Webhook as _Hook

SAMPLES = dg.DynamicPartitionsDefinition(name="samples_under_test")


@dg.asset(partitions_def=SAMPLES, check_specs=[dg.AssetCheckSpec("gate_under_test", asset="gated", blocking=True)])
def gated(context: dg.AssetExecutionContext):
    failing = context.partition_key == "BAD"
    yield dg.MaterializeResult()
    yield dg.AssetCheckResult(check_name="gate_under_test", passed=not failing,
                              metadata={"problems": "- Q30 62.0% is under the 80% floor" if failing else "none"})


def _deliver(instance: dg.DagsterInstance, hook: _Hook, cursor: str | None) -> str | None:
    defs = dg.Definitions(assets=[gated], sensors=[failed_check_notification_sensor],
                          resources={"notifier": WebhookNotifier(webhook_urls=[hook.url])})
    context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs,
                                      resources={"notifier": WebhookNotifier(webhook_urls=[hook.url])})
    failed_check_notification_sensor(context)
    return context.cursor


def _exercise(instance: dg.DagsterInstance) -> None:
    instance.add_dynamic_partitions(SAMPLES.name, ["GOOD", "BAD"])
    hook = _Hook()
    try:
        for sample in ("GOOD", "BAD"):
            dg.materialize([gated], instance=instance, partition_key=sample, raise_on_error=False)
        cursor = _deliver(instance, hook, None)
        assert [b["sample_id"] for b in hook.bodies] == ["BAD"]
        body = hook.bodies[0]
        assert body["check"] == "gate_under_test" and body["asset"] == "gated" and body["severity"] == "ERROR"
        assert "for sample BAD" in body["text"] and "Q30 62.0% is under the 80% floor" in body["text"]
        cursor = _deliver(instance, hook, cursor)
        assert len(hook.bodies) == 1, "a failure is posted once"
        dg.materialize([gated], instance=instance, partition_key="BAD", raise_on_error=False)
        _deliver(instance, hook, cursor)
        assert len(hook.bodies) == 2, "a new failure of the same gate is posted again"
    finally:
        hook.close()


def test_failed_gates_reach_the_webhook_on_the_default_sqlite_instance(tmp_path):
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        _exercise(instance)


def test_failed_gates_reach_the_webhook_on_postgres(tmp_path):
    psycopg2 = pytest.importorskip("psycopg2")
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=1).close()
        admin = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
    except (OSError, psycopg2.OperationalError) as exc:
        pytest.skip(f"no PostgreSQL on 127.0.0.1:5432: {exc}")
    admin.autocommit = True
    db = f"genoflow_notify_{uuid.uuid4().hex[:10]}"
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{db}"')
    url = f"postgresql+psycopg2://postgres@127.0.0.1:5432/{db}"
    overrides = {"storage": {"postgres": {"postgres_url": url}}}
    try:
        with dg.instance_for_test(temp_dir=str(tmp_path), overrides=overrides) as instance:
            assert "Postgres" in type(instance.event_log_storage).__name__
            _exercise(instance)
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        admin.close()
