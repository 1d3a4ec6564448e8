"""Passwords, login throttling, CSRF tokens and invitation links for the dashboard."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadSignature, URLSafeTimedSerializer

MAX_FAILURES = 5
FIRST_WAIT = 60.0  # seconds after the 5th failure; doubles with every further failure
MAX_WAIT = 15 * 60.0
FORGET_AFTER = 60 * 60.0  # failures older than this no longer count
INVITE_MAX_AGE = 7 * 24 * 3600
MIN_PASSWORD = 10

_hasher = PasswordHasher()
# Verified against when the e-mail is unknown, so both cases cost the same time.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def derive_key(secret: bytes, purpose: str) -> str:
    """A separate key per use (session cookie, invitations) from the one app secret."""
    return hmac.new(secret, purpose.encode(), hashlib.sha256).hexdigest()


async def hash_password(password: str) -> str:
    """An argon2 hash, computed off the event loop."""
    return await asyncio.to_thread(_hasher.hash, password)


def _verify(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False


async def verify_password(password_hash: str | None, password: str) -> bool:
    """True when the password matches; an account without a hash never matches."""
    return await asyncio.to_thread(_verify, password_hash, password)


def password_problem(password: str, repeat: str) -> str | None:
    """One Dutch line about a new password, or None when it is fine."""
    if len(password) < MIN_PASSWORD:
        return f"Kies een wachtwoord van minstens {MIN_PASSWORD} tekens."
    if password != repeat:
        return "De twee wachtwoorden zijn niet hetzelfde."
    return None


def fingerprint(password_hash: str | None) -> str:
    """A short digest of the password hash: a new password ends older sessions and links."""
    return hashlib.sha256((password_hash or "-").encode()).hexdigest()[:16]


def new_csrf_token() -> str:
    """A random per-session token for the hidden form field."""
    return secrets.token_urlsafe(32)


def same_token(expected: object, given: object) -> bool:
    """Constant-time comparison of two CSRF tokens (False when either is missing)."""
    if not isinstance(expected, str) or not isinstance(given, str) or not expected:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


@dataclass
class _Failures:
    count: int = 0
    last: float = 0.0
    locked_until: float = 0.0


@dataclass
class LoginThrottle:
    """Counts failed logins per e-mail and per IP address; after 5 failures, wait.

    Kept in memory: one dashboard process per school. A restart forgets the counts, which
    only ever makes it easier for a real user.
    """

    clock: Callable[[], float] = time.monotonic
    entries: dict[str, _Failures] = field(default_factory=dict)

    def _entry(self, key: str) -> _Failures:
        now = self.clock()
        entry = self.entries.get(key)
        if entry is None or now - entry.last > FORGET_AFTER:
            entry = _Failures()
            self.entries[key] = entry
        return entry

    def wait_seconds(self, *keys: str) -> float:
        """How long these keys must still wait before the next attempt (0: try now)."""
        now = self.clock()
        return max([0.0] + [self._entry(k).locked_until - now for k in keys])

    def failed(self, *keys: str) -> None:
        """Count one failed attempt for every key."""
        now = self.clock()
        for key in keys:
            entry = self._entry(key)
            entry.count += 1
            entry.last = now
            if entry.count >= MAX_FAILURES:
                extra = entry.count - MAX_FAILURES
                entry.locked_until = now + min(MAX_WAIT, FIRST_WAIT * 2**extra)
        if len(self.entries) > 10_000:
            self._forget_old(now)

    def succeeded(self, key: str) -> None:
        """Forget the failures of a key (the e-mail; the IP keeps its count)."""
        self.entries.pop(key, None)

    def _forget_old(self, now: float) -> None:
        for key in [k for k, e in self.entries.items() if now - e.last > FORGET_AFTER]:
            del self.entries[key]


class Invitations:
    """Signed, expiring links that let a staff member choose a password, once."""

    def __init__(self, secret: bytes) -> None:
        self.serializer = URLSafeTimedSerializer(
            derive_key(secret, "dashboard-invite"), salt="invite"
        )

    def make(self, *, staff_id: int, password_hash: str | None) -> str:
        """A token bound to the account and its current password (using it changes that)."""
        return self.serializer.dumps({"s": staff_id, "f": fingerprint(password_hash)})

    def read(self, token: str) -> tuple[int, str] | None:
        """(staff id, password fingerprint) from a valid, unexpired token."""
        try:
            data = self.serializer.loads(token, max_age=INVITE_MAX_AGE)
        except BadSignature:
            return None
        if (
            not isinstance(data, dict)
            or not isinstance(data.get("s"), int)
            or not isinstance(data.get("f"), str)
        ):
            return None
        return data["s"], data["f"]
