"""The upload portal under load: 20 concurrent 100 MB uploads through `genoflow portal`, against s3transfer.

Issue 15's load acceptance, on loopback only. For every run a fresh moto S3 server (`python -m moto.server`,
its own process, objects in its memory) and, for the portal runs, a fresh `genoflow portal --no-auth` (uvicorn,
its own process, storage pointed at that bucket through GENOFLOW_STORAGE=s3 and GENOFLOW_S3_*, or at a local
folder for the local row). The portal's VmRSS is read from /proc/<pid>/status every 0.2 s; VmHWM at the end.

Clients: one thread per file, sending as the upload page does (3 chunks in flight per file, `--in-flight`):
POST /uploads (with the file's SHA-256), the 8 MiB chunks (httpx, one connection pool per file), then
POST .../complete. Each upload's time is split into the chunk phase (declaration to the last chunk
acknowledged: on S3 each chunk is kept in the portal's staging folder and passed on as a part of the upload's
S3 multipart upload; locally it is only kept) and the complete call (the portal reads the chunks back through
SHA-256, then joins the S3 parts in one request, or locally writes the file). The baseline sends the same
files straight to the same kind of moto server with boto3's
s3transfer, the engine of `aws s3 cp`: one TransferManager for all files (`aws s3 cp --recursive`), with the
CLI's defaults of 8 MiB threshold and parts and 10 threads. Every landed object is then read back and its
size and SHA-256 compared with the file's (outside the timed window). Memory: besides the main size, the
same 20 uploads at a tenth of the bytes, 5 uploads at the full size and at four times it, and `--rounds`
rounds of the main load through one long-lived portal process (each round replaces the objects of the last).

The files are random bytes (content does not matter: the portal checks only the name), written once,
in `<name>.fastq.gz` names. Runs are interleaved portal / baseline and repeated; tables show medians.

    .venv/bin/python benchmarks/portal_load.py            # 20 x 100 MB, flatness runs, local storage; RESULTS.md
    .venv/bin/python benchmarks/portal_load.py --small    # a quick smoke (4 x 20 MB, one repeat), prints only
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import dataclasses
import hashlib
import json
import os
import random
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import httpx
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from results_md import replace_section
from s3transfer.manager import TransferManager
from s3transfer.subscribers import BaseSubscriber

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SECTION = "## Upload portal under load"
MiB = 1024 * 1024
MB = 1_000_000
CHUNK_BYTES = 8 * MiB  # what the portal answers by default (DEFAULT_CHUNK_BYTES); checked against its answer
BUCKET = "genoflow-load"
SAMPLE_EVERY = 0.2
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, process: subprocess.Popen[bytes], what: str, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.TransportError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start") from None
            time.sleep(0.1)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def proc_status_kb(pid: int, field_name: str) -> int:
    """A `kB` field of /proc/<pid>/status (VmRSS, VmHWM); 0 once the process has gone."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def machine_busy_seconds() -> float:
    """CPU seconds all processes on the machine have used (every core), from /proc/stat's first line."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in
                                                             Path("/proc/stat").read_text().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def tree_bytes(folder: Path) -> int:
    """Bytes of the regular files under `folder` (what this benchmark has on disk)."""
    total = 0
    for root, _dirs, names in os.walk(folder):
        for name in names:
            with contextlib.suppress(OSError):  # removed while walking (a chunk landed, a part renamed)
                total += os.stat(os.path.join(root, name), follow_symlinks=False).st_size
    return total


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (/proc/<pid>/stat)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class RssSampler:
    """VmRSS of a process every `SAMPLE_EVERY` seconds on a thread, as (seconds since start, MB); the CPU
    seconds of the processes in `cpu_pids` at the same moments; and the bytes under `disk` (the benchmark's
    temp dir) every fifth sample, whose peak is kept."""

    def __init__(self, pid: int, disk: Path, cpu_pids: dict[str, int]) -> None:
        self.pid = pid
        self.disk = disk
        self.cpu_pids = cpu_pids
        self.disk_peak = 0
        self.samples: list[tuple[float, float]] = []
        self.cpu: list[tuple[float, dict[str, float]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._t0 = time.perf_counter()

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.perf_counter() - self._t0
            self.samples.append((now, proc_status_kb(self.pid, "VmRSS") / 1024))
            self.cpu.append((now, {name: cpu_seconds(pid) for name, pid in self.cpu_pids.items()}))
            if len(self.samples) % 5 == 1:
                self.disk_peak = max(self.disk_peak, tree_bytes(self.disk))
            self._stop.wait(SAMPLE_EVERY)

    def cpu_until(self, name: str, moment: float) -> float:
        """CPU seconds of process `name` from the first sample to the last sample at or before `moment`."""
        before = [cpu[name] for t, cpu in self.cpu if t <= moment] or [self.cpu[0][1][name]]
        return before[-1] - self.cpu[0][1][name]

    def __enter__(self) -> RssSampler:
        self._t0 = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# ------------------------------------------------------------------ servers


MOTO_IN_MEMORY_BYTES = 512 * MiB  # objects and parts up to this size stay in moto's memory (its default spills
# anything above 5 MB to temporary files): the S3 side does not compete with the portal's staging for the disk


class MotoServer:
    """moto's S3 server in a process of its own on 127.0.0.1, with one empty bucket held in memory."""

    def __init__(self, log: Path) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._log = open(log, "ab")  # noqa: SIM115  (closed in stop)
        self.process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                        stdout=self._log, stderr=subprocess.STDOUT,
                                        env={**os.environ, **CREDENTIALS,
                                             "MOTO_S3_DEFAULT_KEY_BUFFER_SIZE": str(MOTO_IN_MEMORY_BYTES)})
        wait_for(self.endpoint, self.process, "moto's S3 server")
        self.client().create_bucket(Bucket=BUCKET)

    def client(self, pool: int = 10) -> Any:
        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing",
                            config=Config(s3={"addressing_style": "path"}, max_pool_connections=pool,
                                          read_timeout=600))

    def stop(self) -> None:
        stop(self.process)
        self._log.close()


