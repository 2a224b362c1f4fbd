"""Leftovers of dead runs: scratch folders under the work dir and incomplete writes in storage.

A run that dies (killed for memory, SIGKILL, a lost machine) never reaches the `finally`
that removes its scratch folder, and a write cut off mid-way leaves a hidden `.part`
file beside its target (local storage) or an unfinished multipart upload (S3). Nothing
reads them again, but they hold disk: a crashed alignment leaves 40-169 MB of BAM.
Two sweepers remove them:

- the next run of the same sample, at its start (`clean_sample_leftovers`, called by
  `raw_files`): that sample's scratch folders of dead runs and its stale `.part` files;
- the daily maintenance job (`run_maintenance`): every sample's, plus every zone's
  incomplete writes, with the work dir's size before and after.

Scratch layout (`assets.artifacts.scratch_dir`): `<work_dir>/<sample>/<run_id>.<step>-<random>/`.
A folder whose run is alive (the instance says STARTING, STARTED or CANCELING) is never
touched. A folder whose run is known and over is removed at once. Anything else (a run
id this instance does not know, a folder in an older layout, a stray file) is removed
only when nothing in it changed for the grace period: a run of another instance that
shares the work dir keeps writing into its folder, so its files stay young.

The S3 local copy cache (`<work_dir>/.raw-cache/<sha256>/<name>`, see
`S3Storage.local_path`) falls under the same rule: a copy no run has read for the grace
period is an unowned entry and is removed; a later run fetches it again.

Plain Python: the caller passes `run_state`, a function from run id to "alive",
"over" or "unknown", so this module needs no Dagster instance to be tested or used.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from genoflow_dagster import zones
from genoflow_dagster.resources.storage import LocalStorage, Storage

RunState = Literal["alive", "over", "unknown"]

RUN_ID_SEPARATOR = "."  # <run_id>.<step>-<random>: Dagster run ids (UUIDs) hold no dot

# A folder of a run this instance does not know is left alone until it has been idle this long.
SCRATCH_GRACE_SECONDS = 3600.0
# A `.part` file or multipart upload idle this long is no write in progress (writers stream continuously).
INCOMPLETE_WRITE_GRACE_SECONDS = 3600.0
# Uploads into landing/ may be resumed: the portal keeps an S3 multipart upload open while its sender may come
# back, and gives an upload up after a week without a chunk (portal.app.DEFAULT_ABANDONED_AFTER_SECONDS). The
# sweep counts from when the upload began, so it waits longer. (Were it swept anyway, the portal re-sends the
# parts from the pieces on its disk.)
LANDING_UPLOAD_GRACE_SECONDS = 8 * 24 * 3600.0

# Zones swept by the maintenance job, each with the age an incomplete write must reach first.
ZONE_SWEEPS: tuple[tuple[str, float], ...] = (
    (f"{zones.PROCESSED}/", INCOMPLETE_WRITE_GRACE_SECONDS),
    (f"{zones.RAW}/", INCOMPLETE_WRITE_GRACE_SECONDS),
    (f"{zones.QUARANTINE}/", INCOMPLETE_WRITE_GRACE_SECONDS),
    (f"{zones.REPORTS}/", INCOMPLETE_WRITE_GRACE_SECONDS),
    (f"{zones.REFERENCE}/", INCOMPLETE_WRITE_GRACE_SECONDS),
    (f"{zones.LANDING}/", LANDING_UPLOAD_GRACE_SECONDS),
)


@dataclass(frozen=True)
class Removed:
    """One thing a sweep removed: a scratch folder (local path) or an incomplete write (storage key)."""

    what: Literal["scratch", "incomplete_write"]
    path: str
    bytes: int | None  # disk space freed (allocated blocks); None where the backend cannot tell
    why: str


@dataclass
class MaintenanceReport:
    work_dir: str
    work_dir_bytes_before: int
    work_dir_bytes_after: int
    removed: list[Removed] = field(default_factory=list)
    kept_live_scratch: list[str] = field(default_factory=list)

    @property
    def bytes_freed(self) -> int:
        return sum(r.bytes or 0 for r in self.removed)

    def to_json(self) -> dict[str, Any]:
        return {
            "work_dir": self.work_dir,
            "work_dir_bytes_before": self.work_dir_bytes_before,
            "work_dir_bytes_after": self.work_dir_bytes_after,
            "bytes_freed": self.bytes_freed,
            "removed": [asdict(r) for r in self.removed],
            "kept_live_scratch": self.kept_live_scratch,
        }


def scratch_folder_name(run_id: str, step: str) -> str:
    """The prefix `scratch_dir` gives `mkdtemp` (the random suffix follows): `<run_id>.<step>-`."""
    return f"{run_id.replace(RUN_ID_SEPARATOR, '_')}{RUN_ID_SEPARATOR}{step}-"


def owner_run_id(name: str) -> str | None:
    """The run id a scratch entry's name carries, or None (older layout, stray file)."""
    run_id, sep, _ = name.partition(RUN_ID_SEPARATOR)
    return run_id if sep and run_id else None


