"""The portal's results and download links, `/me`, rate limits, bounded refusal auditing and run-matched status,
over real storage (local folder, and moto's S3 server over HTTP: presigned URLs fetched from it).

Data: /work/shared/realdata (ERR5069949_test_1.fastq.gz: nf-core's NextSeq SARS-CoV-2 reads; MN908947.3.fasta).
"""

from __future__ import annotations

import dataclasses
import os
import time
import uuid
from pathlib import Path

import dagster as dg
import httpx
import pytest
from fastapi.testclient import TestClient

from genoflow_dagster import zones
from genoflow_dagster.portal.access import TokenStore
from genoflow_dagster.portal.app import API_ERROR_CODES, PortalSettings, create_app
from genoflow_dagster.portal.downloads import READ_BLOCK, DownloadLinks, LinkSigner
from genoflow_dagster.portal.limits import DEFAULT_RATE_PER_MINUTE, RateLimiter, RefusalLog
from genoflow_dagster.portal.uploads import UploadStore
from genoflow_dagster.resources.storage import LocalStorage, S3Storage, Storage
from genoflow_dagster.sample_record import write_validation
from genoflow_dagster.verdicts import USABLE_INPUTS, GateOutcome
from tests.records import sample_record

REALDATA = Path(os.environ.get("GENOFLOW_REALDATA", "/work/shared/realdata"))
ILLUMINA_R1 = REALDATA / "ERR5069949_test_1.fastq.gz"
REFERENCE = REALDATA / "MN908947.3.fasta"
SECRET = "a-test-secret-that-is-long-enough-0123456789"

pytestmark = pytest.mark.skipif(not ILLUMINA_R1.is_file(), reason="needs /work/shared/realdata")


def settings_for(state_dir: Path, **overrides) -> PortalSettings:
    values = {"state_dir": state_dir, "max_file_bytes": 5 * 1024**3, "chunk_bytes": 256 * 1024,
              "require_tokens": False, "link_secret": SECRET, **overrides}
    return PortalSettings(**values)


def portal(storage: Storage, state_dir: Path, *, instance_getter=lambda: None, **overrides) -> TestClient:
    return TestClient(create_app(storage, instance_getter, settings_for(state_dir, **overrides)),
                      raise_server_exceptions=False)


def error_of(response) -> tuple[int, str]:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["code"] in API_ERROR_CODES
    assert "Error(" not in body["error"]["message"] and "Traceback" not in body["error"]["message"]
    return response.status_code, body["error"]["code"]


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def land(client: TestClient, sample_id: str, token: str | None = None) -> dict:
    answer = client.post("/upload", data={"sample_id": sample_id}, headers=auth(token) if token else {},
                         files={"file": (ILLUMINA_R1.name, ILLUMINA_R1.read_bytes())})
    assert answer.status_code == 201, answer.text
    return answer.json()


def store_results(storage: Storage, sample_id: str, *, indexes: bool = True) -> dict[str, bytes]:
    """What the pipeline stores for a sample: report HTML and PDF, BAM, VCF (bytes standing in: the portal
    serves bytes, it does not read them). The BAM is 3 MB so that it streams in several blocks."""
    contents = {
        zones.sample_report_key(sample_id): b"<!doctype html><title>report</title><h1>" + sample_id.encode() + b"</h1>",
        zones.sample_report_pdf_key(sample_id): b"%PDF-1.7\n" + os.urandom(20_000),
        zones.aligned_bam_key(sample_id): os.urandom(3 * 1024 * 1024 + 17),
        zones.calls_vcf_key(sample_id): REFERENCE.read_bytes(),
    }
    if indexes:
        contents[zones.aligned_bam_key(sample_id) + ".bai"] = os.urandom(1000)
        contents[zones.calls_vcf_key(sample_id) + ".tbi"] = os.urandom(500)
    for key, data in contents.items():
        storage.put_bytes(data, key)
    return contents


