"""S3 failures, for real: a loopback TCP proxy in front of the moto server hangs or cuts connections.

Every failure must come out of the storage as a StorageError that names what was being done,
within attempts x timeout; a cut upload must leave no multipart upload behind; the sweep must
remove abandoned writes (S3 multipart uploads, local `.part` files) and only old ones; and the
CLI must reach S3 with its credentials in the environment only.
"""

import contextlib
import hashlib
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import boto3
import pytest

from genoflow_dagster.errors import ErrorCode, StorageError
from genoflow_dagster.resources.storage import LocalStorage, S3Storage
from tests.conftest import make_s3_storage

pytestmark = pytest.mark.integration

TIMEOUT = 1.0
ATTEMPTS = 2
# attempts x timeout, plus botocore's backoff between attempts (< 0.1 s for network errors) and a
# margin for a loaded 2-core machine. A request with a body (PUT of an object or a part) first waits
# up to 1 s for `100 Continue` (fixed in botocore), so it gets one more second per attempt.
HUNG_CALL_BOUND = ATTEMPTS * TIMEOUT + 1.5
HUNG_BODY_CALL_BOUND = ATTEMPTS * (TIMEOUT + 1) + 1.5
MiB = 1024 * 1024


class LoopbackProxy:
    """A TCP proxy on 127.0.0.1 in front of `upstream`, switchable at run time.

    - `hang = True`: every connection, new or pooled, still accepts bytes but nothing reaches the
      server and nothing comes back (the hung endpoint of the operator's report).
    - `stall = True`: answers stop coming back too, mid-body included (a server that hangs while
      sending an object).
    - `cut_after(total, per_connection)`: once `total` bytes have gone upstream, any connection
      that forwards `per_connection` more is closed in the middle of its request (a network cut
      during a big upload; small requests such as an abort still get through).
    - `cut_answer_after(size)`: the next answer is cut once `size` bytes of it have come back.
    - `hang_after(total)`: switches to `hang` by itself once `total` bytes have gone upstream.
    """

    def __init__(self, upstream: str) -> None:
        host, port = upstream.removeprefix("http://").split(":")
        self._upstream = (host, int(port))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self.hang = False
        self.stall = False
        self._cut_answer_after: int | None = None
        self._hang_after: int | None = None
        self._cut_total: int | None = None
        self._cut_per_connection = 0
        self._forwarded = 0
        self.cuts = 0
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def cut_after(self, total: int, per_connection: int) -> None:
        self._cut_total, self._cut_per_connection = total, per_connection

    def cut_answer_after(self, size: int) -> None:
        self._cut_answer_after = size

    def hang_after(self, total: int) -> None:
        self._hang_after = total

    def close(self) -> None:
        self._listener.close()
        for sock in list(self._sockets):
            _close(sock)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self._upstream)
            self._sockets += [client, server]
            threading.Thread(target=self._client_to_server, args=(client, server), daemon=True).start()
            threading.Thread(target=self._server_to_client, args=(server, client), daemon=True).start()

    def _client_to_server(self, client: socket.socket, server: socket.socket) -> None:
        sent_while_armed = 0
        try:
            while data := client.recv(256 * 1024):
                if self.hang:
                    continue  # swallowed: the request never reaches the server, no answer ever comes
                with self._lock:
                    self._forwarded += len(data)
                    armed = self._cut_total is not None and self._forwarded > self._cut_total
                    if self._hang_after is not None and self._forwarded > self._hang_after:
                        self.hang = True
                        continue
                if armed:
                    sent_while_armed += len(data)
                    if sent_while_armed > self._cut_per_connection:
                        self.cuts += 1
                        break
                server.sendall(data)
        except OSError:
            pass
        _close(client)
        _close(server)

    def _server_to_client(self, server: socket.socket, client: socket.socket) -> None:
        answered = 0
        try:
            while data := server.recv(256 * 1024):
                while self.stall:
                    time.sleep(0.05)  # hold the bytes: the client sees silence, not an end
                answered += len(data)
                if self._cut_answer_after is not None and answered > self._cut_answer_after:
                    self._cut_answer_after = None
                    self.cuts += 1
                    break
                client.sendall(data)
        except OSError:
            pass
        _close(client)
        _close(server)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


@pytest.fixture
def proxy(s3_endpoint):
    proxy = LoopbackProxy(s3_endpoint)
    yield proxy
    proxy.close()