class Portal:
    """`genoflow portal --no-auth` on a free loopback port, storing into moto's bucket or a local folder."""

    def __init__(self, work: Path, moto: MotoServer | None) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.data = work / "portal-data"
        env = {**os.environ, **CREDENTIALS, "GENOFLOW_DATA_DIR": str(self.data), "DAGSTER_HOME": str(work / "home"),
               "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)}
        if moto is None:
            env["GENOFLOW_STORAGE"] = "local"
        else:
            env.update(GENOFLOW_STORAGE="s3", GENOFLOW_S3_BUCKET=BUCKET, GENOFLOW_S3_ENDPOINT_URL=moto.endpoint,
                       GENOFLOW_S3_PREFIX="")
        self._log = open(work / "portal.log", "ab")  # noqa: SIM115  (closed in stop)
        self.process = subprocess.Popen([sys.executable, "-m", "genoflow_dagster.cli", "portal", "--no-auth",
                                         "--host", "127.0.0.1", "--port", str(self.port)],
                                        stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=work)
        wait_for(f"{self.base}/supported_formats", self.process, "the portal")
        answered = httpx.get(f"{self.base}/supported_formats", timeout=10).json()["chunk_bytes"]
        if answered != CHUNK_BYTES:
            raise RuntimeError(f"the portal asks for {answered:,}-byte chunks, not {CHUNK_BYTES:,}")

    def stop(self) -> None:
        stop(self.process)
        self._log.close()
        shutil.rmtree(self.data, ignore_errors=True)


# ------------------------------------------------------------------ test files


@dataclass(frozen=True)
class TestFile:
    path: Path
    size: int
    sha256: str


def make_files(folder: Path, count: int, size: int, seed: int) -> list[TestFile]:
    """`count` files of `size` random bytes, streamed to disk 1 MiB at a time, each with its SHA-256."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    files = []
    for i in range(count):
        path = folder / f"reads_{i:02d}.fastq.gz"
        digest = hashlib.sha256()
        with open(path, "wb") as fh:
            left = size
            while left:
                block = rng.randbytes(min(MiB, left))
                digest.update(block)
                fh.write(block)
                left -= len(block)
        files.append(TestFile(path, size, digest.hexdigest()))
    return files


# ------------------------------------------------------------------ one run


@dataclass
class Run:
    kind: str  # "portal (S3)", "portal (local)", "s3transfer"
    files: int
    file_bytes: int
    wall_s: float = 0.0
    upload_s: list[float] = field(default_factory=list)  # per file, declaration/submission to landed
    chunk_phase_s: list[float] = field(default_factory=list)  # portal only: to the last chunk acknowledged
    complete_s: list[float] = field(default_factory=list)  # portal only: the complete call
    last_chunk_s: float = 0.0  # portal only: run start to the last chunk of any file acknowledged
    portal_cpu_chunk_phase_s: float = 0.0  # portal only: CPU until then (sampled every 0.2 s)
    moto_cpu_chunk_phase_s: float = 0.0
    rss_idle_mb: float = 0.0  # portal started, nothing sent
    rss_start_mb: float = 0.0  # after one small warm-up upload (boto3 and the S3 client loaded)
    rss_peak_mb: float = 0.0  # highest 0.2 s sample during the run
    hwm_mb: float = 0.0  # VmHWM at the end (the kernel's own peak, between samples too)
    rss_end_mb: float = 0.0  # after the run
    rss_series: list[tuple[float, float]] = field(default_factory=list)
    portal_cpu_s: float = 0.0
    others_cpu_s: float = 0.0  # CPU the rest of the machine used during the run (other jobs: noise)
    load_before: float = 0.0  # 1-minute load average when the run started
    disk_peak_mb: float = 0.0  # the benchmark's temp dir at its fullest (test files, staged chunks, landed files)
    moto_cpu_s: float = 0.0
    client_cpu_s: float = 0.0
    verified: int = 0

    @property
    def total_mb(self) -> float:
        return self.files * self.file_bytes / MB

    @property
    def mb_per_s(self) -> float:
        return self.total_mb / self.wall_s


def portal_upload(base: str, test_file: TestFile, sample_id: str, in_flight: int) -> dict[str, Any]:
    """One file through the chunked API; returns its timings and the complete call's answer."""
    started = time.perf_counter()
    with httpx.Client(base_url=base, timeout=900, limits=httpx.Limits(max_connections=in_flight + 1)) as http:
        made = http.post("/uploads", json={"sample_id": sample_id, "file_name": test_file.path.name,
                                           "size": test_file.size, "sha256": test_file.sha256})
        made.raise_for_status()
        upload = made.json()
        upload_id, chunk_size, count = upload["upload_id"], upload["chunk_size"], upload["chunk_count"]

        def send(number: int) -> None:
            with open(test_file.path, "rb") as fh:
                fh.seek(number * chunk_size)
                body = fh.read(chunk_size)
            answer = http.put(f"/uploads/{upload_id}/chunks/{number}", content=body,
                              headers={"Content-Type": "application/octet-stream"})
            answer.raise_for_status()

        with concurrent.futures.ThreadPoolExecutor(in_flight) as pool:
            list(pool.map(send, range(count)))
        chunks_done = time.perf_counter()
        completed = http.post(f"/uploads/{upload_id}/complete")
        completed.raise_for_status()
        done = time.perf_counter()
    return {"started": started, "chunks_done": chunks_done, "done": done, "answer": completed.json()}


def run_portal(work: Path, files: list[TestFile], *, storage: str, in_flight: int, rounds: int = 1) -> list[Run]:
    """One fresh portal (and moto); `rounds` times all files at once through it, one Run per round.

    Later rounds send the same files to the same keys again (a new upload replaces the landed object), so the
    portal's memory can be followed over more bytes than the disk and moto hold at once."""
    moto = MotoServer(work / "moto.log") if storage == "s3" else None
    portal = Portal(work, moto)
    runs = []
    try:
        pid = portal.process.pid
        time.sleep(1.0)
        idle_mb = proc_status_kb(pid, "VmRSS") / 1024
        with tempfile.TemporaryDirectory(dir=work) as warm:  # first use loads boto3 and builds the S3 client
            warm_file = make_files(Path(warm), 1, 1024, seed=0)[0]
            portal_upload(portal.base, warm_file, "WARMUP", 1)
        time.sleep(0.5)
        for round_number in range(1, rounds + 1):
            kind = f"portal ({'S3' if storage == 's3' else 'local'})"
            run = Run(kind if rounds == 1 else f"{kind}, round {round_number}", len(files), files[0].size)
            run.rss_idle_mb = idle_mb
            run.rss_start_mb = proc_status_kb(pid, "VmRSS") / 1024
            run.load_before = os.getloadavg()[0]
            run_round(run, portal, moto, work, files, in_flight)
            runs.append(run)
    finally:
        portal.stop()
        if moto is not None:
            moto.stop()
    return runs


def run_round(run: Run, portal: Portal, moto: MotoServer | None, work: Path, files: list[TestFile],
              in_flight: int) -> None:
    """All files at once through the portal, measured into `run`; then every landed file is read back."""
    pid = portal.process.pid
    cpu_before = {"portal": cpu_seconds(pid), "moto": cpu_seconds(moto.process.pid) if moto else 0.0}
    client_before, machine_before = time.process_time(), machine_busy_seconds()
    with RssSampler(pid, work, {"portal": pid, **({"moto": moto.process.pid} if moto else {})}) as sampler:
        started = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(len(files)) as pool:
            results = list(pool.map(lambda i: portal_upload(portal.base, files[i], f"LOAD{i:02d}", in_flight),
                                    range(len(files))))
        run.wall_s = time.perf_counter() - started
        run.client_cpu_s = time.process_time() - client_before
        run.portal_cpu_s = cpu_seconds(pid) - cpu_before["portal"]
        run.moto_cpu_s = cpu_seconds(moto.process.pid) - cpu_before["moto"] if moto else 0.0
        run.others_cpu_s = machine_busy_seconds() - machine_before - run.client_cpu_s - run.portal_cpu_s \
            - run.moto_cpu_s
        time.sleep(1.0)  # the portal after the run
    run.disk_peak_mb = sampler.disk_peak / MB
    run.rss_series = sampler.samples
    run.rss_peak_mb = max(mb for _, mb in sampler.samples)
    run.rss_end_mb = proc_status_kb(pid, "VmRSS") / 1024
    run.hwm_mb = proc_status_kb(pid, "VmHWM") / 1024
    run.last_chunk_s = max(result["chunks_done"] for result in results) - started
    run.portal_cpu_chunk_phase_s = sampler.cpu_until("portal", run.last_chunk_s)
    run.moto_cpu_chunk_phase_s = sampler.cpu_until("moto", run.last_chunk_s) if moto else 0.0
    for result in results:
        run.upload_s.append(result["done"] - result["started"])
        run.chunk_phase_s.append(result["chunks_done"] - result["started"])
        run.complete_s.append(result["done"] - result["chunks_done"])
    for i, (result, test_file) in enumerate(zip(results, files, strict=True)):
        if result["answer"]["sha256"] != test_file.sha256 or result["answer"]["size"] != test_file.size:
            raise RuntimeError(f"upload {i}: the portal answered a different size or SHA-256")
    key = "landing/LOAD{:02d}/{}"
    if moto is not None:
        run.verified = verify_s3(moto, [(key.format(i, f.path.name), f) for i, f in enumerate(files)])
    else:
        run.verified = verify_local(portal.data, [(key.format(i, f.path.name), f) for i, f in enumerate(files)])


class _Done(BaseSubscriber):
    def __init__(self, finished: dict[str, float], name: str) -> None:
        self.finished, self.name = finished, name

    def on_done(self, future: Any, **kwargs: Any) -> None:
        self.finished[self.name] = time.perf_counter()


def run_baseline(work: Path, files: list[TestFile]) -> Run:
    """The files straight to moto with s3transfer as `aws s3 cp --recursive` drives it (8 MiB parts, 10 threads)."""
    moto = MotoServer(work / "moto.log")
    run = Run("s3transfer", len(files), files[0].size)
    try:
        config = TransferConfig(multipart_threshold=8 * MiB, multipart_chunksize=8 * MiB, max_concurrency=10)
        client = moto.client(pool=10)
        run.load_before = os.getloadavg()[0]
        cpu_moto = cpu_seconds(moto.process.pid)
        client_before, machine_before = time.process_time(), machine_busy_seconds()
        finished: dict[str, float] = {}
        started = time.perf_counter()
        with TransferManager(client, config) as manager:
            futures = [manager.upload(str(f.path), BUCKET, f"baseline/{f.path.name}",
                                      subscribers=[_Done(finished, f.path.name)]) for f in files]
            for future in futures:
                future.result()
        run.wall_s = time.perf_counter() - started
        run.client_cpu_s = time.process_time() - client_before
        run.moto_cpu_s = cpu_seconds(moto.process.pid) - cpu_moto
        run.others_cpu_s = machine_busy_seconds() - machine_before - run.client_cpu_s - run.moto_cpu_s
        run.upload_s = [finished[f.path.name] - started for f in files]
        run.verified = verify_s3(moto, [(f"baseline/{f.path.name}", f) for f in files])
    finally:
        moto.stop()
    return run


def verify_s3(moto: MotoServer, landed: list[tuple[str, TestFile]]) -> int:
    """Read every object back from moto; each must have the file's size and SHA-256."""
    client = moto.client()
    for key, test_file in landed:
        body = client.get_object(Bucket=BUCKET, Key=key)["Body"]
        digest, size = hashlib.sha256(), 0
        for block in iter(lambda: body.read(MiB), b""):  # noqa: B023  (body is read before the next loop)
            digest.update(block)
            size += len(block)
        if size != test_file.size or digest.hexdigest() != test_file.sha256:
            raise RuntimeError(f"{key} in moto has {size:,} bytes / SHA-256 {digest.hexdigest()}, not the file's")
    return len(landed)


def verify_local(data: Path, landed: list[tuple[str, TestFile]]) -> int:
    for key, test_file in landed:
        path = data / key
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(MiB), b""):
                digest.update(block)
        if path.stat().st_size != test_file.size or digest.hexdigest() != test_file.sha256:
            raise RuntimeError(f"{path} has a different size or SHA-256 than the file sent")
        path.unlink()
    return len(landed)


