"""Shared fixtures: a real S3-compatible HTTP server on 127.0.0.1 (moto's server mode) and both storages."""

import os
import socket
import uuid

import pytest

from genoflow_dagster.resources.storage import LocalStorage, S3Storage

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint():
    """moto's S3 server over real HTTP on loopback; objects live in its memory for the session."""
    server_mod = pytest.importorskip("moto.server")
    port = _free_port()
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    yield f"http://127.0.0.1:{port}"
    server.stop()


def make_s3_storage(endpoint: str, prefix: str = "") -> S3Storage:
    bucket = f"genoflow-{uuid.uuid4().hex[:12]}"
    storage = S3Storage(bucket=bucket, prefix=prefix, endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")
    storage._s3().create_bucket(Bucket=bucket)
    return storage


@pytest.fixture(params=["local", "s3"])
def storage(request, tmp_path):
    """Each storage contract test runs against the local filesystem and against S3 over HTTP."""
    if request.param == "local":
        return LocalStorage(base_dir=str(tmp_path / "zones"))
    return make_s3_storage(request.getfixturevalue("s3_endpoint"))
