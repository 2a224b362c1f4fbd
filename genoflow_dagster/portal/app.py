"""The upload portal's REST API (FastAPI): lab staff hand over files; they land in `landing/` whole.

`create_app(storage, instance_getter, settings)` builds the app; `genoflow portal` serves it with uvicorn.
Every error answers one shape, `{"error": {"code": ..., "message": ...}}`, with a code from
`API_ERROR_CODES` (`uploads.ERROR_CODES`, plus UNAUTHORIZED and FORBIDDEN for tokens, RATE_LIMITED and
LINK_EXPIRED) and a message in plain words. The logic is in `uploads.py` (uploads), `access.py` (tokens),
`downloads.py` (results and links), `limits.py` (rate limits) and `status.py` (runs); this module only maps
HTTP onto it.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import anyio.from_thread
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from genoflow_dagster import settings as genoflow_settings
from genoflow_dagster import zones
from genoflow_dagster.portal.access import ADMIN, ANALYST, ROLES, UPLOADER, Principal, TokenStore, may_see_sample
from genoflow_dagster.portal.downloads import (
    DEFAULT_LINK_SECONDS,
    LINK_EXPIRED,
    DownloadLinks,
    LinkSigner,
    content_disposition,
    link_secret,
)
from genoflow_dagster.portal.identity import PROXY_ACTOR_PREFIX, ProxyIdentity, ProxyIdentityError
from genoflow_dagster.portal.limits import (
    DEFAULT_RATE_PER_MINUTE,
    RATE_LIMITED,
    RateLimiter,
    RateLimitMiddleware,
    RefusalLog,
    client_address,
    on_stop,
)
from genoflow_dagster.portal.page import add_page
from genoflow_dagster.portal.status import InstanceGetter, upload_status
from genoflow_dagster.portal.uploads import (
    EMPTY_FILENAME,
    ERROR_CODES,
    INTERNAL_ERROR,
    NO_FILE,
    STORAGE_ERROR,
    VALIDATION_ERROR,
    Upload,
    UploadError,
    UploadStore,
    file_format,
    supported_formats,
    too_large,
)

UNAUTHORIZED = "UNAUTHORIZED"
FORBIDDEN = "FORBIDDEN"
API_ERROR_CODES = (*ERROR_CODES, UNAUTHORIZED, FORBIDDEN, RATE_LIMITED, LINK_EXPIRED)
DEFAULT_ABANDONED_AFTER_SECONDS = 7 * 86400  # a week without a chunk: the sender has given up
DEFAULT_CHUNK_BYTES = 8 * 1024 * 1024  # S3's multipart parts are 5 MiB at least; a browser sends 8 MiB easily
FORM_OVERHEAD_BYTES = 64 * 1024  # a multipart form's boundaries and fields around the file itself
PORTAL_DIR = ".portal"
_CALLER = "genoflow_caller"  # where the rate limiter leaves the token it looked up (request.state)
log = logging.getLogger("genoflow.portal")

if TYPE_CHECKING:
    from genoflow_dagster.resources.storage import Storage


@dataclass(frozen=True)
class PortalSettings:
    """Where the portal keeps its state, the size limit, the chunk size it asks clients for, whether
    requests need a token (only a portal listening on loopback may go without), after how long
    without a chunk an unfinished upload is given up (checked when the portal starts), how long a
    download link lives, the key local download links are signed with (None: a random one per process),
    and how many requests a token (or an address without one) may make a minute (0: no limit)."""

    state_dir: Path
    max_file_bytes: int
    chunk_bytes: int = DEFAULT_CHUNK_BYTES
    require_tokens: bool = True
    abandoned_after_seconds: float = DEFAULT_ABANDONED_AFTER_SECONDS
    link_seconds: int = DEFAULT_LINK_SECONDS
    link_secret: str | None = field(default=None, repr=False)
    rate_per_minute: int = DEFAULT_RATE_PER_MINUTE
    proxy_identity: ProxyIdentity | None = None  # single sign-on through a trusted reverse proxy (identity.py)

    @classmethod
    def from_environment(cls, *, require_tokens: bool = True) -> PortalSettings:
        """`<GENOFLOW_DATA_DIR>/.portal` and GENOFLOW_MAX_FILE_BYTES, as the rest of GenoFlow reads them, and
        GENOFLOW_PORTAL_SECRET, GENOFLOW_PORTAL_LINK_SECONDS and GENOFLOW_PORTAL_RATE_PER_MINUTE, and the
        single sign-on settings of `identity.ProxyIdentity`."""
        return cls(state_dir=genoflow_settings.data_dir() / PORTAL_DIR,
                   max_file_bytes=genoflow_settings.max_file_bytes(), require_tokens=require_tokens,
                   link_seconds=_whole_number("GENOFLOW_PORTAL_LINK_SECONDS", DEFAULT_LINK_SECONDS, minimum=1),
                   link_secret=os.environ.get("GENOFLOW_PORTAL_SECRET") or None,
                   rate_per_minute=_whole_number("GENOFLOW_PORTAL_RATE_PER_MINUTE", DEFAULT_RATE_PER_MINUTE,
                                                 minimum=0),
                   proxy_identity=ProxyIdentity.from_environment())


def _whole_number(variable: str, default: int, *, minimum: int) -> int:
    raw = os.environ.get(variable, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < minimum:
        raise ValueError(f"{variable} must be a whole number of at least {minimum}, not {raw!r}")
    return int(raw)


class UploadRequest(BaseModel):
    sample_id: str
    file_name: str = ""
    size: int
    sha256: str | None = None


class TokenRequest(BaseModel):
    name: str
    role: str


def _error(code: str, message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


class AccessRefused(Exception):
    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def _plain_validation_message(exc: RequestValidationError) -> str:
    parts = []
    for problem in exc.errors():
        where = ".".join(str(p) for p in problem.get("loc", ()) if p not in ("body", "query", "path"))
        parts.append(f"{where}: {problem.get('msg', 'not valid')}" if where else str(problem.get("msg")))
    return "the request is not valid: " + "; ".join(parts)


LOCAL_ADMIN = Principal(None, "local", ADMIN)  # who calls a portal started with --no-auth (loopback only)


def _bearer_token(authorization: str) -> str | None:
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def identify(scope: Any, settings: PortalSettings, tokens: TokenStore) -> Principal | None:
    """Who sent the request in `scope`: the person a trusted proxy signed in, else the holder of its bearer
    token; None for neither. Raises AccessRefused (403) for a signed-in person without a role here.
    Looked up once per request (by the rate limiter first) and kept in the request's state."""
    state = scope.setdefault("state", {})
    if _CALLER in state:
        found: Principal | None = state[_CALLER]
        return found
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or ()}
    found = None
    if settings.proxy_identity is not None:
        try:
            found = settings.proxy_identity.principal(client_address(scope), headers)
        except ProxyIdentityError as exc:
            raise AccessRefused(FORBIDDEN, str(exc), 403) from exc
    if found is None:
        token = _bearer_token(headers.get("authorization", ""))
        found = tokens.principal(token) if token else None
    state[_CALLER] = found
    return found


