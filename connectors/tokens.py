"""A vendor access token shared by every connector built with the same credentials.

The hub builds a new connector for each flush job (and each worker host builds its own), so a token
kept on the instance is fetched again by every job. A `TokenStore` (the hub hands one in; it keeps
opaque bytes under a name, with a time to live) lets later jobs reuse it until shortly before it
expires. What goes in the store is a Fernet token whose key is derived (HKDF-SHA256) from the
connector's own credentials: the store never holds the access token in clear, only a holder of the
credentials can read it, and a changed credential cannot decrypt the old entry, so it simply misses.
"""
from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

# A token is dropped this long before its stated expiry (or a tenth of its life, if shorter), so a
# call made just before the end does not reach the vendor with a token that died on the way.
MARGIN = 300.0
SALT = b"referral-sync-hub/access-token-cache/v1"


class TokenStore(Protocol):
    """Where shared tokens live (the hub: Redis). Values are opaque, already encrypted bytes."""

    def get(self, name: str) -> bytes | None: ...

    def put(self, name: str, value: bytes, ttl: float) -> None: ...

    def drop(self, name: str, value: bytes) -> None:
        """Forget `name`, but only while it still holds `value` (another process may have put a
        fresher token there since)."""


@dataclass
class Token:
    """An access token, when it expires (epoch seconds) and what else its answer said (Salesforce's
    instance URL and scopes)."""

    value: str
    expires: float
    extra: dict[str, Any] = field(default_factory=dict)


def fernet_for(name: str, credentials: Mapping[str, Any]) -> Fernet:
    """The cipher of one connector's tokens, derived from everything that authenticates it."""
    material = json.dumps({"connector": name, **{k: str(v) for k, v in credentials.items() if v}},
                          sort_keys=True, separators=(",", ":")).encode()
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=SALT, info=name.encode()).derive(material)
    return Fernet(base64.urlsafe_b64encode(key))


class TokenCache:
    """One connector's token: in memory for the instance, and in the shared store when there is one."""

    def __init__(self, name: str, credentials: Mapping[str, Any], store: TokenStore | None,
                 clock: Callable[[], float] = time.time) -> None:
        self.name = name
        self.store = store
        self.clock = clock
        self._credentials = dict(credentials)
        self._fernet: Fernet | None = None
        self._token: Token | None = None
        self._blob: bytes | None = None       # what the store held (or was given) for that token

    def __repr__(self) -> str:
        return f"TokenCache({self.name!r}, shared={self.store is not None})"

    @property
    def fernet(self) -> Fernet:
        if self._fernet is None:
            self._fernet = fernet_for(self.name, self._credentials)
        return self._fernet

    @staticmethod
    def margin(lifetime: float) -> float:
        return min(MARGIN, lifetime / 10)

    def fresh(self, token: Token) -> bool:
        return self.clock() < token.expires

    def get(self) -> Token | None:
        """The instance's token, else the shared one, while each is still fresh; else None."""
        if self._token is not None and self.fresh(self._token):
            return self._token
        self._token = self._blob = None
        if self.store is None:
            return None
        blob = self.store.get(self.name)
        if blob is None:
            return None
        try:
            data = json.loads(self.fernet.decrypt(blob))
            token = Token(str(data["token"]), float(data["expires"]), dict(data.get("extra") or {}))
        except (InvalidToken, ValueError, KeyError, TypeError):
            return None                       # other credentials (or an unreadable entry): a miss
        if not self.fresh(token):
            return None
        self._token, self._blob = token, blob
        return token

    def put(self, value: str, lifetime: float, **extra: Any) -> Token:
        """Keep a token the vendor just issued, valid `lifetime` seconds from now (less the margin)."""
        expires = self.clock() + lifetime - self.margin(lifetime)
        token = Token(value, expires, extra)
        self._token, self._blob = token, None
        ttl = expires - self.clock()
        if self.store is not None and ttl > 0:
            blob = self.fernet.encrypt(json.dumps({"token": value, "expires": expires, "extra": extra}).encode())
            self.store.put(self.name, blob, ttl)
            self._blob = blob
        return token

    def drop(self) -> None:
        """The vendor refused the token (401): forget it here and in the store, so the next call,
        in this process or another, fetches a new one."""
        if self.store is not None and self._blob is not None:
            self.store.drop(self.name, self._blob)
        self._token = self._blob = None
