"""The landing sensor at scale: planning ticks over 100k objects, and how fast a real daemon queues the runs.

Part A (planning): N samples of 4-6 empty files each (5 on average, so tick limits
fall inside samples) in a local landing zone, optionally the same on moto's S3
server over HTTP; `plan_landing_tick` at settle 0 and 5,000 keys a tick until two
passes are complete. Checks exactly one run per sample carrying all its keys,
none in the second pass; reports tick times and cursor sizes (and what the
previous cursor format, every key and etag, would have weighed).

Part B (queuing): a throwaway DAGSTER_HOME with the QueuedRunCoordinator (as
dagster.yaml) and `max_concurrent_runs: 0`, so runs stay queued and only the
queuing is timed; `dagster-daemon run` loads the genoflow code location, the
landing sensor (settle 0) requests one run per landed sample, and the number of
QUEUED runs is polled each second. Run once with the daemon's default serial
submission and once with `sensors: use_threads / num_submit_workers`.

    .venv/bin/python benchmarks/sensor_scale.py                 # both parts, writes RESULTS.md
    .venv/bin/python benchmarks/sensor_scale.py --samples 2000 --queue-samples 200 --no-write
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg
from results_md import replace_section

from genoflow_dagster.resources.storage import LocalStorage, Storage
from genoflow_dagster.sensors.landing import LandingCursor, plan_landing_tick

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SECTION = "## Landing sensor at scale"
TICK_SECONDS = 30  # the sensor's minimum interval: the planner's clock advances by this much per tick


def files_in(sample: int) -> int:
    return 4 + sample % 3  # 4, 5, 6: five on average, and sample boundaries fall off the tick limit


def make_local_landing(root: Path, samples: int) -> int:
    count = 0
    for s in range(samples):
        folder = root / "landing" / f"S{s:06d}"
        folder.mkdir(parents=True, exist_ok=True)
        for f in range(files_in(s)):
            (folder / f"reads_{f}.fq").touch()
            count += 1
    return count


def make_s3_landing(storage, samples: int) -> int:
    from concurrent.futures import ThreadPoolExecutor

    client = storage._s3()
    keys = [f"landing/S{s:06d}/reads_{f}.fq" for s in range(samples) for f in range(files_in(s))]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda key: client.put_object(Bucket=storage.bucket, Key=key, Body=b""), keys))
    return len(keys)


def plan_passes(storage: Storage, samples: int, max_keys: int) -> dict:
    """Tick until two passes are complete; check exactly-once; collect tick times and cursor sizes."""
    cursor_text, ticks, runs_per_sample, passes, now = None, [], {}, 0, 0.0
    bad_runs = 0
    while passes < 2:
        started = time.perf_counter()
        plan = plan_landing_tick(storage, LandingCursor.from_json(cursor_text), now, settle_seconds=0,
                                 max_keys=max_keys)
        cursor_text = plan.cursor.to_json()
        seconds = time.perf_counter() - started
        for run in plan.runs:
            runs_per_sample[run.sample_id] = runs_per_sample.get(run.sample_id, 0) + 1
            bad_runs += len(run.keys) != files_in(int(run.sample_id[1:]))
        ticks.append({"pass": passes + 1, "seconds": seconds, "listed": plan.listed, "runs": len(plan.runs),
                      "cursor_bytes": len(cursor_text)})
        passes += plan.complete_pass
        now += TICK_SECONDS
    return {"ticks": ticks, "samples_run": len(runs_per_sample),
            "samples_run_twice": sum(1 for n in runs_per_sample.values() if n > 1),
            "runs_missing_keys": bad_runs, "expected": samples}


def v1_cursor_bytes(storage: Storage) -> int:
    """What the previous cursor (every key and etag per sample) weighed for the same landing zone."""
    samples: dict[str, dict] = {}
    for info in storage.list("landing/"):
        sample = info.key.split("/")[1]
        entry = samples.setdefault(sample, {"files": {}, "changed_at": 1.7e9, "requested": None, "sheet": None})
        entry["files"][info.key] = info.etag
    for sample, entry in samples.items():
        entry["requested"] = f"{sample}:" + "0" * 32
    return len(json.dumps({"samples": samples, "resume_after": None, "bad_keys": {}}, sort_keys=True))


def planning_summary(name: str, objects: int, result: dict, v1_bytes: int) -> list[str]:
    first = [t for t in result["ticks"] if t["pass"] == 1]
    second = [t for t in result["ticks"] if t["pass"] == 2]
    sizes = [t["cursor_bytes"] for t in result["ticks"]]
    return [
        f"| {name} | {objects:,} | {result['expected']:,} | {len(first)} + {len(second)} "
        f"| {result['samples_run']:,} / {result['samples_run_twice']} / {result['runs_missing_keys']} "
        f"| {statistics.median(t['seconds'] for t in first):.2f} / {max(t['seconds'] for t in first):.2f} "
        f"| {statistics.median(t['seconds'] for t in second):.2f} "
        f"| {max(sizes) / 1e3:,.0f} kB | {v1_bytes / 1e6:.1f} MB |"
    ]


DAGSTER_YAML = """\
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
  config:
    dequeue_interval_seconds: 1