def fetch(client: TestClient, url: str) -> httpx.Response:
    """A link as a browser opens it: a portal path through the portal, a presigned URL from S3 itself."""
    return httpx.get(url, timeout=30) if url.startswith("http") else client.get(url)


# ---------------------------------------------------------------- /me

def test_me_names_the_caller_and_whether_tokens_are_required(tmp_path):
    storage = LocalStorage(base_dir=str(tmp_path / "zones"))
    assert portal(storage, tmp_path / "open").get("/me").json() == \
        {"name": "local", "role": "admin", "tokens_required": False, "via": "local"}

    client = portal(storage, tmp_path / "state", require_tokens=True)
    _, token = TokenStore(UploadStore(tmp_path / "state")).create("bench 3", "uploader", actor="test")
    assert error_of(client.get("/me")) == (401, "UNAUTHORIZED")
    assert client.get("/me").headers["www-authenticate"] == "Bearer"
    assert error_of(client.get("/me", headers=auth("guessed"))) == (401, "UNAUTHORIZED")
    assert client.get("/me", headers=auth(token)).json() == {"name": "bench 3", "role": "uploader",
                                                             "tokens_required": True, "via": "token"}
    unlimited = portal(storage, tmp_path / "state", require_tokens=True, rate_per_minute=0)
    assert unlimited.get("/me", headers=auth(token)).json()["name"] == "bench 3"  # looked up without the limiter
    assert error_of(unlimited.get("/me")) == (401, "UNAUTHORIZED")


# ---------------------------------------------------------------- results and links

def test_results_list_what_exists_with_links_that_serve_the_bytes(storage, tmp_path):
    client = portal(storage, tmp_path / "state", require_tokens=True)
    store = UploadStore(tmp_path / "state")
    tokens = TokenStore(store)
    alice_id, alice = tokens.create("alice", "uploader", actor="test")
    _, bob = tokens.create("bob", "uploader", actor="test")
    _, carol = tokens.create("carol", "analyst", actor="test")
    _, admin = tokens.create("lead", "admin", actor="test")
    land(client, "S1", alice)
    land(client, "S2", bob)
    contents = store_results(storage, "S1")

    before = time.time()
    answer = client.get("/results/S1", headers=auth(alice))
    assert answer.status_code == 200, answer.text
    results = answer.json()
    assert results["sample_id"] == "S1" and results["expires_in"] == 3600
    files = results["files"]
    assert [f["kind"] for f in files] == ["report_html", "report_pdf", "bam", "bam_index", "vcf", "vcf_index"]
    assert [f["name"] for f in files] == ["S1_report.html", "S1_report.pdf", "S1.bam", "S1.bam.bai", "S1.vcf.gz",
                                         "S1.vcf.gz.tbi"]
    by_key = dict(zip([zones.sample_report_key("S1"), zones.sample_report_pdf_key("S1"), zones.aligned_bam_key("S1"),
                       zones.aligned_bam_key("S1") + ".bai", zones.calls_vcf_key("S1"),
                       zones.calls_vcf_key("S1") + ".tbi"], files, strict=True))
    for key, entry in by_key.items():
        assert entry["size"] == len(contents[key])
        assert before + 3600 - 1 <= entry["expires_at"] <= time.time() + 3600
        if isinstance(storage, S3Storage):
            # Signature V4, valid for the link lifetime (moto does not check either: real S3 does).
            assert entry["url"].startswith(storage.endpoint_url) and "X-Amz-Expires=3600" in entry["url"]
            assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in entry["url"]
        else:
            assert entry["url"].startswith("/download/")
        served = fetch(client, entry["url"])
        assert served.status_code == 200, served.text
        assert served.content == contents[key], key
        disposition = served.headers["content-disposition"]
        if entry["kind"] == "report_html":  # opens in the browser
            assert served.headers["content-type"].startswith("text/html") and disposition.startswith("inline")
        else:
            assert disposition == f'attachment; filename="{entry["name"]}"'

    # An uploader sees only samples it sent files to; an analyst sees any.
    audited = len(store.audit_rows())
    assert error_of(client.get("/results/S1", headers=auth(bob))) == (403, "FORBIDDEN")
    refusal = store.audit_rows()[audited]
    assert refusal["action"] == "refused" and refusal["allowed"] == 0 and "/results/S1" in refusal["detail"]
    assert client.get("/results/S1", headers=auth(carol)).status_code == 200
    assert client.get("/results/S2", headers=auth(bob)).json()["files"] == []  # landed, nothing made yet
    assert error_of(client.get("/results/not%20a%20sample!", headers=auth(carol)))[0] in (400, 404)
    assert error_of(client.get("/results/bad%7Cid", headers=auth(carol))) == (400, "VALIDATION_ERROR")

    if not isinstance(storage, S3Storage):  # a local link dies with the token it was made for
        alice_link = client.get("/results/S1", headers=auth(alice)).json()["files"][0]["url"]
        assert client.get(alice_link).status_code == 200
        assert client.delete(f"/tokens/{alice_id}", headers=auth(admin)).status_code == 200
        answer = client.get(alice_link)
        assert error_of(answer) == (403, "FORBIDDEN") and "revoked" in answer.json()["error"]["message"]

    # Every link handed out is audited; locally every download too, as the token the link was made for.
    rows = store.audit_rows()
    handed = [r for r in rows if r["action"] == "download_links"]
    assert handed[0]["actor"] == alice_id and "report_html" in handed[0]["detail"]
    downloads = [r for r in rows if r["action"] == "download"]
    if isinstance(storage, S3Storage):
        assert downloads == []  # the browser fetched them from S3 itself
    else:
        assert [r["actor"] for r in downloads] == [alice_id] * 7
        assert {r["detail"].split(" ")[0] for r in downloads} == set(contents)


