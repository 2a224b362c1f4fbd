"""Quarantine review and release: a file refused under one limit passes under a raised one, on both storages."""

import hashlib
import json

import dagster as dg

from genoflow_dagster import zones
from genoflow_dagster.assets.ingestion import raw_files, validated_files
from genoflow_dagster.cli import main as cli_main
from genoflow_dagster.partitions import SAMPLES_PARTITION_NAME
from genoflow_dagster.quarantine import (
    list_quarantine,
    releasable_samples,
    release_run_key,
    review,
    unread_folder_id,
)
from genoflow_dagster.sensors.quarantine import quarantine_release_sensor

READS = b"".join(b"@r%d\nACGTACGTAC\n+\nIIIIIIIIII\n" % i for i in range(50))  # 1,440 bytes
BROKEN = b"@r1\nACGTACGT\n+\nIII\n"


def _ingest(storage, instance):
    result = dg.materialize([raw_files, validated_files], partition_key="S1", instance=instance,
                            resources={"storage": storage}, raise_on_error=False)
    return json.loads(storage.get_bytes(zones.validation_key("S1")))["files"], result


def test_a_file_refused_under_a_small_limit_is_released_when_the_limit_is_raised(storage, monkeypatch):
    storage.put_bytes(READS, zones.landing_key("S1", "reads.fastq"))
    storage.put_bytes(BROKEN, zones.landing_key("S1", "broken.fastq"))
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(SAMPLES_PARTITION_NAME, ["S1"])
    monkeypatch.setenv("GENOFLOW_MAX_FILE_BYTES", "1000")
    files, _ = _ingest(storage, instance)
    assert {f["path"]: f["reason"] for f in files} == {"reads.fastq": "FILE_TOO_LARGE",
                                                      "broken.fastq": "FASTQ_QUALITY_LENGTH_MISMATCH"}
    by_name = {f["path"]: f for f in files}
    assert by_name["reads.fastq"]["message"] == f"the file is {len(READS):,} bytes; the limit is 1,000"
    assert by_name["reads.fastq"]["error_code"] == "FILE_TOO_LARGE" and by_name["reads.fastq"]["sha256"] is None
    # Refused from its listed size: never copied, neither to raw/ nor to quarantine/; only its reason is written.
    assert [o.key for o in storage.list("raw/")] == [f"raw/S1/{hashlib.sha256(BROKEN).hexdigest()}/broken.fastq"]
    landing = storage.stat(zones.landing_key("S1", "reads.fastq"))
    folder = zones.quarantine_prefix("S1", unread_folder_id(landing.key, landing.etag))
    assert [o.key for o in storage.list(folder)] == [folder + "reason.json"]
    reason = json.loads(storage.get_bytes(folder + "reason.json"))
    assert (reason["original_key"], reason["size_bytes"], reason["etag"], reason["copied"], reason["error_code"]) == (
        "landing/S1/reads.fastq", len(READS), landing.etag, False, "FILE_TOO_LARGE")
    listed = {q.name: q for q in list_quarantine(storage)}
    assert set(listed) == {"reads.fastq", "broken.fastq"}
    assert not listed["reads.fastq"].copied and listed["reads.fastq"].key == "landing/S1/reads.fastq"

    # Same limit: nothing would pass, and the sensor asks for nothing.
    rows = review(storage, max_bytes=1000)
    assert [(r["name"], r["releasable"]) for r in rows] == [("broken.fastq", False), ("reads.fastq", False)]
    assert rows[1]["now_reason"] == "FILE_TOO_LARGE"
    daemon = _Daemon(instance, storage)
    # The sensor never re-validates in its tick: it starts the review job and acts on its stored outcome.
    assert [r.job_name for r in daemon.tick()] == ["quarantine_review"]
    assert _review(storage, instance) == {"releasable": {}, "still_quarantined": 2}
    assert not [r for r in _release_requests(daemon)]

    monkeypatch.setenv("GENOFLOW_MAX_FILE_BYTES", "10000")
    folder_id = folder.rstrip("/").rsplit("/", 1)[-1]
    rows = review(storage, max_bytes=10_000)
    assert releasable_samples(rows) == {"S1": [folder_id]}
    assert _review(storage, instance)["releasable"] == {"S1": [folder_id]}
    requests = _release_requests(daemon)
    assert [(r.partition_key, r.run_key) for r in requests] == [("S1", release_run_key("S1", [folder_id]))]
    assert not _release_requests(daemon), "a review's outcome is acted on once"

    files, _ = _ingest(storage, instance)  # what the requested run does first
    by_name = {f["path"]: f for f in files}
    assert by_name["reads.fastq"]["valid"] and by_name["reads.fastq"]["records"] == 50
    assert not by_name["broken.fastq"]["valid"]
    sha = hashlib.sha256(READS).hexdigest()
    assert storage.get_bytes(f"raw/S1/{sha}/reads.fastq") == READS  # admitted: now copied like any valid file
    release = json.loads(storage.get_bytes(folder + "release.json"))
    assert release["previous_reason"] == "FILE_TOO_LARGE" and release["now_records"] == 50
    # Nothing lost: the reason stays beside the release; the release is recorded once.
    assert storage.exists(folder + "reason.json")
    assert [r["name"] for r in review(storage, max_bytes=10_000)] == ["broken.fastq"]
    assert [r["released"] for r in review(storage, max_bytes=10_000, include_released=True)].count(True) == 1
    assert _review(storage, instance)["releasable"] == {}
    assert not _release_requests(daemon)