concurrency:
  runs:
    max_concurrent_runs: 0   # nothing leaves the queue: only queuing is timed
telemetry:
  enabled: false
"""


BACKFILL_SENSOR = "landing_backfill_experiment_sensor"


@dg.definitions
def backfill_experiment_definitions() -> dg.Definitions:
    """Genoflow's definitions plus a sensor that plans like the landing sensor but asks for one asset backfill.

    Experiment only (part B's `backfill` row): `RunRequest.for_asset_graph_subset` takes an
    `AssetGraphSubset`, which Dagster 1.13 keeps private, and a backfill carries no run key per sample.
    """
    from dagster._core.definitions.assets.graph.asset_graph_subset import AssetGraphSubset
    from dagster._core.definitions.events import AssetKeyPartitionKey

    from genoflow_dagster.definitions import defs
    from genoflow_dagster.jobs import PER_SAMPLE_GROUPS
    from genoflow_dagster.partitions import samples_partitions

    @dg.sensor(name=BACKFILL_SENSOR, minimum_interval_seconds=30,
               asset_selection=dg.AssetSelection.groups(*PER_SAMPLE_GROUPS))
    def landing_backfill_experiment_sensor(context: dg.SensorEvaluationContext, storage: Storage):
        plan = plan_landing_tick(storage, LandingCursor.from_json(context.cursor), time.time(), settle_seconds=0)
        partitions = [samples_partitions.build_add_request(sorted(plan.new_samples))] if plan.new_samples else []
        requests = []
        if plan.runs:
            graph = context.repository_def.asset_graph
            keys = dg.AssetSelection.groups(*PER_SAMPLE_GROUPS).resolve(graph)
            wanted = {AssetKeyPartitionKey(key, run.sample_id) for key in keys for run in plan.runs}
            requests = [dg.RunRequest.for_asset_graph_subset(
                AssetGraphSubset.from_asset_partition_set(wanted, graph), tags={"genoflow/trigger": "landing"})]
        return dg.SensorResult(run_requests=requests, dynamic_partitions_requests=partitions,
                               cursor=plan.cursor.to_json())

    return dg.Definitions.merge(defs, dg.Definitions(sensors=[landing_backfill_experiment_sensor]))


def queue_through_daemon(samples: int, workers: int | str, work: Path, timeout: float) -> dict:
    """Run `dagster-daemon` on a fresh SQLite instance until `samples` runs are queued (or `timeout`).

    `workers`: 0 for the daemon's serial submission, N for N submit threads, "backfill" for the experiment.
    """
    home, data = work / f"home-{workers}", work / f"data-{workers}"
    home.mkdir(parents=True)
    make_local_landing(data, samples)
    config = DAGSTER_YAML
    if isinstance(workers, int) and workers:
        config += f"sensors:\n  use_threads: true\n  num_workers: 1\n  num_submit_workers: {workers}\n"
    (home / "dagster.yaml").write_text(config)
    workspace = home / "workspace.yaml"
    sensor = "landing_zone_upload_sensor"
    if workers == "backfill":
        sensor = BACKFILL_SENSOR
        workspace.write_text(f"load_from:\n  - python_file:\n      relative_path: {Path(__file__).resolve()}\n"
                             "      attribute: backfill_experiment_definitions\n      location_name: genoflow\n"
                             f"      working_directory: {HERE}\n")
    else:
        workspace.write_text(f"load_from:\n  - python_module:\n      module_name: genoflow_dagster.definitions\n"
                             f"      location_name: genoflow\n      working_directory: {REPO}\n")
    env = {**os.environ, "DAGSTER_HOME": str(home), "GENOFLOW_DATA_DIR": str(data), "GENOFLOW_STORAGE": "local",
           "GENOFLOW_LANDING_SETTLE_SECONDS": "0", "PYTHONPATH": str(REPO)}
    bin_dir = Path(sys.executable).parent
    subprocess.run([str(bin_dir / "dagster"), "sensor", "start", sensor, "-w", str(workspace)],
                   env=env, check=True, capture_output=True, cwd=home)
    samples_seen: list[tuple[float, int]] = []
    os.environ["DAGSTER_HOME"] = str(home)
    with open(home / "daemon.log", "wb") as log, dg.DagsterInstance.get() as instance:
        started = time.monotonic()
        daemon = subprocess.Popen([str(bin_dir / "dagster-daemon"), "run", "-w", str(workspace)], env=env, cwd=home,
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            queued_filter = dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED])
            while time.monotonic() - started < timeout:
                count = instance.get_runs_count(queued_filter)
                samples_seen.append((time.monotonic() - started, count))
                if count >= samples or daemon.poll() is not None:
                    break
                time.sleep(1)
            launched = instance.get_runs_count(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED,
                                                                       dg.DagsterRunStatus.STARTING]))
            samples_run = [r.tags.get("dagster/partition") for r in instance.get_runs()]
            ticks = instance.get_ticks(*_sensor_ids(instance, sensor))
        finally:
            os.killpg(daemon.pid, signal.SIGTERM)  # the daemon and its code server: the group this call started
            try:
                daemon.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(daemon.pid, signal.SIGKILL)
    first = next((t for t, n in samples_seen if n > 0), None)
    last_t, last_n = samples_seen[-1]
    return {"samples": samples, "workers": workers, "queued": last_n, "launched": launched,
            "samples_run_twice": len(samples_run) - len(set(samples_run)),
            "first_queued_s": first, "all_queued_s": last_t,
            "rate": last_n / (last_t - first) if first is not None and last_t > first else None,
            "create_enqueue_s": create_and_enqueue_seconds(home / "daemon.log") if workers == 0 else None,
            "ticks": [{"status": t.status.value, "runs": len(t.run_ids),
                       "seconds": (t.end_timestamp or t.timestamp) - t.timestamp,
                       "cursor_bytes": len(t.cursor or "")} for t in reversed(ticks)]}


def create_and_enqueue_seconds(log: Path) -> tuple[float, float] | None:
    """Mean seconds from the daemon's "Creating new run" to "Launching run" and on to "Completed launch".

    The log has whole-second timestamps; averaged over hundreds of serial submissions that is precise enough.
    """
    import re
    from datetime import datetime

    pattern = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) \+0000.*?(Creating new run|Launching run|Completed launch)")
    events = []
    for line in log.read_text(errors="replace").splitlines():
        if match := pattern.search(line):
            events.append((datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S").timestamp(), match.group(2)))
    create, enqueue = [], []
    for first, second, third in zip(events, events[1:], events[2:], strict=False):
        if (first[1], second[1], third[1]) == ("Creating new run", "Launching run", "Completed launch"):
            create.append(second[0] - first[0])
            enqueue.append(third[0] - second[0])
    return (statistics.mean(create), statistics.mean(enqueue)) if create else None


def _sensor_ids(instance, sensor: str) -> tuple[str, str]:
    states = [s for s in instance.all_instigator_state() if s.name == sensor]
    return states[0].instigator_origin_id, states[0].selector_id


def queue_row(result: dict) -> str:
    workers = result["workers"]
    mode = ("one asset backfill per tick (experiment)" if workers == "backfill" else
            f"threaded, {workers} submit workers" if workers else "serial (default)")
    runs_ticks = [t for t in result["ticks"] if t["runs"]]
    tick_text = ", ".join(f"{t['runs']} runs in {t['seconds']:.0f} s" for t in runs_ticks) or "none finished"
    rate = result["rate"]
    extrapolated = f"{20000 / rate / 60:.0f} min" if rate else "n/a"
    return (f"| {mode} | {result['samples']:,} | {result['queued']:,} | {result['samples_run_twice']} "
            f"| {result['first_queued_s']:.0f} s | {result['all_queued_s']:.0f} s | {tick_text} "
            f"| {rate:.1f} | {extrapolated} |" if rate else
            f"| {mode} | {result['samples']:,} | {result['queued']:,} | - | - | - | {tick_text} | - | - |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=20000, help="samples for the planning part (x5 objects)")
    parser.add_argument("--s3-samples", type=int, default=2000, help="samples on moto's S3 server (0: skip)")
    parser.add_argument("--max-keys", type=int, default=5000)
    parser.add_argument("--queue-samples", type=int, default=200, help="samples queued through the daemon")
    parser.add_argument("--workers", nargs="*", default=["0", "4", "backfill"],
                        help="0: serial submission, N: N submit threads, backfill: one asset backfill per tick")
    parser.add_argument("--queue-timeout", type=float, default=480)
    parser.add_argument("--parts", nargs="+", default=["planning", "queuing"], choices=["planning", "queuing"],
                        help="run these parts; RESULTS.md gets both, the other one from its last saved run")
    parser.add_argument("--keep", type=Path, help="work in this (new) folder and keep it: logs, instances")
    parser.add_argument("--render-saved", action="store_true",
                        help="rebuild the queuing table from the last saved results instead of running the daemon")
    parser.add_argument("--note", help="a sentence added under the heading (how the run went)")
    parser.add_argument("--no-write", action="store_true", help="print, do not touch RESULTS.md")
    args = parser.parse_args()

    saved = HERE / "work" / "sensor_scale"
    saved.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sensor-scale-") as tmp:
        work = args.keep or Path(tmp)
        if "planning" in args.parts:
            (saved / "planning.md").write_text("\n".join(planning_part(args, work)) + "\n")
        if args.render_saved:
            (saved / "queuing.md").write_text("\n".join(render_saved(args.keep)) + "\n")
        elif "queuing" in args.parts:
            (saved / "queuing.md").write_text("\n".join(queuing_part(args, work)) + "\n")
    parts = [saved / "planning.md", saved / "queuing.md"]
    block = "\n".join([SECTION, "", f"`benchmarks/sensor_scale.py` ({time.strftime('%Y-%m-%d')}; 2 cores shared with "
                       "other jobs, so timings are noisy)." + (f" {args.note}" if args.note else "")]) + "\n" + "".join(
                           "\n" + p.read_text() for p in parts if p.exists())
    print(block)
    if not args.no_write and all(p.exists() for p in parts):
        replace_section(SECTION, block)
    return 0


def planning_part(args: argparse.Namespace, work: Path) -> list[str]:
    lines = [f"### Planning: `plan_landing_tick`, settle 0, {args.max_keys:,} keys a tick, two passes", "",
             "| storage | objects | samples | ticks (pass 1 + 2) | samples run / run twice / runs missing keys "
             "| tick s, pass 1 median / max | tick s, pass 2 median | largest cursor | previous cursor format |",
             "|---|---|---|---|---|---|---|---|---|"]
    started = time.perf_counter()
    objects = make_local_landing(work / "zones", args.samples)
    print(f"made {objects:,} local objects in {time.perf_counter() - started:.1f} s", flush=True)
    storage = LocalStorage(base_dir=str(work / "zones"))
    result = plan_passes(storage, args.samples, args.max_keys)
    lines += planning_summary("local", objects, result, v1_cursor_bytes(storage))
    print(lines[-1], flush=True)
    if args.s3_samples:
        import logging

        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        sys.path.insert(0, str(REPO / "tests"))
        from conftest import _free_port, make_s3_storage

        os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
        port = _free_port()
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        try:
            s3 = make_s3_storage(f"http://127.0.0.1:{port}")
            objects = make_s3_landing(s3, args.s3_samples)
            result = plan_passes(s3, args.s3_samples, args.max_keys)
            lines += planning_summary("S3 (moto over HTTP)", objects, result, v1_cursor_bytes(s3))
            print(lines[-1], flush=True)
        finally:
            server.stop()
    return lines


def queuing_part(args: argparse.Namespace, work: Path) -> list[str]:
    results = []
    for workers in args.workers:
        workers = workers if workers == "backfill" else int(workers)
        result = queue_through_daemon(args.queue_samples, workers, work, args.queue_timeout)
        results.append(result)
        print(queue_row(result), json.dumps(result["ticks"]), flush=True)
    (HERE / "work" / "sensor_scale" / "queuing.json").write_text(json.dumps(results, indent=1))
    return queuing_lines(results)


def queuing_lines(results: list[dict]) -> list[str]:
    samples = results[0]["samples"]
    lines = [f"### Queuing: `dagster-daemon` on a fresh SQLite instance, {samples:,} samples landed at "
             "once, settle 0, nothing dequeued (`max_concurrent_runs: 0`)", "",
             "| submission | samples | runs queued | samples run twice | first queued after daemon start "
             "| all queued after | ticks with runs | runs queued / s | 20,000 samples at that rate |",
             "|---|---|---|---|---|---|---|---|---|"]
    lines += [queue_row(result) for result in results]
    best = max(results, key=lambda r: r["rate"] or 0)
    if best["rate"]:
        lines += ["", f"Best measured: {best['rate']:.1f} runs queued a second ({queue_row(best).split(' | ')[0][2:]}),"
                  f" so 20,000 samples take about {20000 / best['rate'] / 60:.0f} min to queue on this machine; "
                  "planning them takes about 20 ticks of 1-3 s each (part A). Every run costs the daemon an "
                  "execution-plan call to the code server, a run record with its snapshots and a queue event; "
                  "the sensor's own tick is a small part of that."]
    split = next((r["create_enqueue_s"] for r in results if r.get("create_enqueue_s")), None)
    if split:
        lines += ["", f"Where a serial submission's time goes (daemon log, mean over {samples} runs): "
                  f"{split[0]:.2f} s creating the run (execution plan from the code server, run record and "
                  f"snapshots), {split[1]:.2f} s queuing it."]
    return lines


def render_saved(keep: Path | None) -> list[str]:
    """Rebuild the queuing lines from the last saved results (and, with --keep, the serial run's daemon log)."""
    results = json.loads((HERE / "work" / "sensor_scale" / "queuing.json").read_text())
    for result in results:
        log = keep / "home-0" / "daemon.log" if keep else None
        if result["workers"] == 0 and not result.get("create_enqueue_s") and log and log.exists():
            result["create_enqueue_s"] = create_and_enqueue_seconds(log)
    return queuing_lines(results)


if __name__ == "__main__":
    sys.exit(main())