# ------------------------------------------------------------------ reporting


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def describe(run: Run) -> str:
    text = (f"{run.kind:15s} {run.files:2d} x {run.file_bytes / MB:5.0f} MB: {run.wall_s:6.1f} s, "
            f"{run.mb_per_s:6.1f} MB/s, per upload median {med(run.upload_s):5.1f} s / max {max(run.upload_s):5.1f} s")
    if run.complete_s:
        text += (f"; chunk phase median {med(run.chunk_phase_s):5.1f} s, complete median {med(run.complete_s):5.1f} s"
                 f" / max {max(run.complete_s):5.1f} s; RSS idle {run.rss_idle_mb:.0f}, start {run.rss_start_mb:.0f}, "
                 f"peak {run.rss_peak_mb:.0f} (HWM {run.hwm_mb:.0f}), end {run.rss_end_mb:.0f} MB; CPU portal "
                 f"{run.portal_cpu_s:.0f} s")
    if run.disk_peak_mb:
        text += f"; temp dir peak {run.disk_peak_mb / 1000:.1f} GB"
    return text + (f", moto {run.moto_cpu_s:.0f} s, client {run.client_cpu_s:.0f} s, other jobs "
                   f"{max(0.0, run.others_cpu_s):.0f} s (load {run.load_before:.1f} at start); {run.verified} verified")


