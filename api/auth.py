"""API keys, roles, site scopes and per-key rate limits.

A token reads ``sw_<id>_<secret>``: the id (16 hex digits) finds the stored key with one
primary-key read, and the sha256 of the whole token is compared in constant time with the
stored digest. Only the digest is ever stored. A key may be scoped to some sites; a site (or
its loan, alerts, scenes and tiles) outside the scope answers exactly like a missing one.

Each server process keeps the keys it has looked up for ``KEY_CACHE_TTL_S`` seconds, so a
request with a known key costs no database read. Revocation (``sitewatch keys revoke``, which
runs in another process) therefore takes effect in every server within that many seconds.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Annotated, Final, Literal

from anyio import to_thread
from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine

from api.deps import EngineDep
from store import api_repo
from store.api_repo import ApiKeyRecord

logger = logging.getLogger(__name__)

Role = Literal["admin", "officer", "risk_engine", "ingest"]
ROLES: Final[tuple[Role, ...]] = ("admin", "officer", "risk_engine", "ingest")
TOKEN_PREFIX: Final = "sw_"

#: How long a server process trusts a key it has read from the database (seconds): the bound
#: on how late a revocation, role or scope change takes effect. Documented in README (API).
KEY_CACHE_TTL_S: Final = 5.0
#: At most this many keys are remembered per process (least recently read go first).
KEY_CACHE_SIZE: Final = 4096

#: Sent with every 401 (RFC 9110 section 11.6.1).
WWW_AUTHENTICATE: Final = {"WWW-Authenticate": 'Bearer realm="sitewatch"'}


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: an API key's id, name, role and site scope.

    Attributes:
        key_id: The key's public id.
        name: The key's name.
        role: Its role.
        sites: The site ids it may see, or None for every site.
    """

    key_id: str
    name: str
    role: str
    sites: frozenset[str] | None

    @property
    def actor(self) -> str:
        """How writes by this key are recorded in the audit log."""
        return f"key:{self.key_id}" + (f" ({self.name})" if self.name else "")

    def sees_site(self, site_id: str) -> bool:
        """Whether the key's scope includes the site."""
        return self.sites is None or site_id in self.sites


@dataclass(frozen=True, slots=True)
class NewToken:
    """A freshly generated token: shown once, then only its digest is kept."""

    key_id: str
    token: str
    token_sha256: str


def token_digest(token: str) -> str:
    """sha256 hex digest of a token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> NewToken:
    """A random token (256 bits of secret) with its public id and digest."""
    key_id = secrets.token_hex(8)
    token = f"{TOKEN_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    return NewToken(key_id, token, token_digest(token))


def key_id_of(token: str) -> str | None:
    """The public id inside a token, or None when it does not look like one of ours."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    key_id, sep, secret = token[len(TOKEN_PREFIX) :].partition("_")
    if not sep or not secret or len(key_id) != 16:
        return None
    return key_id


class TokenBuckets:
    """One token bucket per API key, in memory (per process).

    Args:
        rate_per_s: Tokens added per second.
        burst: Bucket size.
    """

    def __init__(self, rate_per_s: float, burst: int) -> None:
        self.rate_per_s = rate_per_s
        self.burst = float(burst)
        self._state: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str, now: float | None = None) -> float:
        """Take one token; returns 0 when allowed, else the seconds until one is available."""
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._state.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate_per_s)
            if tokens >= 1.0:
                self._state[key] = (tokens - 1.0, now)
                return 0.0
            self._state[key] = (tokens, now)
            return (1.0 - tokens) / self.rate_per_s


