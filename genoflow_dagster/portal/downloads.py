"""A sample's results (report HTML and PDF, BAM, VCF and their indexes) and time-limited links to them.

On S3 a link is a presigned GET URL (`S3Storage.presigned_url`): the browser fetches the object from S3
itself, valid for the link lifetime. On local storage a
link is `/download/<token>`, served by the portal: the token is the storage key, the expiry and the
token id the link was made for, signed with HMAC-SHA256 under `GENOFLOW_PORTAL_SECRET` (or, unset, a
random key made when the portal starts: such links stop working at a restart). A token whose signature
does not match is refused (FORBIDDEN, 403), as is one made for a token revoked since; an expired one is
LINK_EXPIRED (410). (A presigned S3 URL cannot be taken back: it works until it expires.)

Every link handed out is written to the audit table (`download_links`), and every download the portal
serves (`download`), as the token the link was made for. A presigned S3 download never reaches the
portal: the links row is its record here (S3's own access logs have the fetch).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from genoflow_dagster import zones
from genoflow_dagster.errors import StorageError
from genoflow_dagster.portal.uploads import STORAGE_ERROR, VALIDATION_ERROR, UploadError, UploadStore

if TYPE_CHECKING:
    from genoflow_dagster.resources.storage import Storage

DEFAULT_LINK_SECONDS = 3600
LINK_EXPIRED = "LINK_EXPIRED"
FORBIDDEN = "FORBIDDEN"
READ_BLOCK = 1024 * 1024
_INDEX_SUFFIXES = {"bam": (".bai", ".csi"), "vcf": (".tbi", ".csi")}  # what assets/variants.py stores beside them
_MEDIA_TYPES = {".html": "text/html; charset=utf-8", ".pdf": "application/pdf", ".gz": "application/gzip"}


@dataclass(frozen=True)
class ResultFile:
    kind: str  # report_html, report_pdf, bam, bam_index, vcf, vcf_index
    key: str
    size: int


def result_keys(sample_id: str) -> list[tuple[str, str]]:
    """(kind, key) of each result a sample may have, in the order the page lists them."""
    return [("report_html", zones.sample_report_key(sample_id)), ("report_pdf", zones.sample_report_pdf_key(sample_id)),
            ("bam", zones.aligned_bam_key(sample_id)), ("vcf", zones.calls_vcf_key(sample_id))]


def _size(storage: Storage, key: str) -> int | None:
    try:
        return storage.stat(key).size
    except StorageError as exc:
        if exc.reason == "NOT_FOUND":
            return None
        raise


def stored_results(storage: Storage, sample_id: str) -> list[ResultFile]:
    """The results stored for the sample (only those that exist), each index right after its file."""
    found = []
    for kind, key in result_keys(sample_id):
        size = _size(storage, key)
        if size is None:
            continue
        found.append(ResultFile(kind, key, size))
        for suffix in _INDEX_SUFFIXES.get(kind, ()):
            index_size = _size(storage, key + suffix)
            if index_size is not None:
                found.append(ResultFile(f"{kind}_index", key + suffix, index_size))
                break
    return found


def download_name(key: str) -> str:
    """The file name a download is saved as: `<sample>_report.html` for a report, the key's own name otherwise."""
    parts = key.split("/")
    name = parts[-1]
    if parts[0] == zones.REPORTS and len(parts) >= 3 and not name.startswith(parts[1]):
        return f"{parts[1]}_{name}"
    return name


def media_type(key: str) -> str:
    return next((kind for suffix, kind in _MEDIA_TYPES.items() if key.endswith(suffix)), "application/octet-stream")


def opens_in_browser(key: str) -> bool:
    """The report HTML opens in the browser; everything else is saved as a file."""
    return key.endswith(".html")


def content_disposition(key: str) -> str:
    return f'{"inline" if opens_in_browser(key) else "attachment"}; filename="{download_name(key)}"'


# ---------------------------------------------------------------- signed local links

def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class SignedLink:
    key: str
    expires_at: int
    actor: str


class LinkSigner:
    """Makes and checks `/download/<token>` tokens: base64url(JSON payload) "." base64url(HMAC-SHA256)."""

    def __init__(self, secret: bytes) -> None:
        if not secret:
            raise ValueError("the link secret is empty")
        self._secret = secret

    def _mac(self, payload: str) -> str:
        return _b64(hmac.new(self._secret, payload.encode(), hashlib.sha256).digest())

    def sign(self, key: str, expires_at: int, actor: str) -> str:
        payload = _b64(json.dumps({"k": key, "e": expires_at, "a": actor}, separators=(",", ":")).encode())
        return f"{payload}.{self._mac(payload)}"

    def verify(self, token: str, *, now: float | None = None) -> SignedLink:
        """The link, if `token` was signed here and has not expired (the signature is checked first)."""
        payload, _, mac = token.partition(".")
        if not payload or not hmac.compare_digest(mac.encode(), self._mac(payload).encode()):
            raise UploadError(FORBIDDEN, "this download link is not valid: it was changed, or made by another "
                              "portal; ask the portal for a new one", 403)
        try:
            fields = json.loads(_unb64(payload))
            link = SignedLink(key=str(fields["k"]), expires_at=int(fields["e"]), actor=str(fields["a"]))
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:  # signed but unreadable: not ours
            raise UploadError(FORBIDDEN, "this download link is not valid; ask the portal for a new one", 403) \
                from exc
        if (time.time() if now is None else now) >= link.expires_at:
            expired = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(link.expires_at))
            raise UploadError(LINK_EXPIRED, f"this download link expired at {expired}; open the sample's results "
                              "again for a new one", 410)
        return link