def rss_timeline(run: Run, points: int = 11) -> str:
    """RSS at evenly spaced moments of the run (MB), for one line of the report."""
    series = run.rss_series
    end = series[-1][0]
    picked = [min(series, key=lambda s: abs(s[0] - end * k / (points - 1))) for k in range(points)]
    return ", ".join(f"{t:.0f} s: {mb:.0f}" for t, mb in picked)


def group(runs: list[Run]) -> dict[tuple[str, int, int], list[Run]]:
    groups: dict[tuple[str, int, int], list[Run]] = {}
    for run in runs:
        groups.setdefault((run.kind, run.files, run.file_bytes), []).append(run)
    return groups


def table(runs: list[Run]) -> list[str]:
    lines = ["| setup | runs | total | wall s (each) | MB/s (median) | per upload s, median / max | "
             "chunk phase s, median | complete s, median / max | portal RSS MB: idle / start / peak / end (HWM) | "
             "CPU s: portal / moto / client / other jobs |",
             "|---|---:|---:|---|---:|---|---:|---|---|---|"]
    for (kind, files, size), group_runs in group(runs).items():
        walls = ", ".join(f"{r.wall_s:.1f}" for r in group_runs)
        row = (f"| {kind}, {files} x {size / MB:.0f} MB | {len(group_runs)} | {files * size / 1e9:.1f} GB | {walls} | "
               f"{med([r.mb_per_s for r in group_runs]):.1f} | "
               f"{med([med(r.upload_s) for r in group_runs]):.1f} / {max(max(r.upload_s) for r in group_runs):.1f} | ")
        if kind.startswith("portal"):
            row += (f"{med([med(r.chunk_phase_s) for r in group_runs]):.1f} | "
                    f"{med([med(r.complete_s) for r in group_runs]):.1f} / "
                    f"{max(max(r.complete_s) for r in group_runs):.1f} | "
                    f"{med([r.rss_idle_mb for r in group_runs]):.0f} / {med([r.rss_start_mb for r in group_runs]):.0f}"
                    f" / {max(r.rss_peak_mb for r in group_runs):.0f} / {med([r.rss_end_mb for r in group_runs]):.0f}"
                    f" ({max(r.hwm_mb for r in group_runs):.0f}) | "
                    f"{med([r.portal_cpu_s for r in group_runs]):.0f} / ")
        else:
            row += "- | - | - | - / "
        row += (f"{med([r.moto_cpu_s for r in group_runs]):.0f} / {med([r.client_cpu_s for r in group_runs]):.0f} / "
                f"{max(0.0, med([r.others_cpu_s for r in group_runs])):.0f} |")
        lines.append(row)
    return lines