def test_results_without_indexes_or_a_bam_list_only_what_exists(storage, tmp_path):
    client = portal(storage, tmp_path / "state")
    storage.put_bytes(b"<html>only a report</html>", zones.sample_report_key("S3"))
    storage.put_bytes(b"##fileformat=VCFv4.2\n", zones.calls_vcf_key("S3"))
    assert [f["kind"] for f in client.get("/results/S3").json()["files"]] == ["report_html", "vcf"]
    assert client.get("/results/NOTHING").json() == {"sample_id": "NOTHING", "expires_in": 3600, "files": []}


def test_a_local_link_expires_cannot_be_changed_and_outlives_a_restart_only_with_a_set_secret(tmp_path):
    storage = LocalStorage(base_dir=str(tmp_path / "zones"))
    contents = store_results(storage, "S1", indexes=False)
    client = portal(storage, tmp_path / "state", link_seconds=120)
    files = {f["kind"]: f for f in client.get("/results/S1").json()["files"]}
    bam_link = files["bam"]["url"]
    assert client.get(bam_link).content == contents[zones.aligned_bam_key("S1")]

    signer = LinkSigner(SECRET.encode())
    expired = signer.sign(zones.aligned_bam_key("S1"), int(time.time()) - 1, "local")
    answer = client.get(f"/download/{expired}")
    assert error_of(answer) == (410, "LINK_EXPIRED") and "expired" in answer.json()["error"]["message"]

    # The same link pointed at another object (the payload changed, the signature kept): refused.
    token = bam_link.rsplit("/", 1)[1]
    payload, mac = token.split(".")
    other = LinkSigner(b"x").sign(zones.landing_key("S1", ILLUMINA_R1.name), int(time.time()) + 60, "local")
    assert error_of(client.get(f"/download/{other.split('.')[0]}.{mac}")) == (403, "FORBIDDEN")
    assert error_of(client.get(f"/download/{other}")) == (403, "FORBIDDEN")  # signed under another key
    assert error_of(client.get(f"/download/{payload}.{mac[:-2]}AA")) == (403, "FORBIDDEN")
    assert error_of(client.get("/download/not-a-token")) == (403, "FORBIDDEN")
    client.app.state.refusals.flush()
    refused = [r for r in UploadStore(tmp_path / "state").audit_rows() if r["allowed"] == 0]
    assert [r["action"] for r in refused] == ["refused", "refused_repeatedly"]  # five refusals, two rows
    assert refused[0]["detail"] == "GET /download: LINK_EXPIRED link (from testclient)"
    assert refused[1]["detail"].startswith("4 more refused requests from testclient")

    # An object removed after its link was made: 404 in words.
    pdf_link = files["report_pdf"]["url"]
    (Path(storage.base_dir) / zones.sample_report_pdf_key("S1")).unlink()
    answer = client.get(pdf_link)
    assert error_of(answer) == (404, "VALIDATION_ERROR") and "S1_report.pdf" in answer.json()["error"]["message"]

    # A set secret keeps links working across a restart; the random one of an unset secret does not.
    assert portal(storage, tmp_path / "state").get(bam_link).status_code == 200
    unset = portal(storage, tmp_path / "state2", link_secret=None)
    fresh = {f["kind"]: f["url"] for f in unset.get("/results/S1").json()["files"]}
    assert unset.get(fresh["bam"]).status_code == 200
    restarted = portal(storage, tmp_path / "state2", link_secret=None)
    assert error_of(restarted.get(fresh["bam"])) == (403, "FORBIDDEN")