class KeyCache:
    """Stored keys by public id, each trusted for ``ttl_s`` seconds after it was read (per process).

    Only keys that exist are kept: an unknown id is looked up every time, so a key created a
    moment ago works at once. A stale entry is read again from the database, never served.

    Args:
        ttl_s: Seconds an entry is trusted; 0 turns the cache off.
        size: Capacity in keys.
    """

    def __init__(self, ttl_s: float = KEY_CACHE_TTL_S, size: int = KEY_CACHE_SIZE) -> None:
        self.ttl_s = ttl_s
        self.size = size
        self._data: dict[str, tuple[ApiKeyRecord, float]] = {}
        self._lock = threading.Lock()

    def get(self, key_id: str, now: float | None = None) -> ApiKeyRecord | None:
        """The key if it was read less than ``ttl_s`` ago, else None."""
        now = time.monotonic() if now is None else now
        with self._lock:
            hit = self._data.get(key_id)
            if hit is None:
                return None
            record, read_at = hit
            if now - read_at >= self.ttl_s:
                del self._data[key_id]
                return None
            return record

    def put(self, record: ApiKeyRecord, now: float | None = None) -> None:
        """Remember a key just read from the database."""
        if self.ttl_s <= 0:
            return
        now = time.monotonic() if now is None else now
        with self._lock:
            self._data.pop(record.id, None)
            self._data[record.id] = (record, now)
            while len(self._data) > self.size:
                del self._data[next(iter(self._data))]

    def clear(self) -> None:
        """Forget every key (the next request of each reads it again)."""
        with self._lock:
            self._data.clear()


async def _stored_key(request: Request, engine: Engine, key_id: str) -> ApiKeyRecord | None:
    """A key from the process cache, else read in a worker thread (the database call blocks)."""
    cache: KeyCache = request.app.state.keys
    record = cache.get(key_id)
    if record is None:
        record = await to_thread.run_sync(api_repo.get_key, engine, key_id)
        if record is not None:
            cache.put(record)
    return record


_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer sw_...`")
_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="`X-API-Key: sw_...`")


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers=WWW_AUTHENTICATE)


async def authenticate(
    request: Request,
    engine: EngineDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    api_key: Annotated[str | None, Security(_api_key_header)],
) -> Principal:
    """The caller's key, checked and rate limited.

    Runs on the event loop: a key read within ``KEY_CACHE_TTL_S`` costs no thread hop and no
    database read.

    Raises:
        HTTPException: 401 without a valid, unrevoked key; 429 (with Retry-After) over its rate.
    """
    token = bearer.credentials if bearer is not None else api_key
    if not token:
        raise _unauthorized("an API key is required: send `Authorization: Bearer <key>` or `X-API-Key: <key>`")
    key_id = key_id_of(token)
    record = await _stored_key(request, engine, key_id) if key_id else None
    # compare even when no key was found, so timing does not tell ids apart
    stored = record.token_sha256 if record is not None else "0" * 64
    if not hmac.compare_digest(token_digest(token), stored) or record is None:
        raise _unauthorized("the API key is not valid")
    if record.revoked_at is not None:
        raise _unauthorized("the API key has been revoked")
    buckets: TokenBuckets = request.app.state.rate_limits
    wait = buckets.take(record.id)
    if wait > 0:
        raise HTTPException(
            429,
            f"rate limit of {buckets.rate_per_s:g} requests/s exceeded",
            headers={"Retry-After": str(math.ceil(wait))},
        )
    scope = frozenset(record.sites) if record.sites is not None else None
    principal = Principal(record.id, record.name, record.role, scope)
    request.state.principal = principal
    return principal


def require(*roles: Role) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency admitting only keys with one of ``roles`` (admin is always admitted)."""
    allowed: Collection[str] = {"admin", *roles}

    async def check(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        if principal.role not in allowed:
            raise HTTPException(
                403, f"role {principal.role!r} may not do this (needs one of: {', '.join(sorted(allowed))})"
            )
        return principal

    return check


AdminDep = Annotated[Principal, Depends(require("admin"))]
OfficerDep = Annotated[Principal, Depends(require("officer"))]
ScoreReaderDep = Annotated[Principal, Depends(require("officer", "risk_engine"))]
IngestDep = Annotated[Principal, Depends(require("ingest"))]
