"""The audit's comparison: what counts as the same value across vendor encodings, and which
differences are repaired and which only reported."""
from __future__ import annotations

from decimal import Decimal

import pytest

from connectors.base import MARKETING, TRANSACTIONAL, ContactUpdate, ContactView
from hub.core.drift import compare, same

KINDS = {"mkt": MARKETING, "txn": TRANSACTIONAL}


@pytest.mark.parametrize("want, got", [
    (2, "2"), (2, 2.0), (59.9, "59.90"), (Decimal("59.90"), 59.9), ("59.90", 59.9), (0, "0"),
    ("Anna", "Anna"), (None, None), (None, ""), ("", None),
    (True, "true"), (True, 1), (False, "0"),
    ("2026-11-21T10:00:08Z", "2026-11-21T10:00:08.000+0000"), ("2026-11-21T10:00:08Z", "2026-11-21 10:00:08"),
])
def test_the_same_value_in_another_encoding(want: object, got: object) -> None:
    assert same(want, got)


@pytest.mark.parametrize("want, got", [
    (2, "3"), (59.9, "59.8"), (59.9, None), (2, "two"), ("Anna", "anna"), ("Anna", None), (None, "Anna"),
    (True, "false"), (False, None), ("2026-11-21T10:00:08Z", "2026-11-21T10:00:09Z"), ("ANNA-20", "ANNA-21"),
    ("0012", "12"),
])
def test_a_different_value(want: object, got: object) -> None:
    assert not same(want, got)


def update(**kw: object) -> ContactUpdate:
    base: dict = {"email": "cleo@example.com", "fields": {"n": 1}, "lists": {"mkt": MARKETING, "txn": TRANSACTIONAL},
                  "marketing_consent": True}
    return ContactUpdate(**{**base, **kw})


def test_in_step_is_none() -> None:
    view = ContactView(fields={"n": "1", "other": "x"}, lists={"mkt", "txn", "unmapped"}, marketing_consent=True,
                       consent_read=True)
    assert compare(update(), view, KINDS) is None


def test_repaired_differences() -> None:
    finding = compare(update(), ContactView(fields={"n": 2}, lists={"mkt"}), KINDS)
    assert finding is not None and finding.repair
    assert finding.as_dict() == {"repair": True, "fields": ["n"], "lists_lost": ["txn"]}
    missing = compare(update(), None, KINDS)
    assert missing is not None and missing.as_dict() == {"repair": True, "missing": True}


def test_consent_marketing_and_extra_lists_are_only_reported() -> None:
    view = ContactView(fields={"n": 1}, lists={"txn"}, marketing_consent=False, consent_read=True)
    finding = compare(update(), view, KINDS)
    assert finding is not None and not finding.repair
    assert finding.as_dict() == {"repair": False, "lists_other": ["mkt (marketing): missing at the vendor"],
                                 "consent": {"hub": True, "vendor": False}}
    extra = compare(update(lists={}, marketing_consent=None), ContactView(fields={"n": 1}, lists={"txn"}), KINDS)
    assert extra is not None and extra.as_dict() == {"repair": False,
                                                     "lists_other": ["txn (transactional): extra at the vendor"]}


def test_unknown_consent_or_lists_are_not_differences() -> None:
    # Not opted in at the hub and never subscribed at the vendor; a vendor whose read gives no
    # lists (Emarsys) or no consent (Splio).
    assert compare(update(marketing_consent=False, lists={}), ContactView(fields={"n": 1}, lists=set(),
                                                                          consent_read=True), KINDS) is None
    assert compare(update(), ContactView(fields={"n": 1}, lists=None, marketing_consent=None), KINDS) is None