def principal(request: Request) -> Principal:
    """The caller (`identify`); 401 without a valid token or sign-in (audited, at most twice a minute per
    client address: `limits.RefusalLog`)."""
    settings: PortalSettings = request.app.state.settings
    if not settings.require_tokens:
        return LOCAL_ADMIN
    try:
        found = identify(request.scope, settings, request.app.state.tokens)
    except AccessRefused:
        request.app.state.refusals.refused(client_address(request.scope), f"{request.method} {request.url.path}: "
                                           "signed in, but in no group with a role")
        raise
    if found is None:
        header = request.headers.get("authorization", "")
        request.app.state.refusals.refused(client_address(request.scope), f"{request.method} {request.url.path}: "
                                           f"{'unknown token' if header else 'no token'}")
        raise AccessRefused(UNAUTHORIZED, "this needs a valid API token (Authorization: Bearer <token>)", 401)
    return found


Caller = Annotated[Principal, Depends(principal)]


def create_app(storage: Storage, instance_getter: InstanceGetter, settings: PortalSettings) -> FastAPI:
    """The portal's API over `storage` (files land in its landing zone) and the Dagster instance that
    `instance_getter()` returns (read for run status only; it may return None: no run status then)."""
    store = UploadStore(settings.state_dir, storage)
    store.release_interrupted_assemblies()  # one portal process per state dir (`genoflow portal`)
    store.expire_abandoned(settings.abandoned_after_seconds)
    tokens = TokenStore(store)
    refusals = RefusalLog(store)
    secret, configured = link_secret(settings.link_secret)

    def link_maker_active(actor: str) -> bool:
        """Whether whoever a download link was made for may still use it: a token not revoked since, or a person
        signed in through the proxy (who the proxy lets in is its business; the link expires on its own)."""
        return actor.startswith(PROXY_ACTOR_PREFIX) or tokens.active(actor)

    links = DownloadLinks(storage, store, LinkSigner(secret), settings.link_seconds,
                          actor_active=link_maker_active if settings.require_tokens else None)
    if not configured and not links.presigned:
        log.warning("GENOFLOW_PORTAL_SECRET is not set: download links are signed with a random key made now, "
                    "and stop working when the portal restarts")
    app = FastAPI(title="GenoFlow upload portal", version="1", lifespan=on_stop(refusals.flush),
                  description="Hand over sequencing files; follow them to the report and download its results.")
    app.state.store = store
    app.state.tokens = tokens
    app.state.settings = settings
    add_page(app)
    app.state.refusals = refusals
    app.state.links = links

    def rate_key(scope: Any) -> str:
        """The rate limit's key: the token's id, or the client address without a valid token."""
        if settings.require_tokens:
            try:
                found = identify(scope, settings, tokens)
            except AccessRefused:
                found = None  # refused in words by the endpoint; limited by address meanwhile
            if found is not None:
                return f"caller {found.token_id}"
        return f"address {client_address(scope)}"

    app.add_middleware(RateLimitMiddleware, limiter=RateLimiter(settings.rate_per_minute), identify=rate_key)

    @app.exception_handler(UploadError)
    async def upload_error(request: Request, exc: UploadError) -> JSONResponse:
        return _error(exc.code, exc.message, exc.http_status)

    @app.exception_handler(AccessRefused)
    async def access_refused(request: Request, exc: AccessRefused) -> JSONResponse:
        response = _error(exc.code, exc.message, exc.status)
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = "Bearer"
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(VALIDATION_ERROR, _plain_validation_message(exc), 422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = INTERNAL_ERROR if exc.status_code >= 500 else VALIDATION_ERROR
        message = "there is no such address" if exc.status_code == 404 else str(exc.detail)
        return _error(code, message, exc.status_code)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        return _error(INTERNAL_ERROR, "something went wrong on the server; the upload can be resumed or "
                      "sent again (the administrator finds the details in the server log)", 500)

    # ------------------------------------------------------------ who is calling

    def actor(who: Principal) -> str:
        return who.token_id or who.name

    def require(who: Principal, role: str, request: Request, upload_id: str | None = None) -> None:
        if not who.may(role):
            store.audit("refused", actor=actor(who), upload_id=upload_id, allowed=False,
                        detail=f"{request.method} {request.url.path}: role {who.role} lacks {role}")
            raise AccessRefused(FORBIDDEN, f"a token with the role {who.role} may not do this (it needs {role})", 403)

    def owned_upload(upload_id: str, who: Principal, request: Request) -> Upload:
        """The upload, if `who` may see it: an uploader sees only its own, an analyst or admin any."""
        require(who, UPLOADER, request, upload_id)
        upload = store.get(upload_id)
        if not who.may(ANALYST) and upload.actor != actor(who):
            store.audit("refused", actor=actor(who), upload_id=upload_id, allowed=False,
                        detail=f"{request.method} {request.url.path}: another token's upload")
            raise AccessRefused(FORBIDDEN, "this upload was sent with another token; an uploader sees only "
                                "its own uploads", 403)
        return upload

    # ------------------------------------------------------------ endpoints

    @app.get("/me")
    def me(who: Caller) -> dict[str, Any]:
        """Who is calling and with which role, and how they were recognised (`via`: token, sso through the
        trusted proxy, or local without tokens); the page asks first, to know whether to ask for a token."""
        sso = (who.token_id or "").startswith(PROXY_ACTOR_PREFIX)
        via = "local" if who is LOCAL_ADMIN else "sso" if sso else "token"
        return {"name": who.name, "role": who.role, "tokens_required": settings.require_tokens, "via": via}

    @app.get("/supported_formats")
    def get_supported_formats() -> dict[str, Any]:
        """The formats and extensions the validators accept, the size limit and the chunk size."""
        return {**supported_formats(), "max_file_bytes": settings.max_file_bytes, "chunk_bytes": settings.chunk_bytes}

    @app.post("/uploads", status_code=201)
    def start_upload(body: UploadRequest, request: Request, who: Caller) -> dict[str, Any]:
        """Declare a resumable upload; answers its id and the chunk size and count to send."""
        require(who, UPLOADER, request)
        upload = store.create(body.sample_id, body.file_name, body.size, chunk_size=settings.chunk_bytes,
                              max_bytes=settings.max_file_bytes, sha256=body.sha256, actor=actor(who))
        return _progress(upload, [])

    @app.put("/uploads/{upload_id}/chunks/{number}")
    async def put_chunk(upload_id: str, number: int, request: Request,
                        who: Caller) -> dict[str, Any]:
        """Store chunk `number` (0-based; raw bytes in the body). Sending a chunk again replaces it."""
        await run_in_threadpool(owned_upload, upload_id, who, request)
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > settings.chunk_bytes:
            raise UploadError("FILE_TOO_LARGE", f"a chunk is at most {settings.chunk_bytes:,} bytes; this one "
                              f"is {int(declared):,}", 413)
        try:
            size = await run_in_threadpool(store.put_chunk, upload_id, number, _blocks(request.stream()))
        except ClientDisconnect as exc:  # nothing of the chunk was kept; the client resumes with it
            raise UploadError(VALIDATION_ERROR, f"the connection broke while chunk {number} was arriving; "
                              "send it again") from exc
        return {"upload_id": upload_id, "chunk": number, "size": size}

    @app.get("/uploads/{upload_id}")
    def get_upload(upload_id: str, request: Request, who: Caller) -> dict[str, Any]:
        """The upload and which chunks are stored: after an interruption, send the missing ones."""
        upload = owned_upload(upload_id, who, request)
        return _progress(upload, store.stored_chunks(upload_id))

    @app.post("/uploads/{upload_id}/complete")
    def complete_upload(upload_id: str, request: Request, who: Caller) -> dict[str, Any]:
        """Assemble the chunks into landing/<sample>/<file>; answers its SHA-256."""
        owned_upload(upload_id, who, request)
        upload = store.complete(upload_id, storage, actor=actor(who))
        return {**upload.to_json(), "uri": storage.uri(upload.landing_key)}

    @app.delete("/uploads/{upload_id}")
    def cancel_upload(upload_id: str, request: Request, who: Caller) -> dict[str, Any]:
        """Give up an upload before it lands: its chunks are removed."""
        owned_upload(upload_id, who, request)
        return store.cancel(upload_id, actor=actor(who)).to_json()

    @app.post("/upload", status_code=201)
    async def upload_in_one_request(request: Request, who: Caller) -> dict[str, Any]:
        """A small file in one multipart form (fields `sample_id` and `file`); lands at once."""
        require(who, UPLOADER, request)
        declared = request.headers.get("content-length")
        if declared is None or not declared.isdigit():  # without it the form would be read whole before any check
            raise UploadError(VALIDATION_ERROR, "the request must say its length (Content-Length); for a file "
                              "sent in pieces use POST /uploads", 411)
        if int(declared) > settings.max_file_bytes + FORM_OVERHEAD_BYTES:
            raise too_large(int(declared) - FORM_OVERHEAD_BYTES, settings.max_file_bytes)
        async with request.form(max_files=1) as form:
            sent = form.get("file")
            if not isinstance(sent, UploadFile):
                raise UploadError(NO_FILE, "no file was sent: choose a file (form field 'file')")
            if not sent.filename or not sent.filename.strip():
                raise UploadError(EMPTY_FILENAME, "the file has no name")
            sample_id = form.get("sample_id")
            if not isinstance(sample_id, str) or not sample_id.strip():
                raise UploadError(VALIDATION_ERROR, "the sample id is missing (form field 'sample_id')")
            file_format(sent.filename)
            size = sent.size if sent.size is not None else 0
            return await run_in_threadpool(_land_whole_file, store, storage, settings, sample_id.strip(), sent,
                                           size, actor(who))

    @app.get("/upload_history")
    def upload_history(request: Request, who: Caller, limit: int = 100) -> dict[str, Any]:
        """The latest uploads first: an uploader's own, every upload for an analyst or admin."""
        require(who, UPLOADER, request)
        mine = None if who.may(ANALYST) else actor(who)
        return {"uploads": [u.to_json() for u in store.history(actor=mine, limit=max(1, min(limit, 1000)))]}

    @app.get("/upload_status/{upload_id}")
    def get_upload_status(upload_id: str, request: Request, who: Caller) -> dict[str, Any]:
        """The upload and, once landed, its sample's run: state, gate outcomes with their problems, report."""
        upload = owned_upload(upload_id, who, request)
        base_path = request.scope.get("root_path", "")
        try:
            return upload_status(upload, storage, instance_getter,
                                 lambda key: links.link(key, actor=actor(who), base_path=base_path))
        except Exception as exc:
            from genoflow_dagster.errors import StorageError

            if isinstance(exc, StorageError):
                raise UploadError(STORAGE_ERROR, f"the sample's results could not be read: {exc.message}",
                                  503) from exc
            raise

    @app.get("/results/{sample_id}")
    def get_results(sample_id: str, request: Request, who: Caller) -> dict[str, Any]:
        """The sample's report (HTML, PDF), BAM and VCF (with indexes) that exist, each with a time-limited
        download link (presigned on S3). Analysts and admins see any sample, an uploader those it sent to."""
        require(who, UPLOADER, request)
        try:
            zones.validate_sample_id(sample_id)
        except zones.UnsafeKeyError as exc:
            raise UploadError(VALIDATION_ERROR, str(exc)) from exc
        if not may_see_sample(store, who, actor(who), sample_id):
            store.audit("refused", actor=actor(who), allowed=False,
                        detail=f"{request.method} {request.url.path}: no upload of this token in sample {sample_id}")
            raise AccessRefused(FORBIDDEN, f"an uploader sees only the results of samples it sent files to; "
                                f"this token sent none to {sample_id}", 403)
        return links.results(sample_id, actor=actor(who), base_path=request.scope.get("root_path", ""))

    @app.get("/download/{token}", name="download", response_class=StreamingResponse,
             responses={200: {"content": {"application/octet-stream": {}, "text/html": {}}},
                        403: {"description": "the link was changed"}, 410: {"description": "the link expired"}})
    def download(token: str, request: Request) -> StreamingResponse:
        """The file a time-limited link points to (local storage; the link is its own authorisation).
        The report HTML opens in the browser; the rest are saved as files."""
        try:
            served = links.open(token)
        except UploadError as exc:  # a changed or expired link: audited like a request without a token
            if exc.code in (FORBIDDEN, LINK_EXPIRED):
                refusals.refused(client_address(request.scope), f"GET /download: {exc.code} link")
            raise
        headers = {"Content-Length": str(served.size), "Content-Disposition": content_disposition(served.key),
                   "X-Content-Type-Options": "nosniff", "Cache-Control": "private, no-store"}
        if served.inline:  # the report opens in a sandbox: no script in it could reach the portal's origin
            headers["Content-Security-Policy"] = "sandbox"
        return StreamingResponse(served.blocks, media_type=served.media_type, headers=headers)

    @app.post("/tokens", status_code=201)
    def create_token(body: TokenRequest, request: Request, who: Caller) -> dict[str, Any]:
        """A new token (admin only); the token is shown in this answer and never again."""
        require(who, ADMIN, request)
        if body.role not in ROLES:
            raise UploadError(VALIDATION_ERROR, f"the role must be one of {', '.join(ROLES)}")
        try:
            token_id, token = tokens.create(body.name, body.role, actor=actor(who))
        except ValueError as exc:
            raise UploadError(VALIDATION_ERROR, str(exc)) from exc
        return {"token_id": token_id, "name": body.name.strip(), "role": body.role, "token": token}

    @app.get("/tokens")
    def list_tokens(request: Request, who: Caller) -> dict[str, Any]:
        """Every token (admin only): id, name, role, when made and revoked; never the token itself."""
        require(who, ADMIN, request)
        return {"tokens": tokens.listing()}

    @app.delete("/tokens/{token_id}")
    def revoke_token(token_id: str, request: Request, who: Caller) -> dict[str, Any]:
        """Revoke a token (admin only): it stops working at once."""
        require(who, ADMIN, request)
        if not tokens.revoke(token_id, actor=actor(who)):
            raise UploadError(VALIDATION_ERROR, f"there is no active token {token_id}", 404)
        return {"token_id": token_id, "revoked": True}

    return app


def _progress(upload: Upload, stored: list[int]) -> dict[str, Any]:
    missing = sorted(set(range(upload.chunk_count)) - set(stored))
    return {**upload.to_json(), "chunks_stored": stored, "chunks_missing": missing}


def _blocks(stream: AsyncIterator[bytes]) -> Iterator[bytes]:
    """The request body's blocks, read from a worker thread (the body arrives on the event loop)."""
    iterator = aiter(stream)

    async def next_block() -> bytes | None:
        try:
            return await anext(iterator)
        except StopAsyncIteration:
            return None

    while (block := anyio.from_thread.run(next_block)) is not None:
        if block:
            yield block


def _land_whole_file(store: UploadStore, storage: Storage, settings: PortalSettings, sample_id: str,
                     sent: UploadFile, size: int, who: str) -> dict[str, Any]:
    if size > settings.max_file_bytes:
        raise too_large(size, settings.max_file_bytes)
    upload = store.create(sample_id, sent.filename or "", size, chunk_size=max(size, 1),
                          max_bytes=settings.max_file_bytes, actor=who)
    sent.file.seek(0)
    store.put_chunk(upload.upload_id, 0, iter(lambda: sent.file.read(1024 * 1024), b""))
    landed = store.complete(upload.upload_id, storage, actor=who)
    return {**landed.to_json(), "uri": storage.uri(landed.landing_key)}


def is_loopback(host: str) -> bool:
    """Whether `host` only listens on this machine (a portal without tokens must not listen further)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