def _through(proxy: LoopbackProxy, storage: S3Storage, timeout: float = TIMEOUT) -> S3Storage:
    """The same bucket as `storage`, reached through the proxy with a short timeout and few attempts."""
    return S3Storage(bucket=storage.bucket, endpoint_url=proxy.endpoint, region_name="us-east-1",
                     aws_access_key_id="testing", aws_secret_access_key="testing",
                     timeout_seconds=timeout, max_attempts=ATTEMPTS)


def _direct_client(endpoint: str):
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def _big_file(path: Path, size: int) -> Path:
    block = os.urandom(MiB)
    with open(path, "wb") as fh:
        for _ in range(size // MiB):
            fh.write(block)
    return path


def _timed_failure(operation) -> tuple[StorageError, float]:
    started = time.monotonic()
    with pytest.raises(StorageError) as info:
        operation()
    return info.value, time.monotonic() - started


def test_a_hung_endpoint_fails_each_operation_in_bounded_time_with_a_storage_error(s3_endpoint, proxy, tmp_path):
    direct = make_s3_storage(s3_endpoint)
    direct.put_bytes(b"@r\nACGT\n+\nIIII\n", "landing/S1/r.fq")
    big = _big_file(tmp_path / "big.bin", 20 * MiB)
    storage = _through(proxy, direct)
    assert [o.key for o in storage.list("landing/")] == ["landing/S1/r.fq"]  # the proxy forwards until hung
    proxy.hang = True

    def read() -> None:
        with storage.open_read("landing/S1/r.fq") as fh:
            fh.read()

    operations = {
        "listing landing/": lambda: list(storage.list("landing/")),
        "checking landing/S1/r.fq": lambda: storage.stat("landing/S1/r.fq"),
        "reading landing/S1/r.fq": read,
        "writing processed/S1/a.json": lambda: storage.put_bytes(b"{}", "processed/S1/a.json"),
        "writing raw/S1/big.bin": lambda: storage.put_file(big, "raw/S1/big.bin"),
    }
    elapsed = {}
    for action, operation in operations.items():
        error, elapsed[action] = _timed_failure(operation)
        assert error.reason == "TIMEOUT" and error.error_code == ErrorCode.STORAGE_ERROR
        assert f"S3 did not answer within 1 s while {action}" in error.message
        assert proxy.endpoint in error.message
    print({action: round(seconds, 2) for action, seconds in elapsed.items()})
    assert all(seconds >= ATTEMPTS * TIMEOUT for seconds in elapsed.values()), elapsed
    with_body = {"writing processed/S1/a.json"}  # a small object is one PUT; a big one starts with a bodiless POST
    assert all(seconds < (HUNG_BODY_CALL_BOUND if action in with_body else HUNG_CALL_BOUND)
               for action, seconds in elapsed.items()), elapsed
    proxy.hang = False
    assert not direct.exists("processed/S1/a.json") and not direct.exists("raw/S1/big.bin")


def test_a_read_cut_mid_object_resumes_where_it_stopped(s3_endpoint, proxy, tmp_path):
    direct = make_s3_storage(s3_endpoint)
    source = _big_file(tmp_path / "big.bin", 20 * MiB)
    direct.put_file(source, "raw/S1/big.bin")
    storage = _through(proxy, direct)
    proxy.cut_answer_after(6 * MiB)
    streamed = hashlib.sha256()
    with storage.open_read("raw/S1/big.bin") as fh:
        while chunk := fh.read(MiB):
            streamed.update(chunk)
    assert proxy.cuts == 1
    assert streamed.hexdigest() == hashlib.sha256(source.read_bytes()).hexdigest()


def test_a_read_that_stalls_mid_object_fails_as_a_storage_error_in_bounded_time(s3_endpoint, proxy, tmp_path):
    direct = make_s3_storage(s3_endpoint)
    direct.put_file(_big_file(tmp_path / "big.bin", 20 * MiB), "raw/S1/big.bin")
    storage = _through(proxy, direct)
    with pytest.raises(StorageError) as info, storage.open_read("raw/S1/big.bin") as fh:
        assert len(fh.read(MiB)) == MiB
        proxy.hang = proxy.stall = True  # what is already in socket buffers still arrives, then silence
        started = time.monotonic()
        while fh.read(MiB):
            pass
    elapsed = time.monotonic() - started
    proxy.stall = False
    assert info.value.reason == "TIMEOUT" and "while reading raw/S1/big.bin" in info.value.message
    # one silent read (1 s), then one resume whose GET is refused an answer attempts x timeout
    assert TIMEOUT + ATTEMPTS * TIMEOUT <= elapsed < TIMEOUT + HUNG_CALL_BOUND, elapsed
    print(f"stalled read failed after {elapsed:.2f} s")


def test_a_stopped_endpoint_is_unreachable_not_a_crash():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once the socket closes
    storage = S3Storage(bucket="b", endpoint_url=f"http://127.0.0.1:{port}", aws_access_key_id="testing",
                        aws_secret_access_key="testing", timeout_seconds=TIMEOUT, max_attempts=ATTEMPTS)
    error, _ = _timed_failure(lambda: list(storage.list("landing/")))
    assert error.reason == "UNREACHABLE"
    assert error.message == f"cannot reach S3 while listing landing/ (endpoint http://127.0.0.1:{port})"


def test_a_connection_cut_mid_upload_leaves_no_multipart_upload_and_no_object(s3_endpoint, proxy, tmp_path):
    direct = make_s3_storage(s3_endpoint)
    storage = _through(proxy, direct, timeout=5.0)
    source = _big_file(tmp_path / "reads.bam", 20 * MiB)
    proxy.cut_after(total=10 * MiB, per_connection=MiB)  # part 1 (8 MiB) lands, part 2 is cut, and its retry
    with pytest.raises(StorageError) as info:
        storage.put_file(source, "processed/S1/reads.bam")
    assert info.value.reason == "CONNECTION_LOST"
    assert "while writing processed/S1/reads.bam (part 2)" in info.value.message
    assert proxy.cuts == ATTEMPTS
    client = _direct_client(s3_endpoint)
    assert client.list_multipart_uploads(Bucket=direct.bucket).get("Uploads", []) == []
    assert not direct.exists("processed/S1/reads.bam")


def test_an_upload_whose_endpoint_dies_is_left_for_the_sweep(s3_endpoint, proxy, tmp_path):
    """When S3 stops answering mid-upload the abort cannot get through either: the sweep removes it later."""
    direct = make_s3_storage(s3_endpoint)
    storage = _through(proxy, direct)
    source = _big_file(tmp_path / "reads.bam", 20 * MiB)
    proxy.hang_after(10 * MiB)
    started = time.monotonic()
    with pytest.raises(StorageError) as info:
        storage.put_file(source, "processed/S1/reads.bam")
    elapsed = time.monotonic() - started
    assert info.value.reason == "TIMEOUT" and "while writing processed/S1/reads.bam (part 2)" in info.value.message
    # the part (attempts x (100-continue wait + timeout)), then the abort that gets no answer either
    assert elapsed < ATTEMPTS * (TIMEOUT + 1) + ATTEMPTS * TIMEOUT + 2.0, elapsed
    print(f"multipart upload hung mid-way failed after {elapsed:.2f} s")
    client = _direct_client(s3_endpoint)
    assert [u["Key"] for u in client.list_multipart_uploads(Bucket=direct.bucket)["Uploads"]] == [
        "processed/S1/reads.bam"]
    assert direct.sweep_incomplete_writes("processed/", older_than_seconds=0) == ["processed/S1/reads.bam"]
    assert client.list_multipart_uploads(Bucket=direct.bucket).get("Uploads", []) == []
    assert not direct.exists("processed/S1/reads.bam")


def test_a_failed_writer_block_aborts_its_multipart_upload(s3_endpoint):
    storage = make_s3_storage(s3_endpoint)
    with pytest.raises(RuntimeError), storage.open_write("processed/S1/half.bam") as fh:
        fh.write(b"x" * (9 * MiB))  # past one part: the multipart upload has begun
        assert _direct_client(s3_endpoint).list_multipart_uploads(Bucket=storage.bucket)["Uploads"]
        raise RuntimeError("the caller crashed mid-write")
    assert _direct_client(s3_endpoint).list_multipart_uploads(Bucket=storage.bucket).get("Uploads", []) == []
    assert not storage.exists("processed/S1/half.bam")


def test_sweep_aborts_old_abandoned_multipart_uploads_and_leaves_young_ones(s3_endpoint):
    storage = make_s3_storage(s3_endpoint, prefix="site")
    client = _direct_client(s3_endpoint)
    abandoned = client.create_multipart_upload(Bucket=storage.bucket, Key="site/processed/S1/old.bam")
    client.upload_part(Bucket=storage.bucket, Key="site/processed/S1/old.bam", UploadId=abandoned["UploadId"],
                       PartNumber=1, Body=b"x" * 1024)
    client.create_multipart_upload(Bucket=storage.bucket, Key="site/landing/S1/elsewhere.fq")
    # Ages are the server's `Initiated` times; moto reports one fixed date for every upload, so the
    # clock is pinned relative to it: a minute after that date the upload is young for a one-hour
    # cutoff and old for a 30 s one.
    initiated = client.list_multipart_uploads(Bucket=storage.bucket)["Uploads"][0]["Initiated"].timestamp()
    assert storage.sweep_incomplete_writes("processed/", older_than_seconds=3600, now=initiated + 60) == []
    assert len(client.list_multipart_uploads(Bucket=storage.bucket)["Uploads"]) == 2
    assert storage.sweep_incomplete_writes("processed/", older_than_seconds=30, now=initiated + 60) == [
        "processed/S1/old.bam"]
    left = [u["Key"] for u in client.list_multipart_uploads(Bucket=storage.bucket)["Uploads"]]
    assert left == ["site/landing/S1/elsewhere.fq"]
    assert storage.sweep_incomplete_writes("", older_than_seconds=30, now=initiated + 60) == ["landing/S1/elsewhere.fq"]
    assert client.list_multipart_uploads(Bucket=storage.bucket).get("Uploads", []) == []


def test_sweep_removes_old_local_part_files_and_leaves_young_ones_and_objects(tmp_path):
    storage = LocalStorage(base_dir=str(tmp_path / "zones"))
    storage.put_bytes(b"done", "processed/S1/a.json")
    folder = tmp_path / "zones" / "processed" / "S1"
    old = folder / ".reads.bam.k2j3h4.part"
    young = folder / ".calls.vcf.gz.x8y7z6.part"
    elsewhere = tmp_path / "zones" / "landing" / "S1" / ".r.fq.abc123.part"
    for path in (old, young, elsewhere):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"partial")
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    os.utime(elsewhere, (an_hour_ago, an_hour_ago))
    os.utime(folder / "a.json", (an_hour_ago, an_hour_ago))  # an old object is not debris

    assert storage.sweep_incomplete_writes("processed/", older_than_seconds=600) == [
        "processed/S1/.reads.bam.k2j3h4.part"]
    assert not old.exists() and young.exists() and elsewhere.exists()
    assert storage.get_bytes("processed/S1/a.json") == b"done"
    assert storage.sweep_incomplete_writes("processed/", older_than_seconds=600) == []


