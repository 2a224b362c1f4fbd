"""`genoflow run` and `genoflow status`: a lab's files to a report through the instance, from a terminal.

`genoflow run --sample ID FILE...` lands the files under `landing/<ID>/`, adds
the sample's partition and launches `sample_pipeline` for it as an ordinary run
of the instance in DAGSTER_HOME, from the code location `make dev` serves
(`genoflow`): through the run queue when a `dagster-daemon` is running (`make
dev`), else at once through the same instance with Dagster's default run
coordinator (`direct_launch_home`). Either way the run shows in the UI's
timeline like any other and re-executes from it.
Either way the run carries the sample, the trigger and the fingerprint of its
files (`genoflow/fingerprint`, the landing sensor's run key: the sensor does
not run the same files again). The command follows the run step by step and
prints its verdict and the report's location.

`genoflow demo` launches its runs through the same functions (`launch_job`,
`launch_sample`), tagged `genoflow/trigger=demo`, with one `code_server` for its
five launches.

`genoflow status [ID]` prints each sample's last run, its gates and its report.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_DAGSTER_YAML = Path(__file__).resolve().parents[1] / "dagster.yaml"
DAEMON_FRESH_SECONDS = 120.0  # a daemon whose last heartbeat is older is taken for stopped
REQUEST_TAG = "genoflow/request"
DEFINITIONS_MODULE = "genoflow_dagster.definitions"
# The code location's name in `make dev` (pyproject's [tool.dagster] code_location_name, workspace.yaml). A queued
# run names the location it came from, and the daemon launches it only from a location of that name.
CODE_LOCATION = "genoflow"


def ensure_home() -> Path:
    """DAGSTER_HOME, by default ./.dagster_home (as `make demo` and `make dev` use), seeded with dagster.yaml."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(Path(".dagster_home").resolve())))
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists() and REPO_DAGSTER_YAML.is_file():
        (home / "dagster.yaml").write_bytes(REPO_DAGSTER_YAML.read_bytes())
    return home


def daemon_running(instance: Any, now: float | None = None) -> bool:
    """Whether a dagster-daemon heartbeat is recent: queued runs then start on their own."""
    now = time.time() if now is None else now
    beats = instance.get_daemon_heartbeats()
    return any(now - beat.timestamp < DAEMON_FRESH_SECONDS for beat in beats.values())


SAMPLE_TAG = "genoflow/sample"
TRIGGER_TAG = "genoflow/trigger"


@dataclass
class Launched:
    job_name: str
    run_id: str | None
    queued: bool  # True: submitted to the run queue (a daemon starts it); False: executed by a child process
    request: str  # the run's `genoflow/request` tag, unique to this launch
    tags: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen | None = None
    log_path: Path | None = None

    @property
    def sample_id(self) -> str | None:
        return self.tags.get(SAMPLE_TAG)

    @property
    def fingerprint(self) -> str | None:
        from genoflow_dagster.sensors.landing import FINGERPRINT_TAG

        return self.tags.get(FINGERPRINT_TAG)


def files_fingerprint(storage: Any, sample_id: str) -> str:
    """The landing sensor's run key for what is under landing/<sample>/ now."""
    from genoflow_dagster import zones
    from genoflow_dagster.sensors.landing import fingerprint

    return fingerprint(sample_id, {o.key: o.etag for o in storage.list(zones.landing_prefix(sample_id))})


def launch_sample(instance: Any, storage: Any, sample_id: str, *, log_dir: Path, source: str = "cli",
                  fingerprint: str | None = None, run_config: dict[str, Any] | None = None,
                  workspace: Path | None = None) -> Launched:
    """Add the partition and start the sample's pipeline run (queued, or in a process of its own).

    The run is tagged with the sample, the trigger (`source`) and the fingerprint of its landed files:
    `fingerprint` when the caller has it (the landing sensor's run key), else worked out from the files now
    under landing/<sample>/.
    """
    from genoflow_dagster.instance_health import free_slots_of_dead_runs, this_host_tags
    from genoflow_dagster.jobs import SAMPLE_PIPELINE_JOB
    from genoflow_dagster.partitions import SAMPLES_PARTITION_NAME
    from genoflow_dagster.sensors.landing import FINGERPRINT_TAG

    if not instance.has_dynamic_partition(SAMPLES_PARTITION_NAME, sample_id):
        instance.add_dynamic_partitions(SAMPLES_PARTITION_NAME, [sample_id])
    for freed in free_slots_of_dead_runs(instance):
        _stderr(f"freed the pool slots of {freed.describe()}")
    tags = {"dagster/partition": sample_id, TRIGGER_TAG: source, SAMPLE_TAG: sample_id,
            FINGERPRINT_TAG: fingerprint or files_fingerprint(storage, sample_id), **this_host_tags()}
    return launch_job(instance, SAMPLE_PIPELINE_JOB, tags=tags, log_dir=log_dir, log_name=sample_id,
                      run_config=run_config, workspace=workspace)


