"""Single sign-on through a trusted reverse proxy (deploy/portal/): the portal believes who signed in only from
the proxy's address, maps groups to roles, and keeps tokens working beside it.

The portal runs for real (`genoflow portal`, uvicorn) on loopback, so the connection's address is 127.0.0.1 as it
is for nginx on the same machine. A request's own X-Forwarded-For never makes it look like the proxy.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from genoflow_dagster import zones
from genoflow_dagster.portal.identity import ProxyIdentity
from genoflow_dagster.resources.storage import LocalStorage
from tests.browser import chromium_browser, skip_reason
from tests.conftest import _free_port

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
GROUP_ROLES = "lab=uploader,bioinformatics=analyst,genoflow-admins=admin"


@contextmanager
def portal_behind_proxy(tmp_path: Path, trusted: str) -> Iterator[tuple[str, dict[str, str]]]:
    home = tmp_path / "home"
    home.mkdir()
    shutil.copyfile(REPO / "dagster.yaml", home / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GENOFLOW_", "DAGSTER_"))}
    env.update({"DAGSTER_HOME": str(home), "GENOFLOW_DATA_DIR": str(tmp_path / "data"), "GENOFLOW_STORAGE": "local",
                "GENOFLOW_PORTAL_TRUSTED_PROXIES": trusted, "GENOFLOW_PORTAL_GROUP_ROLES": GROUP_ROLES})
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    log = tmp_path / "portal.log"
    process = subprocess.Popen([str(BIN / "genoflow"), "portal", "--host", "127.0.0.1", "--port", str(port)],
                               env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(url + "supported_formats", timeout=2)
                break
            except httpx.TransportError:
                assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
                time.sleep(0.3)
        yield url, env
    finally:
        process.terminate()
        process.wait(timeout=30)


def signed_in(email: str, groups: str) -> dict[str, str]:
    """The headers nginx sets from oauth2-proxy's answer (deploy/portal/nginx.conf)."""
    return {"X-Forwarded-Email": email, "X-Forwarded-Groups": groups}


def test_the_proxy_says_who_signed_in_and_groups_give_roles(tmp_path):
    with portal_behind_proxy(tmp_path, trusted="127.0.0.1") as (url, env):
        with httpx.Client(base_url=url) as client:
            assert client.get("me", headers=signed_in("ana@lab.example", "staff,bioinformatics,lab")).json() == \
                {"name": "ana@lab.example", "role": "analyst", "tokens_required": True, "via": "sso"}
            upload = client.post("uploads", headers=signed_in("tom@lab.example", "lab"),
                                 json={"sample_id": "S1", "file_name": "S1_R1.fastq.gz", "size": 10})
            assert upload.status_code == 201, upload.text
            assert upload.json()["actor"] == "sso:tom@lab.example"
            upload_id, tom = upload.json()["upload_id"], signed_in("tom@lab.example", "lab")
            client.put(f"uploads/{upload_id}/chunks/0", content=b"0123456789", headers=tom)
            assert client.post(f"uploads/{upload_id}/complete", headers=tom).json()["state"] == "landed"
            # The sample's results: links for the person who uploaded to it, which work without signing in.
            storage = LocalStorage(base_dir=env["GENOFLOW_DATA_DIR"])
            with storage.open_write(zones.sample_report_key("S1")) as report:
                report.write(b"<html><title>S1 report</title></html>")
            [result] = client.get("results/S1", headers=signed_in("tom@lab.example", "lab")).json()["files"]
            fetched = httpx.get(url.rstrip("/") + result["url"])
            assert fetched.status_code == 200 and b"S1 report" in fetched.content
            # Each person sees their own uploads; an analyst sees all of them.
            assert client.get("upload_history", headers=signed_in("eve@lab.example", "lab")).json()["uploads"] == []
            everyone = client.get("upload_history", headers=signed_in("ana@lab.example", "bioinformatics"))
            assert [u["upload_id"] for u in everyone.json()["uploads"]] == [upload.json()["upload_id"]]
            # Signed in but in no group with a role: refused in words, and audited.
            outsider = client.get("me", headers=signed_in("guest@lab.example", "visitors"))
            assert outsider.status_code == 403 and outsider.json()["error"]["code"] == "FORBIDDEN"
            assert "guest@lab.example" in outsider.json()["error"]["message"]
            assert client.post("tokens", json={"name": "x", "role": "admin"},
                               headers=signed_in("tom@lab.example", "lab")).status_code == 403
            # Tokens keep working beside single sign-on (instruments, scripts).
            token = subprocess.run([str(BIN / "genoflow"), "token", "add", "sequencer", "--role", "uploader"],
                                   env=env, check=True, capture_output=True, text=True).stdout.strip()
            assert client.get("me", headers={"Authorization": f"Bearer {token}"}).json()["via"] == "token"
            assert client.get("me").status_code == 401
            assert client.get("me", headers=signed_in("it@lab.example", "genoflow-admins")).json()["role"] == "admin"
        with sqlite3.connect(tmp_path / "data" / ".portal" / "portal.sqlite3") as db:
            refusals = [row[0] for row in db.execute("SELECT detail FROM audit WHERE allowed = 0")]
        assert any("signed in, but in no group with a role" in detail for detail in refusals), refusals

        if skip_reason() is None:  # the page under single sign-on: no token asked, the person named
            with chromium_browser() as browser:
                context = browser.new_context(extra_http_headers=signed_in("tom@lab.example", "lab"))
                page = context.new_page()
                page.goto(url)
                page.get_by_label("Sample ID").wait_for()
                assert page.locator("#who").inner_text() == "Signed in as tom@lab.example (uploader)."
                assert page.locator("#sign-in").is_hidden()


def test_identity_headers_from_anywhere_but_the_proxy_are_ignored(tmp_path):
    # The proxy is said to be 10.9.9.9; this test connects from 127.0.0.1, claiming in X-Forwarded-For to be it.
    with portal_behind_proxy(tmp_path, trusted="10.9.9.9") as (url, _):
        forged = {**signed_in("mallory@lab.example", "genoflow-admins"), "X-Forwarded-For": "10.9.9.9"}
        answer = httpx.get(url + "me", headers=forged)
        assert answer.status_code == 401 and answer.json()["error"]["code"] == "UNAUTHORIZED"


def test_group_roles_are_read_from_the_environment_in_words():
    assert ProxyIdentity.from_environment({}) is None
    assert ProxyIdentity.from_environment({"GENOFLOW_PORTAL_TRUSTED_PROXIES": "127.0.0.1"}) is None
    found = ProxyIdentity.from_environment({"GENOFLOW_PORTAL_TRUSTED_PROXIES": "127.0.0.1, ::1",
                                            "GENOFLOW_PORTAL_GROUP_ROLES": GROUP_ROLES,
                                            "GENOFLOW_PORTAL_USER_HEADER": "X-Auth-Request-Email"})
    assert found is not None and found.trusted_proxies == {"127.0.0.1", "::1"}
    assert found.user_header == "X-Auth-Request-Email"
    with pytest.raises(ValueError, match="group=role"):
        ProxyIdentity.from_environment({"GENOFLOW_PORTAL_TRUSTED_PROXIES": "127.0.0.1",
                                        "GENOFLOW_PORTAL_GROUP_ROLES": "lab=superuser"})