def test_a_download_streams_in_blocks(tmp_path):
    """The object is read block by block as it is sent, never whole into memory."""
    storage = LocalStorage(base_dir=str(tmp_path / "zones"))
    contents = store_results(storage, "S1", indexes=False)
    store = UploadStore(tmp_path / "state")
    links = DownloadLinks(storage, store, LinkSigner(b"k"), 60)
    url, _ = links.link(zones.aligned_bam_key("S1"), actor="t1")
    served = links.open(url.rsplit("/", 1)[1])
    sizes = [len(block) for block in served.blocks]
    assert len(sizes) >= 4 and max(sizes) <= READ_BLOCK
    assert sum(sizes) == served.size == len(contents[zones.aligned_bam_key("S1")])
    assert store.audit_rows()[-1]["action"] == "download" and store.audit_rows()[-1]["actor"] == "t1"


# ---------------------------------------------------------------- rate limits and refusals

def test_each_token_has_its_own_rate_limit_and_a_limited_request_does_no_work(tmp_path):
    storage = LocalStorage(base_dir=str(tmp_path / "zones"))
    client = portal(storage, tmp_path / "state", require_tokens=True, rate_per_minute=60)  # 10 at once, 1 a second
    store = UploadStore(tmp_path / "state")
    _, alice = TokenStore(store).create("alice", "uploader", actor="test")
    _, bob = TokenStore(store).create("bob", "uploader", actor="test")
    data = ILLUMINA_R1.read_bytes()
    upload = client.post("/uploads", headers=auth(alice),
                         json={"sample_id": "S1", "file_name": ILLUMINA_R1.name, "size": len(data)}).json()
    for _ in range(9):
        assert client.get("/me", headers=auth(alice)).status_code == 200
    limited = client.put(f"/uploads/{upload['upload_id']}/chunks/0", content=data, headers=auth(alice))
    assert error_of(limited) == (429, "RATE_LIMITED")
    assert 1 <= int(limited.headers["retry-after"]) <= 2 and "try again in" in limited.json()["error"]["message"]
    assert not (tmp_path / "state" / "chunks" / upload["upload_id"]).exists()  # the chunk was never read
    assert client.get("/me", headers=auth(bob)).status_code == 200  # another token: its own bucket

    # Without a token the bucket is the client address's; refusals past the limit are not audited.
    stranger = TestClient(client.app, client=("192.0.2.7", 4000), raise_server_exceptions=False)
    audited = len(store.audit_rows())
    answers = [stranger.get("/upload_history").status_code for _ in range(30)]
    assert answers == [401] * 10 + [429] * 20
    assert len(store.audit_rows()) == audited + 1
    time.sleep(1.1)
    assert client.get("/me", headers=auth(alice)).status_code == 200  # refilled