def disk_bytes(path: Path) -> int:
    """Allocated size of a file or folder tree, as `du` counts it (a sparse file counts what it holds)."""
    try:
        st = os.lstat(path)
    except OSError:
        return 0
    total = st.st_blocks * 512
    if path.is_dir() and not path.is_symlink():
        for root, dirs, files in os.walk(path):
            for name in dirs + files:
                with contextlib.suppress(OSError):
                    total += os.lstat(os.path.join(root, name)).st_blocks * 512
    return total


def last_change(path: Path) -> float:
    """The newest modification time of a file or anything in a folder tree."""
    try:
        newest = os.lstat(path).st_mtime
    except OSError:
        return 0.0
    if path.is_dir() and not path.is_symlink():
        for root, dirs, files in os.walk(path):
            for name in dirs + files:
                with contextlib.suppress(OSError):
                    newest = max(newest, os.lstat(os.path.join(root, name)).st_mtime)
    return newest


def _entries(work_dir: Path, sample_id: str | None) -> Iterator[Path]:
    """Each scratch entry: `<work_dir>/<sample>/<entry>`, and stray files straight under the work dir."""
    if not work_dir.is_dir():
        return
    folders = [work_dir / zones.validate_sample_id(sample_id)] if sample_id else sorted(work_dir.iterdir())
    for folder in folders:
        if folder.is_symlink() or not folder.exists():
            continue
        if folder.is_dir():
            yield from sorted(folder.iterdir())
        elif sample_id is None:
            yield folder


def remove_dead_scratch(work_dir: Path, run_state: Callable[[str], RunState], *, sample_id: str | None = None,
                        grace_seconds: float = SCRATCH_GRACE_SECONDS, now: float | None = None,
                        kept: list[str] | None = None) -> list[Removed]:
    """Remove scratch folders of runs that are over, and idle unowned entries; never a live run's.

    `sample_id` limits the sweep to that sample's folder. Paths of live runs' folders are appended
    to `kept` when given. Never raises for a folder that vanishes meanwhile.
    """
    now = time.time() if now is None else now
    states: dict[str, RunState] = {}
    removed: list[Removed] = []
    for entry in _entries(work_dir, sample_id):
        run_id = owner_run_id(entry.name)
        state: RunState = "unknown"
        if run_id is not None:
            if run_id not in states:
                states[run_id] = run_state(run_id)
            state = states[run_id]
        if state == "alive":
            if kept is not None:
                kept.append(str(entry))
            continue
        idle = now - last_change(entry)
        if state == "over":
            why = f"run {run_id} is over"
        elif idle >= grace_seconds:
            owner = f"run {run_id} is unknown to this instance" if run_id else "no run named"
            why = f"{owner}; idle {idle / 3600:.1f} h"
        else:
            continue
        size = disk_bytes(entry)
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        if not entry.exists():
            removed.append(Removed("scratch", str(entry), size, why))
    _remove_empty_sample_folders(work_dir, sample_id)
    return removed