def link_secret(configured: str | None) -> tuple[bytes, bool]:
    """(the key links are signed with, whether it was configured): a random one when none is."""
    if configured:
        return configured.encode(), True
    return secrets.token_bytes(32), False


# ---------------------------------------------------------------- links and downloads

def _presigner(storage: Storage) -> Callable[[str, int], str] | None:
    """A function making presigned GET URLs when `storage` can (S3: `S3Storage.presigned_url`), else None."""
    presigned_url = getattr(storage, "presigned_url", None)
    if not callable(presigned_url):
        return None

    def presign(key: str, seconds: int) -> str:
        return str(presigned_url(key, seconds, content_type=media_type(key),
                                 content_disposition=content_disposition(key)))

    return presign


@dataclass(frozen=True)
class Download:
    """An object being served: its name, type, size, and its bytes as blocks (the object closes after the last)."""

    key: str
    name: str
    media_type: str
    inline: bool
    size: int
    blocks: Iterator[bytes]


class DownloadLinks:
    """Links to a storage's objects, valid for `lifetime_seconds`, and the serving of local ones."""

    def __init__(self, storage: Storage, store: UploadStore, signer: LinkSigner, lifetime_seconds: int,
                 *, actor_active: Callable[[str], bool] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        if lifetime_seconds <= 0:
            raise ValueError("a download link must live at least one second")
        self.storage = storage
        self.lifetime_seconds = lifetime_seconds
        self._store = store
        self._signer = signer
        self._presign = _presigner(storage)
        self._actor_active = actor_active
        self._clock = clock

    @property
    def presigned(self) -> bool:
        return self._presign is not None

    def link(self, key: str, *, actor: str, base_path: str = "") -> tuple[str, int]:
        """(URL, expiry in seconds since the epoch) for `key`. `base_path` is where the portal is mounted."""
        expires_at = int(self._clock()) + self.lifetime_seconds
        if self._presign is not None:
            return self._presign(key, self.lifetime_seconds), expires_at
        return f"{base_path}/download/{self._signer.sign(key, expires_at, actor)}", expires_at

    def results(self, sample_id: str, *, actor: str, base_path: str = "") -> dict[str, Any]:
        """The sample's stored results with a link each; the links handed out are audited."""
        files: list[dict[str, Any]] = []
        try:
            stored = stored_results(self.storage, sample_id)
        except StorageError as exc:
            raise UploadError(STORAGE_ERROR, f"the sample's results could not be read: {exc.message}", 503) from exc
        for result in stored:
            url, expires_at = self.link(result.key, actor=actor, base_path=base_path)
            files.append({"kind": result.kind, "name": download_name(result.key), "size": result.size, "url": url,
                          "expires_at": expires_at})
        if files:
            self._store.audit("download_links", actor=actor,
                              detail=f"sample {sample_id}: {', '.join(str(f['kind']) for f in files)} for "
                                     f"{self.lifetime_seconds} s")
        return {"sample_id": sample_id, "expires_in": self.lifetime_seconds, "files": files}

    def open(self, token: str) -> Download:
        """The object a `/download/<token>` link points to, opened for streaming; the download is audited."""
        link = self._signer.verify(token, now=self._clock())
        if self._actor_active is not None and not self._actor_active(link.actor):
            raise UploadError(FORBIDDEN, "this download link was made for a token that has since been revoked", 403)
        stack = contextlib.ExitStack()
        try:
            size = self.storage.stat(link.key).size
            stream = stack.enter_context(self.storage.open_read(link.key))
        except StorageError as exc:
            stack.close()
            if exc.reason == "NOT_FOUND":
                raise UploadError(VALIDATION_ERROR, f"{download_name(link.key)} is no longer stored (the sample "
                                  "may have been run again); open the sample's results again", 404) from exc
            raise UploadError(STORAGE_ERROR, f"{download_name(link.key)} could not be read: {exc.message}",
                              503) from exc

        def blocks() -> Iterator[bytes]:
            with stack:
                while block := stream.read(READ_BLOCK):
                    yield block

        self._store.audit("download", actor=link.actor, detail=f"{link.key} ({size:,} bytes)")
        return Download(key=link.key, name=download_name(link.key), media_type=media_type(link.key),
                        inline=opens_in_browser(link.key), size=size, blocks=blocks())
