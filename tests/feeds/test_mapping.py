"""Feed mappings and the feeds file: presets, validation errors that name the path, row ids."""
from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from hub.core.feeds.config import FeedConfigError, parse
from hub.core.feeds.mapping import PRESETS, build, resolve, validate_feed_mapping

SERVER = {"host": "sftp.example", "port": 22, "user": "u", "password_env": "FEED_PW",
          "host_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"}


def test_every_preset_is_a_valid_mapping_and_says_whose_layout_it_is() -> None:
    for name, document in PRESETS.items():
        mapping, errors = validate_feed_mapping(document)
        assert errors == [] and mapping is not None, name
        assert document["layout"] in ("published", "ours")
    assert PRESETS["splio-contacts"]["layout"] == "published"
    assert PRESETS["referral-activity"]["layout"] == "ours"


def test_errors_name_the_path() -> None:
    document = json.loads(json.dumps(PRESETS["referral-activity"]))
    document["columns"][0]["target"] = "referrer.shoe_size"
    document["key"] = ["nope"]
    _, errors = validate_feed_mapping(document)
    paths = {e["path"] for e in errors}
    assert "columns.0.target" in paths


def test_a_row_id_comes_from_the_feed_the_type_and_the_natural_key() -> None:
    mapping = resolve("referral-activity")
    row = {"referrer": "Anna@Example.com ", "friend": "cleo@example.com", "event_type": "converted",
           "order_id": "o1", "total": "10.00", "currency": "GBP", "date": "2026-11-01T10:00:00Z"}
    event = build(mapping, "shop", row, "2026-11-02T00:00:00Z")
    assert event["type"] == "friend.converted" and event["order"] == {"id": "o1", "total": "10.00", "currency": "GBP"}
    assert event["occurred_at"] == "2026-11-01T10:00:00Z"
    # another date or total for the same order is the same event: it can never count twice
    assert build(mapping, "shop", {**row, "date": "2026-11-05T00:00:00Z", "total": "11.00"}, "x")["id"] == event["id"]
    assert build(mapping, "other-feed", row, "x")["id"] != event["id"]
    assert build(mapping, "shop", {**row, "order_id": "o2"}, "x")["id"] != event["id"]


def test_splio_contacts_enrol_referrers_and_update_contacts() -> None:
    mapping = resolve("splio-contacts")
    base = {"unique_id": "C-1", "email": "anna@example.com", "lastname": "Smith", "firstname": "Anna"}
    contact = build(mapping, "splio", base, "2026-11-02T00:00:00Z")
    assert contact["type"] == "contact.updated"
    assert contact["contact"] == {"email": "anna@example.com", "customer_id": "C-1", "last_name": "Smith", "first_name": "Anna"}
    referrer = build(mapping, "splio", {**base, "referral_referrer_id": "ref-1"}, "2026-11-02T00:00:00Z")
    assert referrer["type"] == "referrer.enrolled" and referrer["referrer"]["referrer_id"] == "ref-1"
    # contact files key on the values too: a changed name in a later file applies, the same row does not
    renamed = build(mapping, "splio", {**base, "lastname": "Jones"}, "2026-11-03T00:00:00Z")
    assert renamed["id"] != contact["id"]
    assert build(mapping, "splio", dict(base), "2026-11-09T00:00:00Z")["id"] == contact["id"]


@pytest.mark.parametrize("change, message", [
    ({"sftp": {**SERVER, "password_env": None}}, "give exactly one of"),
    ({"mapping": "no-such-preset"}, "no preset named 'no-such-preset'"),
    ({"name": "Bad Name"}, "feeds.0.name"),
])
def test_the_feeds_file_is_validated(change: dict[str, Any], message: str) -> None:
    feed = {"name": "shop", "sftp": SERVER, "folder": "/in", "mapping": "referral-activity", **change}
    feed["sftp"] = {k: v for k, v in feed["sftp"].items() if v is not None}
    with pytest.raises(FeedConfigError, match=message):
        parse({"feeds": [feed]})


def test_exports_are_validated() -> None:
    export = {"name": "stats", "kind": "referrer-stats", "sftp": SERVER, "folder": "/out", "cron": "0 2 * * *",
              "timezone": "Europe/Paris"}
    assert parse({"exports": [export]}).export("stats")["timezone"] == "Europe/Paris"
    with pytest.raises(FeedConfigError, match="exports.0.cron"):
        parse({"exports": [{**export, "cron": "every day"}]})
    with pytest.raises(FeedConfigError, match="unknown time zone"):
        parse({"exports": [{**export, "timezone": "Mars/Olympus"}]})


def test_the_cli_says_what_is_wrong_without_a_traceback(make_app, tmp_path, monkeypatch, redis_url) -> None:  # type: ignore[no-untyped-def]
    from hub.cli import main

    path = tmp_path / "feeds.json"
    path.write_text(json.dumps({"feeds": [{"name": "shop", "sftp": SERVER, "folder": "/in", "mapping": "nope"}]}))
    monkeypatch.setenv("HUB_REDIS_URL", redis_url)
    monkeypatch.setenv("HUB_FEEDS_FILE", str(path))
    result = CliRunner().invoke(main, ["feeds", "status"])
    assert result.exit_code == 1
    assert "no preset named 'nope'" in result.output and "Traceback" not in result.output
    path.write_text(json.dumps({"feeds": [{"name": "shop", "sftp": {**SERVER, "port": 1, "host": "127.0.0.1"},
                                           "folder": "/in", "mapping": "referral-activity"}]}))
    monkeypatch.setenv("FEED_PW", "secret-password-1")
    result = CliRunner().invoke(main, ["feeds", "poll", "shop"])
    assert result.exit_code == 1 and "cannot reach 127.0.0.1:1" in result.output
    assert "secret-password-1" not in result.output
    result = CliRunner().invoke(main, ["feeds", "export", "nope"])
    assert result.exit_code == 1 and "no export named 'nope'" in result.output


def test_a_feed_mapping_is_versioned_like_a_field_mapping(redis_client) -> None:  # type: ignore[no-untyped-def]
    from hub.core.feeds import versions
    from hub.core.mappingstore import StaleVersion

    feed = {"name": "shop", "mapping": "referral-activity"}
    head = versions.current(redis_client, feed)
    assert (head["version"], head["document"]) == (0, "referral-activity")
    changed = json.loads(json.dumps(PRESETS["referral-activity"]))
    changed["type"]["values"]["bought"] = "friend.converted"
    saved = versions.save(redis_client, feed, changed, author="ops", if_match=head["etag"])
    assert saved["version"] == 1
    mapping = versions.current_mapping(redis_client, feed)
    row = {"referrer": "a@b.example", "friend": "c@d.example", "event_type": "bought", "order_id": "o1",
           "total": "1.00", "currency": "GBP", "date": "2026-11-01T00:00:00Z"}
    assert build(mapping, "shop", row, "x")["type"] == "friend.converted"
    with pytest.raises(StaleVersion):
        versions.save(redis_client, feed, changed, author="ops", if_match=head["etag"])
    broken = {**changed, "key": ["missing"]}
    with pytest.raises(ValueError, match="key: missing is not one of the columns"):
        versions.save(redis_client, feed, broken, author="ops")
    back = versions.rollback(redis_client, feed, 0, author="ops")
    assert (back["version"], versions.current(redis_client, feed)["document"]) == (2, "referral-activity")
    assert [r["version"] for r in versions.history(redis_client, feed)] == [2, 1, 0]
