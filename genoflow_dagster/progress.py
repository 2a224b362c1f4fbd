"""Progress lines for long steps: how far, how fast, how long still (plain Python, no Dagster).

A long step (validating, QC-ing or screening a file, calling a genome in chunks) takes an optional
`progress` callback and calls it between chunks of work with the position reached so far:
`progress(amount, records)`, where `amount` is bytes of the file as stored (the compressed offset for a
gzip file, so the percentage is of the file on disk) or another unit the reporter was made with (None
when the step cannot tell, e.g. a file read by a child process), and `records` the records read so far
(None when the step does not count them). Both are totals, not increments. The default `progress=None`
costs nothing.

`Progress` is the callback the assets and the CLI pass. It writes a line at a steady time cadence
(every `every_seconds`, whatever the speed of the step), never per N records, so a slow file is not
silent and a fast one does not flood the run log:

    validate S1_R1.fastq.gz: 412 MB of 1.2 GB (34%), 2.1M records, 96 MB/s, ETA 8 s

A call costs one clock read and a compare when no line is due, so callers may call it per chunk of a few
MB (or per batch of a few thousand records) without measurable cost.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

Log = Callable[[str], None]
ProgressCallback = Callable[["int | None", "int | None"], None]

DEFAULT_EVERY_SECONDS = 10.0


class Progress:
    """A progress reporter for one step; call it with (amount, records) totals, then `done()`.

    `total` is the amount at the end (the file size for bytes), or None when unknown (no percentage or
    ETA then). `unit` is "bytes" (shown as kB/MB/GB, rate in MB/s) or a plural noun such as "chunks" or
    "reads" (shown as counts). `clock` is injectable for tests; it returns seconds.
    Used as a context manager, `done()` runs when the block ends without an exception.
    """

    def __init__(self, label: str, total: int | None, log: Log, *, unit: str = "bytes",
                 every_seconds: float = DEFAULT_EVERY_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.label = label
        self.total = total if total is None or total > 0 else None
        self.unit = unit
        self.every_seconds = every_seconds
        self.amount: int | None = 0
        self.records: int | None = None
        self.lines = 0  # progress lines written so far
        self._log = log
        self._clock = clock
        self._started = clock()
        self._next_at = self._started + every_seconds

    @classmethod
    def for_file(cls, label: str, path: str | os.PathLike[str], log: Log, **options: Any) -> Progress:
        """A reporter in bytes of the file at `path` as stored (its size is the total)."""
        return cls(label, os.path.getsize(path), log, **options)

    def __call__(self, amount: int | None, records: int | None = None) -> None:
        self.amount = amount
        self.records = records
        now = self._clock()
        if now >= self._next_at:
            self._next_at = now + self.every_seconds
            self.lines += 1
            self._log(self.line(now))

    def line(self, now: float | None = None) -> str:
        """The progress line for the position reached so far."""
        elapsed = (self._clock() if now is None else now) - self._started
        if self.amount is None:  # records only: no position in the file, no ETA
            records_rate = (self.records or 0) / elapsed if elapsed > 0 else 0
            return f"{self.label}: {count(self.records or 0)} records, {records_rate:,.0f} records/s"
        parts = [self._where(self.amount)]
        if self.records is not None:
            parts.append(f"{count(self.records)} records")
        rate = self.amount / elapsed if elapsed > 0 else None
        if rate:
            parts.append(self._rate(rate))
            if self.total is not None and self.amount <= self.total:
                parts.append(f"ETA {duration((self.total - self.amount) / rate)}")
        return f"{self.label}: " + ", ".join(parts)

    def done(self) -> None:
        """Log the closing line (amount, records, time, mean rate) when the step was long enough to log
        progress; a step shorter than one interval stays quiet (its caller logs its result anyway)."""
        if not self.lines:
            return
        elapsed = self._clock() - self._started
        parts = [] if self.amount is None else [self._size(self.amount)]
        if self.records is not None:
            parts.append(f"{count(self.records)} records")
        text = f"{self.label}: done, " + ", ".join(parts) + f" in {duration(elapsed)}"
        if elapsed > 0 and self.amount:
            text += f" ({self._rate(self.amount / elapsed)})"
        self._log(text)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if kind is None:
            self.done()

    def _where(self, amount: int) -> str:
        if self.total is None:
            return self._size(amount)
        percent = min(100, int(100 * amount / self.total))
        if self.unit == "bytes":
            return f"{size(amount)} of {size(self.total)} ({percent}%)"
        return f"{amount:,} of {self.total:,} {self.unit} ({percent}%)"

    def _size(self, amount: int) -> str:
        return size(amount) if self.unit == "bytes" else f"{count(amount)} {self.unit}"

    def _rate(self, per_second: float) -> str:
        if self.unit == "bytes":
            return f"{size(per_second)}/s"
        return f"{per_second:,.1f} {self.unit}/s" if per_second < 10 else f"{per_second:,.0f} {self.unit}/s"


def size(n: float) -> str:
    """Bytes in decimal units, as a person reads them: 412 MB, 1.2 GB, 980 kB."""
    for limit, unit in ((1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
        if n >= limit:
            value = n / limit
            return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"
    return f"{int(n)} bytes"


def count(n: int) -> str:
    """A count as a person reads it: 950, 12.3k, 2.1M, 1.4G (records)."""
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= limit:
            value = n / limit
            return f"{value:.1f}{suffix}" if value < 100 else f"{value:.0f}{suffix}"
    return str(n)


def duration(seconds: float) -> str:
    """8 s, 3 min 10 s, 1 h 5 min."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"