def _remove_empty_sample_folders(work_dir: Path, sample_id: str | None) -> None:
    folders = [work_dir / sample_id] if sample_id else (list(work_dir.iterdir()) if work_dir.is_dir() else [])
    for folder in folders:
        if folder.is_dir() and not folder.is_symlink():
            with contextlib.suppress(OSError):  # only when empty; a run creating one just now recreates it
                folder.rmdir()


def sweep_incomplete_writes(storage: Storage, sweeps: Iterable[tuple[str, float]]) -> list[Removed]:
    """Remove `.part` temp files (local) or abort multipart uploads (S3) idle longer than each prefix's age."""
    removed: list[Removed] = []
    for prefix, older_than in sweeps:
        sizes = _local_part_sizes(storage, prefix)
        for key in storage.sweep_incomplete_writes(prefix, older_than_seconds=older_than):
            removed.append(Removed("incomplete_write", key, sizes.get(key),
                                   f"incomplete write idle over {older_than / 3600:g} h"))
    return removed


def _local_part_sizes(storage: Storage, prefix: str) -> dict[str, int]:
    """Allocated bytes of the hidden `.part` files under a prefix, read before they are swept (local only)."""
    if not isinstance(storage, LocalStorage):
        return {}
    root = Path(storage.base_dir).resolve()
    start = root.joinpath(*[p for p in prefix.split("/") if p])
    sizes: dict[str, int] = {}
    if not start.is_dir():
        return sizes
    for path in start.rglob(".*.part"):
        with contextlib.suppress(OSError):
            sizes[path.relative_to(root).as_posix()] = path.lstat().st_blocks * 512
    return sizes


def sample_write_sweeps(sample_id: str, older_than_seconds: float) -> list[tuple[str, float]]:
    """The prefixes a sample's own run writes to (and so may leave `.part` files under)."""
    sample_id = zones.validate_sample_id(sample_id)
    return [(f"{zones.PROCESSED}/{sample_id}/", older_than_seconds), (f"{zones.RAW}/{sample_id}/", older_than_seconds)]


def clean_sample_leftovers(storage: Storage, work_dir: Path, sample_id: str, run_state: Callable[[str], RunState],
                           *, other_live_runs: bool, grace_seconds: float = SCRATCH_GRACE_SECONDS) -> list[Removed]:
    """What a new run of a sample removes first: the sample's dead scratch and its stale incomplete writes.

    With no other live run of the sample, every `.part` file under its prefixes is a dead write
    (this run has written nothing yet), so they go whatever their age; otherwise only idle ones.
    """
    removed = remove_dead_scratch(work_dir, run_state, sample_id=sample_id, grace_seconds=grace_seconds)
    part_age = INCOMPLETE_WRITE_GRACE_SECONDS if other_live_runs else 0.0
    return removed + sweep_incomplete_writes(storage, sample_write_sweeps(sample_id, part_age))


def run_maintenance(storage: Storage, work_dir: Path, run_state: Callable[[str], RunState], *,
                    grace_seconds: float = SCRATCH_GRACE_SECONDS,
                    sweeps: Iterable[tuple[str, float]] = ZONE_SWEEPS,
                    now: float | None = None) -> MaintenanceReport:
    """The daily job's work: dead scratch across all samples, incomplete writes across all zones."""
    report = MaintenanceReport(work_dir=str(work_dir), work_dir_bytes_before=disk_bytes(work_dir),
                               work_dir_bytes_after=0)
    report.removed += remove_dead_scratch(work_dir, run_state, grace_seconds=grace_seconds, now=now,
                                          kept=report.kept_live_scratch)
    report.removed += sweep_incomplete_writes(storage, sweeps)
    report.work_dir_bytes_after = disk_bytes(work_dir)
    return report


def describe(removed: Removed) -> str:
    """One line an operator reads in the run log."""
    size = "size unknown" if removed.bytes is None else f"{removed.bytes:,} bytes"
    return f"removed {removed.path} ({size}): {removed.why}"