def launch_job(instance: Any, job_name: str, *, tags: dict[str, str], log_dir: Path, log_name: str | None = None,
               run_config: dict[str, Any] | None = None, workspace: Path | None = None) -> Launched:
    """Launch a run of `job_name` from the `genoflow` code location as an ordinary run of the instance: queued
    when a dagster-daemon is running, else at once in a `dagster job launch` process of its own (see
    `direct_launch_home`). The run carries `tags` and a `genoflow/request` tag of its own, and `run_config`
    when given. The child's output goes to `<log_dir>/<log_name>-<request>.log`. `workspace` is the one of a
    running `code_server`; without it the launch loads the code location in a code server of its own."""
    request = uuid.uuid4().hex
    tags = {**tags, REQUEST_TAG: request}
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{log_name or job_name}-{request[:8]}.log"
    workspace = workspace or _workspace_file(log_dir)
    command = [_dagster(), "job", "launch", "-w", str(workspace), "-j", job_name, "--tags", json.dumps(tags)]
    if run_config:
        command += ["--config-json", json.dumps(run_config)]
    if daemon_running(instance):
        run_id = str(uuid.uuid4())
        with open(log_path, "wb") as log:
            done = subprocess.run([*command, "--run-id", run_id], stdout=log, stderr=subprocess.STDOUT, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"dagster job launch failed (exit {done.returncode}); see {log_path}")
        return Launched(job_name, run_id, True, request, tags, log_path=log_path)
    # No daemon to take the run off the queue: launch it at once, still from the `genoflow` code location, through
    # an instance that differs from DAGSTER_HOME's only in its run coordinator (`direct_launch_home`). The run is
    # then an ordinary run of the instance (timeline, code location, re-execution from the UI); `dagster job
    # launch` keeps its code server, and so this process, alive until the run has finished (with a `code_server`
    # it returns once the run has started in a worker of that server).
    env = {**os.environ, "DAGSTER_HOME": str(direct_launch_home(Path(instance.root_directory)))}
    log = open(log_path, "wb")  # noqa: SIM115 - the child writes it for as long as it runs
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    log.close()
    return Launched(job_name, None, False, request, tags, process=process, log_path=log_path)


DIRECT_LAUNCH_FOLDER = ".genoflow-direct-launch"


def direct_launch_home(home: Path) -> Path:
    """A DAGSTER_HOME for launching runs at once when no daemon is running: the instance of `home` (its
    dagster.yaml, with every storage pinned to `home` where that file leaves it to the default) with Dagster's
    DefaultRunCoordinator in place of the run queue. Runs launched through it are stored in `home`'s instance,
    from the same code location, exactly as queued ones; only the queue (and its concurrency limit) is skipped."""
    import yaml

    config_file = home / "dagster.yaml"
    config: dict[str, Any] = (yaml.safe_load(config_file.read_text()) or {}) if config_file.is_file() else {}
    config["run_coordinator"] = {"module": "dagster.core.run_coordinator", "class": "DefaultRunCoordinator"}
    split_storage = any(key in config for key in ("run_storage", "event_log_storage", "schedule_storage"))
    if "storage" not in config and not split_storage:
        config["storage"] = {"sqlite": {"base_dir": str(home)}}
    config.setdefault("local_artifact_storage", {"module": "dagster._core.storage.root",
                                                 "class": "LocalArtifactStorage",
                                                 "config": {"base_dir": str(home)}})
    config.setdefault("compute_logs", {"module": "dagster._core.storage.local_compute_log_manager",
                                       "class": "LocalComputeLogManager",
                                       "config": {"base_dir": str(home / "storage")}})
    folder = home / DIRECT_LAUNCH_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    text = ("# Written by genoflow (launch.direct_launch_home): the instance in the folder above, with runs\n"
            "# launched at once instead of queued. Rewritten at every launch; edit ../dagster.yaml instead.\n"
            + yaml.safe_dump(config, sort_keys=False))
    target = folder / "dagster.yaml"
    if not target.is_file() or target.read_text() != text:
        partial = folder / f".dagster.yaml.{os.getpid()}"
        partial.write_text(text)
        os.replace(partial, target)
    return folder


def _dagster() -> str:
    return str(Path(sys.executable).with_name("dagster"))