def where_time_goes(portal_runs: list[Run], baseline_runs: list[Run]) -> str:
    """The measured split of the portal's time: the chunk phase, the tail after the last chunk, CPU per GB."""
    wall = med([r.wall_s for r in portal_runs])
    last_chunk = med([r.last_chunk_s for r in portal_runs])
    complete_share = med([sum(r.complete_s) / sum(r.upload_s) for r in portal_runs])
    gb = portal_runs[0].total_mb / 1000
    portal_cpu = med([(r.portal_cpu_s + r.moto_cpu_s + r.client_cpu_s) / gb for r in portal_runs])
    base_cpu = med([(r.moto_cpu_s + r.client_cpu_s) / gb for r in baseline_runs])
    tail = [r.wall_s - r.last_chunk_s for r in portal_runs]
    moto_chunk = med([r.moto_cpu_chunk_phase_s / r.last_chunk_s for r in portal_runs])
    moto_tail = med([(r.moto_cpu_s - r.moto_cpu_chunk_phase_s) / t for r, t in zip(portal_runs, tail, strict=True)])
    portal_chunk = med([r.portal_cpu_chunk_phase_s / r.last_chunk_s for r in portal_runs])
    portal_tail = med([(r.portal_cpu_s - r.portal_cpu_chunk_phase_s) / t
                       for r, t in zip(portal_runs, tail, strict=True)])
    moto_base = med([r.moto_cpu_s / r.wall_s for r in baseline_runs])
    return (f"Where the portal's time goes (medians): the last chunk of any file was acknowledged {last_chunk:.1f} s "
            f"into a {wall:.1f} s run, so {wall - last_chunk:.1f} s ({(wall - last_chunk) / wall:.0%}) is the tail "
            f"of complete calls alone; summed over the files, the complete call is {complete_share:.0%} of the "
            f"upload time. CPU per GB sent, all processes on the machine: {portal_cpu:.1f} s through the portal "
            f"(portal + moto + clients), {base_cpu:.1f} s for s3transfer (moto + client). CPU in use, in cores "
            f"(moto is one Python process, so about 1.0 is all it can use): until the last chunk, portal "
            f"{portal_chunk:.2f} and moto {moto_chunk:.2f}; in the tail of complete calls, portal {portal_tail:.2f} "
            f"and moto {moto_tail:.2f}; moto during s3transfer's runs {moto_base:.2f}.")


