"""The production instance (dagster-postgres, deploy/postgres/dagster.yaml) runs the ingestion gate.

Uses the machine's PostgreSQL on 127.0.0.1:5432 with a throwaway database; skips
cleanly where no server can be reached.
"""

import shutil
import socket
import uuid
from pathlib import Path

import dagster as dg
import pytest

from genoflow_dagster import zones
from genoflow_dagster.assets.ingestion import raw_files, validated_files
from genoflow_dagster.partitions import SAMPLES_PARTITION_NAME
from genoflow_dagster.resources.storage import LocalStorage

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"


def _reachable() -> bool:
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def postgres_home(tmp_path, monkeypatch):
    if not _reachable():
        pytest.skip("no PostgreSQL on 127.0.0.1:5432")
    psycopg2 = pytest.importorskip("psycopg2")
    db = f"genoflow_test_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres")
    except psycopg2.OperationalError as exc:
        pytest.skip(f"PostgreSQL refused the connection: {exc}")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{db}"')
    home = tmp_path / "home"
    home.mkdir()
    shutil.copyfile(REPO / "deploy" / "postgres" / "dagster.yaml", home / "dagster.yaml")
    for key, value in {"DAGSTER_HOME": str(home), "DAGSTER_PG_HOST": PG_HOST, "DAGSTER_PG_PORT": str(PG_PORT),
                       "DAGSTER_PG_USER": PG_USER, "DAGSTER_PG_PASSWORD": "", "DAGSTER_PG_DB": db}.items():
        monkeypatch.setenv(key, value)
    yield home
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    admin.close()


def test_ingestion_runs_and_is_recorded_on_postgres(postgres_home, tmp_path):
    storage = LocalStorage(base_dir=str(tmp_path / "data"))
    storage.put_bytes(b"@r1\nACGT\n+\nIIII\n", zones.landing_key("PG_SAMPLE", "reads.fastq"))
    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        instance.add_dynamic_partitions(SAMPLES_PARTITION_NAME, ["PG_SAMPLE"])
        result = dg.materialize(
            [raw_files, validated_files], partition_key="PG_SAMPLE", instance=instance,
            resources={"storage": storage},
        )
        assert result.success
        assert instance.get_run_by_id(result.run_id) is not None
        assert instance.get_dynamic_partitions(SAMPLES_PARTITION_NAME) == ["PG_SAMPLE"]
        checks = [e for e in result.get_asset_check_evaluations() if e.check_name == "validated_files_usable"]
        assert checks and checks[0].passed
