"""API tokens with roles: who may upload, who may see every sample, who may hand out tokens.

A token is 32 random bytes (URL-safe base64) shown once when it is made; only its SHA-256 is stored.
A salted slow hash protects guessable passwords; a 256-bit random token cannot be guessed, so a plain
SHA-256 is enough and lets a request be checked with one indexed lookup.

Roles are ordered: `uploader` (upload, its own history and status, and the results of the samples it
sent a file to), `analyst` (every sample's history, status and results, and uploading), `admin` (tokens,
and everything else).
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass

from genoflow_dagster.portal.uploads import LANDED, UploadStore

UPLOADER = "uploader"
ANALYST = "analyst"
ADMIN = "admin"
ROLES = (UPLOADER, ANALYST, ADMIN)  # each includes the ones before it

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tokens (
    token_id TEXT PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL, token_sha256 TEXT NOT NULL UNIQUE,
    created REAL NOT NULL, revoked REAL
);
"""


@dataclass(frozen=True)
class Principal:
    """Who is calling: a token's name and role."""

    token_id: str | None
    name: str
    role: str

    def may(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    """Tokens in the portal's database; every change written to its audit table."""

    def __init__(self, store: UploadStore) -> None:
        self._store = store
        with store.connect() as db:
            db.executescript(_SCHEMA)

    def create(self, name: str, role: str, *, actor: str | None) -> tuple[str, str]:
        """(token id, the token itself): the token is not stored and cannot be shown again."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        if not name.strip():
            raise ValueError("a token needs a name (who or what uses it)")
        token = secrets.token_urlsafe(32)
        token_id = uuid.uuid4().hex[:16]
        with self._store.connect() as db:
            db.execute("INSERT INTO tokens (token_id, name, role, token_sha256, created) VALUES (?, ?, ?, ?, ?)",
                       (token_id, name.strip(), role, _digest(token), time.time()))
        self._store.audit("token_created", actor=actor, detail=f"{token_id} {name.strip()} ({role})")
        return token_id, token

    def revoke(self, token_id: str, *, actor: str | None) -> bool:
        with self._store.connect() as db:
            changed = db.execute("UPDATE tokens SET revoked = ? WHERE token_id = ? AND revoked IS NULL",
                                 (time.time(), token_id)).rowcount
        if changed:
            self._store.audit("token_revoked", actor=actor, detail=token_id)
        return bool(changed)

    def principal(self, token: str) -> Principal | None:
        """The holder of `token`, or None for an unknown or revoked one."""
        with self._store.connect() as db:
            row = db.execute("SELECT token_id, name, role FROM tokens WHERE token_sha256 = ? AND revoked IS NULL",
                             (_digest(token),)).fetchone()
        return None if row is None else Principal(row["token_id"], row["name"], row["role"])

    def active(self, token_id: str) -> bool:
        """Whether the token `token_id` exists and is not revoked."""
        with self._store.connect() as db:
            return db.execute("SELECT 1 FROM tokens WHERE token_id = ? AND revoked IS NULL",
                              (token_id,)).fetchone() is not None

    def listing(self) -> list[dict[str, object]]:
        with self._store.connect() as db:
            return [dict(row) for row in db.execute("SELECT token_id, name, role, created, revoked FROM tokens "
                                                    "ORDER BY created")]


def may_see_sample(store: UploadStore, who: Principal, actor: str, sample_id: str) -> bool:
    """An analyst or admin sees every sample; an uploader the samples it landed a file in (as `actor`)."""
    if who.may(ANALYST):
        return True
    with store.connect() as db:
        return db.execute("SELECT 1 FROM uploads WHERE sample_id = ? AND actor = ? AND state = ? LIMIT 1",
                          (sample_id, actor, LANDED)).fetchone() is not None
