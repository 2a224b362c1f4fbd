"""Rate limits per caller, and refusals without a token written to the audit table without flooding it.

`RateLimiter` is a token bucket per key (a token's id; a client address for requests without a valid
token): `rate_per_minute` requests per minute refilled continuously, at most `burst` at once. It runs as
`RateLimitMiddleware`, before routing, so a request over the limit costs one token lookup and nothing
else: its body is never read and nothing is written, not even an audit row.

The default (`DEFAULT_RATE_PER_MINUTE`) is sized for the page's own traffic: a 5 GB upload in 8 MiB chunks
over loopback at ~300 MB/s is ~37 chunk requests a second (~2,200 a minute), plus a status poll every few
seconds. 6,000 a minute (100 a second, 1,000 at once) leaves that 2.7 times over, and still stops a runaway
script from hammering the database. 0 turns the limit off.

`RefusalLog` keeps the audit trail of requests without a valid token bounded: per client address and
minute, the first refusal is written at once (who, what, from where) and the rest become one row with
their count when the minute is over (on the next refusal from anyone, or when the portal stops).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.responses import JSONResponse

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

    from genoflow_dagster.portal.uploads import UploadStore

RATE_LIMITED = "RATE_LIMITED"
DEFAULT_RATE_PER_MINUTE = 6000
BURST_SECONDS = 10  # a bucket holds ten seconds' worth of requests
_PRUNE_AT = 10_000  # buckets kept before the full ones (the same as no bucket) are dropped


def burst_for(rate_per_minute: int) -> int:
    return max(1, rate_per_minute * BURST_SECONDS // 60)


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """A token bucket per key; thread-safe. `take(key)` answers 0 when the request may go on, else the
    seconds to wait before the next one would be allowed."""

    def __init__(self, rate_per_minute: int, burst: int | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate_per_minute = rate_per_minute
        self.burst = burst if burst is not None else burst_for(rate_per_minute)
        self._per_second = rate_per_minute / 60
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.rate_per_minute > 0

    def take(self, key: str) -> float:
        if not self.enabled:
            return 0.0
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= _PRUNE_AT:
                    self._prune(now)
                bucket = self._buckets[key] = _Bucket(float(self.burst), now)
            bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.at) * self._per_second)
            bucket.at = now
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                return 0.0
            return (1 - bucket.tokens) / self._per_second

    def _prune(self, now: float) -> None:
        refill = self.burst / self._per_second  # seconds for an empty bucket to fill
        for key in [k for k, b in self._buckets.items() if now - b.at >= refill]:
            del self._buckets[key]


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class RateLimitMiddleware:
    """Answers 429 RATE_LIMITED (with Retry-After) to a caller over its limit, before anything else runs.

    `identify(scope)` (run in a worker thread: it may look a token up) answers the bucket's key and may
    leave what it found in `scope["state"]` for the endpoint, so a token is looked up once per request."""

    def __init__(self, app: ASGIApp, limiter: RateLimiter, identify: Callable[[Scope], str]) -> None:
        self.app = app
        self.limiter = limiter
        self.identify = identify

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.limiter.enabled:
            await self.app(scope, receive, send)
            return
        from starlette.concurrency import run_in_threadpool

        key = await run_in_threadpool(self.identify, scope)
        wait = self.limiter.take(key)
        if wait <= 0:
            await self.app(scope, receive, send)
            return
        seconds = max(1, math.ceil(wait))
        response = JSONResponse(
            {"error": {"code": RATE_LIMITED,
                       "message": f"too many requests: this token (or, without a token, this address) may make "
                                  f"{self.limiter.rate_per_minute:,} a minute; try again in {seconds} s"}},
            status_code=429, headers={"Retry-After": str(seconds)})
        await response(scope, receive, send)


@dataclass
class _Window:
    minute: int
    started: float
    more: int = 0  # refusals after the first, not yet written
    last: str = ""


class RefusalLog:
    """Audit rows for requests without a valid token: at most two per client address and minute."""

    def __init__(self, store: UploadStore, *, window_seconds: float = 60,
                 clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._window = window_seconds
        self._clock = clock
        self._open: dict[str, _Window] = {}
        self._lock = threading.Lock()

    def refused(self, address: str, what: str) -> None:
        """Record that a request from `address` (`what`: method, path and why) was refused."""
        now = self._clock()
        minute = int(now // self._window)
        with self._lock:
            ended = self._take_ended(minute)
            window = self._open.get(address)
            first = window is None
            if window is None:
                self._open[address] = _Window(minute, now)
            else:
                window.more += 1
                window.last = what
        self._write(ended)
        if first:
            self._store.audit("refused", actor=None, allowed=False, detail=f"{what} (from {address})")

    def flush(self) -> None:
        """Write every open count now (the portal is stopping)."""
        with self._lock:
            ended, self._open = list(self._open.items()), {}
        self._write(ended)

    def _take_ended(self, minute: int) -> list[tuple[str, _Window]]:
        ended = [(a, w) for a, w in self._open.items() if w.minute != minute]
        for address, _ in ended:
            del self._open[address]
        return ended

    def _write(self, ended: list[tuple[str, _Window]]) -> None:
        for address, window in ended:
            if window.more:
                since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(window.started))
                self._store.audit("refused_repeatedly", actor=None, allowed=False,
                                  detail=f"{window.more} more refused requests from {address} in the minute after "
                                         f"{since} (the last: {window.last})")


def on_stop(callback: Callable[[], Any]) -> Callable[[Any], Any]:
    """A FastAPI lifespan that calls `callback` when the server stops."""
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app: Any) -> Any:
        try:
            yield
        finally:
            callback()

    return lifespan

