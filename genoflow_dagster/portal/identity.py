"""Who is calling, as a reverse proxy that did the single sign-on (OIDC) says: the production option.

In production the portal listens on loopback behind a proxy that terminates TLS and signs people in with the
lab's identity provider (for example nginx with oauth2-proxy, see deploy/portal/). The proxy passes the signed-in
person's e-mail and groups in request headers; the portal maps groups to its roles. Such headers are believed only
from the proxy's own address (`GENOFLOW_PORTAL_TRUSTED_PROXIES`): from anywhere else they are ignored, and the
request needs an API token like any other. Tokens keep working beside it (scripts, instruments).

Settings (environment only; the feature is off unless both of the first two are set):
- `GENOFLOW_PORTAL_TRUSTED_PROXIES`: the proxy's addresses as the portal sees the connection, e.g. `127.0.0.1`.
- `GENOFLOW_PORTAL_GROUP_ROLES`: `group=role` pairs, e.g. `lab=uploader,bioinformatics=analyst,it=admin`; a
  person gets the highest role among their groups, and a person in none of them is refused.
- `GENOFLOW_PORTAL_USER_HEADER` (default `X-Forwarded-Email`) and `GENOFLOW_PORTAL_GROUPS_HEADER` (default
  `X-Forwarded-Groups`, comma-separated): what oauth2-proxy sends with `--pass-user-headers`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from genoflow_dagster.portal.access import ROLES, Principal

DEFAULT_USER_HEADER = "X-Forwarded-Email"
DEFAULT_GROUPS_HEADER = "X-Forwarded-Groups"
PROXY_ACTOR_PREFIX = "sso:"  # an SSO person's uploads are theirs under this actor name


class ProxyIdentityError(Exception):
    """The proxy vouched for a person the portal may not let in (no group with a role)."""


@dataclass(frozen=True)
class ProxyIdentity:
    trusted_proxies: frozenset[str]
    group_roles: tuple[tuple[str, str], ...]
    user_header: str = DEFAULT_USER_HEADER
    groups_header: str = DEFAULT_GROUPS_HEADER

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> ProxyIdentity | None:
        """The settings above, or None when single sign-on through a proxy is not configured."""
        env = os.environ if environ is None else environ
        proxies = frozenset(a.strip() for a in env.get("GENOFLOW_PORTAL_TRUSTED_PROXIES", "").split(",") if a.strip())
        pairs = [p.strip() for p in env.get("GENOFLOW_PORTAL_GROUP_ROLES", "").split(",") if p.strip()]
        if not proxies or not pairs:
            return None
        group_roles = []
        for pair in pairs:
            group, _, role = pair.rpartition("=")
            if not group.strip() or role.strip() not in ROLES:
                raise ValueError(f"GENOFLOW_PORTAL_GROUP_ROLES: {pair!r} is not group=role with a role among "
                                 f"{', '.join(ROLES)}")
            group_roles.append((group.strip(), role.strip()))
        return cls(trusted_proxies=proxies, group_roles=tuple(group_roles),
                   user_header=env.get("GENOFLOW_PORTAL_USER_HEADER", DEFAULT_USER_HEADER),
                   groups_header=env.get("GENOFLOW_PORTAL_GROUPS_HEADER", DEFAULT_GROUPS_HEADER))

    def principal(self, peer: str | None, headers: Mapping[str, str]) -> Principal | None:
        """The person the proxy vouches for, or None when this request did not come through the proxy or carries
        no user (then a token decides). ProxyIdentityError when the person has no role here."""
        if peer is None or peer not in self.trusted_proxies:
            return None
        lowered = {name.lower(): value for name, value in headers.items()}  # header names are case-insensitive
        user = lowered.get(self.user_header.lower(), "").strip()
        if not user:
            return None
        groups = {g.strip() for g in lowered.get(self.groups_header.lower(), "").split(",") if g.strip()}
        granted = [role for group, role in self.group_roles if group in groups]
        if not granted:
            raise ProxyIdentityError(f"{user} is signed in, but none of their groups may use the portal; ask the "
                                     "administrator to add them to a group with a role")
        role = max(granted, key=ROLES.index)
        return Principal(token_id=PROXY_ACTOR_PREFIX + user, name=user, role=role)