def _review(storage, instance) -> dict:
    """Run the quarantine_review job as the sensor's request would; its stored outcome (what the sensor reads)."""
    from genoflow_dagster.jobs import quarantine_review_job
    from genoflow_dagster.quarantine import read_review

    assert quarantine_review_job.execute_in_process(instance=instance, resources={"storage": storage}).success
    outcome = read_review(storage)
    return {"releasable": outcome["releasable"], "still_quarantined": outcome["still_quarantined"]}


class _Daemon:
    """Evaluates the sensor as the daemon does, keeping its cursor between ticks (a direct call does not)."""

    def __init__(self, instance, storage):
        self.instance, self.storage, self.cursor = instance, storage, None

    def tick(self) -> list:
        context = dg.build_sensor_context(instance=self.instance, cursor=self.cursor,
                                          resources={"storage": self.storage})
        result = quarantine_release_sensor(context)
        self.cursor = result.cursor
        return result.run_requests


def _release_requests(daemon: _Daemon) -> list:
    return [r for r in daemon.tick() if r.job_name != "quarantine_review"]


def test_a_refused_file_replaced_in_landing_is_not_released_by_review(tmp_path):
    from genoflow_dagster.resources.storage import LocalStorage

    storage = LocalStorage(base_dir=str(tmp_path / "zones"))
    key = zones.landing_key("S1", "reads.fastq")
    storage.put_bytes(READS, key)
    old = storage.stat(key)
    prefix = zones.quarantine_prefix("S1", unread_folder_id(key, old.etag))
    storage.put_bytes(json.dumps({"reason": "FILE_TOO_LARGE", "original_key": key, "etag": old.etag,
                                  "copied": False, "name": "reads.fastq"}).encode(), prefix + "reason.json")
    assert [r["now_valid"] for r in review(storage, max_bytes=10_000)] == [True]
    storage.put_bytes(READS + READS, key)  # a new version lands: ingested on its own, not "released"
    assert [r["now_reason"] for r in review(storage, max_bytes=10_000)] == ["LANDING_OBJECT_REPLACED"]
    storage.put_bytes(b"", prefix + "ignored")  # not a folder quarantine() writes (a file beside an unread reason)
    assert [r["name"] for r in review(storage, max_bytes=10_000)] == ["ignored"]


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
