"""Small helpers the assets share: JSON/parquet artifacts in storage and local scratch copies.

Large files never pass through an IO manager: assets write artifacts to the
keys `zones` gives them and hand downstream assets nothing but those keys.
"""


import contextlib
import hashlib
import io
import json
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from genoflow_dagster import settings, zones
from genoflow_dagster.maintenance import RunState, scratch_folder_name
from genoflow_dagster.resources.storage import ObjectInfo, Storage

COPY_CHUNK = 8 * 1024 * 1024


def write_json(storage: Storage, key: str, payload: Any) -> ObjectInfo:
    data = json.dumps(payload, indent=2, sort_keys=True, default=str).encode()
    return storage.put_bytes(data, key)


def read_json(storage: Storage, key: str) -> Any:
    return json.loads(storage.get_bytes(key))


def write_parquet(storage: Storage, key: str, frame: pd.DataFrame) -> ObjectInfo:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return storage.put_bytes(buffer.getvalue(), key)


def read_parquet(storage: Storage, key: str) -> pd.DataFrame:
    return pd.read_parquet(io.BytesIO(storage.get_bytes(key)))


SHARED_SCRATCH = "_shared"  # scratch of no sample (no sample id starts with "_")

LIVE_RUN_STATUSES = frozenset({"STARTING", "STARTED", "CANCELING"})


@contextlib.contextmanager
def scratch_dir(prefix: str, *, sample_id: str | None = None, run_id: str | None = None) -> Iterator[Path]:
    """A private temporary folder under the work dir, removed afterwards whatever happens.

    With a sample and run id it is `<work_dir>/<sample>/<run_id>.<prefix>-<random>`, so when the run
    dies before its `finally` (killed, machine lost) the next run of the sample and the maintenance
    job can tell its folder from a live run's and remove it (`genoflow_dagster.maintenance`).
    """
    parent = settings.work_dir() / (zones.validate_sample_id(sample_id) if sample_id else SHARED_SCRATCH)
    name = scratch_folder_name(run_id, prefix) if run_id else f"{prefix}-"
    for attempt in range(3):  # a sweep may remove the empty sample folder between mkdir and mkdtemp
        parent.mkdir(parents=True, exist_ok=True)
        try:
            path = Path(tempfile.mkdtemp(prefix=name, dir=parent))
            break
        except FileNotFoundError:
            if attempt == 2:
                raise
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def run_state_from_instance(instance: Any) -> Callable[[str], RunState]:
    """`run_state` for `genoflow_dagster.maintenance`: a run is alive while the instance says it is
    starting, running or being cancelled, over in any other status it records, unknown when absent."""

    def run_state(run_id: str) -> RunState:
        try:
            run = instance.get_run_by_id(run_id)
        except Exception:  # a malformed id (older layout names) is a run this instance cannot know
            return "unknown"
        if run is None:
            return "unknown"
        return "alive" if run.status.value in LIVE_RUN_STATUSES else "over"

    return run_state


def download_hashing(storage: Storage, key: str, dest: Path) -> tuple[str, int]:
    """Stream an object to `dest`, returning (sha256 hex, size) computed on the way."""
    digest = hashlib.sha256()
    size = 0
    with storage.open_read(key) as src, open(dest, "wb") as out:
        while chunk := src.read(COPY_CHUNK):
            digest.update(chunk)
            size += len(chunk)
            out.write(chunk)
    return digest.hexdigest(), size


def markdown_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A Markdown table for Dagster metadata (rendered in the UI)."""
    if not rows:
        return "_none_"
    head = "| " + " | ".join(columns) + " |\n| " + " | ".join("---" for _ in columns) + " |\n"
    body = "".join(
        "| " + " | ".join(_cell(row.get(col)) for col in columns) + " |\n" for row in rows
    )
    return head + body


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|").replace("\n", " ")
