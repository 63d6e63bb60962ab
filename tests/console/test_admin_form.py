"""The mapping editor's form: every shipped mapping survives the round trip through the form, and
each schema error lands next to the input it names."""
from __future__ import annotations

from typing import Any

import pytest

from hub.console.admin_form import draft_of, placed, row_errors, rows_of
from hub.core.mappingstore import default_document
from mappings import validate_mapping


def as_form(document: dict[str, Any]) -> dict[str, str]:
    """What a browser posts for the rows the editor shows (checkboxes only when ticked)."""
    rows = rows_of(document)
    form = {"identity-field": rows["identity"]["field"], "identity-source": rows["identity"]["source"],
            "description": rows["description"], "field-count": str(len(rows["fields"])),
            "list-count": str(len(rows["lists"]))}
    if rows["consent"]:
        form["consent"] = "on"
    for i, row in enumerate(rows["fields"]):
        form.update({f"field-{i}-{k}": row[k] for k in ("target", "source", "transform", "places", "format", "as",
                                                         "default")})
    for i, row in enumerate(rows["lists"]):
        form.update({f"list-{i}-{k}": row[k] for k in ("id", "kind", "when", "name")})
    return form


@pytest.mark.parametrize("connector", ["klaviyo", "emarsys", "salesforce", "ometria", "splio"])
def test_every_shipped_mapping_survives_the_form(connector: str) -> None:
    document = default_document(connector)
    draft = draft_of(as_form(document), connector)
    assert draft.document == document
    assert validate_mapping(draft.document)[1] == []


def test_consent_off_is_written_and_on_is_the_default() -> None:
    form = as_form(default_document("klaviyo"))
    form.pop("consent")
    assert draft_of(form, "klaviyo").document["consent"] is False
    assert "consent" not in draft_of(as_form(default_document("klaviyo")), "klaviyo").document


def test_defaults_keep_their_type() -> None:
    document = default_document("klaviyo")
    document["fields"][0]["default"] = 0
    document["fields"][1]["default"] = "[not provided]"
    document["fields"][2]["default"] = None
    draft = draft_of(as_form(document), "klaviyo")
    assert [r.get("default", "-") for r in draft.document["fields"][:4]] == [0, "[not provided]", None, "-"]


def test_rename_remove_add_and_a_new_list() -> None:
    form = as_form(default_document("klaviyo"))
    form["field-4-target"] = "referral_invites_sent"          # rename
    form["field-0-remove"] = "on"                              # remove first_name
    blank = int(form["field-count"]) - 1
    form.update({f"field-{blank}-target": "referral_locale", f"field-{blank}-source": "locale",
                 f"field-{blank}-transform": "lower"})
    blank_list = int(form["list-count"]) - 1
    form.update({f"list-{blank_list}-id": "RfMkt2", f"list-{blank_list}-kind": "marketing",
                 f"list-{blank_list}-when": "marketing_opt_in"})
    document = draft_of(form, "klaviyo").document
    targets = [r["target"] for r in document["fields"]]
    assert "first_name" not in targets and "referral_invites_sent" in targets and "referral_friends_invited" not in targets
    assert document["fields"][-1] == {"target": "referral_locale", "source": "locale", "transform": "lower"}
    assert document["lists"][-1] == {"id": "RfMkt2", "kind": "marketing", "when": "marketing_opt_in"}
    assert validate_mapping(document)[1] == []


def test_each_error_is_placed_next_to_its_row_even_after_a_removed_row() -> None:
    form = as_form(default_document("klaviyo"))
    form["field-0-remove"] = "on"
    form["field-3-transform"] = "int"
    form["field-5-places"] = "3"                                # places without decimal
    form["list-1-when"] = "sometimes"
    form["identity-source"] = "nothing"
    draft = draft_of(form, "klaviyo")
    _, errors = validate_mapping(draft.document)
    where = placed(errors, draft)
    assert "unknown transform int" in where["field-3-transform"][0]
    assert where["field-5-places"] == ["places only applies to the decimal transform"]
    assert set(where) == {"field-3-transform", "field-5-places", "list-1-when", "identity-source"}
    assert row_errors(where, "field-3") == where["field-3-transform"]
    assert row_errors(where, "field-1") == []


def test_a_target_mapped_twice_is_named_on_the_second_row() -> None:
    form = as_form(default_document("klaviyo"))
    form["field-2-target"] = form["field-1-target"]
    draft = draft_of(form, "klaviyo")
    where = placed(validate_mapping(draft.document)[1], draft)
    assert where == {"field-2-target": [f"{form['field-1-target']} is mapped twice"]}
