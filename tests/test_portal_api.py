"""The upload portal's REST API over real storage (local folder, and moto's S3 server over HTTP).

Data: /work/shared/realdata (FAK72834_barcode07.fastq: Oxford Nanopore SARS-CoV-2 reads from
connor-lab/ncov2019-artic-nf; ERR5069949_test_{1,2}.fastq.gz: nf-core's NextSeq SARS-CoV-2 pairs).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import dagster as dg
import httpx
import pytest
from fastapi.testclient import TestClient

from genoflow_dagster import zones
from genoflow_dagster.formats.detect import EXTENSIONS
from genoflow_dagster.portal.access import TokenStore
from genoflow_dagster.portal.app import API_ERROR_CODES, PortalSettings, create_app
from genoflow_dagster.portal.uploads import UploadStore
from genoflow_dagster.resources.storage import LocalStorage, S3Storage, Storage
from genoflow_dagster.sample_record import write_validation
from genoflow_dagster.verdicts import USABLE_INPUTS, GateOutcome
from tests.records import sample_record

REALDATA = Path(os.environ.get("GENOFLOW_REALDATA", "/work/shared/realdata"))
NANOPORE = REALDATA / "FAK72834_barcode07.fastq"
ILLUMINA_R1 = REALDATA / "ERR5069949_test_1.fastq.gz"
ILLUMINA_R2 = REALDATA / "ERR5069949_test_2.fastq.gz"

pytestmark = pytest.mark.skipif(not NANOPORE.is_file(), reason="needs /work/shared/realdata")


def portal(storage: Storage, state_dir: Path, *, chunk_bytes: int = 256 * 1024, max_file_bytes: int = 5 * 1024**3,
           require_tokens: bool = False, instance_getter=lambda: None) -> TestClient:
    settings = PortalSettings(state_dir=state_dir, max_file_bytes=max_file_bytes, chunk_bytes=chunk_bytes,
                              require_tokens=require_tokens)
    return TestClient(create_app(storage, instance_getter, settings), raise_server_exceptions=False)


def landing_objects(storage: Storage) -> list[str]:
    """Everything under landing/, including what a listing skips (a local write's hidden temp files)."""
    if isinstance(storage, LocalStorage):
        root = Path(storage.base_dir) / zones.LANDING
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []
    return [o.key for o in storage.list(zones.landing_prefix())]


def error_of(response) -> tuple[int, str]:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["code"] in API_ERROR_CODES  # uploads.ERROR_CODES and the access, limit and link codes
    assert "Error(" not in body["error"]["message"] and "Traceback" not in body["error"]["message"]
    return response.status_code, body["error"]["code"]


def chunks_of(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


def test_supported_formats_are_the_validators_extensions(storage, tmp_path):
    client = portal(storage, tmp_path / "state", max_file_bytes=123_456_789)
    answer = client.get("/supported_formats").json()
    listed = {ext: entry["format"] for entry in answer["formats"] for ext in entry["extensions"]}
    assert listed == EXTENSIONS
    compressed = {ext for entry in answer["formats"] for ext in entry["compressed_extensions"]}
    assert ".fastq.gz" in compressed and ".vcf.gz" in compressed and ".bam.gz" not in compressed
    assert answer["max_file_bytes"] == 123_456_789


def test_chunked_upload_resumes_after_an_interruption_and_lands_whole(storage, tmp_path):
    source = NANOPORE.read_bytes()
    expected_sha = hashlib.sha256(source).hexdigest()
    client = portal(storage, tmp_path / "state")
    started = client.post("/uploads", json={"sample_id": "NANO1", "file_name": NANOPORE.name, "size": len(source),
                                            "sha256": expected_sha})
    assert started.status_code == 201, started.text
    upload = started.json()
    chunks = chunks_of(source, upload["chunk_size"])
    assert upload["chunk_count"] == len(chunks) == 9

    for number in range(5):
        assert client.put(f"/uploads/{upload['upload_id']}/chunks/{number}", content=chunks[number]).status_code == 200
    # The connection drops halfway through chunk 5: the server holds only part of it and refuses it.
    cut = client.put(f"/uploads/{upload['upload_id']}/chunks/5", content=chunks[5][:1000])
    assert error_of(cut) == (400, "VALIDATION_ERROR")
    assert landing_objects(storage) == []

    # The client resumes from what the server says it has, re-sending one chunk it was unsure of.
    progress = client.get(f"/uploads/{upload['upload_id']}").json()
    assert progress["chunks_stored"] == [0, 1, 2, 3, 4] and progress["chunks_missing"] == [5, 6, 7, 8]
    assert client.put(f"/uploads/{upload['upload_id']}/chunks/4", content=chunks[4]).status_code == 200
    for number in progress["chunks_missing"]:
        assert client.put(f"/uploads/{upload['upload_id']}/chunks/{number}", content=chunks[number]).status_code == 200
    assert landing_objects(storage) == []  # every chunk is in, but nothing lands before complete

    done = client.post(f"/uploads/{upload['upload_id']}/complete")
    assert done.status_code == 200, done.text
    assert done.json()["sha256"] == expected_sha and done.json()["state"] == "landed"
    key = zones.landing_key("NANO1", NANOPORE.name)
    assert storage.get_bytes(key) == source
    assert landing_objects(storage) in ([f"NANO1/{NANOPORE.name}"], [key])
    assert not (tmp_path / "state" / "chunks" / upload["upload_id"]).exists()
    # Completing again answers the same result.
    assert client.post(f"/uploads/{upload['upload_id']}/complete").json()["sha256"] == expected_sha


def test_two_interleaved_uploads_do_not_mix(storage, tmp_path):
    client = portal(storage, tmp_path / "state", chunk_bytes=1024)
    sources = {path.name: path.read_bytes() for path in (ILLUMINA_R1, ILLUMINA_R2)}
    ids = {name: client.post("/uploads", json={"sample_id": "ERR5069949", "file_name": name,
                                               "size": len(data)}).json()["upload_id"]
           for name, data in sources.items()}
    pieces = {name: chunks_of(data, 1024) for name, data in sources.items()}
    for number in range(max(len(p) for p in pieces.values())):
        for name in reversed(sorted(sources)):  # R2's chunk, then R1's, and so on
            if number < len(pieces[name]):
                response = client.put(f"/uploads/{ids[name]}/chunks/{number}", content=pieces[name][number])
                assert response.status_code == 200, response.text
    for name, data in sources.items():
        done = client.post(f"/uploads/{ids[name]}/complete").json()
        assert done["sha256"] == hashlib.sha256(data).hexdigest()
        assert storage.get_bytes(zones.landing_key("ERR5069949", name)) == data
    assert sources[ILLUMINA_R1.name] != sources[ILLUMINA_R2.name]


def test_one_request_upload_lands_and_history_lists_it(storage, tmp_path):
    client = portal(storage, tmp_path / "state")
    data = ILLUMINA_R1.read_bytes()
    answer = client.post("/upload", data={"sample_id": "ERR5069949"},
                         files={"file": (ILLUMINA_R1.name, data, "application/gzip")})
    assert answer.status_code == 201, answer.text
    assert answer.json()["sha256"] == hashlib.sha256(data).hexdigest()
    assert storage.get_bytes(zones.landing_key("ERR5069949", ILLUMINA_R1.name)) == data
    history = client.get("/upload_history").json()["uploads"]
    assert [u["upload_id"] for u in history] == [answer.json()["upload_id"]]
    status = client.get(f"/upload_status/{answer.json()['upload_id']}").json()
    assert status["state"] == "queued" and status["run"] is None  # landed; no instance to read a run from


def _raw_form(file_name: str) -> tuple[bytes, dict[str, str]]:
    """A browser's form when no file was chosen: a file part whose filename is empty."""
    body = (b'--B\r\nContent-Disposition: form-data; name="sample_id"\r\n\r\nS1\r\n'
            b'--B\r\nContent-Disposition: form-data; name="file"; filename="' + file_name.encode() +
            b'"\r\nContent-Type: application/octet-stream\r\n\r\n\r\n--B--\r\n')
    return body, {"content-type": "multipart/form-data; boundary=B"}


def test_each_error_code(storage, tmp_path):
    client = portal(storage, tmp_path / "state", max_file_bytes=1_000_000, chunk_bytes=256 * 1024)
    fastq = NANOPORE.read_bytes()

    assert error_of(client.post("/upload", data={"sample_id": "S1"})) == (400, "NO_FILE")
    body, headers = _raw_form("")
    assert error_of(client.post("/upload", content=body, headers=headers)) == (400, "EMPTY_FILENAME")
    assert error_of(client.post("/uploads", json={"sample_id": "S1", "file_name": " ", "size": 10})) == \
        (400, "EMPTY_FILENAME")
    for name in ("notes.docx", "reads.bam.gz", "README"):
        declared = client.post("/uploads", json={"sample_id": "S1", "file_name": name, "size": 10})
        assert error_of(declared) == (400, "INVALID_FILE_TYPE"), name
    assert error_of(client.post("/upload", data={"sample_id": "S1"},
                                files={"file": ("reads.exe", b"MZ", "application/octet-stream")})) == \
        (400, "INVALID_FILE_TYPE")

    # Too large by the declared size, by the bytes of a one-request upload, and by bytes beyond a chunk's share.
    assert error_of(client.post("/uploads", json={"sample_id": "S1", "file_name": "a.fastq", "size": 1_000_001})) \
        == (413, "FILE_TOO_LARGE")
    assert error_of(client.post("/upload", data={"sample_id": "S1"},
                                files={"file": (NANOPORE.name, fastq, "text/plain")})) == (413, "FILE_TOO_LARGE")
    unsized = client.post("/upload", content=iter([b"--B--\r\n"]),
                          headers={"content-type": "multipart/form-data; boundary=B"})  # sent chunked: no length
    assert error_of(unsized) == (411, "VALIDATION_ERROR")
    small = client.post("/uploads", json={"sample_id": "S1", "file_name": "a.fastq", "size": 300_000}).json()
    assert client.put(f"/uploads/{small['upload_id']}/chunks/0", content=fastq[:262_144]).status_code == 200
    assert error_of(client.put(f"/uploads/{small['upload_id']}/chunks/1", content=fastq[262_144:400_000])) == \
        (413, "FILE_TOO_LARGE")

    for bad in ({"sample_id": "../etc", "file_name": "a.fastq", "size": 10},
                {"sample_id": "S1", "file_name": "a.fastq", "size": 0},
                {"sample_id": "S1", "file_name": "a.fastq", "size": 10, "sha256": "abc"},
                {"sample_id": "S1", "file_name": "a.fastq"}):
        assert error_of(client.post("/uploads", json=bad))[1] == "VALIDATION_ERROR", bad
    assert error_of(client.post(f"/uploads/{small['upload_id']}/complete")) == (409, "VALIDATION_ERROR")
    assert error_of(client.put(f"/uploads/{small['upload_id']}/chunks/9", content=b"x")) == (400, "VALIDATION_ERROR")
    assert error_of(client.get("/uploads/no-such-upload")) == (404, "VALIDATION_ERROR")

    # A declared SHA-256 the bytes do not match: refused at complete, nothing lands.
    part = fastq[:1000]
    wrong = client.post("/uploads", json={"sample_id": "S1", "file_name": "b.fastq", "size": 1000,
                                          "sha256": hashlib.sha256(b"other").hexdigest()}).json()
    client.put(f"/uploads/{wrong['upload_id']}/chunks/0", content=part)
    assert error_of(client.post(f"/uploads/{wrong['upload_id']}/complete")) == (422, "VALIDATION_ERROR")
    assert landing_objects(storage) == []
    assert client.get(f"/upload_status/{wrong['upload_id']}").json()["state"] == "failed"


def test_storage_error_when_the_landing_zone_cannot_be_written(tmp_path, request):
    failing: list[Storage] = []
    zones_dir = tmp_path / "zones"
    zones_dir.mkdir()
    (zones_dir / "landing").write_text("a file where the landing folder should be")
    failing.append(LocalStorage(base_dir=str(zones_dir)))
    endpoint = request.getfixturevalue("s3_endpoint")
    failing.append(S3Storage(bucket=f"missing-{uuid.uuid4().hex[:8]}", endpoint_url=endpoint, region_name="us-east-1",
                             aws_access_key_id="testing", aws_secret_access_key="testing", max_attempts=1))
    declaration = {"sample_id": "S1", "file_name": "r.fastq.gz", "size": ILLUMINA_R1.stat().st_size}
    # Local: the write fails at complete; the chunks stay, so once storage is back the same upload completes
    # without sending them again.
    client = portal(failing[0], tmp_path / "state0")
    upload = client.post("/uploads", json=declaration).json()
    client.put(f"/uploads/{upload['upload_id']}/chunks/0", content=ILLUMINA_R1.read_bytes())
    assert error_of(client.post(f"/uploads/{upload['upload_id']}/complete")) == (503, "STORAGE_ERROR")
    assert client.get(f"/uploads/{upload['upload_id']}").json()["chunks_stored"] == [0]
    # S3: the multipart upload is begun when the upload is declared, so a missing bucket is said before a
    # byte is sent, and nothing is left waiting for chunks.
    client = portal(failing[1], tmp_path / "state1")
    assert error_of(client.post("/uploads", json=declaration)) == (503, "STORAGE_ERROR")
    assert [u["state"] for u in client.get("/upload_history").json()["uploads"]] == ["cancelled"]
    assert error_of(client.post("/upload", data={"sample_id": "S1"},
                                files={"file": ("r.fastq.gz", ILLUMINA_R1.read_bytes())})) == (503, "STORAGE_ERROR")


def test_internal_error_keeps_the_body_shape(tmp_path):
    def broken_instance():
        raise RuntimeError("instance database is locked")

    storage = LocalStorage(base_dir=str(tmp_path / "zones"))
    client = portal(storage, tmp_path / "state", instance_getter=broken_instance)
    landed = client.post("/upload", data={"sample_id": "S1"},
                         files={"file": (ILLUMINA_R1.name, ILLUMINA_R1.read_bytes())}).json()
    answer = client.get(f"/upload_status/{landed['upload_id']}")
    assert error_of(answer) == (500, "INTERNAL_ERROR")
    assert "locked" not in answer.json()["error"]["message"]


def test_status_reads_the_samples_run_and_stored_gates(storage, tmp_path):
    instance = dg.DagsterInstance.ephemeral()
    client = portal(storage, tmp_path / "state", instance_getter=lambda: instance)
    earlier = dg.DagsterRun(job_name="sample_pipeline", run_id=str(uuid.uuid4()), status=dg.DagsterRunStatus.FAILURE,
                            tags={"dagster/partition": "ERR5069949"})
    instance.add_run(earlier)  # a run of the sample's earlier files: not this upload's
    landed = client.post("/upload", data={"sample_id": "ERR5069949"},
                         files={"file": (ILLUMINA_R1.name, ILLUMINA_R1.read_bytes())}).json()
    status_url = f"/upload_status/{landed['upload_id']}"
    assert client.get(status_url).json()["state"] == "queued"

    run = dg.DagsterRun(job_name="sample_pipeline", run_id=str(uuid.uuid4()), status=dg.DagsterRunStatus.STARTED,
                        tags={"dagster/partition": "ERR5069949", "genoflow/trigger": "sensor"})
    instance.add_run(run)
    status = client.get(status_url).json()
    assert status["state"] == "processing" and status["run"]["run_id"] == run.run_id
    assert status["run"]["trigger"] == "sensor" and status["gates"] == [] and status["report"] is None

    gate = GateOutcome(gate=USABLE_INPUTS, status="fail", summary="no usable reads",
                       problems=("ERR5069949_test_1.fastq.gz has no mate",))
    validation = sample_record("ERR5069949", validation=(gate,)).validation
    assert validation is not None
    write_validation(storage, dataclasses.replace(validation, run_id=run.run_id))  # the run's own record
    instance.handle_run_event(run.run_id, dg.DagsterEvent(event_type_value="PIPELINE_FAILURE",
                                                          job_name="sample_pipeline", message="stopped"))
    status = client.get(status_url).json()
    assert status["state"] == "failed"
    assert status["gates"] == [{"gate": USABLE_INPUTS, "status": "fail", "summary": "no usable reads",
                                "problems": ["ERR5069949_test_1.fastq.gz has no mate"], "blocking": True}]


def test_tokens_roles_and_audit(tmp_path):
    storage = LocalStorage(base_dir=str(tmp_path / "zones"))
    client = portal(storage, tmp_path / "state", require_tokens=True)
    store = UploadStore(tmp_path / "state")
    _, admin = TokenStore(store).create("lead", "admin", actor="test")

    def auth(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    assert client.get("/supported_formats").status_code == 200  # public: the page checks files before sending
    assert error_of(client.get("/upload_history")) == (401, "UNAUTHORIZED")
    assert error_of(client.get("/upload_history", headers=auth("guessed"))) == (401, "UNAUTHORIZED")
    tokens = {}
    for name, role in (("alice", "uploader"), ("bob", "uploader"), ("carol", "analyst")):
        made = client.post("/tokens", json={"name": name, "role": role}, headers=auth(admin))
        assert made.status_code == 201, made.text
        tokens[name] = made.json()["token"]
    assert error_of(client.post("/tokens", json={"name": "x", "role": "root"}, headers=auth(admin)))[1] == \
        "VALIDATION_ERROR"

    audited = len(store.audit_rows())
    assert error_of(client.post("/tokens", json={"name": "mallory", "role": "admin"}, headers=auth(tokens["alice"]))) \
        == (403, "FORBIDDEN")
    refusal = store.audit_rows()[audited]
    assert refusal["action"] == "refused" and refusal["allowed"] == 0 and "POST /tokens" in refusal["detail"]

    landed = client.post("/upload", data={"sample_id": "S1"}, headers=auth(tokens["alice"]),
                         files={"file": (ILLUMINA_R1.name, ILLUMINA_R1.read_bytes())}).json()
    assert error_of(client.get(f"/upload_status/{landed['upload_id']}", headers=auth(tokens["bob"]))) == \
        (403, "FORBIDDEN")
    assert client.get("/upload_history", headers=auth(tokens["bob"])).json()["uploads"] == []
    assert client.get(f"/upload_status/{landed['upload_id']}", headers=auth(tokens["carol"])).status_code == 200
    assert [u["upload_id"] for u in client.get("/upload_history", headers=auth(tokens["carol"])).json()["uploads"]] \
        == [landed["upload_id"]]

    # Only hashes at rest; a revoked token stops working; the audit table refuses edits.
    database = (tmp_path / "state" / "portal.sqlite3").read_bytes() + b"".join(
        p.read_bytes() for p in (tmp_path / "state").glob("portal.sqlite3-*"))
    assert all(token.encode() not in database for token in (admin, *tokens.values()))
    alice_id = next(t["token_id"] for t in client.get("/tokens", headers=auth(admin)).json()["tokens"]
                    if t["name"] == "alice")
    assert client.delete(f"/tokens/{alice_id}", headers=auth(admin)).status_code == 200
    assert error_of(client.get("/upload_history", headers=auth(tokens["alice"]))) == (401, "UNAUTHORIZED")
    actions = [row["action"] for row in store.audit_rows()]
    assert actions.count("token_created") == 4 and "token_revoked" in actions and "upload_landed" in actions
    with store.connect() as db, pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("DELETE FROM audit")



def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _send_half_and_hang_up(port: int, path: str, body: bytes, token: str) -> None:
    """A client whose connection dies mid-chunk: it announces the whole chunk, sends half, and closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
                     f"Content-Length: {len(body)}\r\nContent-Type: application/octet-stream\r\n\r\n".encode())
        sock.sendall(body[:len(body) // 2])


def test_genoflow_portal_serves_over_http_and_survives_a_dropped_connection(tmp_path):
    """`genoflow token add` and `genoflow portal` for real (uvicorn on loopback): an upload whose connection
    drops mid-chunk keeps nothing of that chunk, resumes, and lands byte for byte."""
    env = {**os.environ, "GENOFLOW_DATA_DIR": str(tmp_path / "data"), "DAGSTER_HOME": str(tmp_path / "home"),
           "GENOFLOW_STORAGE": "local"}
    cli = [sys.executable, "-m", "genoflow_dagster.cli"]
    made = subprocess.run([*cli, "token", "add", "lab-bench-3", "--role", "uploader"], env=env,
                          capture_output=True, text=True, timeout=120, check=True)
    token = made.stdout.strip()
    port = _free_port()
    server = subprocess.Popen([*cli, "portal", "--host", "127.0.0.1", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{base}/supported_formats", timeout=2)
                break
            except httpx.TransportError:
                assert server.poll() is None and time.monotonic() < deadline, "the portal did not start"
                time.sleep(0.2)
        with httpx.Client(base_url=base, timeout=30) as http:
            assert error_of(http.get("/upload_history")) == (401, "UNAUTHORIZED")
            http.headers["Authorization"] = f"Bearer {token}"
            source = NANOPORE.read_bytes()
            upload = http.post("/uploads", json={"sample_id": "NANO2", "file_name": NANOPORE.name,
                                                 "size": len(source)}).json()
            assert upload["chunk_count"] == 1  # the default 8 MiB chunk holds this 2.2 MB file
            _send_half_and_hang_up(port, f"/uploads/{upload['upload_id']}/chunks/0", source, token)
            time.sleep(0.5)
            assert http.get(f"/uploads/{upload['upload_id']}").json()["chunks_missing"] == [0]
            chunk_dir = tmp_path / "data" / ".portal" / "chunks" / upload["upload_id"]
            assert not chunk_dir.exists() or not any(chunk_dir.iterdir())  # the half chunk was not kept
            assert not (tmp_path / "data" / "landing").exists()
            assert http.put(f"/uploads/{upload['upload_id']}/chunks/0", content=source).status_code == 200
            done = http.post(f"/uploads/{upload['upload_id']}/complete").json()
            assert done["sha256"] == hashlib.sha256(source).hexdigest()
            assert (tmp_path / "data" / "landing" / "NANO2" / NANOPORE.name).read_bytes() == source
            assert http.get("/docs").status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_file_past_one_s3_part_lands_whole_and_nothing_is_in_flight_before_complete(storage, tmp_path):
    """10.5 MB (the Nanopore FASTQ five times over) sent in 1 MiB chunks: more than one 8 MiB part, so S3
    assembles it as a multipart upload, started only at complete (no object and no unfinished upload before)."""
    source = NANOPORE.read_bytes() * 5
    client = portal(storage, tmp_path / "state", chunk_bytes=1024 * 1024)
    upload = client.post("/uploads", json={"sample_id": "NANO5", "file_name": "nano_x5.fastq",
                                           "size": len(source)}).json()
    for number, chunk in enumerate(chunks_of(source, upload["chunk_size"])):
        assert client.put(f"/uploads/{upload['upload_id']}/chunks/{number}", content=chunk).status_code == 200
    assert landing_objects(storage) == []
    if isinstance(storage, S3Storage):
        assert storage._s3().list_multipart_uploads(Bucket=storage.bucket).get("Uploads", []) == []
    done = client.post(f"/uploads/{upload['upload_id']}/complete").json()
    assert done["sha256"] == hashlib.sha256(source).hexdigest()
    key = zones.landing_key("NANO5", "nano_x5.fastq")
    with storage.open_read(key) as landed:
        assert hashlib.sha256(landed.read()).hexdigest() == done["sha256"]
    if isinstance(storage, S3Storage):  # a multipart object's ETag ends in -<parts>
        assert storage.stat(key).etag.endswith("-2")


def test_a_cancelled_upload_keeps_no_chunk_and_takes_no_more(storage, tmp_path):
    client = portal(storage, tmp_path / "state", chunk_bytes=4096)
    data = ILLUMINA_R2.read_bytes()
    upload = client.post("/uploads", json={"sample_id": "S1", "file_name": ILLUMINA_R2.name, "size": len(data)}).json()
    client.put(f"/uploads/{upload['upload_id']}/chunks/0", content=data[:4096])
    assert client.delete(f"/uploads/{upload['upload_id']}").json()["state"] == "cancelled"
    assert not (tmp_path / "state" / "chunks" / upload["upload_id"]).exists()
    assert error_of(client.put(f"/uploads/{upload['upload_id']}/chunks/1", content=data[4096:8192])) == \
        (409, "VALIDATION_ERROR")
    assert error_of(client.post(f"/uploads/{upload['upload_id']}/complete")) == (409, "VALIDATION_ERROR")
    assert client.get(f"/upload_status/{upload['upload_id']}").json()["state"] == "cancelled"
    assert landing_objects(storage) == []


def test_an_upload_whose_server_stopped_mid_complete_completes_after_a_restart(tmp_path):
    storage = LocalStorage(base_dir=str(tmp_path / "zones"))
    data = ILLUMINA_R1.read_bytes()
    client = portal(storage, tmp_path / "state")
    upload = client.post("/uploads", json={"sample_id": "S1", "file_name": ILLUMINA_R1.name, "size": len(data)}).json()
    client.put(f"/uploads/{upload['upload_id']}/chunks/0", content=data)
    store = UploadStore(tmp_path / "state")
    with store.connect() as db:  # what a server killed while streaming the chunks into storage leaves
        db.execute("UPDATE uploads SET state = 'assembling' WHERE upload_id = ?", (upload["upload_id"],))
    assert error_of(client.post(f"/uploads/{upload['upload_id']}/complete")) == (409, "VALIDATION_ERROR")

    restarted = portal(storage, tmp_path / "state")
    done = restarted.post(f"/uploads/{upload['upload_id']}/complete").json()
    assert done["sha256"] == hashlib.sha256(data).hexdigest()
    assert storage.get_bytes(zones.landing_key("S1", ILLUMINA_R1.name)) == data


def test_two_uploads_at_once_from_two_threads_do_not_mix_and_one_file_has_one_sender(storage, tmp_path):
    settings = PortalSettings(state_dir=tmp_path / "state", max_file_bytes=10**9, chunk_bytes=1024,
                              require_tokens=False)
    app = create_app(storage, lambda: None, settings)
    sources = {path.name: path.read_bytes() for path in (ILLUMINA_R1, ILLUMINA_R2)}
    results: dict[str, str] = {}
    barrier = threading.Barrier(2)

    def send(name: str) -> None:
        client = TestClient(app, raise_server_exceptions=False)
        data = sources[name]
        upload = client.post("/uploads", json={"sample_id": "PAIR", "file_name": name, "size": len(data)}).json()
        barrier.wait()
        for number, chunk in enumerate(chunks_of(data, 1024)):
            assert client.put(f"/uploads/{upload['upload_id']}/chunks/{number}", content=chunk).status_code == 200
        results[name] = client.post(f"/uploads/{upload['upload_id']}/complete").json()["sha256"]

    threads = [threading.Thread(target=send, args=(name,)) for name in sources]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for name, data in sources.items():
        assert results[name] == hashlib.sha256(data).hexdigest()
        assert storage.get_bytes(zones.landing_key("PAIR", name)) == data

    client = TestClient(app, raise_server_exceptions=False)
    first = client.post("/uploads", json={"sample_id": "PAIR", "file_name": "r3.fastq", "size": 10}).json()
    second = client.post("/uploads", json={"sample_id": "PAIR", "file_name": "r3.fastq", "size": 10})
    assert error_of(second) == (409, "VALIDATION_ERROR") and first["upload_id"] in second.json()["error"]["message"]


def test_the_portal_imports_without_dagster():
    """Dagster is imported only to read a run's status, on the first status request."""
    code = "import sys, genoflow_dagster.portal.app; sys.exit('dagster' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


def test_an_abandoned_upload_expires_and_its_chunks_are_removed(tmp_path):
    storage = LocalStorage(base_dir=str(tmp_path / "zones"))
    client = portal(storage, tmp_path / "state", chunk_bytes=4096)
    data = ILLUMINA_R1.read_bytes()
    stale = client.post("/uploads", json={"sample_id": "S1", "file_name": "old.fastq.gz", "size": len(data)}).json()
    client.put(f"/uploads/{stale['upload_id']}/chunks/0", content=data[:4096])
    fresh = client.post("/uploads", json={"sample_id": "S1", "file_name": "new.fastq.gz", "size": len(data)}).json()
    store = UploadStore(tmp_path / "state")
    with store.connect() as db:  # the stale one last heard from eight days ago
        db.execute("UPDATE uploads SET created = created - 8 * 86400 WHERE upload_id = ?", (stale["upload_id"],))
        db.execute("UPDATE chunks SET received = received - 8 * 86400 WHERE upload_id = ?", (stale["upload_id"],))
    assert store.expire_abandoned(7 * 86400) == [stale["upload_id"]]
    assert store.get(stale["upload_id"]).state == "cancelled" and store.get(fresh["upload_id"]).state == "receiving"
    assert not (tmp_path / "state" / "chunks" / stale["upload_id"]).exists()
    assert store.audit_rows()[-1]["action"] == "upload_expired"


def test_on_s3_each_chunk_is_sent_on_as_a_part_and_complete_joins_them(s3_endpoint, tmp_path):
    """S3 multipart as the issue asks: parts go to S3 as chunks arrive (8 MiB, above S3's 5 MiB minimum, which
    moto enforces), nothing is visible under landing/ before complete, complete checks the SHA-256 and joins."""
    from tests.conftest import make_s3_storage

    storage = make_s3_storage(s3_endpoint)
    s3 = storage._s3()
    chunk = 8 * 1024 * 1024
    data = os.urandom(2 * chunk + 1024 * 1024)
    client = portal(storage, tmp_path / "state", chunk_bytes=chunk)
    declared = {"sample_id": "S3PARTS", "file_name": "big_R1.fastq.gz", "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest()}
    upload = client.post("/uploads", json=declared).json()
    upload_id = upload["upload_id"]
    pieces = chunks_of(data, chunk)
    client.put(f"/uploads/{upload_id}/chunks/1", content=os.urandom(chunk))  # damaged on the way...
    for number in (2, 0):
        assert client.put(f"/uploads/{upload_id}/chunks/{number}", content=pieces[number]).status_code == 200

    [pending] = s3.list_multipart_uploads(Bucket=storage.bucket)["Uploads"]
    assert pending["Key"] == "landing/S3PARTS/big_R1.fastq.gz"
    parts = s3.list_parts(Bucket=storage.bucket, Key=pending["Key"], UploadId=pending["UploadId"])["Parts"]
    assert [(p["PartNumber"], p["Size"]) for p in parts] == [(1, chunk), (2, chunk), (3, 1024 * 1024)]
    assert landing_objects(storage) == []

    # ...so the SHA-256 differs from the declared one: nothing lands, the multipart upload stays open.
    assert error_of(client.post(f"/uploads/{upload_id}/complete")) == (422, "VALIDATION_ERROR")
    assert landing_objects(storage) == []
    assert client.put(f"/uploads/{upload_id}/chunks/1", content=pieces[1]).status_code == 200  # replaces part 2
    landed = client.post(f"/uploads/{upload_id}/complete").json()
    assert landed["state"] == "landed" and landed["sha256"] == declared["sha256"]
    with storage.open_read("landing/S3PARTS/big_R1.fastq.gz") as fh:
        assert fh.read() == data
    assert s3.list_multipart_uploads(Bucket=storage.bucket).get("Uploads", []) == []
    assert not (tmp_path / "state" / "chunks" / upload_id).exists()


def test_on_s3_a_cancelled_upload_drops_its_parts_and_a_join_whose_answer_was_lost_counts(s3_endpoint, tmp_path):
    from tests.conftest import make_s3_storage

    storage = make_s3_storage(s3_endpoint)
    s3 = storage._s3()
    chunk = 8 * 1024 * 1024
    client = portal(storage, tmp_path / "state", chunk_bytes=chunk)
    data = os.urandom(chunk + 10)
    gone = client.post("/uploads", json={"sample_id": "S3X", "file_name": "a_R1.fastq.gz", "size": len(data)}).json()
    client.put(f"/uploads/{gone['upload_id']}/chunks/0", content=data[:chunk])
    assert client.delete(f"/uploads/{gone['upload_id']}").json()["state"] == "cancelled"
    assert s3.list_multipart_uploads(Bucket=storage.bucket).get("Uploads", []) == []

    # The portal stopped after S3 joined the parts but before it recorded the upload as landed: completing it
    # again finds the object whole and records it.
    kept = client.post("/uploads", json={"sample_id": "S3X", "file_name": "b_R1.fastq.gz", "size": len(data)}).json()
    for number, piece in enumerate(chunks_of(data, chunk)):
        client.put(f"/uploads/{kept['upload_id']}/chunks/{number}", content=piece)
    [pending] = s3.list_multipart_uploads(Bucket=storage.bucket)["Uploads"]
    parts = s3.list_parts(Bucket=storage.bucket, Key=pending["Key"], UploadId=pending["UploadId"])["Parts"]
    storage.join_parts("landing/S3X/b_R1.fastq.gz", pending["UploadId"],
                       [{"PartNumber": p["PartNumber"], "ETag": p["ETag"]} for p in parts])
    landed = client.post(f"/uploads/{kept['upload_id']}/complete").json()
    assert landed["state"] == "landed" and landed["sha256"] == hashlib.sha256(data).hexdigest()


def test_on_s3_an_upload_whose_parts_storage_dropped_is_sent_again_from_the_portals_pieces(s3_endpoint, tmp_path):
    """The multipart upload is aborted behind the portal's back (a sweep, an administrator): the next chunk and
    the join start a new one and send the stored pieces again; the sender notices nothing."""
    from tests.conftest import make_s3_storage

    storage = make_s3_storage(s3_endpoint)
    s3 = storage._s3()
    chunk = 8 * 1024 * 1024
    data = os.urandom(2 * chunk + 5)
    pieces = chunks_of(data, chunk)
    client = portal(storage, tmp_path / "state", chunk_bytes=chunk)
    upload = client.post("/uploads", json={"sample_id": "S3D", "file_name": "d_R1.fastq.gz", "size": len(data)}).json()

    def drop_the_multipart_upload() -> None:
        [pending] = s3.list_multipart_uploads(Bucket=storage.bucket)["Uploads"]
        s3.abort_multipart_upload(Bucket=storage.bucket, Key=pending["Key"], UploadId=pending["UploadId"])

    client.put(f"/uploads/{upload['upload_id']}/chunks/0", content=pieces[0])
    drop_the_multipart_upload()
    assert client.put(f"/uploads/{upload['upload_id']}/chunks/1", content=pieces[1]).status_code == 200
    client.put(f"/uploads/{upload['upload_id']}/chunks/2", content=pieces[2])
    drop_the_multipart_upload()
    landed = client.post(f"/uploads/{upload['upload_id']}/complete").json()
    assert landed["state"] == "landed", landed
    with storage.open_read("landing/S3D/d_R1.fastq.gz") as fh:
        assert fh.read() == data
    resent = [row for row in UploadStore(tmp_path / "state").audit_rows() if row["action"] == "upload_parts_resent"]
    assert len(resent) == 2
