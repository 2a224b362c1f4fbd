"""`genoflow run` and `genoflow status` on a real sample (ERR5069949, ARTIC SARS-CoV-2 reads, with the
MN908947.3 genome and annotation from ../shared/realdata): the files land, the pipeline runs as a run of the
instance in DAGSTER_HOME carrying the sample and its files' fingerprint, the verdict and report are printed,
and the landing sensor started afterwards does not run the same files again."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from genoflow_dagster.resources.storage import LocalStorage
from genoflow_dagster.sensors.landing import FINGERPRINT_TAG, landing_zone_upload_sensor

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"
GENOFLOW = Path(sys.executable).with_name("genoflow")

pytestmark = pytest.mark.skipif(not REALDATA.is_dir(), reason="../shared/realdata not present")


def test_genoflow_run_lands_runs_and_reports_a_real_sample(tmp_path, monkeypatch):
    for name in ("MN908947.3.fasta", "MN908947.3.gff", "ERR5069949_test_1.fastq.gz", "ERR5069949_test_2.fastq.gz"):
        shutil.copyfile(REALDATA / name, tmp_path / name)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GENOFLOW_", "DAGSTER_"))}
    env.update(DAGSTER_HOME=str(tmp_path / "home"), GENOFLOW_DATA_DIR=str(tmp_path / "data"),
               GENOFLOW_REFERENCE_FASTA=str(tmp_path / "MN908947.3.fasta"),
               GENOFLOW_ANNOTATION=str(tmp_path / "MN908947.3.gff"), GENOFLOW_KNOWN_SITES="off",
               GENOFLOW_CONTAMINANTS="", GENOFLOW_QC_PROFILE="amplicon")
    done = subprocess.run([str(GENOFLOW), "run", "--sample", "ERR5069949", "--json",
                           str(tmp_path / "ERR5069949_test_1.fastq.gz"), str(tmp_path / "ERR5069949_test_2.fastq.gz")],
                          env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert (result["verdict"], result["run_status"]) == ("PASS", "SUCCESS")
    assert result["report"].endswith("reports/ERR5069949/report.html") and Path(result["report"]).is_file()
    for step in ("raw_files", "aligned_reads", "variant_calls", "sample_report"):
        assert f"{step}: done in" in done.stderr, done.stderr

    status = subprocess.run([str(GENOFLOW), "status", "--json"], env=env, capture_output=True, text=True, timeout=120)
    rows = [json.loads(line) for line in status.stdout.splitlines()]
    assert [(r["sample_id"], r["status"], r["run_id"]) for r in rows] == [("ERR5069949", "SUCCESS", result["run_id"])]

    for key, value in env.items():
        if key.startswith(("GENOFLOW_", "DAGSTER_")):
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("GENOFLOW_LANDING_SETTLE_SECONDS", "0")
    with dg.DagsterInstance.get() as instance:
        run = instance.get_run_by_id(result["run_id"])
        assert run.tags["dagster/partition"] == "ERR5069949" and run.tags["genoflow/trigger"] == "cli"
        # launched (no daemon here) from the code location `make dev` serves, as a queued run would be: the UI's
        # timeline lists it and re-executes it without a "different code location" warning
        assert run.remote_job_origin is not None and run.remote_job_origin.location_name == "genoflow"
        context = dg.build_sensor_context(instance=instance,
                                          resources={"storage": LocalStorage(base_dir=str(tmp_path / "data"))})
        tick = landing_zone_upload_sensor(context)
    assert tick.run_requests == [], "the landing sensor does not run files genoflow run already ran"
    assert run.tags[FINGERPRINT_TAG].startswith("ERR5069949:")