def test_the_default_rate_lets_a_browser_upload_5_gb_over_loopback():
    """5 GB in 8 MiB chunks at 300 MB/s (37 chunks a second for 17 s) with a status poll every 2 s, from one
    token: nothing waits. A script at 200 requests a second is held to the limit."""
    now = [0.0]
    limiter = RateLimiter(DEFAULT_RATE_PER_MINUTE, clock=lambda: now[0])
    chunks = -(-5 * 10**9 // (8 * 1024 * 1024))
    per_chunk = 8 * 1024 * 1024 / 300e6
    for number in range(chunks):
        now[0] = number * per_chunk
        assert limiter.take("token browser") == 0, number
        if number % int(2 / per_chunk) == 0:
            assert limiter.take("token browser") == 0
    allowed = 0
    for step in range(200 * 30):  # 30 s at 200 a second
        now[0] = 1000 + step / 200
        allowed += limiter.take("token script") == 0
    assert allowed == pytest.approx(limiter.burst + 30 * DEFAULT_RATE_PER_MINUTE / 60, abs=2)


def test_refusals_without_a_token_are_coalesced_per_address_and_minute(tmp_path):
    store = UploadStore(tmp_path / "state")
    now = [600.0]
    refusals = RefusalLog(store, clock=lambda: now[0])
    for _ in range(500):
        refusals.refused("192.0.2.7", "GET /upload_history: no token")
    refusals.refused("198.51.100.1", "GET /me: unknown token")
    rows = store.audit_rows()
    assert [(r["action"], r["detail"]) for r in rows] == [
        ("refused", "GET /upload_history: no token (from 192.0.2.7)"),
        ("refused", "GET /me: unknown token (from 198.51.100.1)")]
    now[0] = 661.0  # the next minute: the counts are written with the next refusal
    refusals.refused("192.0.2.7", "GET /uploads: no token")
    rows = store.audit_rows()[2:]
    assert [r["action"] for r in rows] == ["refused_repeatedly", "refused"]
    assert rows[0]["detail"].startswith("499 more refused requests from 192.0.2.7")
    assert all(r["allowed"] == 0 and r["actor"] is None for r in rows)


def test_the_portal_writes_the_open_counts_when_it_stops(tmp_path):
    storage = LocalStorage(base_dir=str(tmp_path / "zones"))
    app = create_app(storage, lambda: None, settings_for(tmp_path / "state", require_tokens=True))
    with TestClient(app, raise_server_exceptions=False) as client:
        for _ in range(5):
            assert error_of(client.get("/upload_history")) == (401, "UNAUTHORIZED")
    actions = [(r["action"], r["detail"]) for r in UploadStore(tmp_path / "state").audit_rows()]
    assert actions[0] == ("refused", "GET /upload_history: no token (from testclient)")
    assert actions[1][0] == "refused_repeatedly" and actions[1][1].startswith("4 more refused requests")


# ---------------------------------------------------------------- status matched to the run

def _wait_for_the_next_second() -> None:
    """S3 keeps an object's time in whole seconds: what is written before this counts as earlier."""
    time.sleep(1.05 - time.time() % 1)


def test_status_shows_only_what_runs_since_the_upload_stored_and_links_the_report(storage, tmp_path):
    instance = dg.DagsterInstance.ephemeral()
    client = portal(storage, tmp_path / "state", instance_getter=lambda: instance)
    earlier = dg.DagsterRun(job_name="sample_pipeline", run_id=str(uuid.uuid4()), status=dg.DagsterRunStatus.SUCCESS,
                            tags={"dagster/partition": "S1"})
    instance.add_run(earlier)
    stale_gate = GateOutcome(gate=USABLE_INPUTS, status="pass", summary="2 files usable", problems=())
    stale = sample_record("S1", validation=(stale_gate,)).validation
    assert stale is not None
    write_validation(storage, dataclasses.replace(stale, run_id=earlier.run_id))
    storage.put_bytes(b"<html>the earlier run's report</html>", zones.sample_report_key("S1"))
    _wait_for_the_next_second()

    landed = land(client, "S1")
    status_url = f"/upload_status/{landed['upload_id']}"
    run = dg.DagsterRun(job_name="sample_pipeline", run_id=str(uuid.uuid4()), status=dg.DagsterRunStatus.STARTED,
                        tags={"dagster/partition": "S1"})
    instance.add_run(run)
    status = client.get(status_url).json()
    assert status["state"] == "processing" and status["run"]["run_id"] == run.run_id
    assert status["gates"] == [] and earlier.run_id[:8] in status["gates_note"]
    assert "earlier run" in status["gates_note"]
    assert status["report"] is None and status["report_url"] is None and status["results_available"] is False

    fresh_gate = GateOutcome(gate=USABLE_INPUTS, status="fail", summary="no usable reads",
                             problems=("ERR5069949_test_1.fastq.gz has no mate",))
    write_validation(storage, dataclasses.replace(stale, gates=(fresh_gate,), run_id=run.run_id))
    # A re-execution of the run: its own run id, created after the upload landed; the record stays shown.
    again = dg.DagsterRun(job_name="sample_pipeline", run_id=str(uuid.uuid4()), status=dg.DagsterRunStatus.FAILURE,
                          tags={"dagster/partition": "S1"})
    instance.add_run(again)
    report_html = b"<!doctype html><title>S1</title><p>FAIL: no usable reads</p>"
    storage.put_bytes(report_html, zones.sample_report_key("S1"))
    status = client.get(status_url).json()
    assert status["state"] == "failed" and status["run"]["run_id"] == again.run_id
    assert status["gates"] == [{"gate": USABLE_INPUTS, "status": "fail", "summary": "no usable reads",
                                "problems": ["ERR5069949_test_1.fastq.gz has no mate"], "blocking": True}]
    assert status["gates_note"] is None
    assert status["report"] == storage.uri(zones.sample_report_key("S1"))  # as before, for compatibility
    assert status["results_available"] is True and status["report_expires_at"] > time.time() + 3500
    opened = fetch(client, status["report_url"])
    assert opened.status_code == 200 and opened.content == report_html
    assert opened.headers["content-type"].startswith("text/html")


# ---------------------------------------------------------------- the API's documentation

def test_docs_list_every_endpoint_with_a_summary(tmp_path):
    client = portal(LocalStorage(base_dir=str(tmp_path / "zones")), tmp_path / "state")
    spec = client.get("/openapi.json").json()
    operations = {(method.upper(), path): op for path, item in spec["paths"].items() for method, op in item.items()}
    for wanted in (("GET", "/me"), ("GET", "/results/{sample_id}"), ("GET", "/download/{token}"),
                   ("GET", "/upload_status/{upload_id}"), ("POST", "/uploads"), ("GET", "/tokens")):
        assert wanted in operations, wanted
    for where, op in operations.items():
        assert op.get("summary") and op.get("description"), where
    assert client.get("/docs").status_code == 200



def test_the_settings_come_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("GENOFLOW_DATA_DIR", str(tmp_path))
    for variable in ("GENOFLOW_PORTAL_SECRET", "GENOFLOW_PORTAL_LINK_SECONDS", "GENOFLOW_PORTAL_RATE_PER_MINUTE"):
        monkeypatch.delenv(variable, raising=False)
    defaults = PortalSettings.from_environment()
    assert (defaults.link_seconds, defaults.link_secret, defaults.rate_per_minute) == (3600, None, 6000)
    monkeypatch.setenv("GENOFLOW_PORTAL_SECRET", SECRET)
    monkeypatch.setenv("GENOFLOW_PORTAL_LINK_SECONDS", "600")
    monkeypatch.setenv("GENOFLOW_PORTAL_RATE_PER_MINUTE", "0")
    chosen = PortalSettings.from_environment()
    assert (chosen.link_seconds, chosen.link_secret, chosen.rate_per_minute) == (600, SECRET, 0)
    assert SECRET not in repr(chosen)
    monkeypatch.setenv("GENOFLOW_PORTAL_LINK_SECONDS", "0")
    with pytest.raises(ValueError, match="GENOFLOW_PORTAL_LINK_SECONDS must be a whole number of at least 1"):
        PortalSettings.from_environment()


@pytest.mark.slow
def test_a_real_sample_uploaded_through_the_portal_and_run_gives_its_results(tmp_path, monkeypatch):
    """ERR5069949's pair sent by an uploader, every per-sample asset materialized on the portal's instance: the
    uploader's status shows the run's stored gates and opens the report; its results are the pipeline's real
    report HTML and PDF, BAM with its index and VCF with its index, byte for byte."""
    from genoflow_dagster.partitions import SAMPLES_PARTITION_NAME
    from genoflow_dagster.resources.ai import AIProvider
    from genoflow_dagster.resources.compute import Compute
    from genoflow_dagster.resources.reference import ReferenceData
    from tests.real_samples import SAMPLE_ASSETS, copy_reference

    monkeypatch.setenv("GENOFLOW_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("GENOFLOW_REFERENCE_CACHE", str(tmp_path / "reference-cache"))
    monkeypatch.delenv("GENOFLOW_QC_PROFILE", raising=False)
    storage = LocalStorage(base_dir=str(tmp_path / "zones"))
    instance = dg.DagsterInstance.ephemeral()
    client = portal(storage, tmp_path / "state", require_tokens=True, instance_getter=lambda: instance)
    _, alice = TokenStore(UploadStore(tmp_path / "state")).create("alice", "uploader", actor="test")
    uploads = []
    for mate in (1, 2):
        path = REALDATA / f"ERR5069949_test_{mate}.fastq.gz"
        answer = client.post("/upload", data={"sample_id": "S1"}, headers=auth(alice),
                             files={"file": (path.name, path.read_bytes())})
        assert answer.status_code == 201, answer.text
        uploads.append(answer.json())

    lab = copy_reference(tmp_path / "lab")
    instance.add_dynamic_partitions(SAMPLES_PARTITION_NAME, ["S1"])
    materialized = dg.materialize(
        SAMPLE_ASSETS, partition_key="S1", instance=instance, raise_on_error=False,
        run_config={"ops": {"qc_metrics": {"config": {"profile": "amplicon"}}}},
        resources={"storage": storage, "compute": Compute(mode="in_process"), "ai": AIProvider(provider="offline"),
                   "reference": ReferenceData(fasta_path=str(lab / "MN908947.3.fasta"),
                                              annotation_path=str(lab / "MN908947.3.gff"))})
    assert materialized.success
    # The sensor's run of the sample (what the status follows); the stages above ran in a run made after landing.
    run = dg.DagsterRun(job_name="sample_pipeline", run_id=str(uuid.uuid4()), status=dg.DagsterRunStatus.SUCCESS,
                        tags={"dagster/partition": "S1"})
    instance.add_run(run)

    status = client.get(f"/upload_status/{uploads[1]['upload_id']}", headers=auth(alice)).json()
    assert status["state"] == "completed" and status["gates_note"] is None
    assert {g["gate"] for g in status["gates"]} >= {USABLE_INPUTS} and len(status["gates"]) >= 3
    report = client.get(status["report_url"])
    assert report.status_code == 200 and report.content == storage.get_bytes(zones.sample_report_key("S1"))
    assert report.headers["content-security-policy"] == "sandbox"

    files = client.get("/results/S1", headers=auth(alice)).json()["files"]
    assert [f["kind"] for f in files] == ["report_html", "report_pdf", "bam", "bam_index", "vcf", "vcf_index"]
    for entry in files:
        served = client.get(entry["url"])
        assert served.status_code == 200 and len(served.content) == entry["size"]
    assert files[3]["name"] == "S1.bam.bai" and files[5]["name"] in ("S1.vcf.gz.tbi", "S1.vcf.gz.csi")
    bam = next(f for f in files if f["kind"] == "bam")
    assert client.get(bam["url"]).content == storage.get_bytes(zones.aligned_bam_key("S1"))