def _runs(runs: list[Run], kind: str, files: int, mb: int) -> list[Run]:
    return [r for r in runs if r.kind == kind and r.files == files and r.file_bytes == mb * MB]


def memory_reading(runs: list[Run], args: argparse.Namespace) -> str:
    """The portal's peak RSS against the bytes sent and against the uploads in flight, from the runs."""
    quarter = max(1, args.files // 4)

    def peak(kind: str, files: int, mb: int) -> float:
        return max((r.rss_peak_mb for r in _runs(runs, kind, files, mb)), default=float("nan"))

    full, tenth = peak("portal (S3)", args.files, args.mb), peak("portal (S3)", args.files, max(1, args.mb // 10))
    small, large = peak("portal (S3)", quarter, args.mb), peak("portal (S3)", quarter, 4 * args.mb)
    start = med([r.rss_start_mb for r in runs if r.kind == "portal (S3)"])
    rounds = [r for r in runs if r.kind.startswith("portal (S3), round")]
    text = (f"Memory (portal RSS, highest peak of the repeats): {args.files} uploads at once peak at {tenth:.0f} MB "
            f"with {args.mb // 10} MB files ({args.files * (args.mb // 10) / 1000:.1f} GB sent) and {full:.0f} MB "
            f"with {args.mb} MB files ({args.files * args.mb / 1000:.1f} GB); {quarter} uploads at once peak at "
            f"{small:.0f} MB with {args.mb} MB files and {large:.0f} MB with {4 * args.mb} MB files. The peak does "
            f"not follow the bytes sent; it follows the uploads being completed at once, about "
            f"{(full - start) / args.files:.0f} MB each above the {start:.0f} MB at rest "
            f"({(small - start) / quarter:.0f} MB each with {quarter}).")
    if rounds:
        text += (f" Through one portal process, {len(rounds)} rounds of {args.files} x {args.mb} MB "
                 f"({len(rounds) * args.files * args.mb / 1000:.0f} GB in all): RSS at each round's start "
                 + ", ".join(f"{r.rss_start_mb:.0f}" for r in rounds) + " MB, peaks "
                 + ", ".join(f"{r.rss_peak_mb:.0f}" for r in rounds) + " MB, after each round "
                 + ", ".join(f"{r.rss_end_mb:.0f}" for r in rounds) + " MB.")
    return text


def design_reading(runs: list[Run], args: argparse.Namespace) -> str:
    """What the numbers say about passing chunks on as S3 parts and checking the SHA-256 on complete."""
    quarter = max(1, args.files // 4)
    complete_small = med([med(r.complete_s) for r in _runs(runs, "portal (S3)", quarter, args.mb)])
    complete_large = med([med(r.complete_s) for r in _runs(runs, "portal (S3)", quarter, 4 * args.mb)])
    per_gb = complete_large / (4 * args.mb / 1000)
    main_runs = _runs(runs, "portal (S3)", args.files, args.mb)
    portal_cpu, moto_cpu = med([r.portal_cpu_s for r in main_runs]), med([r.moto_cpu_s for r in main_runs])
    client_cpu, wall = med([r.client_cpu_s for r in main_runs]), med([r.wall_s for r in main_runs])
    base_runs = _runs(runs, "s3transfer", args.files, args.mb)
    moto_chunk = med([r.moto_cpu_chunk_phase_s / r.last_chunk_s for r in main_runs])
    moto_base = med([r.moto_cpu_s / r.wall_s for r in base_runs])
    portal_chunk = med([r.portal_cpu_chunk_phase_s / r.last_chunk_s for r in main_runs])
    local = _runs(runs, "portal (local)", args.files, args.mb)
    local_text = ""
    if local:
        local_text = (f"With local storage the same load runs at {med([r.mb_per_s for r in local]):.0f} MB/s; "
                      f"there complete writes the file (median {med([med(r.complete_s) for r in local]):.1f} s). ")
    return ("Reading. On S3 every byte reaches S3 while its chunk request is open (the part is sent before the "
            "chunk is acknowledged), so the S3 writes overlap the receiving, and complete is a local read of the "
            f"chunks through SHA-256 plus one CompleteMultipartUpload: with {quarter} uploads at once it took "
            f"{complete_small:.1f} s for {args.mb} MB files and {complete_large:.1f} s for {4 * args.mb} MB ones "
            f"(about {per_gb:.1f} s per GB, so about {per_gb * 5:.0f} s for a 5 GB file). " + local_text
            + f"CPU ({args.files} x {args.mb} MB through the portal, medians): portal {portal_cpu:.0f} s, moto "
            f"{moto_cpu:.0f} s, clients {client_cpu:.0f} s in {wall:.0f} s; while the chunks arrive the portal "
            f"uses {portal_chunk:.2f} of a core and moto {moto_chunk:.2f}, against moto's {moto_base:.2f} under "
            "s3transfer. Every byte crosses one more Python process than with s3transfer (the portal receives it, "
            "writes it to its staging folder and sends it on), on the same two cores as moto and the clients: "
            "that is the gap to s3transfer on this machine. The staging folder still holds each unfinished "
            "upload's chunks until complete (the SHA-256 is computed from them, and the parts are sent again "
            "from them if S3 drops the multipart upload).")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true", help="a quick smoke: 4 x 20 MB, one repeat, no RESULTS.md")
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--mb", type=int, default=100, help="size of each file in MB (10^6 bytes)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3, help="rounds through one long-lived portal process")
    parser.add_argument("--in-flight", type=int, default=3, help="chunks in flight per file")
    parser.add_argument("--no-write", action="store_true", help="print, do not update RESULTS.md")
    parser.add_argument("--save-runs", type=Path, help="also keep the measurements as JSON in this file")
    parser.add_argument("--render", type=Path, help="measure nothing: report the runs saved by --save-runs")
    args = parser.parse_args()
    if args.render:
        saved = json.loads(args.render.read_text())
        for name in ("files", "mb", "repeats", "rounds", "in_flight"):
            setattr(args, name, saved["args"][name])
        runs = [Run(**{**r, "rss_series": [tuple(x) for x in r["rss_series"]]}) for r in saved["runs"]]
        report(runs, args, saved["began"], tuple(saved["load_before"]), tuple(saved["load_after"]))
        return 0
    if args.small:
        args.files, args.mb, args.repeats, args.rounds, args.no_write = 4, 20, 1, 2, True
    load_before = os.getloadavg()
    began = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="portal-load-") as tmp:
        work = Path(tmp)

        def note(*done: Run) -> None:
            for run in done:
                runs.append(run)
                print(describe(run), flush=True)

        # Flatness first: the same number of concurrent uploads with a tenth of the bytes; and a quarter of the
        # uploads at the full size and at four times it (the same concurrency, four times the bytes). Each set's
        # files are removed before the next set's exist.
        quarter = max(1, args.files // 4)
        flat_sets = [] if args.small else [(args.files, max(1, args.mb // 10)), (quarter, args.mb),
                                           (quarter, 4 * args.mb)]
        for count, mb in flat_sets:
            files = make_files(work / f"files-{count}x{mb}", count, mb * MB, seed=count * 1000 + mb)
            for _ in range(args.repeats):
                note(*run_portal(work, files, storage="s3", in_flight=args.in_flight))
                note(run_baseline(work, files))
            shutil.rmtree(work / f"files-{count}x{mb}")
        started = time.perf_counter()
        files = make_files(work / "files", args.files, args.mb * MB, seed=1)
        print(f"{args.files} files of {args.mb} MB written in {time.perf_counter() - started:.1f} s", flush=True)
        for _ in range(args.repeats):
            note(*run_portal(work, files, storage="s3", in_flight=args.in_flight))
            note(run_baseline(work, files))
            note(*run_portal(work, files, storage="local", in_flight=args.in_flight))
        # One portal process for several rounds: does its memory creep as the bytes sent add up?
        note(*run_portal(work, files, storage="s3", in_flight=args.in_flight, rounds=args.rounds))
    load_after = os.getloadavg()
    if args.save_runs:
        args.save_runs.write_text(json.dumps({
            "args": {name: getattr(args, name) for name in ("files", "mb", "repeats", "rounds", "in_flight")},
            "began": began, "load_before": load_before, "load_after": load_after,
            "runs": [dataclasses.asdict(run) for run in runs]}))
    report(runs, args, began, load_before, load_after)
    return 0


def report(runs: list[Run], args: argparse.Namespace, began: str, load_before: tuple[float, ...],
           load_after: tuple[float, ...]) -> None:
    """Print the tables and readings; write the RESULTS.md section unless --no-write."""
    lines = table(runs)
    print("\n".join(lines))
    main_portal = [r for r in runs if r.kind == "portal (S3)" and r.file_bytes == args.mb * MB
                   and r.files == args.files]
    main_base = [r for r in runs if r.kind == "s3transfer" and r.file_bytes == args.mb * MB and r.files == args.files]
    ratio = med([r.mb_per_s for r in main_portal]) / med([r.mb_per_s for r in main_base])
    print(f"portal / s3transfer throughput: {ratio:.2f}; load average before {load_before[0]:.2f}, "
          f"after {load_after[0]:.2f}")
    print("RSS over the first full portal run (s: MB): " + rss_timeline(main_portal[0]))
    reading = where_time_goes(main_portal, main_base) + "\n\n" + memory_reading(runs, args) + "\n\n" \
        + design_reading(runs, args)
    print(reading)
    if not args.no_write:
        write_results(runs, args, ratio, began, load_before, load_after, reading)


def write_results(runs: list[Run], args: argparse.Namespace, ratio: float, began: str,
                  load_before: tuple[float, ...], load_after: tuple[float, ...],
                  reading: str) -> None:
    lines = [SECTION, "",
             f"`benchmarks/portal_load.py` (`make bench-portal`; {began}, 2 cores, "
             f"load average {load_before[0]:.2f} before and {load_after[0]:.2f} after). "
             + __doc__.split("\n\n")[1].replace("\n", " ") + " "
             + __doc__.split("\n\n")[2].replace("\n", " ") + " "
             f"Chunks in flight per file: {args.in_flight}. Python {sys.version.split()[0]}, "
             f"moto {_version('moto')}, boto3 {_version('boto3')}, s3transfer {_version('s3transfer')}, "
             f"uvicorn {_version('uvicorn')}, httpx {_version('httpx')}.", "",
             *table(runs), "",
             f"Throughput, portal / s3transfer ({args.files} x {args.mb} MB, medians): **{ratio:.2f}**.", "",
             reading, ""]
    lines += ["Each run, in the order run (CPU seconds during the run; \"other jobs\" is what the rest of the "
              "machine used meanwhile):", "",
              "| # | setup | wall s | MB/s | per upload s, median | complete s, median | portal RSS MB: start / peak / "
              "end | CPU s: portal / moto / client / other jobs | load at start |",
              "|---:|---|---:|---:|---:|---:|---|---|---:|"]
    for number, run in enumerate(runs, start=1):
        portal = run.kind.startswith("portal")
        lines.append(f"| {number} | {run.kind}, {run.files} x {run.file_bytes / MB:.0f} MB | {run.wall_s:.1f} | "
                     f"{run.mb_per_s:.0f} | {med(run.upload_s):.1f} | {f'{med(run.complete_s):.1f}' if portal else '-'}"
                     f" | {f'{run.rss_start_mb:.0f} / {run.rss_peak_mb:.0f} / {run.rss_end_mb:.0f}' if portal else '-'}"
                     f" | {f'{run.portal_cpu_s:.0f}' if portal else '-'} / {run.moto_cpu_s:.0f} / "
                     f"{run.client_cpu_s:.0f} / {max(0.0, run.others_cpu_s):.0f} | {run.load_before:.1f} |")
    first = next(r for r in runs if r.kind == "portal (S3)" and r.files == args.files and r.file_bytes == args.mb * MB)
    lines += ["", f"Portal RSS over its first {args.files} x {args.mb} MB run on S3 (seconds: MB): "
              f"{rss_timeline(first)}.", ""]
    replace_section(SECTION, "\n".join(lines) + "\n")


def _version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


if __name__ == "__main__":
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, 4096), hard), hard))
    raise SystemExit(main())
