"""Every kind of mistake an admin can make in a mapping document is refused with its path."""
from __future__ import annotations

import copy
from typing import Any

import pytest

from mappings import default_mapping, validate_mapping
from mappings.engine import render

GOOD: dict[str, Any] = {
    "connector": "klaviyo",
    "identity": {"field": "email", "source": "email"},
    "fields": [
        {"target": "referral_friends_invited", "source": "invites_sent", "transform": "integer"},
        {"target": "referral_turnover", "source": "turnover_amount", "transform": "decimal", "places": 2},
        {"target": "opted_in", "source": "marketing_opt_in", "transform": "boolean", "as": "yes_no"},
        {"target": "converted_on", "source": "converted_at", "transform": "date", "format": "date"},
    ],
    "lists": [{"id": "RfMkt1", "kind": "marketing", "when": "marketing_opt_in"}],
}


def broken(edit) -> list[dict[str, str]]:  # type: ignore[no-untyped-def]
    document = copy.deepcopy(GOOD)
    edit(document)
    mapping, errors = validate_mapping(document)
    assert mapping is None
    return errors


def test_the_good_document_loads() -> None:
    mapping, errors = validate_mapping(GOOD)
    assert errors == [] and mapping is not None
    assert mapping["fields"][2]["as_"] == "yes_no"


@pytest.mark.parametrize("connector", ["klaviyo", "ometria", "splio", "emarsys", "salesforce"])
def test_every_shipped_default_is_valid(connector: str) -> None:
    assert default_mapping(connector)["connector"] == connector


@pytest.mark.parametrize("edit, path, words", [
    (lambda d: d["fields"][0].update(source="invites"), "fields.0.source", "unknown source invites"),
    (lambda d: d["fields"][0].update(transform="eval"), "fields.0.transform", "unknown transform eval"),
    (lambda d: d["fields"][0].pop("target"), "fields.0.target", "Missing data"),
    (lambda d: d["fields"][0].pop("source"), "fields.0.source", "Missing data"),
    (lambda d: d["fields"][0].update(target=""), "fields.0.target", "Length must be between 1 and 255"),
    (lambda d: d["fields"][0].update(places=2), "fields.0.places", "only applies to the decimal transform"),
    (lambda d: d["fields"][1].update(places=9), "fields.1.places", "less than or equal to 6"),
    (lambda d: d["fields"][3].update(format="dd/mm/yyyy"), "fields.3.format", "Must be one of"),
    (lambda d: d["fields"][0].update(format="date"), "fields.0.format", "only applies to the date transform"),
    (lambda d: d["fields"][2].update({"as": "oui_non"}), "fields.2.as", "as must be one of"),
    (lambda d: d["fields"][0].update({"as": "yes_no"}), "fields.0.as", "as must be one of"),
    (lambda d: d["fields"][0].update(expression="invites_sent * 2"), "fields.0.expression", "Unknown field"),
    (lambda d: d["fields"].append(dict(d["fields"][0])), "fields.4.target", "mapped twice"),
    (lambda d: d["lists"][0].update(kind="vip"), "lists.0.kind", "Must be one of: marketing, transactional"),
    (lambda d: d["lists"][0].update(when="turnover > 100"), "lists.0.when", "Must be one of: always"),
    (lambda d: d["lists"][0].pop("id"), "lists.0.id", "Missing data"),
    (lambda d: d["lists"].append(dict(d["lists"][0])), "lists.1.id", "appears twice"),
    (lambda d: d["identity"].update(source="phone"), "identity.source", "Must be one of"),
    (lambda d: d.pop("identity"), "identity", "Missing data"),
    (lambda d: d.pop("fields"), "fields", "Missing data"),
    (lambda d: d.update(fields={"a": "b"}), "fields", "Not a valid list"),
    (lambda d: d["fields"].__setitem__(0, "referral_friends_invited"), "fields.0", "Invalid input type"),
    (lambda d: d.update(consent="yes please"), "consent", "Not a valid boolean"),
    (lambda d: d.update(extra=1), "extra", "Unknown field"),
])
def test_each_mistake_names_its_path_and_says_what_is_wrong(edit, path: str, words: str) -> None:  # type: ignore[no-untyped-def]
    errors = broken(edit)
    assert any(e["path"] == path and words in e["message"] for e in errors), errors


def test_not_an_object() -> None:
    assert validate_mapping(["fields"]) == (None, [{"path": "$", "message": "a mapping is a JSON object"}])


def test_render_uses_the_closed_set_only() -> None:
    mapping, _ = validate_mapping(GOOD)
    state = {"email": "a@example.com", "invites_sent": 3, "marketing_opt_in": True,
             "converted_at": "2026-11-21T10:00:08Z", "turnover_amount": "59.9"}
    out = render(mapping, state)
    assert out["fields"] == {"referral_friends_invited": 3, "referral_turnover": 59.9, "opted_in": "yes",
                             "converted_on": "2026-11-21"}
    assert out["lists"] == {"RfMkt1": "marketing"} and out["identity"] == {"email": "a@example.com"}
