"""Feeds and exports as data: a JSON document named by HUB_FEEDS_FILE, validated on load.

Secrets never sit in the document: a feed names the environment variable or the file that holds
its password or private key.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from mappings.schema import FieldRule

from hub.core.feeds.errors import FeedConfigError
from hub.core.feeds.mapping import resolve
from hub.core.schemas import flatten

NAME = validate.Regexp(r"^[a-z0-9][a-z0-9_-]{0,63}$", error="lower-case letters, digits, - and _ (at most 64)")
KINDS = ("referrer-stats", "friends")


class Server(Schema):
    host = fields.String(required=True, validate=validate.Length(min=1))
    port = fields.Integer(load_default=22, validate=validate.Range(min=1, max=65535))
    user = fields.String(required=True, validate=validate.Length(min=1))
    password_env = fields.String()
    password_file = fields.String()
    key_env = fields.String()
    key_file = fields.String()
    key_passphrase_env = fields.String()
    host_key = fields.String(required=True, validate=validate.Length(min=10))
    timeout = fields.Float(load_default=30.0, validate=validate.Range(min=1, max=600))

    @validates_schema
    def one_credential(self, data: dict[str, Any], **kwargs: Any) -> None:
        given = [k for k in ("password_env", "password_file", "key_env", "key_file") if data.get(k)]
        if len(given) != 1:
            raise ValidationError("give exactly one of password_env, password_file, key_env, key_file", "sftp")


class Feed(Schema):
    name = fields.String(required=True, validate=NAME)
    sftp = fields.Nested(Server, required=True)
    folder = fields.String(required=True, validate=validate.Length(min=1))
    pattern = fields.String(load_default="*.csv")
    mapping = fields.Raw(required=True)         # a preset name or a feed mapping document
    batch = fields.Integer(load_default=500, validate=validate.Range(min=1, max=500))
    read_window = fields.Integer(load_default=1 << 20, validate=validate.Range(min=1 << 15, max=1 << 26))


class Export(Schema):
    name = fields.String(required=True, validate=NAME)
    kind = fields.String(required=True, validate=validate.OneOf(KINDS))
    sftp = fields.Nested(Server, required=True)
    folder = fields.String(required=True, validate=validate.Length(min=1))
    filename = fields.String(load_default="{name}-{date}.csv", validate=validate.Length(min=1))
    gzip = fields.Boolean(load_default=False)
    cron = fields.String()
    timezone = fields.String(load_default="UTC")
    extra = fields.List(fields.Nested(FieldRule), load_default=list)

    @validates_schema
    def schedule(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("cron") and not croniter.is_valid(data["cron"]):
            raise ValidationError(f"not a cron expression: {data['cron']!r}", "cron")
        try:
            ZoneInfo(data.get("timezone", "UTC"))
        except (ZoneInfoNotFoundError, ValueError):
            raise ValidationError(f"unknown time zone {data.get('timezone')!r}", "timezone") from None


class Document(Schema):
    feeds = fields.List(fields.Nested(Feed), load_default=list)
    exports = fields.List(fields.Nested(Export), load_default=list)

    @validates_schema
    def unique_names(self, data: dict[str, Any], **kwargs: Any) -> None:
        for part in ("feeds", "exports"):
            names = [item["name"] for item in data.get(part, [])]
            twice = sorted({n for n in names if names.count(n) > 1})
            if twice:
                raise ValidationError(f"{', '.join(twice)} named twice", part)


@dataclass(frozen=True)
class Feeds:
    feeds: dict[str, dict[str, Any]]
    exports: dict[str, dict[str, Any]]

    def feed(self, name: str) -> dict[str, Any]:
        if name not in self.feeds:
            raise FeedConfigError(f"no feed named {name!r}; configured: {', '.join(self.feeds) or '(none)'}")
        return self.feeds[name]

    def export(self, name: str) -> dict[str, Any]:
        if name not in self.exports:
            raise FeedConfigError(f"no export named {name!r}; configured: {', '.join(self.exports) or '(none)'}")
        return self.exports[name]


def parse(document: Any) -> Feeds:
    """The document validated; FeedConfigError names every bad path."""
    try:
        data = Document().load(document)
    except ValidationError as exc:
        raise FeedConfigError("; ".join(f"{path}: {msg}" for path, msg in flatten(exc.messages))) from None
    for feed in data["feeds"]:
        resolve(feed["mapping"], where=f"feeds.{feed['name']}.mapping")
    return Feeds({f["name"]: f for f in data["feeds"]}, {e["name"]: e for e in data["exports"]})


def load(config: Mapping[str, Any]) -> Feeds:
    """The feeds named by HUB_FEEDS_FILE (none when unset)."""
    path = config.get("FEEDS_FILE") or ""
    if not path:
        return Feeds({}, {})
    try:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
    except OSError as exc:
        raise FeedConfigError(f"HUB_FEEDS_FILE {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise FeedConfigError(f"HUB_FEEDS_FILE {path} is not valid JSON: {exc}") from None
    return parse(document)


def secret(server: Mapping[str, Any], kind: str) -> str | None:
    """The password or private key a server entry names ("password" or "key"), or None."""
    if server.get(f"{kind}_env"):
        name = server[f"{kind}_env"]
        value = os.environ.get(name)
        if not value:
            raise FeedConfigError(f"the environment variable {name} is not set")
        return value
    if server.get(f"{kind}_file"):
        try:
            with open(server[f"{kind}_file"], encoding="utf-8") as handle:
                return handle.read().strip() if kind == "password" else handle.read()
        except OSError as exc:
            raise FeedConfigError(f"cannot read {server[f'{kind}_file']}: {exc.strerror}") from None
    return None
