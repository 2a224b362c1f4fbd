"""Storage outages retried inside the run: a step that loses S3 for a moment is tried again, not the sample.

Without this, a step that hits a hung or unreachable S3 endpoint fails the run,
and the sample's next run starts from raw_files again: the steps that had
finished run twice (benchmarks/RESULTS.md, fault matrix). Dagster's run
retries are not the answer, because they cannot tell an outage from a quality
gate that stopped the sample (a retry would recompute the gate for nothing).
So each asset raises `RetryRequested` for the storage failures that pass
(`TIMEOUT`, `UNREACHABLE`, `CONNECTION_LOST`) and Dagster re-executes the step
alone, in the same run, after a wait; any other error fails the step as before.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import dagster as dg

from genoflow_dagster.errors import StorageError

TRANSIENT_STORAGE_REASONS = frozenset({"TIMEOUT", "UNREACHABLE", "CONNECTION_LOST"})
STORAGE_RETRIES = 3
STORAGE_RETRY_WAIT_SECONDS = 30

F = TypeVar("F", bound=Callable[..., Any])


def _retries_left(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Whether the step may still be retried: the last attempt fails with the storage error itself, so
    the run's failure names the outage instead of 'Exceeded max_retries'."""
    for value in (*args, *kwargs.values()):
        if isinstance(value, dg.AssetExecutionContext | dg.OpExecutionContext):
            return value.retry_number < STORAGE_RETRIES
    return True


@contextlib.contextmanager
def _outages_retried(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Iterator[None]:
    """Turn a passing storage outage inside the block into `RetryRequested`; anything else goes through."""
    try:
        yield
    except StorageError as exc:
        if exc.reason in TRANSIENT_STORAGE_REASONS and _retries_left(args, kwargs):
            raise dg.RetryRequested(max_retries=STORAGE_RETRIES, seconds_to_wait=STORAGE_RETRY_WAIT_SECONDS) from exc
        raise


def retry_storage_outages(fn: F) -> F:
    """Wrap an asset function (plain or generator) so a passing storage outage retries the step."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def generator(*args: Any, **kwargs: Any) -> Any:
            with _outages_retried(args, kwargs):
                yield from fn(*args, **kwargs)
        return generator  # type: ignore[return-value]

    @functools.wraps(fn)
    def plain(*args: Any, **kwargs: Any) -> Any:
        with _outages_retried(args, kwargs):
            return fn(*args, **kwargs)
    return plain  # type: ignore[return-value]
