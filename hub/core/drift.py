"""How a vendor's copy of a contact differs from what the hub would push now (the anti-entropy
audit's comparison, kept free of Redis and Flask so it is plain data in, plain data out)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from connectors import TRANSACTIONAL, ContactUpdate
from connectors.base import ContactView


def instant(value: Any) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def number(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value).strip())
    except InvalidOperation:
        return None


def truth(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    return True if text in ("1", "true", "yes") else False if text in ("0", "false", "no") else None


def same(want: Any, got: Any) -> bool:
    """Loose equality across vendor encodings: numbers by value ("2" == 2.0, "59.90" == 59.9),
    booleans by truth, dates by instant; an absent value equals None or ""."""
    if want is None or want == "":
        return got is None or got == ""
    if got is None:
        return False
    if isinstance(want, bool) or isinstance(got, bool):
        return truth(want) is not None and truth(want) == truth(got)
    if isinstance(want, (int, float, Decimal)):
        try:
            return math.isclose(float(want), float(got), rel_tol=1e-9, abs_tol=1e-6)
        except (TypeError, ValueError):
            return False
    if str(want) == str(got):
        return True
    written = number(want) if isinstance(got, (int, float)) else None    # "59.90" sent, 59.9 stored
    if written is not None:
        return math.isclose(float(written), float(got), rel_tol=1e-9, abs_tol=1e-6)
    left, right = instant(want), instant(got)
    return left is not None and left == right


@dataclass
class Finding:
    """How one contact at the vendor differs from what the hub would push now."""

    email: str
    missing: bool = False
    fields: list[str] = field(default_factory=list)
    lists_lost: list[str] = field(default_factory=list)       # transactional: repaired
    lists_other: list[str] = field(default_factory=list)      # marketing or extra: reported
    consent: dict[str, Any] | None = None                     # reported

    @property
    def repair(self) -> bool:
        return self.missing or bool(self.fields or self.lists_lost)

    def as_dict(self) -> dict[str, Any]:
        """Names and ids only, never values: a value may be another person's address."""
        out: dict[str, Any] = {"repair": self.repair}
        for name in ("missing", "fields", "lists_lost", "lists_other", "consent"):
            if getattr(self, name):
                out[name] = getattr(self, name)
        return out


def compare(update: ContactUpdate, view: ContactView | None, kinds: dict[str, str]) -> Finding | None:
    """None when the vendor holds what the hub would push; else what differs."""
    finding = Finding(update.email)
    if view is None:
        finding.missing = True
        return finding
    finding.fields = sorted(n for n, want in update.fields.items() if not same(want, view.fields.get(n)))
    if view.lists is not None:
        for list_id, kind in sorted(kinds.items()):
            want, have = list_id in update.lists, list_id in view.lists
            if want and not have and kind == TRANSACTIONAL:
                finding.lists_lost.append(list_id)
            elif want != have:
                finding.lists_other.append(f"{list_id} ({kind}): {'missing' if want else 'extra'} at the vendor")
    hub, vendor = update.marketing_consent, view.marketing_consent
    if view.consent_read and hub is not None and vendor is not None and hub != vendor:
        finding.consent = {"hub": hub, "vendor": vendor}
    if finding.repair or finding.lists_other or finding.consent:
        return finding
    return None
