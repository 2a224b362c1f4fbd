"""The production instance (dagster-postgres, deploy/postgres/dagster.yaml): it runs the ingestion gate, and
`genoflow demo --fresh` neither empties it nor silently swaps it for SQLite.

Uses the machine's PostgreSQL on 127.0.0.1:5432 with a throwaway database; skips
cleanly where no server can be reached.
"""

import contextlib
import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from genoflow_dagster import zones
from genoflow_dagster.assets.ingestion import raw_files, validated_files
from genoflow_dagster.demo.run import prepare_environment, run_demo
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


@contextlib.contextmanager
def throwaway_database() -> Iterator[dict[str, str]]:
    """A new, empty database on the machine's PostgreSQL; yields the DAGSTER_PG_* settings that reach it.

    Skips the test where no server can be reached; drops the database (and its connections) afterwards.
    """
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
    try:
        yield {"DAGSTER_PG_HOST": PG_HOST, "DAGSTER_PG_PORT": str(PG_PORT), "DAGSTER_PG_USER": PG_USER,
               "DAGSTER_PG_PASSWORD": "", "DAGSTER_PG_DB": db}
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        admin.close()


def seed_postgres_home(home: Path, settings: dict[str, str], monkeypatch) -> Path:
    """DAGSTER_HOME seeded with deploy/postgres/dagster.yaml, as the README's steps do, pointing at `settings`."""
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(REPO / "deploy" / "postgres" / "dagster.yaml", home / "dagster.yaml")
    for key, value in {"DAGSTER_HOME": str(home), **settings}.items():
        monkeypatch.setenv(key, value)
    return home


@pytest.fixture
def postgres_home(tmp_path, monkeypatch):
    with throwaway_database() as settings:
        yield seed_postgres_home(tmp_path / "home", settings, monkeypatch)


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


def test_demo_fresh_refuses_to_empty_a_postgres_instance_and_deletes_nothing(postgres_home, tmp_path,
                                                                              monkeypatch, capsys):
    """A database may hold more than the demo's runs: --fresh says what to do instead of wiping it, and
    it does not swap the instance for SQLite (it used to delete DAGSTER_HOME and copy the SQLite yaml)."""
    data = tmp_path / "data"
    (data / "landing").mkdir(parents=True)
    (data / "landing" / "kept.txt").write_text("lab data")
    monkeypatch.setenv("GENOFLOW_DATA_DIR", str(data))
    configured = (postgres_home / "dagster.yaml").read_text()
    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions(SAMPLES_PARTITION_NAME, ["EARLIER_SAMPLE"])

    assert run_demo(fresh=True) == 2

    message = capsys.readouterr().err
    assert "keeps the Dagster instance in PostgreSQL" in message and "Nothing was deleted" in message
    assert f"dropdb -h {PG_HOST} -p {PG_PORT} -U {PG_USER} --force " in message
    assert "genoflow demo" in message and "Traceback" not in message
    assert (postgres_home / "dagster.yaml").read_text() == configured
    assert (data / "landing" / "kept.txt").read_text() == "lab data"
    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert instance.get_dynamic_partitions(SAMPLES_PARTITION_NAME) == ["EARLIER_SAMPLE"]


def test_demo_fresh_empties_the_sqlite_instance_but_keeps_its_dagster_yaml(tmp_path, monkeypatch):
    home, data = tmp_path / "home", tmp_path / "data"
    home.mkdir()
    configured = (REPO / "dagster.yaml").read_text() + "\n# this lab's own settings\n"
    (home / "dagster.yaml").write_text(configured)
    (data / "processed").mkdir(parents=True)
    (data / "processed" / "old.bam").write_bytes(b"old")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("GENOFLOW_DATA_DIR", str(data))
    monkeypatch.setenv("GENOFLOW_LANDING_SETTLE_SECONDS", "0")  # prepare_environment sets it; restore after
    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions(SAMPLES_PARTITION_NAME, ["OLD"])
    assert (home / "history").is_dir() and (home / "schedules").is_dir()

    assert prepare_environment(fresh=True) == (home, data)

    assert (home / "dagster.yaml").read_text() == configured
    assert sorted(p.name for p in home.iterdir()) == ["dagster.yaml"]
    assert list(data.iterdir()) == []
    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"
        assert instance.get_dynamic_partitions(SAMPLES_PARTITION_NAME) == []
