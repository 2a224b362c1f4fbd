"""One contract, two implementations: every test runs on LocalStorage and on S3Storage over HTTP."""

import hashlib
import os

import pytest

from genoflow_dagster.errors import StorageError
from genoflow_dagster.resources.storage import LocalStorage

pytestmark = pytest.mark.integration


def test_put_get_stat_exists(storage):
    info = storage.put_bytes(b"hello", "processed/S1/x/a.json")
    assert info.key == "processed/S1/x/a.json" and info.size == 5 and info.etag
    assert storage.get_bytes("processed/S1/x/a.json") == b"hello"
    assert storage.exists("processed/S1/x/a.json")
    assert not storage.exists("processed/S1/x/missing.json")
    assert storage.stat("processed/S1/x/a.json").size == 5


def test_missing_object_is_not_found(storage):
    with pytest.raises(StorageError) as info:
        storage.get_bytes("raw/nothing/here")
    assert info.value.reason == "NOT_FOUND"
    with pytest.raises(StorageError):
        storage.stat("raw/nothing/here")


def test_etag_changes_when_content_is_replaced(storage):
    first = storage.put_bytes(b"one", "landing/S1/r.fq").etag
    second = storage.put_bytes(b"two-two", "landing/S1/r.fq").etag
    assert first != second


def test_listing_is_ordered_paginated_and_resumable(storage):
    keys = [f"landing/S{i % 3}/file{i:03d}.fq" for i in range(25)] + ["landing/S1.txt", "raw/S0/x"]
    for key in keys:
        storage.put_bytes(key.encode(), key)
    listed = [o.key for o in storage.list("landing/", page_size=4)]
    assert listed == sorted(k for k in keys if k.startswith("landing/"))
    after = listed[10]
    assert [o.key for o in storage.list("landing/", start_after=after, page_size=3)] == listed[11:]
    assert [o.key for o in storage.list("landing/S1/")] == sorted(k for k in keys if k.startswith("landing/S1/"))


def test_a_failed_write_leaves_no_object(storage):
    with pytest.raises(RuntimeError), storage.open_write("processed/S1/half.bam") as fh:
        fh.write(b"x" * 1000)
        raise RuntimeError("crash mid-write")
    assert not storage.exists("processed/S1/half.bam")
    assert [o.key for o in storage.list("processed/")] == []


def test_large_objects_stream_through_files(storage, tmp_path):
    source = tmp_path / "big.bin"
    block = os.urandom(1024 * 1024)
    with open(source, "wb") as fh:
        for _ in range(12):  # 12 MiB: multipart on S3
            fh.write(block)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    storage.put_file(source, "raw/S1/abc/big.bin")
    streamed = hashlib.sha256()
    with storage.open_read("raw/S1/abc/big.bin") as fh:
        while chunk := fh.read(1 << 20):
            streamed.update(chunk)
    assert streamed.hexdigest() == digest
    back = storage.get_file("raw/S1/abc/big.bin", tmp_path / "back.bin")
    assert hashlib.sha256(back.read_bytes()).hexdigest() == digest
    with storage.local_path("raw/S1/abc/big.bin") as path:
        assert path.stat().st_size == 12 * 1024 * 1024


def test_copy_keeps_the_source(storage):
    storage.put_bytes(b"data", "raw/S1/sha/f.fq")
    storage.copy("raw/S1/sha/f.fq", "quarantine/S1/sha/f.fq")
    assert storage.get_bytes("quarantine/S1/sha/f.fq") == b"data"
    assert storage.exists("raw/S1/sha/f.fq")


@pytest.mark.parametrize("key", ["../escape", "landing/../../etc/passwd", "/abs/path", "a/./b"])
def test_traversal_keys_are_refused(storage, key):
    with pytest.raises(StorageError) as info:
        storage.put_bytes(b"x", key)
    assert info.value.reason == "INVALID_KEY"


def test_local_storage_does_not_follow_symlinks(tmp_path):
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    storage = LocalStorage(base_dir=str(tmp_path / "zones"))
    (tmp_path / "zones" / "landing" / "S1").mkdir(parents=True)
    os.symlink(outside, tmp_path / "zones" / "landing" / "S1" / "link.fq")
    assert [o.key for o in storage.list("landing/")] == []
    with pytest.raises(StorageError) as info:
        storage.get_bytes("landing/S1/link.fq")
    assert info.value.reason == "SYMLINK_REFUSED"


def test_delete_derived_removes_only_files_under_processed(storage):
    storage.put_bytes(b"old input", "processed/S1/multiqc/S1.bcftools_stats.txt")
    storage.put_bytes(b"an upload", "landing/S1/S1_R1.fastq.gz")
    assert storage.delete_derived("processed/S1/multiqc/S1.bcftools_stats.txt") is True
    assert not storage.exists("processed/S1/multiqc/S1.bcftools_stats.txt")
    assert storage.delete_derived("processed/S1/multiqc/S1.bcftools_stats.txt") is False
    for key in ("landing/S1/S1_R1.fastq.gz", "raw/S1/x", "quarantine/S1/x", "reports/S1/report.html"):
        with pytest.raises(StorageError, match="never deleted"):
            storage.delete_derived(key)
    assert storage.get_bytes("landing/S1/S1_R1.fastq.gz") == b"an upload"