def test_cli_upload_reaches_s3_with_credentials_only_in_the_environment(s3_endpoint, tmp_path):
    bucket = f"genoflow-{uuid.uuid4().hex[:12]}"
    _direct_client(s3_endpoint).create_bucket(Bucket=bucket)
    reads = tmp_path / "S7_R1.fastq"
    reads.write_bytes(b"@r1\nACGT\n+\nIIII\n")
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "GENOFLOW_"))}
    env.update(GENOFLOW_STORAGE="s3", GENOFLOW_S3_BUCKET=bucket, GENOFLOW_S3_ENDPOINT_URL=s3_endpoint,
               AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1",
               GENOFLOW_DATA_DIR=str(tmp_path / "data"))
    genoflow = Path(sys.executable).with_name("genoflow")
    done = subprocess.run([str(genoflow), "upload", str(reads), "--sample", "S7"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"s3://{bucket}/landing/S7/S7_R1.fastq" in done.stdout
    body = _direct_client(s3_endpoint).get_object(Bucket=bucket, Key="landing/S7/S7_R1.fastq")["Body"].read()
    assert body == reads.read_bytes()



def test_a_copy_above_the_single_request_limit_goes_part_by_part(s3_endpoint, tmp_path, monkeypatch):
    """The path taken for objects over 5 GiB, run on 12 MiB by lowering the limits (real requests to moto)."""
    from genoflow_dagster.resources import storage as storage_module

    monkeypatch.setattr(storage_module, "S3_MAX_COPY_OBJECT", MiB)
    monkeypatch.setattr(storage_module, "S3_COPY_PART_SIZE", 5 * MiB)
    storage = make_s3_storage(s3_endpoint)
    source = _big_file(tmp_path / "big.bin", 12 * MiB)
    storage.put_file(source, "raw/S1/sha/big.bin")
    info = storage.copy("raw/S1/sha/big.bin", "quarantine/S1/sha/big.bin")
    assert info.size == 12 * MiB and info.etag.endswith("-3")  # three parts: 5 + 5 + 2 MiB
    back = storage.get_file("quarantine/S1/sha/big.bin", tmp_path / "back.bin")
    assert hashlib.sha256(back.read_bytes()).digest() == hashlib.sha256(source.read_bytes()).digest()
    with pytest.raises(StorageError) as missing:
        storage.copy("raw/S1/sha/none.bin", "quarantine/S1/sha/none.bin")
    assert missing.value.reason == "NOT_FOUND" and "raw/S1/sha/none.bin" in missing.value.message


def test_envvar_credentials_are_read_outside_a_run_and_stay_names_in_the_resource_config(s3_endpoint,
                                                                                         monkeypatch):
    import dagster as dg

    bucket = f"genoflow-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "a-secret-value")
    storage = S3Storage(bucket=bucket, endpoint_url=s3_endpoint, aws_access_key_id=dg.EnvVar("AWS_ACCESS_KEY_ID"),
                        aws_secret_access_key=dg.EnvVar("AWS_SECRET_ACCESS_KEY"))
    _direct_client(s3_endpoint).create_bucket(Bucket=bucket)
    storage.put_bytes(b"ok", "landing/S1/a.txt")  # outside any run: the EnvVars are read here
    shown = storage.get_resource_definition().config_schema.default_value  # what the UI shows
    assert shown["aws_secret_access_key"] == {"env": "AWS_SECRET_ACCESS_KEY"}
    assert "a-secret-value" not in repr(shown) and "a-secret-value" not in repr(storage)

    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    half = S3Storage(bucket=bucket, endpoint_url=s3_endpoint, aws_access_key_id=dg.EnvVar("AWS_ACCESS_KEY_ID"),
                     aws_secret_access_key=dg.EnvVar("AWS_SECRET_ACCESS_KEY"))
    with pytest.raises(StorageError) as info:
        half.stat("landing/S1/a.txt")
    assert info.value.reason == "ACCESS_DENIED" and "AWS_ACCESS_KEY_ID" in info.value.message


def test_an_asset_that_loses_s3_for_a_moment_is_retried_in_the_same_run(s3_endpoint, proxy, monkeypatch):
    """The fault matrix's S3 rows: a step hit by an outage is tried again in its run (RetryRequested), so the
    sample's finished steps do not run a second time; a lasting failure of another kind is not retried."""
    import dagster as dg

    from genoflow_dagster.assets import transient

    monkeypatch.setattr(transient, "STORAGE_RETRY_WAIT_SECONDS", 1)
    storage = make_s3_storage(s3_endpoint)
    storage.put_bytes(b"x", "landing/S1/a.fastq")
    through = _through(proxy, storage)
    attempts: list[float] = []

    @dg.asset
    @transient.retry_storage_outages
    def lists_landing(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        attempts.append(time.monotonic())
        if len(attempts) == 1:
            proxy.hang = True
            threading.Timer(3.0, lambda: setattr(proxy, "hang", False)).start()
        keys = [o.key for o in through.list("landing/")]
        return dg.MaterializeResult(metadata={"keys": len(keys)})

    result = dg.materialize([lists_landing], raise_on_error=False)
    assert result.success and len(attempts) >= 2
    retried = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]
    assert len(retried) == len(attempts) - 1, "each failed attempt was handed back to Dagster for a retry"

    @dg.asset
    @transient.retry_storage_outages
    def missing_object(context: dg.AssetExecutionContext) -> None:
        attempts.append(time.monotonic())
        through.get_bytes("landing/S1/nothing-here")

    attempts.clear()
    result = dg.materialize([missing_object], raise_on_error=False)
    assert not result.success and len(attempts) == 1, "NOT_FOUND is not an outage: no retry"

    @dg.asset
    @transient.retry_storage_outages
    def lasting_outage(context: dg.AssetExecutionContext) -> None:
        attempts.append(time.monotonic())
        raise StorageError("UNREACHABLE", "nothing listens at http://127.0.0.1:9 while listing landing/")

    monkeypatch.setattr(transient, "STORAGE_RETRY_WAIT_SECONDS", 0)
    attempts.clear()
    result = dg.materialize([lasting_outage], raise_on_error=False)
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    assert len(attempts) == transient.STORAGE_RETRIES + 1
    assert "nothing listens" in failure.event_specific_data.error.cause.message, "the last failure names the outage"