@contextlib.contextmanager
def code_server(log_dir: Path, *, timeout: float = 180.0) -> Iterator[Path]:
    """A code server of the `genoflow` location for several launches (the demo's five runs); yields a workspace
    file naming it, for `launch_job`. Each `dagster job launch` then connects to this server instead of loading
    the definitions in a code server of its own, and returns as soon as its run has started: the runs execute
    in worker processes of this server. The server is stopped when the block ends, so the block waits for
    its runs to finish first. The server runs with this process's environment."""
    folder = Path(tempfile.mkdtemp(prefix="genoflow-code-server-"))  # short: a socket path has ~100 bytes at most
    socket_path = folder / "grpc.sock"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"code-server-{os.getpid()}.log"
    log = open(log_path, "wb")  # noqa: SIM115 - the server writes it for as long as it runs
    server = subprocess.Popen([_dagster(), "api", "grpc", "-m", DEFINITIONS_MODULE, "--location-name", CODE_LOCATION,
                               "--socket", str(socket_path)], stdout=log, stderr=subprocess.STDOUT)
    log.close()
    try:
        deadline = time.monotonic() + timeout
        while not socket_path.exists():  # the server binds its socket once the definitions have loaded
            if server.poll() is not None:
                raise RuntimeError(f"the code server stopped (exit {server.returncode}); see {log_path}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the code server did not start within {timeout:.0f} s; see {log_path}")
            time.sleep(0.2)
        workspace = folder / "workspace.yaml"
        workspace.write_text(f"load_from:\n  - grpc_server:\n      socket: {socket_path}\n"
                             f"      location_name: {CODE_LOCATION}\n")
        yield workspace
    finally:
        # The runs it started have ended by now (or the caller is giving up on them); its graceful stop takes
        # seconds for nothing to save, so it gets a moment and is then killed.
        server.terminate()
        try:
            server.wait(timeout=2)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        shutil.rmtree(folder, ignore_errors=True)


def _workspace_file(folder: Path) -> Path:
    """A workspace naming the code location as `make dev` does. `dagster job launch -m MODULE` would name it
    after the module, and the daemon would refuse the run: "Location genoflow_dagster.definitions does not
    exist in workspace"."""
    path = folder / "workspace.yaml"
    text = (f"load_from:\n  - python_module:\n      module_name: {DEFINITIONS_MODULE}\n"
            f"      location_name: {CODE_LOCATION}\n")
    if not path.is_file() or path.read_text() != text:
        partial = path.with_name(f".{path.name}.{os.getpid()}")
        partial.write_text(text)
        os.replace(partial, path)
    return path


def run_id_of(instance: Any, launched: Launched, timeout: float = 120.0) -> str:
    """The run id of a launch (an executing child names its run only once it has created it)."""
    import dagster as dg

    if launched.run_id is not None:
        return launched.run_id
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = instance.get_run_ids(dg.RunsFilter(tags={REQUEST_TAG: launched.request}), limit=1)
        if runs:
            launched.run_id = runs[0]
            return runs[0]
        if launched.process is not None and launched.process.poll() is not None:
            # (a launch through a `code_server` ends once its run has started: look once more)
            runs = instance.get_run_ids(dg.RunsFilter(tags={REQUEST_TAG: launched.request}), limit=1)
            if runs:
                launched.run_id = runs[0]
                return runs[0]
            raise RuntimeError(f"the run process ended before creating its run; see {launched.log_path}")
        time.sleep(0.5)
    raise TimeoutError(f"the run was not created within {timeout:.0f} s; see {launched.log_path}")


@dataclass
class Followed:
    status: str
    steps: list[str] = field(default_factory=list)
    failed_checks: list[str] = field(default_factory=list)


def follow(instance: Any, run_id: str, say: Callable[[str], None], *, timeout: float | None = None,
           poll_seconds: float = 1.0) -> Followed:
    """Print a line per step and per failed check as the run goes; return when the run has finished."""
    return follow_runs(instance, {"": run_id}, say, timeout=timeout, poll_seconds=poll_seconds)[""]


def follow_runs(instance: Any, runs: Mapping[str, str], say: Callable[[str], None], *, timeout: float | None = None,
                poll_seconds: float = 1.0) -> dict[str, Followed]:
    """`follow` for runs going at the same time: `runs` maps a label (a sample) to a run id, and each line is
    prefixed with its run's label. Returns when every run has finished (or the timeout has passed), each
    run's outcome under its label."""
    followers = {label: _RunFollower(run_id, say, f"[{label}] " if label else "") for label, run_id in runs.items()}
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        pending = [follower for follower in followers.values() if not follower.done]
        for follower in pending:
            follower.poll(instance)
        if all(follower.done for follower in followers.values()):
            break
        if deadline is not None and time.monotonic() > deadline:
            for follower in followers.values():
                if not follower.done:
                    run = instance.get_run_by_id(follower.run_id)
                    follower.outcome.status = run.status.value if run else "NOT_CREATED"
            break
        time.sleep(poll_seconds)
    return {label: follower.outcome for label, follower in followers.items()}


