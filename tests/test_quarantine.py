"""Quarantine review and release: a file refused under one limit passes under a raised one, on both storages."""

import hashlib
import json

import dagster as dg

from genoflow_dagster import zones
from genoflow_dagster.assets.ingestion import raw_files, validated_files, validation_key
from genoflow_dagster.cli import main as cli_main
from genoflow_dagster.partitions import SAMPLES_PARTITION_NAME
from genoflow_dagster.quarantine import list_quarantine, releasable_samples, release_run_key, review
from genoflow_dagster.sensors.quarantine import quarantine_release_sensor

READS = b"".join(b"@r%d\nACGTACGTAC\n+\nIIIIIIIIII\n" % i for i in range(50))  # 1,350 bytes
BROKEN = b"@r1\nACGTACGT\n+\nIII\n"


def _ingest(storage, instance):
    result = dg.materialize([raw_files, validated_files], partition_key="S1", instance=instance,
                            resources={"storage": storage}, raise_on_error=False)
    return json.loads(storage.get_bytes(validation_key("S1")))["files"], result


def test_a_file_refused_under_a_small_limit_is_released_when_the_limit_is_raised(storage, monkeypatch):
    storage.put_bytes(READS, zones.landing_key("S1", "reads.fastq"))
    storage.put_bytes(BROKEN, zones.landing_key("S1", "broken.fastq"))
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(SAMPLES_PARTITION_NAME, ["S1"])
    monkeypatch.setenv("GENOFLOW_MAX_FILE_BYTES", "1000")
    files, _ = _ingest(storage, instance)
    assert {f["path"]: f["reason"] for f in files} == {"reads.fastq": "FILE_TOO_LARGE",
                                                      "broken.fastq": "FASTQ_QUALITY_LENGTH_MISMATCH"}
    assert len(list(list_quarantine(storage))) == 2

    # Same limit: nothing would pass, and the sensor asks for nothing.
    rows = review(storage, max_bytes=1000)
    assert [r["releasable"] for r in rows] == [False, False]
    context = dg.build_sensor_context(instance=instance, resources={"storage": storage})
    assert not quarantine_release_sensor(context).run_requests

    monkeypatch.setenv("GENOFLOW_MAX_FILE_BYTES", "10000")
    sha = hashlib.sha256(READS).hexdigest()
    rows = review(storage, max_bytes=10_000)
    assert releasable_samples(rows) == {"S1": [sha]}
    requests = quarantine_release_sensor(context).run_requests
    assert [(r.partition_key, r.run_key) for r in requests] == [("S1", release_run_key("S1", [sha]))]

    files, _ = _ingest(storage, instance)  # what the requested run does first
    by_name = {f["path"]: f for f in files}
    assert by_name["reads.fastq"]["valid"] and by_name["reads.fastq"]["records"] == 50
    assert not by_name["broken.fastq"]["valid"]
    release = json.loads(storage.get_bytes(zones.quarantine_prefix("S1", sha) + "release.json"))
    assert release["previous_reason"] == "FILE_TOO_LARGE" and release["now_records"] == 50
    # Nothing lost: the quarantined copy and its reason stay; the release is recorded once.
    assert storage.get_bytes(zones.quarantine_prefix("S1", sha) + "reads.fastq") == READS
    assert storage.exists(zones.quarantine_prefix("S1", sha) + "reason.json")
    assert [r["name"] for r in review(storage, max_bytes=10_000)] == ["broken.fastq"]
    assert [r["released"] for r in review(storage, max_bytes=10_000, include_released=True)].count(True) == 1
    assert not quarantine_release_sensor(context).run_requests


def test_cli_lists_quarantine_and_exits_1_when_a_release_is_due(tmp_path, monkeypatch, capsys):
    from genoflow_dagster.resources.storage import LocalStorage

    storage = LocalStorage(base_dir=str(tmp_path / "zones"))
    monkeypatch.setenv("GENOFLOW_DATA_DIR", str(tmp_path / "zones"))
    monkeypatch.setenv("GENOFLOW_STORAGE", "local")
    storage.put_bytes(READS, zones.landing_key("S1", "reads.fastq"))
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(SAMPLES_PARTITION_NAME, ["S1"])
    monkeypatch.setenv("GENOFLOW_MAX_FILE_BYTES", "1000")
    _ingest(storage, instance)
    assert cli_main(["quarantine", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert (row["name"], row["quarantined_reason"], row["now_valid"]) == ("reads.fastq", "FILE_TOO_LARGE", False)
    monkeypatch.setenv("GENOFLOW_MAX_FILE_BYTES", "10000")
    assert cli_main(["quarantine", "--sample", "S1"]) == 1
    assert "passes now" in capsys.readouterr().out
    assert cli_main(["quarantine", "--sample", "../x"]) == 2
