"""`make dev` processes a dropped sample with no click (issue 13).

`dagster dev` (what `make dev` runs: webserver, daemon and the `genoflow` code location) on a temp
DAGSTER_HOME and data dir, with the lab's reference added (SARS-CoV-2 MN908947.3 and its GFF) and a 2 s
settle period. While it starts, a sample is run the way `genoflow demo` runs its samples (landed, the landing
sensor evaluated in process, its run launched at once from the `genoflow` code location with the sensor's run
key as fingerprint) and a paired sample (ERR5069949, the first 100 read pairs) is copied into
`landing/<sample>/`, and nothing else is done for it. The landing sensor,
running by default, must start that sample's run; the run must succeed and write the report. A third sample
goes through `genoflow run`, queued and started by the daemon. Neither the demo's sample nor `genoflow run`'s
is run again by the sensor, and the runs come from the code location the UI serves (timeline, re-execute).

Data: ../shared/realdata (ENA ERR5069949 via nf-core test data; MN908947.3 via UPHL-BioNGS/Cecret).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pytest

from genoflow_dagster import zones
from genoflow_dagster.definitions import storage_from_env
from genoflow_dagster.demo.run import land_and_launch_samples
from genoflow_dagster.jobs import SAMPLE_PIPELINE_JOB
from genoflow_dagster.launch import follow, run_id_of
from genoflow_dagster.partitions import SAMPLES_PARTITION_NAME
from genoflow_dagster.references import add_reference
from genoflow_dagster.sensors.landing import FINGERPRINT_TAG
from tests.makefile import recipe_command
from tests.test_readme import commands, named_blocks

REPO = Path(__file__).resolve().parents[1]
REALDATA = REPO.parent / "shared" / "realdata"
BIN = Path(sys.executable).parent
READS = ("ERR5069949_test_1.fastq.gz", "ERR5069949_test_2.fastq.gz")
DROPPED = "S2"  # the README's landing-drop block copies S2_R1/S2_R2.fastq.gz into data/landing/S2/
EARLIER, QUEUED = "EARLIER_1", "QUEUED_1"
RUN_TIMEOUT = 150  # the sensor ticks every 30 s; the run itself takes 10-30 s on two shared cores

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(not REALDATA.is_dir(), reason="../shared/realdata not present"),
]


@pytest.fixture
def lab(tmp_path, monkeypatch) -> dict[str, str]:
    """A lab's environment: an empty instance, the SARS-CoV-2 reference added and selected, amplicon QC."""
    for key in list(os.environ):
        if key.startswith(("GENOFLOW_", "DAGSTER_")):
            monkeypatch.delenv(key)
    home = tmp_path / "home"
    home.mkdir()
    shutil.copyfile(REPO / "dagster.yaml", home / "dagster.yaml")
    env = {"DAGSTER_HOME": str(home), "GENOFLOW_DATA_DIR": str(tmp_path / "data"), "GENOFLOW_STORAGE": "local",
           "GENOFLOW_REFERENCE": "sarscov2", "GENOFLOW_QC_PROFILE": "amplicon",
           "GENOFLOW_AI_PROVIDER": "offline", "GENOFLOW_LANDING_SETTLE_SECONDS": "2"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    add_reference(REALDATA / "MN908947.3.fasta", name="sarscov2", annotation=REALDATA / "MN908947.3.gff")
    return env


def test_a_sample_dropped_into_landing_runs_under_make_dev_without_a_click(lab, tmp_path):
    storage = storage_from_env()
    with dg.DagsterInstance.get() as instance:
        log = tmp_path / "dagster_dev.log"
        started = time.monotonic()
        dev = subprocess.Popen(make_dev_command(_free_port()), cwd=REPO, env={**os.environ, **lab},
                               stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
        try:
            # What `make demo` leaves: a landed sample and its finished run (done here while the server starts:
            # the daemon's first tick comes after it).
            earlier_run = _run_as_the_demo_does(instance, storage, EARLIER, tmp_path / EARLIER)
            # The lab's only action, with `make dev` up: the README's mkdir and cp into data/landing/S2/, in the
            # folder whose data/ is GENOFLOW_DATA_DIR. The sensor's first tick sees the files, its next one (30 s
            # later) starts the run.
            _drop_as_the_readme_says(tmp_path)
            _wait_for(lambda: "SENSOR" in instance.get_daemon_heartbeats(), 90, "the daemon to start", dev, log)
            # Meanwhile a sample through `genoflow run`: with the daemon up it is queued and started by it.
            cli = subprocess.run([str(BIN / "genoflow"), "run", "--sample", QUEUED, "--json",
                                  *(str(REALDATA / name) for name in READS)],
                                 env={**os.environ, **lab}, capture_output=True, text=True, timeout=RUN_TIMEOUT,
                                 cwd=tmp_path)
            dropped = _wait_for(lambda: _last_run(instance, DROPPED), RUN_TIMEOUT, "the sensor to start the run",
                                dev, log)
            finished = _wait_for(lambda: _finished(instance, dropped.run_id), RUN_TIMEOUT, "the run to finish",
                                 dev, log)
            print(f"dagster dev start to the dropped sample's run finished: {time.monotonic() - started:.0f} s")
        finally:
            _stop(dev)

        assert finished.status == dg.DagsterRunStatus.SUCCESS, _tail(log)
        assert finished.tags["genoflow/trigger"] == "landing"
        assert finished.tags["dagster/sensor_name"] == "landing_zone_upload_sensor"
        assert finished.tags[FINGERPRINT_TAG].startswith(f"{DROPPED}:")
        assert storage.exists(zones.report_key(DROPPED, "report.html"))
        assert DROPPED in instance.get_dynamic_partitions(SAMPLES_PARTITION_NAME)

        assert cli.returncode == 0, cli.stdout + cli.stderr + _tail(log)
        result = json.loads(cli.stdout.splitlines()[-1])
        assert (result["verdict"], result["run_status"]) == ("PASS", "SUCCESS")
        assert "queued" in cli.stderr and Path(result["report"]).is_file()

        # The runs come from the code location `make dev` serves (the demo's too): the UI's timeline shows them
        # and Re-execute loads the same job.
        assert instance.get_run_by_id(earlier_run).tags["genoflow/trigger"] == "demo"
        for run_id in (finished.run_id, result["run_id"], earlier_run):
            origin = instance.get_run_by_id(run_id).remote_job_origin
            assert origin is not None and origin.location_name == "genoflow"

        # Files a run already analysed are not run again by the sensor: neither the demo's nor genoflow run's.
        for sample, run_id in ((EARLIER, earlier_run), (QUEUED, result["run_id"])):
            runs = instance.get_runs(dg.RunsFilter(tags={"dagster/partition": sample}))
            assert [r.run_id for r in runs] == [run_id], f"the landing sensor ran {sample} again"


def make_dev_command(port: int) -> list[str]:
    """The command the Makefile's `dev` target runs (after install and seeding DAGSTER_HOME), on `port`."""
    return recipe_command("dev", "dagster dev", "-p", "3000", port)


def _drop_as_the_readme_says(folder: Path) -> None:
    """Run the README's landing-drop lines (all but `make dev`, which is running) in `folder`, which holds the
    pair under the names the README uses."""
    for name in READS:
        shutil.copyfile(REALDATA / name, folder / name.replace("ERR5069949_test_", "S2_R"))
    [block] = named_blocks("landing-drop")
    lines = [line for line in commands(block) if line != "make dev"]
    assert len(lines) == 2, lines
    subprocess.run(["bash", "-c", "\n".join(["set -e", *lines])], cwd=folder, check=True, timeout=30)
    assert Path(os.environ["GENOFLOW_DATA_DIR"]) == folder / "data"


def _run_as_the_demo_does(instance: dg.DagsterInstance, storage, sample: str, folder: Path) -> str:
    """Land `sample` and run it the way `genoflow demo` does (`land_and_launch_samples`): the landing sensor
    evaluated in this process (no settle wait, as in the demo's process), its partition added, the requested run
    launched from the `genoflow` code location (queued if the daemon is up already, else at once)."""
    folder.mkdir()
    paths = []
    for name in READS:
        paths.append(folder / name.replace("ERR5069949_test", sample))
        shutil.copyfile(REALDATA / name, paths[-1])
    previous = os.environ["GENOFLOW_LANDING_SETTLE_SECONDS"]
    os.environ["GENOFLOW_LANDING_SETTLE_SECONDS"] = "0"
    try:
        [launched] = land_and_launch_samples(instance, storage, {sample: paths}, folder / "logs").values()
    finally:
        os.environ["GENOFLOW_LANDING_SETTLE_SECONDS"] = previous
    run_id = run_id_of(instance, launched)
    followed = follow(instance, run_id, print, timeout=RUN_TIMEOUT)
    if launched.process is not None:
        launched.process.wait(timeout=60)
    assert followed.status == "SUCCESS", launched.log_path.read_text()[-3000:] if launched.log_path else ""
    return run_id


def _last_run(instance: dg.DagsterInstance, sample: str) -> dg.DagsterRun | None:
    runs = instance.get_runs(dg.RunsFilter(job_name=SAMPLE_PIPELINE_JOB, tags={"dagster/partition": sample}),
                             limit=1)
    return runs[0] if runs else None


def _finished(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRun | None:
    run = instance.get_run_by_id(run_id)
    return run if run is not None and run.is_finished else None


def _wait_for(condition: Callable, timeout: float, what: str, process: subprocess.Popen, log: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if process.poll() is not None:
            raise AssertionError(f"dagster dev exited ({process.returncode}) while waiting for {what}:\n{_tail(log)}")
        time.sleep(0.5)
    raise TimeoutError(f"waited {timeout:.0f} s for {what}:\n{_tail(log)}")


def _stop(process: subprocess.Popen) -> None:
    """Stop dagster dev and everything it started (webserver, daemon, code server: its process group)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=30)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # whatever of the group outlived dagster dev itself
    process.wait()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""