class _RunFollower:
    """Reads one run's new events at each `poll` and says the steps and failed checks among them."""

    def __init__(self, run_id: str, say: Callable[[str], None], prefix: str = "") -> None:
        self.run_id = run_id
        self.say = say
        self.prefix = prefix
        self.cursor: str | None = None
        self.started: dict[str, float] = {}
        self.outcome = Followed(status="QUEUED")
        self.done = False

    def poll(self, instance: Any) -> None:
        import dagster as dg

        wanted = {dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS,
                  dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.STEP_SKIPPED,
                  dg.DagsterEventType.ASSET_CHECK_EVALUATION}
        while True:
            # The run is read before its events: once it is seen finished, every event it wrote is in the pages.
            run = instance.get_run_by_id(self.run_id)
            page = instance.get_records_for_run(self.run_id, cursor=self.cursor)
            self.cursor = page.cursor
            for record in page.records:
                entry = record.event_log_entry
                event = entry.dagster_event
                if event is not None and event.event_type in wanted:
                    self._say_event(dg, event, entry.timestamp)
            if not page.has_more:
                break
        if run is not None and run.is_finished:
            self.outcome.status = run.status.value
            self.done = True

    def _say_event(self, dg: Any, event: Any, timestamp: float) -> None:
        say, prefix = self.say, self.prefix
        step = event.step_key or ""
        if event.event_type == dg.DagsterEventType.STEP_START:
            self.started[step] = timestamp
            say(f"  {prefix}{step}: started")
        elif event.event_type == dg.DagsterEventType.STEP_SUCCESS:
            say(f"  {prefix}{step}: done in {timestamp - self.started.get(step, timestamp):.1f} s")
            self.outcome.steps.append(step)
        elif event.event_type == dg.DagsterEventType.STEP_FAILURE:
            say(f"  {prefix}{step}: FAILED ({_first_line(event.event_specific_data)})")
        elif event.event_type == dg.DagsterEventType.STEP_SKIPPED:
            say(f"  {prefix}{step}: skipped (an upstream gate stopped the sample)")
        else:
            evaluation = event.event_specific_data
            if not evaluation.passed:
                self.outcome.failed_checks.append(evaluation.check_name)
                say(f"  {prefix}gate {evaluation.check_name}: FAILED ({evaluation.severity.value})")


def _first_line(data: Any) -> str:
    """A step failure in words: a blocking gate's stop as such (its lines were printed with the gate), else
    the first line of the error without the Python class name Dagster prefixes it with."""
    error = getattr(data, "error", None)
    if getattr(error, "cls_name", None) == "DagsterAssetCheckFailedError":
        return "stopped by the blocking gate above"
    message = getattr(error, "message", None) or str(data)
    first = message.strip().splitlines()[0][:200] if message else "no message"
    head, colon, rest = first.partition(": ")
    return rest if colon and "." in head and " " not in head else first


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class SampleStatus:
    sample_id: str
    run_id: str | None
    status: str  # the last run's status, or "not run"
    trigger: str | None
    failed_gates: list[str]
    report: str | None

    def to_json(self) -> dict[str, Any]:
        return {"sample_id": self.sample_id, "run_id": self.run_id, "status": self.status,
                "trigger": self.trigger, "failed_gates": self.failed_gates, "report": self.report}


def sample_statuses(instance: Any, storage: Any, samples: Iterable[str] | None = None) -> list[SampleStatus]:
    """Each sample's last `sample_pipeline` run, the gates that failed in it, and its report if written."""
    import dagster as dg

    from genoflow_dagster import zones
    from genoflow_dagster.jobs import SAMPLE_PIPELINE_JOB
    from genoflow_dagster.partitions import SAMPLES_PARTITION_NAME

    names = list(samples) if samples is not None else sorted(instance.get_dynamic_partitions(SAMPLES_PARTITION_NAME))
    statuses = []
    for sample_id in names:
        runs = instance.get_runs(dg.RunsFilter(job_name=SAMPLE_PIPELINE_JOB,
                                               tags={"dagster/partition": sample_id}), limit=1)
        report_key = zones.report_key(sample_id, "report.html")
        report = storage.uri(report_key) if storage.exists(report_key) else None
        if not runs:
            statuses.append(SampleStatus(sample_id, None, "not run", None, [], report))
            continue
        run = runs[0]
        failed = sorted({e.dagster_event.event_specific_data.check_name
                         for e in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
                         if not e.dagster_event.event_specific_data.passed})
        statuses.append(SampleStatus(sample_id, run.run_id, run.status.value, run.tags.get("genoflow/trigger"),
                                     failed, report))
    return statuses
