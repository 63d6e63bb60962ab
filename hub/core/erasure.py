"""Erasure that forgets: the keyed hash that refuses re-creation, and the clean-up outside the
ledger (failed syncs, webhook stores, per-connector stores) once the ledger has erased someone.

The ledger step (hub/core/ledger.lua) does the atomic part: the person's state, their event log
entries, the links from other contacts (a friend's `referred_by` is cleared and the friend marked
dirty), their link and distinct-friend hash in their referrers' links hashes, `hub:ver`. What is left after both
parts is `hub:erased:<HMAC-SHA256(key, email)>` and, until each vendor confirms the deletion, the
address in that connector's erase queue (see docs/reliability.md "Erasure").
"""
from __future__ import annotations

import hashlib
import os
import re
import secrets
from pathlib import Path
from typing import Any
from hub.core import services


KEY_FILE = "erasure.key"
MIN_KEY = 16                       # characters of HUB_ERASURE_KEY; a short key is guessable


class ErasureKeyError(ValueError):
    """HUB_ERASURE_KEY is set but unusable (never carries the value itself)."""


def load_key(config: dict[str, Any]) -> bytes:
    """HUB_ERASURE_KEY, else the key kept in <DATA_DIR>/erasure.key (created once, mode 0600).

    Every process of one hub must use the same key: with a shared Redis on several hosts, set
    HUB_ERASURE_KEY; the file is the embedded single-host default."""
    value = str(config.get("ERASURE_KEY") or "").strip()
    if value:
        if len(value) < MIN_KEY:
            raise ErasureKeyError(f"HUB_ERASURE_KEY must be at least {MIN_KEY} characters")
        return value.encode()
    path = Path(str(config.get("DATA_DIR") or "var")).resolve() / KEY_FILE
    try:
        return kept_key(path)
    except OSError as exc:
        raise ErasureKeyError(f"cannot keep the erasure key in {path} ({exc.strerror}): "
                              "set HUB_ERASURE_KEY or make HUB_DATA_DIR writable") from None


def kept_key(path: Path) -> bytes:
    """The key in `path`, created there first if absent. The new key is written whole to a
    private file and linked into place, so two processes starting at once end up with one key
    and neither ever reads a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_hex(32) + "\n")
            os.link(draft, path)
        except FileExistsError:
            pass  # another process linked its key first: use that one
        finally:
            draft.unlink(missing_ok=True)
    key = path.read_text().strip()
    if len(key) < MIN_KEY:
        raise ErasureKeyError(f"{path} holds no usable erasure key; delete it only if nothing was erased yet")
    return key.encode()


def mentions(addresses: list[str]) -> re.Pattern[str]:
    """Any of the addresses as a whole word in any letter case: bob@x.com, never inside
    jimbob@x.com or bob@x.com.au."""
    either = "|".join(re.escape(a) for a in addresses)
    return re.compile(rf"(?<![\w.!#$%&'*+/=?^`{{|}}~-])(?:{either})(?![\w.-])", re.IGNORECASE)


class Keyed:
    """HMAC-SHA256 hex under the erasure key: the only form in which the hub keeps an erased
    address. The keyed state is built once and copied per value (the ingest hot path)."""

    def __init__(self, key: bytes) -> None:
        # RFC 2104 with the padded key's two hash states kept: the same value as hmac.new(),
        # about half the cost per call (two hashlib copies instead of an HMAC object's).
        block = (hashlib.sha256(key).digest() if len(key) > 64 else key).ljust(64, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))

    def __call__(self, value: str) -> str:
        inner, outer = self._inner.copy(), self._outer.copy()
        inner.update(value.encode("utf-8"))
        outer.update(inner.digest())
        return outer.hexdigest()

    def __repr__(self) -> str:
        return "Keyed(***)"


def keyed() -> Keyed:
    return services.current().erasure


def tag(email: str) -> str:
    return keyed()(email)


def seen_id(event_id: str, mac: Keyed | None = None) -> str | None:
    """The dedupe marker name for an event id that may carry an address (Mention Me builds ids
    from emails), so that marker outlives an erasure without naming the person; None otherwise."""
    return "#" + (mac or keyed())("event:" + event_id) if "@" in event_id else None
